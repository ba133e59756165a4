//! Data-parallel training across processes, on existing communication engines: one process per
//! device, started by torchrun, Slurm, `mpirun` or `epgrpo launch` ([`env`]); whole prompt
//! groups per rank ([`shard`]); gradients summed in buckets in module-visit order, parameters
//! broadcast from rank 0 and replica checksums ([`sync`]); the engines behind one
//! [`Communicator`]: none (one process, no cost), MPI on host buffers (feature `mpi`) and NCCL
//! on CUDA buffers (feature `nccl`).

pub mod env;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "nccl")]
mod nccl;
pub mod shard;
pub mod sync;

use burn::prelude::*;

use crate::config::{DistributedBackend, DistributedConfig};
use crate::error::CliError;
pub use env::{Launcher, Placement};

/// The processes of a run and the engine that connects them. Every collective must be called
/// by every rank in the same order.
pub enum Communicator {
    /// One process: every collective is the identity.
    Single,
    /// Several processes over MPI.
    #[cfg(feature = "mpi")]
    Mpi(mpi::Mpi),
    /// Several processes over NCCL.
    #[cfg(feature = "nccl")]
    Nccl(nccl::Nccl),
}

impl Communicator {
    /// Connects this process to the others of its launch (`placement`) over `config.backend`.
    /// One process needs no engine and gets [`Communicator::Single`] whatever the backend.
    pub fn connect(config: &DistributedConfig, placement: &Placement) -> Result<Self, CliError> {
        if placement.world_size == 1 {
            return Ok(Communicator::Single);
        }
        match config.backend {
            DistributedBackend::None => Err(CliError::Input(format!(
                "{} processes were launched (rank {}) but distributed.backend = \"none\": set \
                 it to \"mpi\" (CPU) or \"nccl\" (CUDA), or start one process",
                placement.world_size, placement.rank
            ))),
            #[cfg(feature = "mpi")]
            DistributedBackend::Mpi => Ok(Communicator::Mpi(mpi::Mpi::connect(placement)?)),
            #[cfg(feature = "nccl")]
            DistributedBackend::Nccl => Ok(Communicator::Nccl(nccl::Nccl::connect(placement)?)),
            #[allow(unreachable_patterns)]
            other => {
                let name = match other {
                    DistributedBackend::Mpi => "mpi",
                    _ => "nccl",
                };
                Err(CliError::Input(format!(
                    "distributed.backend = \"{name}\": this binary was built without the \
                     `{name}` feature (cargo build --release -p epgrpo-train --features {name})"
                )))
            }
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        match self {
            Communicator::Single => 0,
            #[cfg(feature = "mpi")]
            Communicator::Mpi(mpi) => mpi.rank,
            #[cfg(feature = "nccl")]
            Communicator::Nccl(nccl) => nccl.rank,
        }
    }

    /// Number of processes.
    pub fn world_size(&self) -> usize {
        match self {
            Communicator::Single => 1,
            #[cfg(feature = "mpi")]
            Communicator::Mpi(mpi) => mpi.world_size,
            #[cfg(feature = "nccl")]
            Communicator::Nccl(nccl) => nccl.world_size,
        }
    }

    /// Whether this is rank 0, the process that writes files and reports.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Sums `values` element-wise over all ranks, in place (every rank gets the same sums).
    #[cfg_attr(not(any(feature = "mpi", feature = "nccl")), allow(unused_variables))]
    pub fn sum_f64(&self, values: &mut [f64]) -> Result<(), CliError> {
        match self {
            Communicator::Single => Ok(()),
            #[cfg(feature = "mpi")]
            Communicator::Mpi(mpi) => mpi.sum_f64(values),
            #[cfg(feature = "nccl")]
            Communicator::Nccl(nccl) => nccl.sum_f64(values),
        }
    }

    /// Every rank's `local` values, concatenated in rank order (the lengths may differ).
    pub fn gather_f64(&self, local: Vec<f64>) -> Result<Vec<f64>, CliError> {
        if self.world_size() == 1 {
            return Ok(local);
        }
        let world = self.world_size();
        let mut lengths = vec![0.0; world];
        lengths[self.rank()] = local.len() as f64;
        self.sum_f64(&mut lengths)?;
        let longest = lengths.iter().fold(0.0f64, |a, &b| a.max(b)) as usize;
        // Fixed-size slots, one per rank, summed: each rank fills only its own.
        let mut slots = vec![0.0; world * longest];
        slots[self.rank() * longest..][..local.len()].copy_from_slice(&local);
        self.sum_f64(&mut slots)?;
        Ok(slots
            .chunks(longest.max(1))
            .zip(&lengths)
            .flat_map(|(slot, &n)| slot[..n as usize].to_vec())
            .collect())
    }

    /// [`Communicator::gather_f64`] of f32 values (exact: every f32 is an f64).
    pub fn gather_f32(&self, local: Vec<f32>) -> Result<Vec<f32>, CliError> {
        if self.world_size() == 1 {
            return Ok(local);
        }
        let all = self.gather_f64(local.into_iter().map(f64::from).collect())?;
        Ok(all.into_iter().map(|v| v as f32).collect())
    }

    /// Sums a flat tensor over all ranks (every rank gets the same sums).
    pub fn sum_tensor<B: Backend>(&self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>, CliError> {
        match self {
            Communicator::Single => Ok(tensor),
            #[cfg(feature = "mpi")]
            Communicator::Mpi(mpi) => mpi.sum_tensor(tensor),
            #[cfg(feature = "nccl")]
            Communicator::Nccl(nccl) => nccl.sum_tensor(tensor),
        }
    }

    /// Rank 0's values of a flat tensor, on every rank.
    pub fn broadcast_tensor<B: Backend>(
        &self,
        tensor: Tensor<B, 1>,
    ) -> Result<Tensor<B, 1>, CliError> {
        match self {
            Communicator::Single => Ok(tensor),
            #[cfg(feature = "mpi")]
            Communicator::Mpi(mpi) => mpi.broadcast_tensor(tensor),
            #[cfg(feature = "nccl")]
            Communicator::Nccl(nccl) => nccl.broadcast_tensor(tensor),
        }
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<(), CliError> {
        self.sum_f64(&mut [0.0])
    }
}
