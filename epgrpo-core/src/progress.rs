//! E8–E10: the cumulative-entropy progress coordinate, its buckets, and the normalisation of a
//! token signal inside each (group, bucket).
//!
//! One implementation, in plain Burn operations, shared with the advantage kernels of
//! `epgrpo-kernels` (their NdArray path); the CubeCL kernel computes the same per group without
//! the `[B, G, L, K]` membership tensor.

pub use epgrpo_kernels::advantage::plain::{bucket_normalize, progress_buckets};
