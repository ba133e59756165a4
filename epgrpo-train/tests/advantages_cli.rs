//! `epgrpo advantages` end to end: cases computed by an independent Python implementation of
//! the spec (`fixtures/independent_cases.py`), the spec's O3 oracle, and malformed input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn run(input: &str, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_epgrpo"))
        .arg("advantages")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("epgrpo starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn assert_close(label: &str, got: &Value, want: &Value, tol: f64) {
    match (got, want) {
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{label}: length");
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert_close(&format!("{label}[{i}]"), g, w, tol);
            }
        }
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!((g - w).abs() <= tol, "{label}: got {g}, want {w}");
        }
        _ => assert_eq!(got, want, "{label}"),
    }
}

#[test]
fn reproduces_independent_python_cases_to_1e_5() {
    let cases: Value =
        serde_json::from_str(include_str!("fixtures/independent_cases.json")).unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let output = run(&case["input"].to_string(), &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{}: {stderr}",
            case["input"]["algorithm"]
        );
        let got: Value = serde_json::from_slice(&output.stdout).unwrap();
        let label = case["input"]["algorithm"].to_string();
        for (g, w) in got["groups"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["expected"]["groups"].as_array().unwrap())
        {
            assert_close(
                &format!("{label} advantages"),
                &g["advantages"],
                &w["advantages"],
                1e-5,
            );
            assert_close(
                &format!("{label} token_weight"),
                &g["token_weight"],
                &w["token_weight"],
                1e-5,
            );
            assert_eq!(g["bucket"], w["bucket"], "{label} bucket");
            assert_eq!(
                g["zero_variance"], w["zero_variance"],
                "{label} zero_variance"
            );
        }
    }
}

#[test]
fn reads_a_file_and_matches_oracle_o4() {
    let input = r#"{"algorithm": {"name": "ep_grpo"}, "groups": [{"rewards": [1, 0, 1, 0],
        "entropy": [[0.30, 1.00, 0.40, 0.30], [0.45, 0.65, 0.90], [0.35, 0.30, 0.20, 0.15], [1.10, 0.60, 0.30]],
        "logp_old": [[-0.9, -0.7, -0.95, -1.0], [-1.2, -0.9, -0.6], [-0.95, -0.8, -1.0, -0.9], [-0.7, -1.1, -1.0]],
        "logp_ref": [[-1, -1, -1, -1], [-1, -1, -1], [-1, -1, -1, -1], [-1, -1, -1]]}]}"#;
    let path = std::env::temp_dir().join(format!("epgrpo-o4-{}.json", std::process::id()));
    std::fs::write(&path, input).unwrap();
    let output = run("", &[path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();
    let want: Value = serde_json::from_str(
        "[[0.291103, 1.561264, 0.797473, 0.036311], [-0.396210, 0.077622, -2.016056],
          [0.324825, -0.038500, 0.299096, 0.166550], [-1.642583, 0.262517, -0.036311]]",
    )
    .unwrap();
    assert_close("O4", &got["groups"][0]["advantages"], &want, 1e-5);
    assert_eq!(
        got["groups"][0]["bucket"],
        serde_json::json!([[1, 6, 8, 9], [2, 5, 9], [3, 6, 8, 9], [5, 8, 9]])
    );
}

/// Runs bad input and returns its single stderr line after checking exit code 2.
fn rejected(input: &str) -> String {
    let output = run(input, &[]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_string();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn malformed_input_gets_one_clear_line_and_exit_code_2() {
    let syntax = rejected("{\"groups\": [\n{\"rewards\": [1, 0,]}]}");
    assert!(
        syntax.contains("<stdin>") && syntax.contains("line 2"),
        "{syntax}"
    );

    let unknown = rejected(r#"{"algorithm": {"gama": 1}, "groups": []}"#);
    assert!(unknown.contains("unknown field `gama`"), "{unknown}");

    let ragged = rejected(
        r#"{"groups": [{"rewards": [1, 0], "entropy": [[0.1, 0.2], [0.3]],
            "logp_old": [[-1, -1], [-1, -1]], "logp_ref": [[-1, -1], [-1]]}]}"#,
    );
    assert!(
        ragged.contains("groups[0]") && ragged.contains("logp_old[1] has 2 tokens"),
        "{ragged}"
    );

    let gamma = rejected(
        r#"{"algorithm": {"gamma": -1}, "groups": [{"rewards": [1, 0], "entropy": [[0.1], [0.3]]}]}"#,
    );
    assert!(gamma.contains("algorithm.gamma must be ≥ 0"), "{gamma}");

    let single = rejected(
        r#"{"algorithm": {"name": "grpo"}, "groups": [{"rewards": [1], "entropy": [[0.1]]}]}"#,
    );
    assert!(single.contains("algorithm.group_size (1)"), "{single}");

    let sizes = rejected(
        r#"{"groups": [{"rewards": [1, 0], "entropy": [[0.1], [0.3]]},
                       {"rewards": [1, 0, 1], "entropy": [[0.1], [0.3], [0.2]]}]}"#,
    );
    assert!(sizes.contains("groups[1] has 3 rewards"), "{sizes}");

    let negative = rejected(r#"{"groups": [{"rewards": [1, 0], "entropy": [[-0.1], [0.3]]}]}"#);
    assert!(
        negative.contains("entropy[0][0] must be a finite number ≥ 0"),
        "{negative}"
    );

    let missing = run("", &["/nonexistent/input.json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/input.json"));
}
