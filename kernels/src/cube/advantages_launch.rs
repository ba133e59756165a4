//! Host side of the E2–E12 kernel: layout, output allocation, launch, and the plain fallback for
//! shapes the kernel does not take.

use burn::tensor::{DType, Shape, Tensor};
use burn_cubecl::{
    CubeBackend, CubeRuntime, FloatElement, IntElement, element::BoolElement,
    kernel::into_contiguous, ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor,
};
use cubecl::CubeDim;

use super::group_advantages::group_advantages_kernel;
use super::{row_grid, threads_per_row};
use crate::advantage::{
    AdvantageParams, BucketNormalization, GroupAdvantages, GroupInputs, OutcomeScale,
    ProgressParams, SignOrder, plain,
};
use crate::float;

/// Largest K whose per-bucket statistics the kernel keeps in shared memory (two arrays of K
/// floats next to three reduction arrays of up to 256: 11 KiB, under Vulkan's 16 KiB minimum).
/// Larger K runs [`plain::group_advantages`] on the device.
pub(crate) const MAX_KERNEL_BUCKETS: usize = 1024;

/// E2–E12 on a CubeCL backend: one cube per group (see `group_advantages.rs`).
pub(crate) fn group_advantages<R, F, I, BT>(
    inputs: GroupInputs<CubeBackend<R, F, I, BT>>,
    params: &AdvantageParams,
) -> GroupAdvantages<CubeBackend<R, F, I, BT>>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    let [b, g, l] = inputs.entropy.dims();
    if b == 0 || g == 0 || l == 0 || params.num_buckets > MAX_KERNEL_BUCKETS {
        return plain::group_advantages(inputs, params);
    }
    let primitive = |t: Tensor<CubeBackend<R, F, I, BT>, 3>| -> CubeTensor<R> {
        into_contiguous(t.into_primitive().tensor())
    };
    let rewards = into_contiguous(inputs.rewards.into_primitive().tensor());
    let entropy = primitive(inputs.entropy);
    let logp_old = primitive(inputs.logp_old);
    let logp_ref = primitive(inputs.logp_ref);
    let mask = primitive(inputs.mask);
    let (client, device, dtype) = (
        entropy.client.clone(),
        entropy.device.clone(),
        entropy.dtype,
    );
    let new = |shape: Shape, dtype: DType| {
        empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype)
    };
    let tokens = Shape::new([b, g, l]);
    let advantages = new(tokens.clone(), dtype);
    let token_weight = new(tokens.clone(), dtype);
    let progress = new(tokens.clone(), dtype);
    let bucket = new(tokens, I::dtype());
    let outcome = new(Shape::new([b, g]), dtype);
    let zero_variance = new(Shape::new([b, 1]), dtype);

    let block = threads_per_row(&entropy, l);
    let capacity = params.num_buckets.next_power_of_two().max(16);
    let progress_params = params.progress;
    let p = progress_params.as_ref();
    let scalar = |f: fn(&ProgressParams) -> f64, default: f64| p.map_or(default, f) as f32;
    let dtypes = [dtype.into(), I::dtype().into()];
    group_advantages_kernel::launch::<R>(
        &client,
        row_grid(b),
        CubeDim::new_1d(block as u32),
        rewards.into_tensor_arg(),
        entropy.into_tensor_arg(),
        logp_old.into_tensor_arg(),
        logp_ref.into_tensor_arg(),
        mask.into_tensor_arg(),
        advantages.clone().into_tensor_arg(),
        token_weight.clone().into_tensor_arg(),
        progress.clone().into_tensor_arg(),
        bucket.clone().into_tensor_arg(),
        outcome.clone().into_tensor_arg(),
        zero_variance.clone().into_tensor_arg(),
        params.eps_adv as f32,
        params.zero_var_tol as f32,
        scalar(|p| p.gamma, 0.0),
        scalar(|p| p.lambda, 0.0),
        scalar(|p| p.alpha, 0.0),
        scalar(|p| p.theta_reward, 0.0),
        scalar(|p| p.eps_entropy, 1.0),
        scalar(|p| p.eps_bucket, 1.0),
        params.num_buckets as u32,
        block,
        capacity,
        p.is_some(),
        params.outcome_scale == OutcomeScale::MeanOnly,
        p.is_some_and(|p| p.sign_order == SignOrder::SignThenNormalize),
        p.is_some_and(|p| p.gate_progress),
        p.is_some_and(|p| p.normalization != BucketNormalization::Raw),
        p.is_some_and(|p| p.normalization == BucketNormalization::ZScore),
        dtypes,
    );
    let zero_variance: Tensor<CubeBackend<R, F, I, BT>, 2> = float(zero_variance);
    GroupAdvantages {
        advantages: float(advantages),
        token_weight: float(token_weight),
        progress: float(progress),
        bucket: Tensor::from_primitive(bucket),
        outcome: float(outcome),
        zero_variance: zero_variance.greater_elem(0.5),
    }
}
