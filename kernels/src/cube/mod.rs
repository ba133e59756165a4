//! [`KernelBackend`] for `CubeBackend<R, F, I, BT>` (every CubeCL runtime: wgpu, CUDA, …):
//! launch code only; the kernels live in the submodules (E1 in `logp_entropy`, E2–E12 in
//! `group_advantages`, launched from `advantages_launch`).

mod advantages_launch;
mod group_advantages;
mod logp_entropy;

use burn::tensor::{
    Shape, TensorMetadata,
    ops::{FloatTensor, FloatTensorOps, IntTensor},
};
use burn_cubecl::{
    CubeBackend, CubeRuntime, FloatElement, IntElement, element::BoolElement,
    kernel::into_contiguous, ops::numeric::empty_device_dtype, tensor::CubeTensor,
};
use cubecl::{CubeCount, CubeDim};

use crate::advantage::{AdvantageParams, GroupAdvantages, GroupInputs};
use crate::{KernelBackend, TokenStats};
use logp_entropy::{token_stats_backward_kernel, token_stats_kernel};

/// Largest number of cubes along one grid axis that every runtime accepts.
const MAX_GRID_X: usize = 65_535;

/// Threads per row: a power of two between 32 and 256, no larger than the row length (the
/// vocabulary, or the response length) needs and no larger than the device allows.
fn threads_per_row<R: CubeRuntime>(tensor: &CubeTensor<R>, width: usize) -> usize {
    let hardware_max = tensor.client.properties().hardware.max_cube_dim.0 as usize;
    let mut block = width.next_power_of_two().clamp(32, 256);
    while block > hardware_max {
        block /= 2;
    }
    block
}

/// One cube per row (or group) on a 2-D grid: `x = min(rows, 65,535)`, `y = ⌈rows / x⌉`; the kernels skip
/// the cubes past the last row.
fn row_grid(rows: usize) -> CubeCount {
    let x = rows.clamp(1, MAX_GRID_X);
    CubeCount::Static(x as u32, rows.div_ceil(x).max(1) as u32, 1)
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> KernelBackend
    for CubeBackend<R, F, I, BT>
{
    fn token_stats(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        temperature: f32,
    ) -> TokenStats<Self> {
        let logits = into_contiguous(logits);
        let targets = into_contiguous(targets);
        let [rows, vocab] = logits.shape().dims::<2>();
        assert!(vocab > 0, "token_stats: the vocabulary must not be empty");
        let new_row = || {
            empty_device_dtype::<R>(
                logits.client.clone(),
                logits.device.clone(),
                Shape::new([rows]),
                logits.dtype,
            )
        };
        let stats = TokenStats {
            logp: new_row(),
            entropy: new_row(),
            log_normalizer: new_row(),
        };
        if rows == 0 {
            return stats;
        }
        let block = threads_per_row(&logits, vocab);
        let client = logits.client.clone();
        let dtypes = [logits.dtype.into(), targets.dtype.into()];
        token_stats_kernel::launch::<R>(
            &client,
            row_grid(rows),
            CubeDim::new_1d(block as u32),
            logits.into_tensor_arg(),
            targets.into_tensor_arg(),
            stats.logp.clone().into_tensor_arg(),
            stats.entropy.clone().into_tensor_arg(),
            stats.log_normalizer.clone().into_tensor_arg(),
            1.0 / temperature,
            block,
            dtypes,
        );
        stats
    }

    fn token_stats_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        log_normalizer: FloatTensor<Self>,
        entropy: FloatTensor<Self>,
        grad_logp: FloatTensor<Self>,
        grad_entropy: FloatTensor<Self>,
        temperature: f32,
    ) -> FloatTensor<Self> {
        let logits = into_contiguous(logits);
        let [rows, vocab] = logits.shape().dims::<2>();
        let grad_logits = empty_device_dtype::<R>(
            logits.client.clone(),
            logits.device.clone(),
            logits.shape(),
            logits.dtype,
        );
        if rows == 0 || vocab == 0 {
            return grad_logits;
        }
        let block = threads_per_row(&logits, vocab);
        let client = logits.client.clone();
        let targets = into_contiguous(targets);
        let dtypes = [logits.dtype.into(), targets.dtype.into()];
        token_stats_backward_kernel::launch::<R>(
            &client,
            row_grid(rows),
            CubeDim::new_1d(block as u32),
            logits.into_tensor_arg(),
            targets.into_tensor_arg(),
            into_contiguous(log_normalizer).into_tensor_arg(),
            into_contiguous(entropy).into_tensor_arg(),
            into_contiguous(grad_logp).into_tensor_arg(),
            into_contiguous(grad_entropy).into_tensor_arg(),
            grad_logits.clone().into_tensor_arg(),
            1.0 / temperature,
            dtypes,
        );
        grad_logits
    }

    fn group_advantages(
        inputs: GroupInputs<Self>,
        params: &AdvantageParams,
    ) -> GroupAdvantages<Self> {
        advantages_launch::group_advantages(inputs, params)
    }

    /// Burn's own CubeCL matmul (it reads strided operands and autotunes its kernels).
    fn matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as FloatTensorOps<Self>>::float_matmul(lhs, rhs)
    }
}
