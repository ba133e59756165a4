//! The one place that names concrete Burn backends. Everything else is generic over
//! `B: Backend`.

/// CPU backend in f64, for exact host-side computations such as `epgrpo advantages`.
pub type HostBackend = burn::backend::NdArray<f64>;
