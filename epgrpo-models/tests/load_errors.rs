//! Loader behaviour on damaged or unusual checkpoints, built from the Llama fixture in a
//! temporary directory: every error names the file and the tensor, and F16 storage loads to
//! the same model as the equivalent f32 values.

#[allow(dead_code)] // shared by several test binaries; each uses a part of it
mod reference;

use std::path::{Path, PathBuf};

use epgrpo_models::{LeftPadding, ModelError, load_decoder};
use reference::{TestBackend, fixture_dir, tokens_tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// A checkpoint tensor held on the host: name, dtype, shape, raw little-endian bytes.
type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

fn fixture_tensors() -> Vec<RawTensor> {
    let bytes = std::fs::read(fixture_dir("llama").join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<RawTensor> = file
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// A fresh model directory holding the fixture's config.json (edited by `edit`) and `tensors`.
fn model_dir(test: &str, tensors: &[RawTensor], edit: impl Fn(String) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("epgrpo-models-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = std::fs::read_to_string(fixture_dir("llama").join("config.json")).unwrap();
    std::fs::write(dir.join("config.json"), edit(config)).unwrap();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    dir
}

fn load_err(dir: &Path) -> ModelError {
    match load_decoder::<TestBackend>(dir, &Default::default()) {
        Ok(_) => panic!("{} loaded although it is damaged", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_tensor_is_named() {
    let mut tensors = fixture_tensors();
    tensors.retain(|t| t.0 != "model.layers.1.mlp.up_proj.weight");
    let dir = model_dir("missing", &tensors, |c| c);
    match load_err(&dir) {
        ModelError::MissingTensor { file, tensor } => {
            assert_eq!(tensor, "model.layers.1.mlp.up_proj.weight");
            assert_eq!(file, dir.join("model.safetensors"));
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn shape_mismatch_reports_expected_and_found_shapes() {
    let dir = model_dir("shape", &fixture_tensors(), |c| {
        c.replace("\"intermediate_size\": 128", "\"intermediate_size\": 96")
    });
    match load_err(&dir) {
        ModelError::ShapeMismatch {
            tensor,
            expected,
            got,
            ..
        } => {
            assert_eq!(tensor, "model.layers.0.mlp.gate_proj.weight");
            assert_eq!(expected, vec![96, 64]);
            assert_eq!(got, vec![128, 64]);
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn integer_weights_are_an_unsupported_dtype() {
    let mut tensors = fixture_tensors();
    let norm = tensors
        .iter_mut()
        .find(|t| t.0 == "model.norm.weight")
        .unwrap();
    norm.1 = Dtype::I32;
    let dir = model_dir("dtype", &tensors, |c| c);
    match load_err(&dir) {
        ModelError::UnsupportedDtype { tensor, dtype, .. } => {
            assert_eq!(tensor, "model.norm.weight");
            assert_eq!(dtype, "I32");
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn unused_tensors_are_listed() {
    let mut tensors = fixture_tensors();
    tensors.push(("model.extra.weight".into(), Dtype::F32, vec![2], vec![0; 8]));
    let dir = model_dir("unused", &tensors, |c| c);
    match load_err(&dir) {
        ModelError::UnusedTensors { tensors, file } => {
            assert_eq!(tensors, vec!["model.extra.weight".to_string()]);
            assert_eq!(file, dir.join("model.safetensors"));
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn f16_checkpoint_equals_f32_checkpoint_of_the_rounded_values() {
    let mut as_f16 = fixture_tensors();
    let mut rounded_f32 = fixture_tensors();
    for (h, f) in as_f16.iter_mut().zip(rounded_f32.iter_mut()) {
        let values: Vec<half::f16> =
            h.3.chunks_exact(4)
                .map(|c| half::f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
        h.1 = Dtype::F16;
        h.3 = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        f.3 = values
            .iter()
            .flat_map(|v| v.to_f32().to_le_bytes())
            .collect();
    }
    let device = Default::default();
    let tokens = tokens_tensor(&[vec![1, 5, 77, 250, 3]], &device);
    let logits = |dir: &Path| {
        let (_, model) = load_decoder::<TestBackend>(dir, &device).unwrap();
        let out = model.forward(tokens.clone(), &LeftPadding::none(1));
        out.into_data().to_vec::<f32>().unwrap()
    };
    let a = logits(&model_dir("f16", &as_f16, |c| c));
    let b = logits(&model_dir("f16-rounded", &rounded_f32, |c| c));
    let f32_logits = logits(&fixture_dir("llama"));
    assert_eq!(a, b);
    // Rounding to f16 did change the model, so the comparison above is not vacuous.
    assert_ne!(a, f32_logits);
}

/// A copy of the sharded Qwen2 fixture in a fresh directory.
fn sharded_copy(test: &str) -> PathBuf {
    let src = fixture_dir("qwen2");
    let dir = std::env::temp_dir().join(format!("epgrpo-models-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

#[test]
fn missing_shard_names_the_shard_file() {
    let dir = sharded_copy("missing-shard");
    let shard = dir.join("model-00002-of-00003.safetensors");
    std::fs::remove_file(&shard).unwrap();
    match load_err(&dir) {
        ModelError::Io { file, .. } => assert_eq!(file, shard),
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn index_entry_pointing_at_the_wrong_shard_is_a_missing_tensor() {
    let dir = sharded_copy("wrong-shard");
    let index_path = dir.join("model.safetensors.index.json");
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    let map = index["weight_map"].as_object_mut().unwrap();
    let first = map["model.embed_tokens.weight"]
        .as_str()
        .unwrap()
        .to_string();
    let other = map
        .values()
        .find(|f| f.as_str() != Some(first.as_str()))
        .unwrap()
        .clone();
    map.insert("model.embed_tokens.weight".into(), other.clone());
    std::fs::write(&index_path, index.to_string()).unwrap();
    match load_err(&dir) {
        ModelError::MissingTensor { file, tensor } => {
            assert_eq!(tensor, "model.embed_tokens.weight");
            assert_eq!(file, dir.join(other.as_str().unwrap()));
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn config_without_a_required_field_names_file_and_field() {
    let dir = model_dir("no-hidden", &fixture_tensors(), |c| {
        c.replace("\"hidden_size\": 64,", "")
    });
    let err = load_err(&dir);
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Json { .. }), "{msg}");
    assert!(
        msg.contains("config.json") && msg.contains("hidden_size"),
        "{msg}"
    );
}
