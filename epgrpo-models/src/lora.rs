//! LoRA (low-rank adaptation): `y = x·W + b + scale · dropout(x)·A·B` with the base `W`, `b`
//! frozen and only `A` `[in, r]` and `B` `[r, out]` trained, `scale = alpha / r`. `A` starts
//! uniform in `±1/√in` and `B` at zero, so a freshly adapted model computes exactly what the base
//! model computes.
//!
//! Every projection of the decoder is a [`LoraLinear`]: a plain `Linear` plus an optional
//! adapter and an `enabled` switch. The decoder therefore has one forward path, and the RL
//! reference policy is the same weights with the adapters switched off
//! ([`Decoder::with_adapters_enabled`]), not a second copy. Without adapters (full
//! fine-tuning) a `LoraLinear` is exactly its `Linear`.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::Distribution;
use epgrpo_kernels::{KernelBackend, matmul};

use crate::decoder::Decoder;

/// The projections LoRA can adapt, by their HF module names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoraTarget {
    /// `self_attn.q_proj`.
    QProj,
    /// `self_attn.k_proj`.
    KProj,
    /// `self_attn.v_proj`.
    VProj,
    /// `self_attn.o_proj`.
    OProj,
    /// `mlp.gate_proj`.
    GateProj,
    /// `mlp.up_proj`.
    UpProj,
    /// `mlp.down_proj`.
    DownProj,
}

impl LoraTarget {
    /// Every target, attention first.
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::QProj,
        LoraTarget::KProj,
        LoraTarget::VProj,
        LoraTarget::OProj,
        LoraTarget::GateProj,
        LoraTarget::UpProj,
        LoraTarget::DownProj,
    ];

    /// The HF module name (`q_proj`, …).
    pub fn name(self) -> &'static str {
        match self {
            LoraTarget::QProj => "q_proj",
            LoraTarget::KProj => "k_proj",
            LoraTarget::VProj => "v_proj",
            LoraTarget::OProj => "o_proj",
            LoraTarget::GateProj => "gate_proj",
            LoraTarget::UpProj => "up_proj",
            LoraTarget::DownProj => "down_proj",
        }
    }

    /// The target with HF module name `name`.
    pub fn from_name(name: &str) -> Result<Self, LoraError> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| LoraError::UnknownTarget {
                name: name.to_string(),
            })
    }
}

/// Settings of the adapters.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank `r` of `A·B`.
    pub rank: usize,
    /// `alpha`; the update is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Dropout probability on the adapter input (training only; 0 turns it off).
    pub dropout: f64,
    /// Projections that get adapters, in every layer.
    pub targets: Vec<LoraTarget>,
}

impl LoraConfig {
    /// Adapters of rank `rank` and scale `alpha / rank` on the projections named in `targets`
    /// (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`), no dropout.
    pub fn from_names(rank: usize, alpha: f64, targets: &[&str]) -> Result<Self, LoraError> {
        let targets = targets
            .iter()
            .map(|n| LoraTarget::from_name(n))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rank,
            alpha,
            dropout: 0.0,
            targets,
        })
    }

    /// Checks rank, alpha, dropout and targets.
    pub fn validate(&self) -> Result<(), LoraError> {
        let bad = |field, reason: &str| LoraError::InvalidSetting {
            field,
            reason: reason.to_string(),
        };
        if self.rank == 0 {
            return Err(bad("rank", "must be at least 1"));
        }
        if !self.alpha.is_finite() {
            return Err(bad("alpha", "must be finite"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(bad("dropout", "must be in [0, 1)"));
        }
        if self.targets.is_empty() {
            return Err(bad("targets", "name at least one projection"));
        }
        Ok(())
    }

    /// `alpha / rank`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// Bad LoRA settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoraError {
    /// A target name is not one of the adaptable projections.
    #[error(
        "unknown LoRA target `{name}` (expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj)"
    )]
    UnknownTarget {
        /// The name given.
        name: String,
    },
    /// A setting is out of range.
    #[error("LoRA setting `{field}`: {reason}")]
    InvalidSetting {
        /// Field of [`LoraConfig`].
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The trainable low-rank update of one projection.
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// `A`, `[in, rank]`.
    pub lora_a: Param<Tensor<B, 2>>,
    /// `B`, `[rank, out]`.
    pub lora_b: Param<Tensor<B, 2>>,
    /// `alpha / rank`.
    pub scale: f64,
    /// Dropout on the adapter input.
    pub dropout: Dropout,
}

impl<B: Backend> LoraAdapter<B> {
    /// `A` uniform in `±1/√d_in`, `B = 0`.
    pub fn init(d_in: usize, d_out: usize, config: &LoraConfig, device: &B::Device) -> Self {
        let bound = 1.0 / (d_in as f64).sqrt();
        let a = Tensor::random(
            [d_in, config.rank],
            Distribution::Uniform(-bound, bound),
            device,
        );
        Self {
            lora_a: Param::from_tensor(a),
            lora_b: Param::from_tensor(Tensor::zeros([config.rank, d_out], device)),
            scale: config.scale(),
            dropout: DropoutConfig::new(config.dropout).init(),
        }
    }

    /// `scale · dropout(x)·A·B`.
    ///
    /// # Shapes
    /// - `x`: `[rows, in]` → `[rows, out]`
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2>
    where
        B: KernelBackend,
    {
        let low_rank = matmul(self.dropout.forward(x), self.lora_a.val());
        matmul(low_rank, self.lora_b.val()) * self.scale
    }
}

/// A projection: a `Linear` (HF `weight`/`bias`) plus an optional LoRA adapter.
#[derive(Module, Debug)]
pub struct LoraLinear<B: Backend> {
    /// The pretrained projection (frozen once an adapter is attached).
    pub base: Linear<B>,
    /// The adapter, if any.
    pub adapter: Option<LoraAdapter<B>>,
    /// Whether the adapter takes part in `forward` (off: the reference policy).
    pub enabled: bool,
}

impl<B: Backend> From<Linear<B>> for LoraLinear<B> {
    fn from(base: Linear<B>) -> Self {
        Self {
            base,
            adapter: None,
            enabled: true,
        }
    }
}

impl<B: Backend> LoraLinear<B> {
    /// `base(x)`, plus the adapter's update when it is present and enabled.
    ///
    /// # Shapes
    /// - `x`: `[..., in]` → `[..., out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D>
    where
        B: KernelBackend,
    {
        // One `[rows, in] × [in, out]` product instead of Burn's broadcast batch matmul, which
        // multiplies every leading index separately (decoding `G` rows with one token each read
        // every weight `G` times, and the weight gradient became `[batch, in, out]` partial
        // products summed afterwards). The product is the kernels' (`gemm` on the CPU).
        let mut dims = x.dims();
        let d_in = dims[D - 1];
        let y = self.project(x.reshape([-1, d_in as i32]));
        dims[D - 1] = y.dims()[1];
        y.reshape(dims)
    }

    /// `x·W + b` plus the enabled adapter's update, for `x` `[rows, in]`.
    fn project(&self, x: Tensor<B, 2>) -> Tensor<B, 2>
    where
        B: KernelBackend,
    {
        let y = matmul(x.clone(), self.base.weight.val());
        let y = match &self.base.bias {
            Some(bias) => y + bias.val().unsqueeze(),
            None => y,
        };
        match (&self.adapter, self.enabled) {
            (Some(adapter), true) => y + adapter.forward(x),
            _ => y,
        }
    }

    /// Freezes the base projection and attaches a fresh adapter.
    pub fn with_adapter(self, config: &LoraConfig, device: &B::Device) -> Self {
        let [d_in, d_out] = self.base.weight.shape().dims();
        Self {
            base: self.base.no_grad(),
            adapter: Some(LoraAdapter::init(d_in, d_out, config, device)),
            enabled: true,
        }
    }
}

impl<B: Backend> Decoder<B> {
    /// LoRA fine-tuning: freezes every parameter of the model (embedding, norms, projections,
    /// head) and attaches fresh adapters to the `config.targets` projections of every layer.
    /// The adapted model computes the same logits as before until the adapters are trained.
    pub fn with_lora(self, config: &LoraConfig, device: &B::Device) -> Result<Self, LoraError> {
        config.validate()?;
        let mut model = self.no_grad();
        let attach = |p: LoraLinear<B>, target: LoraTarget| {
            if config.targets.contains(&target) {
                p.with_adapter(config, device)
            } else {
                p
            }
        };
        for layer in &mut model.layers {
            let attn = &mut layer.self_attn;
            attn.q_proj = attach(attn.q_proj.clone(), LoraTarget::QProj);
            attn.k_proj = attach(attn.k_proj.clone(), LoraTarget::KProj);
            attn.v_proj = attach(attn.v_proj.clone(), LoraTarget::VProj);
            attn.o_proj = attach(attn.o_proj.clone(), LoraTarget::OProj);
            let mlp = &mut layer.mlp;
            mlp.gate_proj = attach(mlp.gate_proj.clone(), LoraTarget::GateProj);
            mlp.up_proj = attach(mlp.up_proj.clone(), LoraTarget::UpProj);
            mlp.down_proj = attach(mlp.down_proj.clone(), LoraTarget::DownProj);
        }
        Ok(model)
    }

    /// The same model with its adapters switched on or off. Off, it is the base model: the
    /// reference policy of RL. Cheap: parameters are shared, not copied.
    pub fn with_adapters_enabled(mut self, enabled: bool) -> Self {
        for p in self.projections_mut() {
            p.enabled = enabled;
        }
        self
    }

    /// Whether any projection carries an adapter.
    pub fn has_adapters(&self) -> bool {
        self.layers.iter().any(|l| {
            let (a, m) = (&l.self_attn, &l.mlp);
            [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj]
                .into_iter()
                .chain([&m.gate_proj, &m.up_proj, &m.down_proj])
                .any(|p| p.adapter.is_some())
        })
    }

    fn projections_mut(&mut self) -> impl Iterator<Item = &mut LoraLinear<B>> {
        self.layers.iter_mut().flat_map(|l| {
            let (a, m) = (&mut l.self_attn, &mut l.mlp);
            [
                &mut a.q_proj,
                &mut a.k_proj,
                &mut a.v_proj,
                &mut a.o_proj,
                &mut m.gate_proj,
                &mut m.up_proj,
                &mut m.down_proj,
            ]
        })
    }
}
