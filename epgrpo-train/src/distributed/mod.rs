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
        Self::engine(config, placement)
    }

    /// The engine of `config.backend` even for one process (whose collectives then run
    /// through the engine and return their input: what the GPU check of the NCCL path uses).
    pub fn engine(config: &DistributedConfig, placement: &Placement) -> Result<Self, CliError> {
        match config.backend {
            DistributedBackend::None if placement.world_size == 1 => Ok(Communicator::Single),
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

    /// Whether this is one process without an engine (collectives are no-ops).
    pub fn is_single(&self) -> bool {
        match self {
            Communicator::Single => true,
            #[cfg(feature = "mpi")]
            Communicator::Mpi(_) => false,
            #[cfg(feature = "nccl")]
            Communicator::Nccl(_) => false,
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
        if self.is_single() {
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
        if self.is_single() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(world_size: usize) -> Placement {
        Placement {
            rank: 0,
            world_size,
            local_rank: 0,
            launcher: Some(Launcher::Torchrun),
        }
    }

    #[test]
    fn one_process_needs_no_engine_and_several_need_one() {
        let mut config = DistributedConfig::default();
        assert!(matches!(
            Communicator::connect(&config, &placement(1)),
            Ok(Communicator::Single)
        ));
        let error = Communicator::connect(&config, &placement(2)).err().unwrap();
        assert!(
            error.to_string().contains("2 processes were launched")
                && error.to_string().contains("distributed.backend = \"none\""),
            "{error}"
        );
        // One process with an engine configured still costs nothing.
        config.backend = DistributedBackend::Nccl;
        assert!(matches!(
            Communicator::connect(&config, &placement(1)),
            Ok(Communicator::Single)
        ));
        #[cfg(not(feature = "nccl"))]
        {
            let error = Communicator::connect(&config, &placement(2)).err().unwrap();
            assert!(error.to_string().contains("--features nccl"), "{error}");
        }
    }

    #[test]
    fn one_process_gathers_and_sums_its_own_values() {
        let comm = Communicator::Single;
        let mut values = [1.5, -2.0];
        comm.sum_f64(&mut values).unwrap();
        assert_eq!(values, [1.5, -2.0]);
        assert_eq!(comm.gather_f32(vec![3.0, 4.0]).unwrap(), vec![3.0, 4.0]);
        assert_eq!(
            (comm.rank(), comm.world_size(), comm.is_root()),
            (0, 1, true)
        );
    }
}
