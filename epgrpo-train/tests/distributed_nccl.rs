//! The NCCL path on one GPU (world size 1, the engine forced on): one RL step through NCCL's
//! collectives equals the step without an engine, and the all-reduce bandwidth of a 256 MB
//! bucket. Needs the `nccl` feature, a CUDA device and `libnccl.so.2` on the library path;
//! run by `kernels/scripts/cuda_check.sh` on a GPU machine:
//! `cargo test -p epgrpo-train --features nccl --release --test distributed_nccl -- --ignored`.
#![cfg(feature = "nccl")]

use std::time::Instant;

use burn::backend::{Autodiff, Cuda};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::SgdConfig;
use burn::prelude::*;
use epgrpo_eval::{Verifier, VerifierConfig};
use epgrpo_models::Decoder;
use epgrpo_train::codec::Codec;
use epgrpo_train::config::{DistributedBackend, TrainConfig};
use epgrpo_train::distributed::{Communicator, Placement};
use epgrpo_train::policy::decoder_config;
use epgrpo_train::rollout::{generation_config, rollout};
use epgrpo_train::step::{rl_update, rl_update_on};
use epgrpo_train::task::{ArithmeticTask, Split};

type B = Autodiff<Cuda>;

/// NCCL with one rank (its id handed out over MASTER_ADDR:MASTER_PORT, 127.0.0.1:29500 unless
/// set).
fn nccl() -> Communicator {
    for (name, value) in [("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")] {
        if std::env::var(name).is_err() {
            // SAFETY: set before any other thread of this test reads the environment.
            unsafe { std::env::set_var(name, value) };
        }
    }
    let mut config = TrainConfig::default().distributed;
    config.backend = DistributedBackend::Nccl;
    Communicator::engine(&config, &Placement::single()).expect("NCCL starts")
}

struct Weights(Vec<f32>);

impl<Bk: Backend> ModuleVisitor<Bk> for Weights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
        let values = param.val().to_data().convert::<f32>().to_vec::<f32>();
        self.0.extend(values.unwrap());
    }
}

fn weights(model: &Decoder<B>) -> Vec<f32> {
    let mut collect = Weights(Vec::new());
    model.visit(&mut collect);
    collect.0
}

#[test]
#[ignore = "needs a CUDA device and libnccl.so.2"]
fn a_step_through_nccl_equals_the_step_without_an_engine() {
    let comm = nccl();
    let device = Default::default();
    let mut config = TrainConfig::default();
    config.model.hidden_size = 64;
    config.model.intermediate_size = 128;
    config.model.num_hidden_layers = 2;
    config.rollout.prompts_per_step = 4;
    config.optim.grad_accumulation = 2;
    let model = Decoder::<B>::init(&decoder_config(&config.model).unwrap(), &device);
    let task = ArithmeticTask::new(&config.task);
    let problems = (0..4).map(|i| task.problem(Split::Train, 3, i)).collect();
    let codec = Codec::chars(&config.task.prompt);
    let generation = generation_config(&config.rollout, &codec, 8, 11, false);
    let verifier = Verifier::new(config.task.kind, VerifierConfig::default()).unwrap();
    let mut batch = rollout(
        &model.valid(),
        &codec,
        problems,
        &generation,
        &verifier,
        &device,
    )
    .unwrap();
    for (i, reward) in batch.rewards.iter_mut().enumerate() {
        *reward = (i % 3 == 0) as u8 as f64;
    }
    let sgd = || SgdConfig::new().init::<B, Decoder<B>>();
    let reference = model.valid();
    let (plain, plain_report) = rl_update(
        model.clone(),
        &mut sgd(),
        &reference,
        &batch,
        &config,
        0.1,
        &device,
    );
    let (through, report) = rl_update_on(
        model,
        &mut sgd(),
        &reference,
        &batch,
        &config,
        0.1,
        &device,
        &comm,
    )
    .unwrap();
    let (a, b) = (weights(&plain), weights(&through));
    let gap = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    eprintln!(
        "NCCL world 1 vs no engine: max |Δw| {gap:.3e} (largest weight {scale:.3}), bitwise: {}, \
         loss {} vs {}",
        a == b,
        report.loss,
        plain_report.loss
    );
    assert!(gap <= 1e-6 * scale, "{gap}");
}

#[test]
#[ignore = "needs a CUDA device and libnccl.so.2"]
fn all_reduce_bandwidth_of_a_256_mb_bucket() {
    let comm = nccl();
    let device = Default::default();
    let n = 256 << 18; // 256 MiB of f32
    let bucket = Tensor::<Cuda, 1>::ones([n], &device);
    let once = comm.sum_tensor(bucket.clone()).unwrap();
    assert_eq!(
        once.sum().into_scalar(),
        n as f32,
        "a world of one sums to itself"
    );
    let runs = 10;
    let start = Instant::now();
    for _ in 0..runs {
        let _ = comm.sum_tensor(bucket.clone()).unwrap();
    }
    let seconds = start.elapsed().as_secs_f64() / runs as f64;
    let bytes = (n * 4) as f64;
    eprintln!(
        "NCCL all-reduce of a 256 MiB bucket, world size 1: {:.2} ms, {:.1} GB/s (bus bandwidth \
         = algorithm bandwidth × 2(n−1)/n = 0 for one rank; this times the copy, the device \
         syncs and NCCL's launch)",
        seconds * 1e3,
        bytes / seconds / 1e9
    );
}
