//! Heads: the domain discriminator of adversarial methods.

use crate::Activation;
use dalab_core::Validate;
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn, nn::Module};

/// Architecture of a domain discriminator: hidden sizes (each ReLU + dropout), then one logit.
/// The DANN paper uses 1024-1024 with dropout 0.5 for deep models and a logistic regressor (no hidden layer)
/// for the shallow ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscriminatorConfig {
    pub hidden: Vec<i64>,
    pub activation: Activation,
    pub dropout: f64,
}

impl Default for DiscriminatorConfig {
    fn default() -> Self {
        Self { hidden: vec![1024, 1024], activation: Activation::Relu, dropout: 0.5 }
    }
}

impl Validate for DiscriminatorConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some((i, h)) = self.hidden.iter().enumerate().find(|&(_, &h)| h < 1) {
            return Err(format!("hidden[{i}]: layer sizes must be >= 1, got {h}"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout: must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }
}

/// A binary domain classifier: `[n, in_dim] -> [n]` logits (source = 1, target = 0).
#[derive(Debug)]
pub struct Discriminator {
    layers: Vec<nn::Linear>,
    out: nn::Linear,
    cfg: DiscriminatorConfig,
}

impl Discriminator {
    pub fn new(vs: &nn::Path, in_dim: i64, cfg: &DiscriminatorConfig) -> Self {
        let mut d = in_dim;
        let mut layers = Vec::new();
        for (i, &h) in cfg.hidden.iter().enumerate() {
            layers.push(nn::linear(vs / format!("fc{i}"), d, h, Default::default()));
            d = h;
        }
        let out = nn::linear(vs / "out", d, 1, Default::default());
        Self { layers, out, cfg: cfg.clone() }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for l in &self.layers {
            h = self.cfg.activation.apply(&l.forward(&h)).dropout(self.cfg.dropout, train);
        }
        self.out.forward(&h).squeeze_dim(-1)
    }

    /// Mean binary cross-entropy of telling `source` features (label 1) from `target` ones (label 0).
    /// Also returns the discriminator's accuracy on the batch, for logging.
    pub fn domain_loss(&self, source: &Tensor, target: &Tensor) -> (Tensor, f64) {
        let feats = Tensor::cat(&[source, target], 0);
        let logits = self.forward_t(&feats, true);
        let (ns, nt) = (source.size()[0], target.size()[0]);
        let opts = (logits.kind(), logits.device());
        let labels = Tensor::cat(&[Tensor::ones([ns], opts), Tensor::zeros([nt], opts)], 0);
        let loss = logits.binary_cross_entropy_with_logits::<Tensor>(&labels, None, None, tch::Reduction::Mean);
        let acc = logits.detach().ge(0.0).to_kind(labels.kind()).eq_tensor(&labels).to_kind(tch::Kind::Float);
        (loss, acc.mean(tch::Kind::Float).double_value(&[]))
    }
}
