//! One module per subcommand.

pub mod advantages;
pub mod bench;
pub mod bench_rollout;
pub mod compare;
pub mod eval;
pub mod generate;
pub mod launch;
pub mod plan;
pub mod train;
