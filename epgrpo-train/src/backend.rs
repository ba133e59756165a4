//! The one place that names concrete Burn backends. Everything else is generic over
//! `B: Backend` / `B: AutodiffBackend`.

use burn::tensor::backend::AutodiffBackend;
use clap::ValueEnum;
use epgrpo_kernels::KernelBackend;

use crate::error::CliError;

/// CPU backend in f64, for exact host-side computations such as `epgrpo advantages`.
pub type HostBackend = burn::backend::NdArray<f64>;

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// The CPU (ndarray backend, f32).
    Cpu,
    /// The default wgpu adapter (Vulkan / Metal / WebGPU); needs the `wgpu` feature.
    Wgpu,
    /// CUDA device 0; needs the `cuda` feature.
    Cuda,
}

/// Work that runs on any autodiff backend.
pub trait BackendJob {
    /// What the job returns.
    type Output;
    /// Runs the job on backend `B` and `device`.
    fn run<B>(self, device: B::Device) -> Result<Self::Output, CliError>
    where
        B: AutodiffBackend + KernelBackend,
        B::InnerBackend: KernelBackend;
}

/// Runs `job` on the backend of `kind`, or explains which feature is missing.
pub fn run_on<J: BackendJob>(kind: DeviceKind, job: J) -> Result<J::Output, CliError> {
    run_on_device(kind, 0, job)
}

/// [`run_on`] on device `ordinal` of `kind` (a CUDA device's index: a data-parallel rank's
/// local rank; the CPU and wgpu have one device).
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
pub fn run_on_device<J: BackendJob>(
    kind: DeviceKind,
    ordinal: usize,
    job: J,
) -> Result<J::Output, CliError> {
    match kind {
        DeviceKind::Cpu => {
            job.run::<burn::backend::Autodiff<burn::backend::NdArray<f32>>>(Default::default())
        }
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => {
            job.run::<burn::backend::Autodiff<burn::backend::Wgpu>>(Default::default())
        }
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => job.run::<burn::backend::Autodiff<burn::backend::Cuda>>(
            burn::backend::cuda::CudaDevice { index: ordinal },
        ),
        #[allow(unreachable_patterns)]
        other => Err(CliError::Input(format!(
            "--device {}: this binary was built without the `{}` feature (cargo build --release -p epgrpo-train --features {})",
            other.name(),
            other.name(),
            other.name()
        ))),
    }
}

impl DeviceKind {
    /// Name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}
