//! GGUF dequantisation against the PyPI `gguf` package (`gguf.quants.dequantize`, an independent
//! NumPy implementation) on random blocks of every quantised type the reader decodes
//! (`fixtures/make_quants.py`).

use std::collections::BTreeMap;

use epgrpo_models::load::GgufFile;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Expected {
    shape: Vec<usize>,
    values: Vec<f32>,
}

#[test]
fn every_quantised_type_matches_gguf_py() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quants");
    let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let expected: BTreeMap<String, Expected> = serde_json::from_str(&text).unwrap();
    let file = GgufFile::open(&dir.join("quants.gguf")).unwrap();
    let names: Vec<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0"
        ]
    );
    for (name, want) in &expected {
        assert_eq!(file.tensors[name].shape(), want.shape, "{name}");
        let got = file.read_f32(name).unwrap();
        assert_eq!(got.len(), want.values.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want.values).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{name}[{i}]: got {g}, gguf-py {w}"
            );
        }
    }
}
