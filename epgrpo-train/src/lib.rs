//! `epgrpo-train`: the engine that turns the algorithm (`epgrpo-core`), the models
//! (`epgrpo-models`) and the verifier (`epgrpo-eval`) into training runs, and the `epgrpo`
//! command-line tool built on it.

pub mod backend;
pub mod char_tokenizer;
pub mod checkpoint;
pub mod cli;
pub mod codec;
pub mod commands;
pub mod compare;
pub mod config;
pub mod distributed;
pub mod dynamic_sampling;
pub mod error;
pub mod evaluate;
pub mod metrics;
pub mod optim;
pub mod overlay;
pub mod plan;
pub mod plot;
pub mod policy;
pub mod rollout;
pub mod rss;
pub mod run_dir;
pub mod scoring;
pub mod sft;
pub mod step;
pub mod task;
pub mod trainer;
