//! `epgrpo-kernels`: fused CubeCL kernels for the EP-GRPO hot path.
//!
//! This crate will hold the backend-extension trait through which `epgrpo-core` reaches the fused
//! per-token log-prob + entropy kernel, the progress-bucket kernel and the token-weight kernel, a
//! CubeCL implementation for the GPU backends (CUDA, wgpu) and a plain-Burn fallback for the CPU
//! backend. Until the kernels land, `epgrpo-core` computes the same quantities with ordinary Burn
//! tensor operations.
