//! One module per subcommand.

pub mod advantages;
pub mod bench;
pub mod eval;
pub mod generate;
pub mod train;
