//! What keeps the replicas identical: gradients summed over ranks and parameters broadcast
//! from rank 0, both flattened into buckets in module-visit order (the same in every process;
//! `ParamId`s are random per process and never order anything here), and a checksum of the
//! parameters to compare replicas.

use std::io::Write;
use std::path::Path;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::Communicator;
use crate::error::CliError;

/// Replaces every gradient in `grads` by its sum over all ranks, `bucket_bytes` at a time
/// (a parameter larger than a bucket travels alone). One process without an engine returns at once.
pub fn sum_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    comm: &Communicator,
    bucket_bytes: usize,
) -> Result<(), CliError> {
    if comm.is_single() {
        return Ok(());
    }
    map_gradients(module, grads, bucket_bytes, |bucket| {
        comm.sum_tensor(bucket)
    })
}

/// Applies `collective` to the flattened gradients of `module`, bucket by bucket.
fn map_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    bucket_bytes: usize,
    collective: impl Fn(Tensor<B::InnerBackend, 1>) -> Result<Tensor<B::InnerBackend, 1>, CliError>,
) -> Result<(), CliError> {
    let mut take = TakeGradients::<B> {
        grads,
        parts: Vec::new(),
        entries: Vec::new(),
    };
    module.visit(&mut take);
    let TakeGradients { parts, entries, .. } = take;
    let reduced = in_buckets(parts, bucket_bytes, collective)?;
    module.visit(&mut PutGradients::<B> {
        grads,
        parts: entries
            .into_iter()
            .zip(reduced)
            .collect::<Vec<_>>()
            .into_iter(),
    });
    Ok(())
}

/// `module` with every float parameter replaced by rank 0's values (the replicas start, and
/// resume, identical whatever each process loaded or drew). One process without an engine returns
/// it as is.
pub fn broadcast_parameters<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: M,
    comm: &Communicator,
    bucket_bytes: usize,
) -> Result<M, CliError> {
    if comm.is_single() {
        return Ok(module);
    }
    map_parameters(module, bucket_bytes, |bucket| comm.broadcast_tensor(bucket))
}

/// `module` with `collective` applied to its flattened float parameters, bucket by bucket.
fn map_parameters<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: M,
    bucket_bytes: usize,
    collective: impl Fn(Tensor<B::InnerBackend, 1>) -> Result<Tensor<B::InnerBackend, 1>, CliError>,
) -> Result<M, CliError> {
    let mut collect = Flatten::<B> { parts: Vec::new() };
    module.visit(&mut collect);
    let values = in_buckets(collect.parts, bucket_bytes, collective)?;
    Ok(module.map(&mut Replace::<B> {
        values: values.into_iter(),
    }))
}

/// Sum and sum of squares of every float parameter, accumulated in f64 in module-visit order:
/// equal on two replicas whose parameters are equal.
pub fn checksum<B: Backend, M: Module<B>>(module: &M) -> [f64; 2] {
    let mut sums = Checksum { sums: [0.0; 2] };
    module.visit(&mut sums);
    sums.sums
}

/// Compares the parameter checksums of every rank after RL step `step`; rank 0 appends them to
/// `run_dir/distributed.jsonl`. Replicas that differ by more than 1e-6 (relative) stop the run
/// on every rank (bitwise equality is the rule on the CPU; the tolerance leaves room for
/// devices whose reductions are not deterministic).
pub fn check_replicas<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    comm: &Communicator,
    run_dir: &Path,
    step: usize,
) -> Result<(), CliError> {
    let all = comm.gather_f64(checksum(module).to_vec())?;
    let sums: Vec<[f64; 2]> = all.chunks(2).map(|c| [c[0], c[1]]).collect();
    let identical = sums.iter().all(|s| s == &sums[0]);
    let first = sums[0];
    let spread = sums
        .iter()
        .flat_map(|s| (0..2).map(move |i| (s[i] - first[i]).abs() / first[i].abs().max(1e-30)))
        .fold(0.0f64, f64::max);
    if comm.is_root() {
        let line = serde_json::json!({
            "step": step,
            "world_size": comm.world_size(),
            "checksums": sums,
            "identical": identical,
        });
        let path = run_dir.join("distributed.jsonl");
        let io = |e: std::io::Error| CliError::Internal(format!("{}: {e}", path.display()));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        writeln!(file, "{line}").map_err(io)?;
    }
    if spread > 1e-6 {
        return Err(CliError::Internal(format!(
            "RL step {step}: the replicas' parameters differ (relative {spread:.2e}; checksums              [sum, sum of squares] per rank: {sums:?}); see {}",
            run_dir.join("distributed.jsonl").display()
        )));
    }
    Ok(())
}

/// Concatenates consecutive flat `parts` into buckets of at most `bucket_bytes` (4 bytes an
/// element), applies `collective` to each and splits the results back into parts.
fn in_buckets<Bk: Backend>(
    parts: Vec<Tensor<Bk, 1>>,
    bucket_bytes: usize,
    collective: impl Fn(Tensor<Bk, 1>) -> Result<Tensor<Bk, 1>, CliError>,
) -> Result<Vec<Tensor<Bk, 1>>, CliError> {
    let limit = (bucket_bytes / 4).max(1);
    let mut out = Vec::with_capacity(parts.len());
    let mut bucket: Vec<Tensor<Bk, 1>> = Vec::new();
    let mut filled = 0;
    let mut flush = |bucket: &mut Vec<Tensor<Bk, 1>>| -> Result<(), CliError> {
        if bucket.is_empty() {
            return Ok(());
        }
        let sizes: Vec<usize> = bucket.iter().map(|t| t.dims()[0]).collect();
        let joined = collective(Tensor::cat(std::mem::take(bucket), 0))?;
        let mut offset = 0;
        for size in sizes {
            out.push(joined.clone().slice([offset..offset + size]));
            offset += size;
        }
        Ok(())
    };
    for part in parts {
        let size = part.dims()[0];
        if filled > 0 && filled + size > limit {
            flush(&mut bucket)?;
            filled = 0;
        }
        filled += size;
        bucket.push(part);
    }
    flush(&mut bucket)?;
    Ok(out)
}

/// Removes every gradient of the module, flattened, with its parameter and shape.
struct TakeGradients<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    parts: Vec<Tensor<B::InnerBackend, 1>>,
    entries: Vec<(ParamId, Vec<usize>)>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for TakeGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.entries.push((param.id, grad.dims().to_vec()));
            self.parts.push(grad.reshape([-1]));
        }
    }
}

/// Registers the summed gradients back, in the order they were taken.
struct PutGradients<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    parts: std::vec::IntoIter<((ParamId, Vec<usize>), Tensor<B::InnerBackend, 1>)>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for PutGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self
            .parts
            .as_slice()
            .first()
            .is_some_and(|((id, _), _)| *id == param.id)
        {
            let ((id, shape), flat) = self.parts.next().expect("checked above");
            let shape: [usize; D] = shape.try_into().expect("the shape it was taken with");
            self.grads
                .register::<B::InnerBackend, D>(id, flat.reshape(shape));
        }
    }
}

/// Every float parameter's values, flattened (without the autodiff graph).
struct Flatten<B: AutodiffBackend> {
    parts: Vec<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.parts.push(param.val().inner().reshape([-1]));
    }
}

/// Replaces every float parameter by the next of `values`, keeping its id and whether it is
/// trained.
struct Replace<B: AutodiffBackend> {
    values: std::vec::IntoIter<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Replace<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let flat = self
            .values
            .next()
            .expect("one value per parameter, in visit order");
        let value = Tensor::<B, D>::from_inner(flat.reshape(tensor.dims()));
        let value = if tensor.is_require_grad() {
            value.require_grad()
        } else {
            value
        };
        Param::from_mapped_value(id, value, mapper)
    }
}

/// Accumulates the sum and the sum of squares of the float parameters.
struct Checksum {
    sums: [f64; 2],
}

impl<B: Backend> ModuleVisitor<B> for Checksum {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let flat = param.val().reshape([-1]);
        let both = Tensor::cat(vec![flat.clone().sum(), flat.powi_scalar(2).sum()], 0);
        let values = both
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .expect("converted to f64");
        self.sums[0] += values[0];
        self.sums[1] += values[1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type B = Autodiff<NdArray<f32>>;

    #[test]
    fn buckets_split_back_into_the_parts_they_were_made_of() {
        let device = Default::default();
        let parts: Vec<Tensor<NdArray<f32>, 1>> = [3usize, 1, 5, 2]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                Tensor::arange(0..n as i64, &device)
                    .float()
                    .add_scalar(i as f64)
            })
            .collect();
        let calls = std::cell::Cell::new(0);
        // 16 bytes: buckets of 4 elements; the 5-element part travels alone.
        let back = in_buckets(parts.clone(), 16, |t| {
            calls.set(calls.get() + 1);
            Ok(t.mul_scalar(2.0))
        })
        .unwrap();
        assert_eq!(calls.get(), 3);
        for (a, b) in parts.iter().zip(&back) {
            let expected = a.clone().mul_scalar(2.0).into_data();
            assert_eq!(b.clone().into_data(), expected);
        }
    }

    #[test]
    fn gradients_and_parameters_return_to_their_own_parameters() {
        let device = Default::default();
        let mlp = [
            burn::nn::LinearConfig::new(3, 4).init::<B>(&device),
            burn::nn::LinearConfig::new(4, 2).init::<B>(&device),
        ];
        let x = Tensor::<B, 2>::from_floats([[1.0, 2.0, 3.0]], &device);
        let y = mlp[1].forward(mlp[0].forward(x).tanh()).sum();
        let mut grads = GradientsParams::from_grads(y.backward(), &mlp);
        let grad = |grads: &GradientsParams, i: usize| {
            let w = grads.get::<NdArray<f32>, 2>(mlp[i].weight.id).unwrap();
            let b = grads
                .get::<NdArray<f32>, 1>(mlp[i].bias.as_ref().unwrap().id)
                .unwrap();
            (
                w.into_data().to_vec::<f32>().unwrap(),
                b.into_data().to_vec::<f32>().unwrap(),
            )
        };
        let before = [grad(&grads, 0), grad(&grads, 1)];
        // Buckets of 8 elements: several parameters per bucket, the 12-element weight alone.
        map_gradients(&mlp, &mut grads, 32, |t| Ok(t.mul_scalar(2.0))).unwrap();
        for (i, (w, b)) in before.iter().enumerate() {
            let (w2, b2) = grad(&grads, i);
            assert_eq!(w2, w.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
            assert_eq!(b2, b.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
        }
        // Sum = Σp + n, sum of squares = Σ(p + 1)²: every value moved by one, in place.
        let params: Vec<f32> = mlp
            .iter()
            .flat_map(|l| {
                let mut v = l.weight.val().into_data().to_vec::<f32>().unwrap();
                v.extend(
                    l.bias
                        .as_ref()
                        .unwrap()
                        .val()
                        .into_data()
                        .to_vec::<f32>()
                        .unwrap(),
                );
                v
            })
            .collect();
        let shifted = map_parameters(mlp, 32, |t| Ok(t.add_scalar(1.0))).unwrap();
        let [sum, squares] = checksum(&shifted);
        let expected: f64 = params.iter().map(|&p| p as f64 + 1.0).sum();
        let expected_sq: f64 = params.iter().map(|&p| (p as f64 + 1.0).powi(2)).sum();
        assert!((sum - expected).abs() < 1e-5 && (squares - expected_sq).abs() < 1e-5);
        assert!(shifted[0].weight.val().is_require_grad());
        assert_eq!(
            sum_gradients(&shifted, &mut grads, &Communicator::Single, 1).ok(),
            Some(())
        );
    }
}
