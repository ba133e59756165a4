//! One module per subcommand.

pub mod advantages;
