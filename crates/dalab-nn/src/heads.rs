//! Heads: the bottleneck + classifier head of every method, and the domain discriminator of adversarial methods.

use crate::Activation;
use dalab_core::{FeatureExtractor, Validate};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn, nn::Module, nn::ModuleT};

/// Architecture of a domain discriminator: hidden sizes (each ReLU + dropout), then one logit.
/// The DANN paper uses 1024-1024 with dropout 0.5 for deep models and a logistic regressor (no hidden layer)
/// for the shallow ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscriminatorConfig {
    pub hidden: Vec<i64>,
    pub activation: Activation,
    pub dropout: f64,
    /// Batch norm after each hidden layer, before the activation (TLlib's `DomainDiscriminator`, its default).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub batch_norm: bool,
}

impl Default for DiscriminatorConfig {
    fn default() -> Self {
        Self { hidden: vec![1024, 1024], activation: Activation::Relu, dropout: 0.5, batch_norm: false }
    }
}

impl Validate for DiscriminatorConfig {
    fn validate(&self) -> Result<(), String> {
        dalab_core::checks::layer_widths("hidden", &self.hidden)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout: must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }
}

/// A 1-d batch norm initialised as PyTorch's `BatchNorm1d` (weight 1, bias 0, momentum 0.1, eps 1e-5); tch's
/// default draws the weight uniformly in [0, 1), PyTorch's before version 1.2.
pub fn batch_norm1d(vs: &nn::Path, dim: i64) -> nn::BatchNorm {
    nn::batch_norm1d(vs, dim, nn::BatchNormConfig { ws_init: nn::Init::Const(1.0), ..Default::default() })
}

/// A binary domain classifier: `[n, in_dim] -> [n]` logits (source = 1, target = 0).
#[derive(Debug)]
pub struct Discriminator {
    layers: Vec<(nn::Linear, Option<nn::BatchNorm>)>,
    out: nn::Linear,
    cfg: DiscriminatorConfig,
}

impl Discriminator {
    pub fn new(vs: &nn::Path, in_dim: i64, cfg: &DiscriminatorConfig) -> Self {
        let mut d = in_dim;
        let mut layers = Vec::new();
        for (i, &h) in cfg.hidden.iter().enumerate() {
            let bn = cfg.batch_norm.then(|| batch_norm1d(&(vs / format!("bn{i}")), h));
            layers.push((nn::linear(vs / format!("fc{i}"), d, h, Default::default()), bn));
            d = h;
        }
        let out = nn::linear(vs / "out", d, 1, Default::default());
        Self { layers, out, cfg: cfg.clone() }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for (l, bn) in &self.layers {
            h = l.forward(&h);
            if let Some(bn) = bn {
                h = bn.forward_t(&h, train);
            }
            h = self.cfg.activation.apply(&h).dropout(self.cfg.dropout, train);
        }
        self.out.forward(&h).squeeze_dim(-1)
    }

    /// Mean binary cross-entropy of telling `source` features (label 1) from `target` ones (label 0).
    /// Also returns the discriminator's accuracy on the batch, for logging (a scalar tensor on the device).
    pub fn domain_loss(&self, source: &Tensor, target: &Tensor) -> (Tensor, Tensor) {
        let feats = Tensor::cat(&[source, target], 0);
        let logits = self.forward_t(&feats, true);
        let (ns, nt) = (source.size()[0], target.size()[0]);
        let opts = (logits.kind(), logits.device());
        let labels = Tensor::cat(&[Tensor::ones([ns], opts), Tensor::zeros([nt], opts)], 0);
        let loss = logits.binary_cross_entropy_with_logits::<Tensor>(&labels, None, None, tch::Reduction::Mean);
        let acc = logits.detach().ge(0.0).to_kind(labels.kind()).eq_tensor(&labels).to_kind(tch::Kind::Float);
        (loss, acc.mean(tch::Kind::Float))
    }
}

/// The `head:` options of a method: an optional bottleneck after the backbone (the layer most methods align),
/// optional hidden layers, then the linear classifier. The new layers of fine-tuning recipes; their learning rate
/// is the base one while the backbone's is `model.backbone_lr_mult ×` it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadConfig {
    /// Width of the bottleneck (Linear + ReLU [+ batch norm] + dropout); 0 = none, the features are the
    /// backbone's output. TLlib and the DANN/RTN Office recipes use 256 (RTN 128) on a pretrained backbone.
    pub bottleneck: i64,
    /// Batch norm in the bottleneck (TLlib's recipe).
    pub batch_norm: bool,
    /// Dropout after the bottleneck.
    pub dropout: f64,
    /// Hidden layers of the classifier (ReLU), e.g. `[100, 100]` for the DANN paper's digits network.
    pub hidden: Vec<i64>,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self { bottleneck: 0, batch_norm: false, dropout: 0.0, hidden: Vec::new() }
    }
}

impl HeadConfig {
    /// Whether every option is its default (a method that added `head:` later leaves it out of its serialized
    /// config then, so trial ids stay).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Validate for HeadConfig {
    fn validate(&self) -> Result<(), String> {
        if self.bottleneck < 0 {
            return Err(format!("bottleneck: must be >= 0 (0 = none), got {}", self.bottleneck));
        }
        dalab_core::checks::at_most_width("bottleneck", &self.bottleneck)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout: must be in [0, 1), got {}", self.dropout));
        }
        dalab_core::checks::layer_widths("hidden", &self.hidden)
    }
}

/// Bottleneck + classifier: `features = bottleneck(backbone(x))`, `logits = classifier(features)`.
#[derive(Debug)]
pub struct ClassifierHead {
    bottleneck: Option<(nn::Linear, Option<nn::BatchNorm>)>,
    hidden: Vec<nn::Linear>,
    out: nn::Linear,
    dropout: f64,
    feature_dim: i64,
}

impl ClassifierHead {
    pub fn new(vs: &nn::Path, in_dim: i64, num_classes: i64, cfg: &HeadConfig) -> Self {
        let mut d = in_dim;
        let bottleneck = (cfg.bottleneck > 0).then(|| {
            let l = nn::linear(vs / "bottleneck", d, cfg.bottleneck, Default::default());
            let bn = cfg.batch_norm.then(|| batch_norm1d(&(vs / "bottleneck_bn"), cfg.bottleneck));
            d = cfg.bottleneck;
            (l, bn)
        });
        let feature_dim = d;
        let mut hidden = Vec::new();
        for (i, &h) in cfg.hidden.iter().enumerate() {
            hidden.push(nn::linear(vs / format!("hidden{i}"), d, h, Default::default()));
            d = h;
        }
        let out = nn::linear(vs / "classifier", d, num_classes, Default::default());
        Self { bottleneck, hidden, out, dropout: cfg.dropout, feature_dim }
    }

    /// Size of [`Self::features`].
    pub fn feature_dim(&self) -> i64 {
        self.feature_dim
    }

    /// The bottleneck features of backbone outputs `h`.
    pub fn features(&self, h: &Tensor, train: bool) -> Tensor {
        match &self.bottleneck {
            None => h.shallow_clone(),
            Some((l, bn)) => {
                let mut z = l.forward(h);
                if let Some(bn) = bn {
                    z = bn.forward_t(&z, train);
                }
                z.relu().dropout(self.dropout, train)
            }
        }
    }

    /// Class logits of bottleneck features `f`.
    pub fn logits(&self, f: &Tensor) -> Tensor {
        let mut z = f.shallow_clone();
        for l in &self.hidden {
            z = l.forward(&z).relu();
        }
        self.out.forward(&z)
    }

    /// `(features, logits)` of backbone outputs `h`.
    pub fn forward_t(&self, h: &Tensor, train: bool) -> (Tensor, Tensor) {
        let f = self.features(h, train);
        let l = self.logits(&f);
        (f, l)
    }

    /// Class logits of inputs `x` through `backbone` and the head, eval mode (what `Method::predict` returns).
    pub fn predict(&self, backbone: &dyn FeatureExtractor, x: &Tensor) -> Tensor {
        self.forward_t(&backbone.forward_t(x, false), false).1
    }

    /// The head's features of inputs `x`, eval mode (what `Method::features` returns).
    pub fn eval_features(&self, backbone: &dyn FeatureExtractor, x: &Tensor) -> Tensor {
        self.features(&backbone.forward_t(x, false), false)
    }

    /// One training forward of `backbone` and the head over `[xs; xt]` (as TLlib does: batch-norm statistics are
    /// those of both domains), split back into `((f_s, ℓ_s), (f_t, ℓ_t))`. One pass over the concatenated batch
    /// is markedly faster on CPU than two (benches/README.md).
    pub fn forward_pair(&self, backbone: &dyn FeatureExtractor, xs: &Tensor, xt: &Tensor) -> Pair {
        let n = xs.size()[0];
        let nt = xt.size()[0];
        let (f, l) = self.forward_t(&backbone.forward_t(&Tensor::cat(&[xs, xt], 0), true), true);
        ((f.narrow(0, 0, n), l.narrow(0, 0, n)), (f.narrow(0, n, nt), l.narrow(0, n, nt)))
    }
}

/// `((f_s, ℓ_s), (f_t, ℓ_t))`: features and logits of the source and target halves of a batch.
pub type Pair = ((Tensor, Tensor), (Tensor, Tensor));

/// A layer of the [`ClassifierHead`] that a transfer loss is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// The features (bottleneck output, or the backbone's when there is no bottleneck).
    Features,
    /// The class logits.
    Logits,
    /// The softmax of the logits.
    Softmax,
}

impl Layer {
    /// Picks this layer's activations from `(features, logits)`.
    pub fn pick(self, features: &Tensor, logits: &Tensor) -> Tensor {
        match self {
            Layer::Features => features.shallow_clone(),
            Layer::Logits => logits.shallow_clone(),
            Layer::Softmax => logits.softmax(-1, logits.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TLlib's discriminator: Linear–BatchNorm–ReLU per hidden layer. In training mode each hidden layer's
    /// pre-activations are normalised over the batch (zero mean, unit variance before BN's affine part, which starts
    /// at 1 and 0); the option is left out of the serialized config when off (trial ids stay).
    #[test]
    fn discriminator_batch_norm_normalises_each_hidden_layer() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = DiscriminatorConfig { hidden: vec![6, 5], dropout: 0.0, batch_norm: true, ..Default::default() };
        let d = Discriminator::new(&vs.root(), 4, &cfg);
        let names: Vec<String> = vs.variables().into_keys().collect();
        assert!(names.iter().any(|n| n == "bn0.running_mean") && names.iter().any(|n| n == "bn1.weight"), "{names:?}");
        let x = Tensor::randn([16, 4], (tch::Kind::Float, tch::Device::Cpu)) * 3.0 + 2.0;
        let z = d.layers[0].0.forward(&x);
        let h = d.layers[0].1.as_ref().unwrap().forward_t(&z, true);
        let (m, v) = (z.mean_dim([0].as_slice(), true, tch::Kind::Float), z.var_dim([0].as_slice(), false, true));
        let want = (&z - m) / (v + 1e-5).sqrt();
        assert!(h.allclose(&want, 1e-4, 1e-5, false), "{h} vs {want}");
        assert_eq!(d.forward_t(&x, true).size(), vec![16]);
        let off = serde_json::to_string(&DiscriminatorConfig::default()).unwrap();
        assert!(!off.contains("batch_norm"), "{off}");
        assert!(serde_json::to_string(&cfg).unwrap().contains("\"batch_norm\":true"));
    }

    /// Widths are checked against the layer-width limit before any tensor is built.
    #[test]
    fn widths_are_limited() {
        let d = DiscriminatorConfig { hidden: vec![1024, 1 << 20], ..Default::default() };
        assert_eq!(d.validate().unwrap_err(), "hidden[1]: must be <= 65536 (the layer-width limit), got 1048576");
        let h = HeadConfig { bottleneck: 1 << 17, ..Default::default() };
        assert_eq!(h.validate().unwrap_err(), "bottleneck: must be <= 65536 (the layer-width limit), got 131072");
        let h = HeadConfig { hidden: vec![0], ..Default::default() };
        assert_eq!(h.validate().unwrap_err(), "hidden[0]: layer sizes must be >= 1, got 0");
        assert!(HeadConfig { bottleneck: 65536, hidden: vec![65536], ..Default::default() }.validate().is_ok());
    }
}
