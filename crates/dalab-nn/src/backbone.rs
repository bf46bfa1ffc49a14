//! Feature extractors built from the `model.backbone` section of an experiment.

use dalab_core::{FeatureExtractor, Validate};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn, nn::Module};

/// A hidden-layer nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
        }
    }
}

/// The `model.backbone` section: which feature extractor to build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum BackboneConfig {
    /// A multi-layer perceptron on flat feature vectors: `hidden` sizes, each followed by `activation` and
    /// dropout. The features are the last hidden layer (or the input when `hidden` is empty).
    Mlp {
        hidden: Vec<i64>,
        #[serde(default = "default_activation")]
        activation: Activation,
        #[serde(default)]
        dropout: f64,
    },
}

fn default_activation() -> Activation {
    Activation::Relu
}

impl Default for BackboneConfig {
    fn default() -> Self {
        BackboneConfig::Mlp { hidden: vec![100], activation: Activation::Relu, dropout: 0.0 }
    }
}

impl Validate for BackboneConfig {
    fn validate(&self) -> Result<(), String> {
        match self {
            BackboneConfig::Mlp { hidden, dropout, .. } => {
                if let Some((i, h)) = hidden.iter().enumerate().find(|&(_, &h)| h < 1) {
                    return Err(format!("hidden[{i}]: layer sizes must be >= 1, got {h}"));
                }
                if !(0.0..1.0).contains(dropout) {
                    return Err(format!("dropout: must be in [0, 1), got {dropout}"));
                }
                Ok(())
            }
        }
    }
}

/// An MLP feature extractor.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
    activation: Activation,
    dropout: f64,
    out_dim: i64,
}

impl FeatureExtractor for Mlp {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.flatten(1, -1);
        for l in &self.layers {
            h = self.activation.apply(&l.forward(&h));
            if self.dropout > 0.0 {
                h = h.dropout(self.dropout, train);
            }
        }
        h
    }

    fn out_dim(&self) -> i64 {
        self.out_dim
    }
}

/// Builds the backbone for inputs of shape `input_shape` (one sample); variables go under `vs`.
pub fn build_backbone(cfg: &BackboneConfig, vs: &nn::Path, input_shape: &[i64]) -> Box<dyn FeatureExtractor> {
    match cfg {
        BackboneConfig::Mlp { hidden, activation, dropout } => {
            let mut d = input_shape.iter().product::<i64>();
            let mut layers = Vec::with_capacity(hidden.len());
            for (i, &h) in hidden.iter().enumerate() {
                layers.push(nn::linear(vs / format!("fc{i}"), d, h, Default::default()));
                d = h;
            }
            Box::new(Mlp { layers, activation: *activation, dropout: *dropout, out_dim: d })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_shapes_and_validation() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = BackboneConfig::Mlp { hidden: vec![15], activation: Activation::Sigmoid, dropout: 0.0 };
        let b = build_backbone(&cfg, &vs.root(), &[2]);
        assert_eq!(b.out_dim(), 15);
        let y = b.forward_t(&Tensor::zeros([4, 2], (tch::Kind::Float, tch::Device::Cpu)), false);
        assert_eq!(y.size(), vec![4, 15]);
        // Sigmoid outputs lie in (0, 1).
        assert!(y.min().double_value(&[]) > 0.0 && y.max().double_value(&[]) < 1.0);
        let bad = BackboneConfig::Mlp { hidden: vec![4, 0], activation: Activation::Relu, dropout: 0.0 };
        assert_eq!(bad.validate().unwrap_err(), "hidden[1]: layer sizes must be >= 1, got 0");
    }
}
