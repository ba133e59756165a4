//! E4 outcome advantage with zero-variance detection, and E7 polarity.
//!
//! One implementation, in plain Burn operations, shared with the advantage kernels of
//! `epgrpo-kernels` (their NdArray path and oracle); the CubeCL kernel computes the same per group.

pub use epgrpo_kernels::advantage::plain::{outcome_advantage, polarity};
