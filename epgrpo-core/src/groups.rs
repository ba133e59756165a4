//! Response groups: the per-prompt input of the advantage computation, as ragged host data
//! ([`ResponseGroup`]) and as padded tensors ([`GroupTensors`]).
//!
//! A group holds the G responses to one prompt: their rewards r_i and, per response token, the
//! entropy H_{i,t} of π_old (E1) and the log-probs lp_old and lp_ref of the sampled token. Valid
//! tokens of a response always form a prefix of its row; padding follows.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// The responses to one prompt, one row per response (ragged: row length = response length).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseGroup {
    /// r_i, one scalar reward per response. Its length is the group size G.
    pub rewards: Vec<f64>,
    /// H_{i,t} in nats, entropy of π_old at each response token (E1).
    pub entropy: Vec<Vec<f64>>,
    /// lp_old(i,t), log-prob of the sampled token under π_old. Absent means π_old = π_ref
    /// (the implicit process signal is then zero).
    #[serde(default)]
    pub logp_old: Option<Vec<Vec<f64>>>,
    /// lp_ref(i,t), log-prob of the sampled token under π_ref. Absent means equal to lp_old.
    #[serde(default)]
    pub logp_ref: Option<Vec<Vec<f64>>>,
}

impl ResponseGroup {
    /// Number of responses G.
    pub fn size(&self) -> usize {
        self.rewards.len()
    }

    /// Length L_i of each response.
    pub fn lengths(&self) -> Vec<usize> {
        self.entropy.iter().map(Vec::len).collect()
    }

    /// s_{i,t}/λ = lp_old − lp_ref per token (zero where either is absent).
    pub fn log_ratio_to_ref(&self) -> Vec<Vec<f64>> {
        match (&self.logp_old, &self.logp_ref) {
            (Some(old), Some(reference)) => old
                .iter()
                .zip(reference)
                .map(|(o, r)| o.iter().zip(r).map(|(o, r)| o - r).collect())
                .collect(),
            _ => self
                .entropy
                .iter()
                .map(|row| vec![0.0; row.len()])
                .collect(),
        }
    }

    /// Checks that the rows agree with each other and that every value is usable.
    /// `index` is the group's position in the input, used in error messages.
    pub fn validate(&self, index: usize) -> Result<(), CoreError> {
        let fail = |message: String| {
            Err(CoreError::InvalidGroup {
                group: index,
                message,
            })
        };
        let g = self.size();
        if g == 0 {
            return fail("rewards is empty: a group needs at least one response".into());
        }
        if let Some(i) = self.rewards.iter().position(|r| !r.is_finite()) {
            return fail(format!("rewards[{i}] is not a finite number"));
        }
        if self.entropy.len() != g {
            return fail(format!(
                "entropy has {} rows but rewards has {g} values",
                self.entropy.len()
            ));
        }
        for (i, row) in self.entropy.iter().enumerate() {
            if let Some(t) = row.iter().position(|h| !(h.is_finite() && *h >= 0.0)) {
                return fail(format!(
                    "entropy[{i}][{t}] must be a finite number ≥ 0 (got {})",
                    row[t]
                ));
            }
        }
        for (field, rows) in [("logp_old", &self.logp_old), ("logp_ref", &self.logp_ref)] {
            let Some(rows) = rows else { continue };
            if rows.len() != g {
                return fail(format!(
                    "{field} has {} rows but rewards has {g} values",
                    rows.len()
                ));
            }
            for (i, (row, entropy)) in rows.iter().zip(&self.entropy).enumerate() {
                if row.len() != entropy.len() {
                    return fail(format!(
                        "{field}[{i}] has {} tokens but entropy[{i}] has {}",
                        row.len(),
                        entropy.len()
                    ));
                }
                if let Some(t) = row.iter().position(|lp| !(lp.is_finite() && *lp <= 0.0)) {
                    return fail(format!(
                        "{field}[{i}][{t}] must be a finite log-prob ≤ 0 (got {})",
                        row[t]
                    ));
                }
            }
        }
        if self.logp_old.is_some() != self.logp_ref.is_some() {
            return fail("give both logp_old and logp_ref, or neither".into());
        }
        Ok(())
    }
}

/// B groups of G responses padded to a common length L, on a device.
///
/// # Shapes
/// - `rewards`: `[B, G]`
/// - `entropy`, `logp_old`, `logp_ref`, `mask`: `[B, G, L]`; `mask` is 1.0 on valid tokens.
#[derive(Debug, Clone)]
pub struct GroupTensors<B: Backend> {
    /// r_i per group and response.
    pub rewards: Tensor<B, 2>,
    /// H_{i,t} of π_old (E1), 0 on padding.
    pub entropy: Tensor<B, 3>,
    /// lp_old of the sampled tokens, 0 on padding.
    pub logp_old: Tensor<B, 3>,
    /// lp_ref of the sampled tokens, 0 on padding.
    pub logp_ref: Tensor<B, 3>,
    /// 1.0 on valid response tokens, 0.0 on padding.
    pub mask: Tensor<B, 3>,
}

impl<B: Backend> GroupTensors<B> {
    /// Validates ragged groups and pads them into tensors. All groups must have the same size.
    pub fn from_groups(groups: &[ResponseGroup], device: &B::Device) -> Result<Self, CoreError> {
        for (index, group) in groups.iter().enumerate() {
            group.validate(index)?;
        }
        let Some(first) = groups.first() else {
            return Err(CoreError::InvalidGroup {
                group: 0,
                message: "no groups given".into(),
            });
        };
        let g = first.size();
        if let Some(index) = groups.iter().position(|group| group.size() != g) {
            return Err(CoreError::InvalidGroup {
                group: index,
                message: format!(
                    "has {} responses but groups[0] has {g}: every group must have the same size",
                    groups[index].size()
                ),
            });
        }
        let b = groups.len();
        let l = groups
            .iter()
            .flat_map(|group| group.lengths())
            .max()
            .unwrap_or(0)
            .max(1);
        let pad = |rows: &dyn Fn(&ResponseGroup) -> Vec<Vec<f64>>| {
            let mut flat = vec![0.0f64; b * g * l];
            for (gi, group) in groups.iter().enumerate() {
                for (i, row) in rows(group).iter().enumerate() {
                    let start = (gi * g + i) * l;
                    flat[start..start + row.len()].copy_from_slice(row);
                }
            }
            Tensor::<B, 3>::from_data(TensorData::new(flat, [b, g, l]), device)
        };
        let rewards: Vec<f64> = groups
            .iter()
            .flat_map(|group| group.rewards.clone())
            .collect();
        Ok(Self {
            rewards: Tensor::from_data(TensorData::new(rewards, [b, g]), device),
            entropy: pad(&|group| group.entropy.clone()),
            logp_old: pad(&|group| group.logp_old.clone().unwrap_or_else(|| zeros_like(group))),
            logp_ref: pad(&|group| group.logp_ref.clone().unwrap_or_else(|| zeros_like(group))),
            mask: pad(&|group| {
                group
                    .entropy
                    .iter()
                    .map(|row| vec![1.0; row.len()])
                    .collect()
            }),
        })
    }
}

fn zeros_like(group: &ResponseGroup) -> Vec<Vec<f64>> {
    group
        .entropy
        .iter()
        .map(|row| vec![0.0; row.len()])
        .collect()
}
