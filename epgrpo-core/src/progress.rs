//! E8–E10: the cumulative-entropy progress coordinate, its buckets, and the normalisation of a
//! token signal inside each (group, bucket).

use burn::tensor::{Int, Tensor, backend::Backend};

use crate::config::BucketNormalization;

/// E8–E9: τ_{i,t} = S_{i,t} / S_{i,L_i} with S the inclusive prefix sum of H over valid tokens
/// (τ = t / L_i when the response has zero total entropy), and b_{i,t} = min(K − 1, ⌊K τ⌋).
/// Padding gets τ = 0 and b = 0. Valid tokens must form a prefix of each row.
///
/// # Shapes
/// - `entropy`, `mask`: `[B, G, L]` → (`[B, G, L]`, `[B, G, L]` Int)
pub fn progress_buckets<B: Backend>(
    entropy: Tensor<B, 3>,
    mask: Tensor<B, 3>,
    num_buckets: usize,
) -> (Tensor<B, 3>, Tensor<B, 3, Int>) {
    let [b, g, l] = entropy.dims();
    let prefix = (entropy * mask.clone()).cumsum(2);
    // Padding adds exact zeros, so the last column is S_{i,L_i} bit for bit and τ_{i,L_i} = 1.
    let total = prefix.clone().slice([0..b, 0..g, l - 1..l]);
    let no_entropy = total.clone().lower_equal_elem(0.0);
    let length = mask.clone().sum_dim(2).clamp_min(1.0);
    let position = Tensor::<B, 1, Int>::arange(1..l as i64 + 1, &mask.device())
        .float()
        .reshape([1, 1, l])
        .expand([b, g, l]);
    let by_entropy = prefix / total.mask_fill(no_entropy.clone(), 1.0);
    let by_position = position / length;
    let tau = by_entropy.mask_where(no_entropy.expand([b, g, l]), by_position) * mask.clone();
    let bucket = tau
        .clone()
        .mul_scalar(num_buckets as f64)
        .floor()
        .clamp_max((num_buckets - 1) as f64)
        .int()
        * mask.int();
    (tau, bucket)
}

/// E10: normalise `signal` inside each bucket of each group, pooling the valid tokens of all G
/// responses: (s − μ_k) / (σ_k + ε_s) for [`BucketNormalization::ZScore`] (population σ_k;
/// a singleton bucket gives 0), s − μ_k for `Center`, s for `Raw`. Padding gets 0.
///
/// # Shapes
/// - `signal`, `mask`: `[B, G, L]`, `bucket`: `[B, G, L]` Int → `[B, G, L]`
pub fn bucket_normalize<B: Backend>(
    signal: Tensor<B, 3>,
    bucket: Tensor<B, 3, Int>,
    mask: Tensor<B, 3>,
    num_buckets: usize,
    kind: BucketNormalization,
    eps_bucket: f64,
) -> Tensor<B, 3> {
    let signal = signal * mask.clone();
    let normalized = match kind {
        BucketNormalization::Raw => return signal,
        BucketNormalization::Center => BucketStats::new(&bucket, &mask, num_buckets).centre(signal),
        BucketNormalization::ZScore => {
            let stats = BucketStats::new(&bucket, &mask, num_buckets);
            let centred = stats.centre(signal);
            let std = stats.mean_per_bucket(centred.clone().powi_scalar(2)).sqrt();
            centred / stats.per_token(std).add_scalar(eps_bucket)
        }
    };
    normalized * mask
}

/// Bucket membership of the tokens of each group, for segmented means.
struct BucketStats<B: Backend> {
    /// `[B, G, L, K]`: 1 when the token is valid and in bucket k.
    membership: Tensor<B, 4>,
    /// `[B, 1, 1, K]`: number of tokens per bucket (at least 1).
    count: Tensor<B, 4>,
}

impl<B: Backend> BucketStats<B> {
    fn new(bucket: &Tensor<B, 3, Int>, mask: &Tensor<B, 3>, num_buckets: usize) -> Self {
        let [b, g, l] = bucket.dims();
        let shape = [b, g, l, num_buckets];
        let ids = Tensor::<B, 1, Int>::arange(0..num_buckets as i64, &bucket.device())
            .reshape([1, 1, 1, num_buckets])
            .expand(shape);
        let membership = bucket
            .clone()
            .unsqueeze_dim::<4>(3)
            .expand(shape)
            .equal(ids)
            .float()
            * mask.clone().unsqueeze_dim(3);
        let count = membership.clone().sum_dims(&[1, 2]).clamp_min(1.0);
        Self { membership, count }
    }

    /// `[B, G, L]` token values → `[B, 1, 1, K]` mean per (group, bucket).
    fn mean_per_bucket(&self, values: Tensor<B, 3>) -> Tensor<B, 4> {
        (values.unsqueeze_dim(3) * self.membership.clone()).sum_dims(&[1, 2]) / self.count.clone()
    }

    /// `[B, 1, 1, K]` bucket statistic → `[B, G, L]` value of each token's bucket.
    fn per_token(&self, stat: Tensor<B, 4>) -> Tensor<B, 3> {
        (self.membership.clone() * stat).sum_dim(3).squeeze_dim(3)
    }

    /// s − μ_{b(token)}.
    fn centre(&self, signal: Tensor<B, 3>) -> Tensor<B, 3> {
        let mean = self.mean_per_bucket(signal.clone());
        signal - self.per_token(mean)
    }
}
