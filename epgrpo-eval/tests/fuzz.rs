//! Property and robustness tests: thousands of generated inputs, fixed seeds.
//!
//! * Arbitrary strings (lossy UTF-8 from random bytes, and soups of the tokens the parsers care
//!   about) through extraction, canonicalisation, the verifier and the JSONL loader: nothing may
//!   panic, an extracted answer is a substring of the completion, canonical forms are reflexive
//!   and deterministic, equivalence is symmetric, rewards take only their configured values, and
//!   an extracted answer always matches itself as a reference.
//! * Pathological inputs (10,000-digit runs, deep or unbalanced braces, long runs of markers)
//!   large enough that a quadratic scan would not finish in reasonable time.
//! * Generated numbers in many spellings, checked against an exact rational oracle.
//! * pass@k: range and monotonicity over random `(n, c, k)`.

use std::path::Path;

use epgrpo_eval::{
    AnswerFormat, Canonical, DatasetConfig, MathVerifier, Number, Rational, VerifierConfig,
    answers_match, canonicalize, extract_answer, parse_jsonl, pass_at_k,
};

/// SplitMix64: a tiny, seeded, reproducible generator.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish integer in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const TOKENS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "5",
    "7",
    "9",
    "42",
    "1000",
    "{",
    "}",
    "{{",
    "}}",
    "\\",
    "\\\\",
    "\\boxed{",
    "\\boxed",
    "\\fbox{",
    "####",
    "#",
    "<answer>",
    "</answer>",
    "<answer",
    "\\frac",
    "\\dfrac",
    "\\tfrac{",
    "\\text{",
    "\\mbox{",
    "\\mathrm{",
    "\\left(",
    "\\right)",
    "\\left",
    "$",
    "$$",
    "%",
    "\\%",
    "\\$",
    ",",
    "{,}",
    "\\,",
    "\\!",
    "\\ ",
    "~",
    ".",
    "/",
    "-",
    "+",
    "\u{2212}",
    "=",
    "x",
    "x =",
    "^\\circ",
    "^{\\circ}",
    "\u{00b0}",
    "e",
    "\u{00e9}",
    "\u{4e2d}",
    "\u{1F642}",
    "\u{feff}",
    "\u{0301}",
    "\n",
    "\r\n",
    " ",
    "\t",
    "(",
    ")",
    "[",
    "]",
    "\\(",
    "\\)",
    "\\[",
    "\\]",
    "\\quad",
    "\\displaystyle",
    "\"",
    "null",
    ":",
    "\0",
];

fn random_lossy(rng: &mut SplitMix64) -> String {
    let len = rng.below(512) as usize;
    let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn random_soup(rng: &mut SplitMix64) -> String {
    let len = rng.below(200) as usize;
    (0..len).map(|_| rng.pick(TOKENS)).collect()
}

fn verifier(format_reward: f64) -> MathVerifier {
    let config = VerifierConfig {
        format_reward,
        ..VerifierConfig::default()
    };
    match MathVerifier::new(config) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Every property that must hold for a single arbitrary string.
fn check_string(s: &str, v: &MathVerifier) {
    if let Some(e) = extract_answer(s) {
        assert!(!e.text.is_empty(), "empty extraction from {s:?}");
        assert_eq!(e.text, e.text.trim(), "untrimmed extraction from {s:?}");
        assert!(s.contains(&e.text), "extraction not a substring of {s:?}");
    }
    let canonical = canonicalize(s);
    assert_eq!(
        canonical,
        canonicalize(s),
        "canonical form not deterministic for {s:?}"
    );
    if let Some(c) = &canonical {
        assert!(
            c.matches(c),
            "canonical form does not match itself for {s:?}"
        );
        if let Canonical::Number(Number::Approx(x)) = c {
            assert!(x.is_finite(), "non-finite number from {s:?}");
        }
    }
    let score = v.score(s, s);
    let expected = [0.0, 0.5, 1.0, 1.5];
    assert!(
        expected.contains(&score.reward),
        "reward {} for {s:?}",
        score.reward
    );
    assert_eq!(
        score.answer.is_some() && score.extracted.is_some(),
        score.answer.is_some()
    );
    if let (Some(e), Some(_)) = (&score.extracted, &score.answer) {
        // An answer always equals itself when it parses.
        assert!(
            v.score(s, &e.text).correct,
            "answer {:?} does not match itself",
            e.text
        );
    }
}

fn check_pair(a: &str, b: &str) {
    assert_eq!(
        answers_match(a, b),
        answers_match(b, a),
        "asymmetric: {a:?} vs {b:?}"
    );
}

#[test]
fn arbitrary_strings_never_panic_and_keep_invariants() {
    let v = verifier(0.5);
    let mut rng = SplitMix64(0x5EED_0001);
    let mut previous = String::new();
    for i in 0..6000 {
        let s = if i % 2 == 0 {
            random_lossy(&mut rng)
        } else {
            random_soup(&mut rng)
        };
        check_string(&s, &v);
        check_pair(&s, &previous);
        previous = s;
    }
}

#[test]
fn soups_with_numbers_are_symmetric() {
    // Short strings that often parse as numbers, so symmetry is tested on numeric pairs too.
    const NUMERIC: &[&str] = &[
        "1", "2", "0", ".", ",", "{,}", "/", "-", "\u{2212}", "%", "$", "\\frac", "{", "}", " ",
    ];
    let mut rng = SplitMix64(0x5EED_0002);
    let mut matched = 0;
    for _ in 0..4000 {
        let a: String = (0..rng.below(8)).map(|_| rng.pick(NUMERIC)).collect();
        let b: String = match rng.below(4) {
            0 => (0..rng.below(8)).map(|_| rng.pick(NUMERIC)).collect(),
            1 => format!("$ {a} $"),
            2 => format!("\\boxed{{{a}}}."),
            _ => format!("+{a}"),
        };
        check_pair(&a, &b);
        if answers_match(&a, &b) {
            matched += 1;
        }
    }
    // The generator is useful only if some pairs do match.
    assert!(matched > 500, "only {matched} matching pairs");
}

#[test]
fn pathological_inputs_finish() {
    let v = verifier(0.0);
    let digits: String = (0..10_000)
        .map(|i| char::from(b'0' + (i % 10) as u8))
        .collect();
    let cases = [
        digits.clone(),
        format!("-{digits}.{digits}"),
        format!("{digits}/{digits}"),
        format!("\\frac{{{digits}}}{{{digits}}}"),
        format!("#### {digits}"),
        format!("\\boxed{{{digits}}}"),
        "1,000".repeat(20_000),
        "1{,}000".repeat(20_000),
        "\\boxed{".repeat(40_000),
        format!("{}1{}", "\\boxed{".repeat(5_000), "}".repeat(5_000)),
        format!("{}1{}", "{".repeat(100_000), "}".repeat(100_000)),
        "}".repeat(100_000),
        "####".repeat(50_000),
        "<answer>".repeat(20_000),
        "</answer><answer>".repeat(10_000),
        "\\text{".repeat(30_000),
        format!("{}5{}", "\\text{".repeat(2_000), "}".repeat(2_000)),
        "$".repeat(100_000),
        "\\".repeat(100_000),
        "\\frac{".repeat(30_000),
        "-".repeat(100_000),
        "\u{2212}".repeat(50_000),
        "1/".repeat(50_000),
        ".5".repeat(50_000),
        "x=".repeat(50_000),
        "\u{1F642}".repeat(50_000),
    ];
    for case in &cases {
        check_string(case, &v);
        check_pair(case, &digits);
    }
    // A number too long to parse is compared as text and still equals itself.
    assert!(answers_match(&digits, &digits));
    assert!(!answers_match(&digits, &digits[1..]));
    assert_eq!(
        extract_answer(&format!("#### {digits}")).map(|e| e.text.len()),
        Some(10_000)
    );
}

/// Renders `n` with a thousands separator.
fn grouped(n: u64, sep: &str) -> String {
    let plain = n.to_string();
    let mut out = String::new();
    for (i, ch) in plain.chars().enumerate() {
        if i > 0 && (plain.len() - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(ch);
    }
    out
}

#[test]
fn generated_fractions_match_the_rational_oracle() {
    let mut rng = SplitMix64(0x5EED_0003);
    for _ in 0..3000 {
        let p = rng.below(2_000_001) as i64 - 1_000_000;
        let q = rng.below(10_000) as i64 + 1;
        let Some(oracle) = Rational::new(i128::from(p), i128::from(q)) else {
            panic!("valid rational {p}/{q}");
        };
        let (sign, minus) = if p < 0 { ("-", "\u{2212}") } else { ("", "") };
        let a = p.unsigned_abs();
        let spellings = [
            format!("{p}/{q}"),
            format!("\\frac{{{p}}}{{{q}}}"),
            format!("{sign}\\dfrac{{{a}}}{{{q}}}"),
            format!("{minus}\\tfrac{{{a}}}{{{q}}}"),
            format!("$\\boxed{{{sign}\\frac{{{a}}}{{{q}}}}}$."),
            format!(" {sign}{a} / {q} "),
        ];
        for s in &spellings {
            assert_eq!(
                canonicalize(s),
                Some(Canonical::Number(Number::Exact(oracle))),
                "{s:?} should be {p}/{q}"
            );
        }
        assert!(answers_match(&spellings[0], &spellings[4]));
        // A different value never matches: (p + 1) / q.
        assert!(!answers_match(&spellings[0], &format!("{}/{q}", p + 1)));
    }
}

#[test]
fn generated_decimals_match_the_rational_oracle() {
    let mut rng = SplitMix64(0x5EED_0004);
    let seps = [",", "{,}", "\\,", ""];
    for _ in 0..3000 {
        let m = rng.below(1_000_000_000_000);
        let d = rng.below(7) as u32;
        let scale = 10u64.pow(d);
        let Some(oracle) = Rational::new(i128::from(m), i128::from(scale)) else {
            panic!("valid rational {m}/{scale}");
        };
        let int_part = m / scale;
        let frac_part = m % scale;
        let sep = seps[rng.below(seps.len() as u64) as usize];
        let mut text = grouped(int_part, sep);
        if d > 0 {
            text = format!("{text}.{frac_part:0width$}", width = d as usize);
        }
        let wrapped = match rng.below(4) {
            0 => format!("$\\boxed{{{text}}}$"),
            1 => format!("\\${text}"),
            2 => format!("{text}\\text{{ cm}}"),
            _ => format!("{text}."),
        };
        for s in [&text, &wrapped] {
            assert_eq!(
                canonicalize(s),
                Some(Canonical::Number(Number::Exact(oracle))),
                "{s:?} should be {m}/{scale}"
            );
        }
        assert!(answers_match(&text, &format!("\\frac{{{m}}}{{{scale}}}")));
        // Off by one unit in the last place: different.
        assert!(!answers_match(&text, &format!("{}/{scale}", m + 1)));
        // The verifier finds it at the end of a GSM8K-style completion, in any format.
        let completion = format!("Adding up the parts gives the total.\n#### {text}");
        let v = verifier(0.0);
        let score = v.score(&completion, &format!("{m}/{scale}"));
        assert!(score.correct, "{completion:?}");
        assert_eq!(
            score.extracted.map(|e| e.format),
            Some(AnswerFormat::Hashes)
        );
        let sentence = format!("So the answer is {text}.");
        assert!(
            v.score(&sentence, &format!("{m}/{scale}")).correct,
            "{sentence:?}"
        );
    }
}

#[test]
fn random_jsonl_lines_never_panic() {
    let mut rng = SplitMix64(0x5EED_0005);
    let config = DatasetConfig::default();
    let mut errors = 0;
    for i in 0..3000 {
        let body = if i % 3 == 0 {
            random_lossy(&mut rng)
        } else {
            random_soup(&mut rng)
        };
        let text = match i % 3 {
            0 => body,
            1 => format!(
                "{{\"question\": \"q\", \"answer\": \"{}\"}}",
                body.replace('"', "")
            ),
            _ => format!("{{\"question\": \"q\", \"answer\": {body}}}"),
        };
        let mut bytes = text.into_bytes();
        if i % 7 == 0 {
            bytes.push(0xFF);
        }
        match parse_jsonl(bytes.as_slice(), Path::new("fuzz.jsonl"), &config) {
            Ok(problems) => assert!(problems.iter().all(|p| !p.answer.is_empty())),
            Err(e) => {
                errors += 1;
                assert!(e.to_string().starts_with("fuzz.jsonl:"), "{e}");
            }
        }
    }
    assert!(errors > 100);
}

#[test]
fn pass_at_k_is_a_probability_and_monotone() {
    let mut rng = SplitMix64(0x5EED_0006);
    for _ in 0..5000 {
        let n = rng.below(200) as usize + 1;
        let c = rng.below(n as u64 + 1) as usize;
        let k = rng.below(n as u64) as usize + 1;
        let Ok(v) = pass_at_k(n, c, k) else {
            panic!("valid input n={n} c={c} k={k}")
        };
        assert!((0.0..=1.0).contains(&v), "pass@{k} = {v} for n={n} c={c}");
        if k < n {
            let Ok(next) = pass_at_k(n, c, k + 1) else {
                panic!("valid input")
            };
            assert!(
                next + 1e-12 >= v,
                "pass@k decreases in k at n={n} c={c} k={k}"
            );
        }
        if c < n {
            let Ok(more) = pass_at_k(n, c + 1, k) else {
                panic!("valid input")
            };
            assert!(
                more + 1e-12 >= v,
                "pass@k decreases in c at n={n} c={c} k={k}"
            );
        }
        assert_eq!(v == 0.0, c == 0, "n={n} c={c} k={k}");
    }
}
