//! `epgrpo-core`: EP-GRPO (arXiv 2605.04960) and its GRPO-family baselines, backend-generic
//! over Burn.
//!
//! Where each equation of `shared/spec/ep-grpo.md` lives:
//!
//! | equation | item |
//! |---|---|
//! | E1 token entropy and log-prob | [`entropy::token_logp_entropy`] (the fused kernel of `epgrpo-kernels`) |
//! | E2–E12 on the device | [`advantage::token_advantages`] → `epgrpo_kernels::KernelBackend::group_advantages` (one CubeCL kernel on wgpu / CUDA) |
//! | E2–E3 group-normalised entropy gate | [`gate::entropy_gate`] |
//! | E4 outcome advantage, zero variance | [`outcome::outcome_advantage`] |
//! | E5, E11–E13 token advantages | [`advantage::token_advantages`] |
//! | E6 implicit process signal | [`advantage::token_advantages`] (s = λ (lp_old − lp_ref)) |
//! | E7 polarity | [`outcome::polarity`] |
//! | E8–E9 progress coordinate and buckets | [`progress::progress_buckets`] |
//! | E10 bucket normalisation | [`progress::bucket_normalize`] |
//! | E14 ratio and clipped surrogate | [`loss::importance_ratio`], [`loss::clipped_surrogate`] |
//! | E15 KL estimators and aggregation | [`loss::kl_estimate`], [`loss::aggregate`] with [`loss::LossNormalizer`], [`loss::policy_loss`] |
//!
//! The baselines (GRPO, Dr. GRPO, DAPO, the 80/20 entropy mask, GSPO) are values of
//! [`config::Algorithm`]. [`reference`](mod@reference) is an f64 plain-Rust implementation of the same
//! equations used by the tests.

pub mod advantage;
pub mod config;
pub mod entropy;
pub mod error;
pub mod gate;
pub mod groups;
pub mod loss;
pub mod outcome;
pub mod progress;
pub mod reference;

pub use advantage::{TokenAdvantages, to_host, token_advantages};
pub use config::{Algorithm, AlgorithmConfig};
pub use error::CoreError;
pub use groups::{GroupTensors, ResponseGroup};
pub use loss::{LossInputs, LossNormalizer, LossStats, PolicyLoss, TokenCounts, policy_loss};
