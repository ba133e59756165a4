//! The MPI engine (rsmpi over the system's MPI library): collectives on host buffers, so it
//! serves every backend; tensors are copied to the host and back.

use burn::prelude::*;
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::Placement;
use crate::error::CliError;

/// An initialised MPI world (finalised when dropped).
pub struct Mpi {
    /// This process's rank in `MPI_COMM_WORLD`.
    pub rank: usize,
    /// Size of `MPI_COMM_WORLD`.
    pub world_size: usize,
    world: SimpleCommunicator,
    _universe: mpi::environment::Universe,
}

impl Mpi {
    /// Initialises MPI and checks that its world is the one the launcher described.
    pub fn connect(placement: &Placement) -> Result<Self, CliError> {
        let universe = mpi::initialize().ok_or_else(|| {
            CliError::Internal("distributed.backend = \"mpi\": MPI was already initialised".into())
        })?;
        let world = universe.world();
        let (rank, world_size) = (world.rank() as usize, world.size() as usize);
        if (rank, world_size) != (placement.rank, placement.world_size) {
            return Err(CliError::Input(format!(
                "distributed.backend = \"mpi\": MPI says rank {rank} of {world_size}, the launch \
                 variables say rank {} of {}; start the processes with mpirun or srun --mpi=pmix",
                placement.rank, placement.world_size
            )));
        }
        Ok(Self {
            rank,
            world_size,
            world,
            _universe: universe,
        })
    }

    /// In-place element-wise sum over all ranks.
    pub fn sum_f64(&self, values: &mut [f64]) -> Result<(), CliError> {
        let local = values.to_vec();
        self.world
            .all_reduce_into(&local[..], values, SystemOperation::sum());
        Ok(())
    }

    /// Element-wise sum of a flat tensor over all ranks, through the host in f32.
    pub fn sum_tensor<B: Backend>(&self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>, CliError> {
        let device = tensor.device();
        let local = to_host(tensor)?;
        let mut sum = vec![0f32; local.len()];
        self.world
            .all_reduce_into(&local[..], &mut sum[..], SystemOperation::sum());
        let n = sum.len();
        Ok(Tensor::from_data(TensorData::new(sum, [n]), &device))
    }

    /// Rank 0's values of a flat tensor, through the host in f32.
    pub fn broadcast_tensor<B: Backend>(
        &self,
        tensor: Tensor<B, 1>,
    ) -> Result<Tensor<B, 1>, CliError> {
        let device = tensor.device();
        let mut values = to_host(tensor)?;
        self.world
            .process_at_rank(0)
            .broadcast_into(&mut values[..]);
        let n = values.len();
        Ok(Tensor::from_data(TensorData::new(values, [n]), &device))
    }
}

fn to_host<B: Backend>(tensor: Tensor<B, 1>) -> Result<Vec<f32>, CliError> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| CliError::Internal(format!("reading a tensor for MPI: {e:?}")))
}
