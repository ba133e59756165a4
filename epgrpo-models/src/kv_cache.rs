//! `KvCache`: preallocated keys and values of every layer, `[batch, kv_heads, max_len,
//! head_dim]`, written slot by slot during prefill and token-by-token decoding. All rows share
//! one write index; rows of different prompt lengths are left-padded (see [`LeftPadding`]).

use burn::prelude::*;

use crate::padding::LeftPadding;

/// Keys and values of one attention layer.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    keys: Tensor<B, 4>,
    values: Tensor<B, 4>,
}

impl<B: Backend> LayerCache<B> {
    /// Writes `keys`/`values` at slots `start ..` and returns everything cached up to them.
    ///
    /// # Shapes
    /// - `keys`, `values`: `[batch, kv_heads, seq, head_dim]`
    /// - returned pair: `[batch, kv_heads, start + seq, head_dim]`
    pub fn append(
        &mut self,
        start: usize,
        keys: Tensor<B, 4>,
        values: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, h, t, d] = keys.dims();
        let slot = [0..b, 0..h, start..start + t, 0..d];
        self.keys.inplace(|c| c.slice_assign(slot.clone(), keys));
        self.values.inplace(|c| c.slice_assign(slot, values));
        let used = [0..b, 0..h, 0..start + t, 0..d];
        (
            self.keys.clone().slice(used.clone()),
            self.values.clone().slice(used),
        )
    }

    fn select_rows(&self, rows: Tensor<B, 1, Int>) -> Self {
        Self {
            keys: self.keys.clone().select(0, rows.clone()),
            values: self.values.clone().select(0, rows),
        }
    }

    fn repeat_rows(&self, times: usize) -> Self {
        let repeat = |x: &Tensor<B, 4>| {
            let [b, h, t, d] = x.dims();
            x.clone()
                .reshape([b, 1, h * t * d])
                .repeat_dim(1, times)
                .reshape([b * times, h, t, d])
        };
        Self {
            keys: repeat(&self.keys),
            values: repeat(&self.values),
        }
    }
}

/// A row index outside the cache's batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("KV cache row {row} does not exist: the batch has {batch} rows")]
pub struct RowOutOfRange {
    /// The requested row.
    pub row: usize,
    /// Rows in the cache.
    pub batch: usize,
}

/// The cache of a whole decoder for one batch.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerCache<B>>,
    len: usize,
    max_len: usize,
    padding: LeftPadding,
}

impl<B: Backend> KvCache<B> {
    /// Allocates an empty cache of `max_len` slots per row for a batch laid out as `padding`
    /// (see also [`crate::Decoder::new_cache`]).
    pub fn new(
        num_layers: usize,
        kv_heads: usize,
        head_dim: usize,
        padding: LeftPadding,
        max_len: usize,
        device: &B::Device,
    ) -> Self {
        let shape = [padding.batch(), kv_heads, max_len, head_dim];
        let layer = LayerCache {
            keys: Tensor::zeros(shape, device),
            values: Tensor::zeros(shape, device),
        };
        Self {
            layers: vec![layer; num_layers],
            len: 0,
            max_len,
            padding,
        }
    }

    /// Number of slots already written (prompt width + decoded tokens).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots per row.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Layout of the rows.
    pub fn padding(&self) -> &LeftPadding {
        &self.padding
    }

    /// The cache of layer `index` (used by the decoder while it writes).
    pub(crate) fn layer_mut(&mut self, index: usize) -> &mut LayerCache<B> {
        &mut self.layers[index]
    }

    /// Marks `seq` more slots as written.
    pub(crate) fn advance(&mut self, seq: usize) {
        self.len += seq;
    }

    /// A cache in which every row is repeated `times` times in place (row `b` becomes rows
    /// `b*times .. (b+1)*times`): one prompt prefill shared by `times` samples.
    pub fn repeat_rows(&self, times: usize) -> Self {
        Self {
            layers: self.layers.iter().map(|l| l.repeat_rows(times)).collect(),
            len: self.len,
            max_len: self.max_len,
            padding: self.padding.repeat_rows(times),
        }
    }

    /// A cache of the given rows only, in that order (`select` on the row axis of every
    /// layer's keys and values, and of the padding): finished rows leave the batch, and a
    /// decode step then costs what the remaining rows need.
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self, RowOutOfRange> {
        let batch = self.padding.batch();
        if let Some(&row) = rows.iter().find(|&&r| r >= batch) {
            return Err(RowOutOfRange { row, batch });
        }
        let pad = self.padding.pad();
        let padding = LeftPadding::new(rows.iter().map(|&r| pad[r]).collect());
        let layers = match self.layers.first() {
            Some(first) => {
                let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
                let ids = Tensor::<B, 1, Int>::from_data(
                    TensorData::new(ids, [rows.len()]),
                    &first.keys.device(),
                );
                self.layers
                    .iter()
                    .map(|l| l.select_rows(ids.clone()))
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(Self {
            layers,
            len: self.len,
            max_len: self.max_len,
            padding,
        })
    }
}
