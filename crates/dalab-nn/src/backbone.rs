//! Feature extractors built from the `model.backbone` section of an experiment.

use dalab_core::{Error, FeatureExtractor, Result, Validate};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Mutex;
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
    /// The DANN paper's MNIST network (JMLR 2016, Figure 4): conv(32, 5×5)–ReLU–maxpool 2–conv(48, 5×5)–ReLU–
    /// maxpool 2 (768 features on 28×28 inputs), then the ReLU layers `fc` (the paper's label predictor starts with
    /// 100–100: `fc: [100, 100]`). Inputs `[C, H, W]`.
    DannDigits {
        #[serde(default)]
        fc: Vec<i64>,
    },
    /// LeNet (Caffe / TLlib variant): conv(20, 5×5)–maxpool 2–ReLU–conv(50, 5×5)–maxpool 2–ReLU (800 features on
    /// 28×28 inputs), then the ReLU layers `fc` (default `[500]`). Inputs `[C, H, W]`.
    Lenet {
        #[serde(default = "default_lenet_fc")]
        fc: Vec<i64>,
    },
    /// Any TorchScript module (`torch.jit.script` / `trace`, saved with `.save(path)`) mapping `[n, ...input]` to
    /// features (flattened to `[n, d]`), e.g. a torchvision ResNet-50 with `fc = Identity()`. Its parameters are
    /// trained (or frozen with `model.backbone_lr_mult: 0`).
    Torchscript { path: PathBuf },
}

fn default_lenet_fc() -> Vec<i64> {
    vec![500]
}

/// Each layer size in `1..=`[`dalab_core::checks::MAX_LAYER_WIDTH`] (checked before any tensor is built).
fn check_layers(key: &str, v: &[i64]) -> std::result::Result<(), String> {
    dalab_core::checks::layer_widths(key, v)
}

fn default_activation() -> Activation {
    Activation::Relu
}

impl Default for BackboneConfig {
    fn default() -> Self {
        BackboneConfig::Mlp { hidden: vec![100], activation: Activation::Relu, dropout: 0.0 }
    }
}

impl BackboneConfig {
    /// The `kind:` as written in YAML.
    pub fn kind_name(&self) -> &'static str {
        match self {
            BackboneConfig::Mlp { .. } => "mlp",
            BackboneConfig::DannDigits { .. } => "dann-digits",
            BackboneConfig::Lenet { .. } => "lenet",
            BackboneConfig::Torchscript { .. } => "torchscript",
        }
    }
}

impl Validate for BackboneConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        match self {
            BackboneConfig::Mlp { hidden, dropout, .. } => {
                check_layers("hidden", hidden)?;
                if !(0.0..1.0).contains(dropout) {
                    return Err(format!("dropout: must be in [0, 1), got {dropout}"));
                }
                Ok(())
            }
            BackboneConfig::DannDigits { fc } | BackboneConfig::Lenet { fc } => check_layers("fc", fc),
            BackboneConfig::Torchscript { path } => {
                if path.as_os_str().is_empty() {
                    return Err("path: must name a TorchScript file".into());
                }
                check_torchscript(path).map_err(|e| format!("path: {}: {e}", path.display()))
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

/// `x Wᵀ + b` for a sparse COO `x` `[n, d]`: a sparse × dense product (cost O(nnz · out) forward; the weight
/// gradient is `xᵀ g`, also sparse × dense).
pub fn sparse_linear(l: &nn::Linear, x: &Tensor) -> Tensor {
    let out = x.mm(&l.ws.tr());
    match &l.bs {
        Some(b) => out + b,
        None => out,
    }
}

impl FeatureExtractor for Mlp {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // (`hidden: []` is the identity on the flattened input.)
        match self.forward_layers(x, train, &mut |_| None).and_then(|mut v| v.pop()) {
            Some(h) => h,
            None if x.is_sparse() => x.shallow_clone(),
            None => x.flatten(1, -1),
        }
    }

    fn forward_layers(
        &self,
        x: &Tensor,
        train: bool,
        lateral: &mut dyn FnMut(usize) -> Option<Tensor>,
    ) -> Option<Vec<Tensor>> {
        let mut h = if x.is_sparse() { x.shallow_clone() } else { x.flatten(1, -1) };
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let mut z = if h.is_sparse() { sparse_linear(l, &h) } else { l.forward(&h) };
            if let Some(u) = lateral(i) {
                z += u;
            }
            h = self.activation.apply(&z);
            if self.dropout > 0.0 {
                h = h.dropout(self.dropout, train);
            }
            out.push(h.shallow_clone());
        }
        Some(out)
    }

    fn out_dim(&self) -> i64 {
        self.out_dim
    }
}

/// A small CNN: `(conv, pool-before-relu)` stages, then ReLU fully connected layers.
#[derive(Debug)]
pub struct Cnn {
    convs: Vec<nn::Conv2D>,
    relu_after_pool: bool,
    fc: Vec<nn::Linear>,
    out_dim: i64,
}

impl Cnn {
    fn new(vs: &nn::Path, input_shape: &[i64], channels: &[i64], relu_after_pool: bool, fc: &[i64]) -> Result<Self> {
        let &[c, h, w] = input_shape else {
            return Err(Error::Config(format!(
                "model.backbone: a CNN needs image inputs [channels, height, width], got {input_shape:?}"
            )));
        };
        let mut convs = Vec::new();
        let (mut ci, mut hh, mut ww) = (c, h, w);
        for (i, &co) in channels.iter().enumerate() {
            convs.push(nn::conv2d(vs / format!("conv{i}"), ci, co, 5, Default::default()));
            (ci, hh, ww) = (co, (hh - 4) / 2, (ww - 4) / 2);
            if hh < 1 || ww < 1 {
                return Err(Error::Config(format!("model.backbone: input {h}x{w} is too small for this CNN")));
            }
        }
        let mut d = ci * hh * ww;
        let mut layers = Vec::new();
        for (i, &o) in fc.iter().enumerate() {
            layers.push(nn::linear(vs / format!("fc{i}"), d, o, Default::default()));
            d = o;
        }
        Ok(Self { convs, relu_after_pool, fc: layers, out_dim: d })
    }
}

impl FeatureExtractor for Cnn {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for c in &self.convs {
            h = if self.relu_after_pool {
                c.forward(&h).max_pool2d_default(2).relu()
            } else {
                c.forward(&h).relu().max_pool2d_default(2)
            };
        }
        let mut h = h.flatten(1, -1);
        for l in &self.fc {
            h = l.forward(&h).relu();
        }
        h
    }

    fn out_dim(&self) -> i64 {
        self.out_dim
    }
}

/// A TorchScript module as a feature extractor; its parameters live in the VarStore.
#[derive(Debug)]
pub struct TorchScript {
    module: Mutex<(tch::TrainableCModule, bool)>,
    out_dim: i64,
}

impl FeatureExtractor for TorchScript {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut m = self.module.lock().expect("TorchScript module lock");
        if m.1 != train {
            if train {
                m.0.set_train()
            } else {
                m.0.set_eval()
            }
            m.1 = train;
        }
        m.0.forward_ts(&[x]).expect("TorchScript forward (checked at build time)").flatten(1, -1)
    }

    fn out_dim(&self) -> i64 {
        self.out_dim
    }
}

/// Builds the backbone for inputs of shape `input_shape` (one sample); variables go under `vs`.
/// Errors: a CNN on non-image inputs, a TorchScript file that cannot be loaded or run.
pub fn build_backbone(cfg: &BackboneConfig, vs: &nn::Path, input_shape: &[i64]) -> Result<Box<dyn FeatureExtractor>> {
    Ok(match cfg {
        BackboneConfig::Mlp { hidden, activation, dropout } => {
            let mut d = input_shape.iter().product::<i64>();
            let mut layers = Vec::with_capacity(hidden.len());
            for (i, &h) in hidden.iter().enumerate() {
                layers.push(nn::linear(vs / format!("fc{i}"), d, h, Default::default()));
                d = h;
            }
            Box::new(Mlp { layers, activation: *activation, dropout: *dropout, out_dim: d })
        }
        BackboneConfig::DannDigits { fc } => Box::new(Cnn::new(vs, input_shape, &[32, 48], false, fc)?),
        BackboneConfig::Lenet { fc } => Box::new(Cnn::new(vs, input_shape, &[20, 50], true, fc)?),
        BackboneConfig::Torchscript { path } => {
            let err = |e: tch::TchError| {
                Error::Config(format!("model.backbone.path: {}: {}", path.display(), torch_message(&e)))
            };
            let mut module = tch::TrainableCModule::load(path, vs.clone()).map_err(err)?;
            module.set_eval();
            let mut shape = vec![2];
            shape.extend_from_slice(input_shape);
            let probe = tch::no_grad(|| module.forward_ts(&[Tensor::zeros(&shape, (tch::Kind::Float, vs.device()))]))
                .map_err(err)?;
            let out_dim = probe.flatten(1, -1).size()[1];
            Box::new(TorchScript { module: Mutex::new((module, false)), out_dim })
        }
    })
}

/// The first line of a libtorch error: its message without the C++ backtrace that follows it.
pub fn torch_message(e: &tch::TchError) -> String {
    let text = e.to_string();
    let text = text.trim_start_matches("Internal torch error: ");
    text.split("\nException raised from").next().unwrap_or(text).lines().next().unwrap_or("").trim().to_string()
}

/// Whether the TorchScript file at `path` loads (checked once per path and process, when an experiment is validated,
/// so a bad file is one line before any trial starts).
fn check_torchscript(path: &std::path::Path) -> Result<(), String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashMap<std::path::PathBuf, Result<(), String>>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(r) = seen.lock().expect("not poisoned").get(path) {
        return r.clone();
    }
    let r = if !path.is_file() {
        Err("no such file".to_string())
    } else {
        tch::CModule::load(path).map(drop).map_err(|e| torch_message(&e)).and_then(|()| {
            match torchscript_buffers(path)?.as_slice() {
                [] => Ok(()),
                b => Err(format!(
                    "the module has buffers ({}{}): tch exposes only a TorchScript module's parameters, so dalab could \
                     neither save them with the model nor restore them on resume; export it with buffers turned into \
                     parameters that need no gradient (docs/datasets.md, \"Pre-trained backbones\")",
                    b.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                    if b.len() > 3 { format!(", … {} in all", b.len()) } else { String::new() }
                )),
            }
        })
    };
    seen.lock().expect("not poisoned").insert(path.to_path_buf(), r.clone());
    r
}

/// The buffers the classes of a TorchScript archive declare (`Class.name`, from the `__buffers__` lines of its
/// `code/` sources, which `torch.jit.save` writes for every submodule class), e.g. BatchNorm's running statistics.
pub fn torchscript_buffers(path: &std::path::Path) -> std::result::Result<Vec<String>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("not a TorchScript archive ({e})"))?;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(|e| e.to_string())?;
        let name = f.name().map_err(|e| e.to_string())?.to_string();
        if !(name.contains("/code/") && name.ends_with(".py")) {
            continue;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut f, &mut text).map_err(|e| format!("{name}: {e}"))?;
        let mut class = "";
        for line in text.lines() {
            if let Some(c) = line.strip_prefix("class ") {
                class = c.split(['(', ':']).next().unwrap_or("").trim();
            }
            if let Some(list) = line.trim().strip_prefix("__buffers__ = [") {
                for name in list.trim_end_matches(']').split(',').map(|n| n.trim().trim_matches('"')) {
                    if !name.is_empty() {
                        out.push(format!("{class}.{name}"));
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TorchScript CNN of `testdata/make_torchscript_cnn.py`, written by it into `dir` (python3, no PyTorch).
    fn tiny_cnn(dir: &std::path::Path, buffers: bool) -> std::path::PathBuf {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/make_torchscript_cnn.py");
        let out = dir.join(if buffers { "cnn_buffers.pt" } else { "cnn.pt" });
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(&script).arg(&out);
        if buffers {
            cmd.arg("--buffers");
        }
        let st = cmd.status().expect("python3 runs");
        assert!(st.success(), "{script:?} failed");
        out
    }

    /// The CNN by hand: conv 3×3 (padding 1) with the script's weights, batch norm with the given statistics,
    /// ReLU, global average pooling.
    fn tiny_cnn_by_hand(x: &Tensor, mean: &Tensor, var: &Tensor) -> Tensor {
        let opts = (tch::Kind::Float, tch::Device::Cpu);
        let mut w = Vec::new();
        for o in 0..4 {
            for i in 0..3 {
                for ky in 0..3 {
                    for kx in 0..3 {
                        w.push(0.05 * (o + 1) as f32 - 0.02 * i as f32 + 0.01 * (ky - kx) as f32);
                    }
                }
            }
        }
        let w = Tensor::from_slice(&w).reshape([4, 3, 3, 3]);
        let b = Tensor::arange(4, opts) * 0.1;
        let y = x.conv2d(&w, Some(&b), [1, 1], [1, 1], [1, 1], 1);
        let (g, beta) = (Tensor::arange(4, opts) * 0.5 + 1.0, Tensor::arange(4, opts) * -0.1);
        let shape = [1, 4, 1, 1];
        let y = (y - mean.reshape(shape)) / (var.reshape(shape) + 1e-5).sqrt() * g.reshape(shape) + beta.reshape(shape);
        y.relu().mean_dim([2, 3].as_slice(), false, tch::Kind::Float)
    }

    /// A TorchScript CNN with BatchNorm: its parameters (and its running statistics, as parameters without
    /// gradient) are the VarStore's; training mode normalises with the batch statistics and updates the running
    /// ones in place (the VarStore sees it), evaluation mode uses the running ones; gradients reach the conv and BN
    /// weights. A file with BatchNorm's statistics as buffers is refused, naming them.
    #[test]
    fn torchscript_cnn_trains_freezes_and_switches_batchnorm() {
        let dir = tempfile::tempdir().unwrap();
        let path = tiny_cnn(dir.path(), false);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = BackboneConfig::Torchscript { path: path.clone() };
        cfg.validate().unwrap();
        let b = build_backbone(&cfg, &(vs.root() / "backbone"), &[3, 5, 6]).unwrap();
        assert_eq!(b.out_dim(), 4);
        let vars = vs.variables();
        assert_eq!(vars.len(), 6);
        assert_eq!(vs.trainable_variables().len(), 4, "running statistics need no gradient");
        let (mean0, var0) = (vars["backbone.bn_mean"].copy(), vars["backbone.bn_var"].copy());
        let opts = (tch::Kind::Float, tch::Device::Cpu);
        let x = Tensor::arange(2 * 3 * 5 * 6, opts).reshape([2, 3, 5, 6]).sin();
        // Evaluation mode: the running statistics.
        let y = b.forward_t(&x, false);
        let want = tiny_cnn_by_hand(&x, &mean0, &var0);
        assert!(y.allclose(&want, 1e-5, 1e-6, false), "eval: {y} vs {want}");
        // Training mode: the batch's statistics, and the running ones move by momentum 0.1 (unbiased variance).
        let conv = x.conv2d(
            &vars["backbone.conv_w"].detach(),
            Some(&vars["backbone.conv_b"].detach()),
            [1, 1],
            [1, 1],
            [1, 1],
            1,
        );
        let bm = conv.mean_dim([0, 2, 3].as_slice(), false, tch::Kind::Float);
        let bv = conv.var_dim([0, 2, 3].as_slice(), false, false);
        let yt = b.forward_t(&x, true);
        let want = tiny_cnn_by_hand(&x, &bm, &bv);
        assert!(yt.allclose(&want, 1e-4, 1e-5, false), "train: {yt} vs {want}");
        let unbiased = conv.var_dim([0, 2, 3].as_slice(), true, false);
        let mean1 = vs.variables()["backbone.bn_mean"].copy();
        assert!(mean1.allclose(&(&mean0 * 0.9 + &bm * 0.1), 1e-5, 1e-6, false), "running mean {mean1}");
        let var1 = vs.variables()["backbone.bn_var"].copy();
        assert!(var1.allclose(&(&var0 * 0.9 + &unbiased * 0.1), 1e-4, 1e-5, false), "running var {var1}");
        // Gradients reach the conv and BN weights, not the statistics.
        yt.sum(tch::Kind::Float).backward();
        for (name, t) in vs.variables() {
            let has = t.grad().defined() && t.grad().abs().sum(tch::Kind::Float).double_value(&[]) > 0.0;
            assert_eq!(has, !name.contains("bn_mean") && !name.contains("bn_var"), "{name}");
        }
        // BatchNorm statistics as buffers: refused when the experiment is checked, naming them.
        let buffered = BackboneConfig::Torchscript { path: tiny_cnn(dir.path(), true) };
        let e = buffered.validate().unwrap_err();
        assert!(e.contains("has buffers (TinyCNN.bn_mean, TinyCNN.bn_var)") && e.contains("docs/datasets.md"), "{e}");
    }

    #[test]
    fn mlp_shapes_and_validation() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = BackboneConfig::Mlp { hidden: vec![15], activation: Activation::Sigmoid, dropout: 0.0 };
        let b = build_backbone(&cfg, &vs.root(), &[2]).unwrap();
        assert_eq!(b.out_dim(), 15);
        let y = b.forward_t(&Tensor::zeros([4, 2], (tch::Kind::Float, tch::Device::Cpu)), false);
        assert_eq!(y.size(), vec![4, 15]);
        // Sigmoid outputs lie in (0, 1).
        assert!(y.min().double_value(&[]) > 0.0 && y.max().double_value(&[]) < 1.0);
        let bad = BackboneConfig::Mlp { hidden: vec![4, 0], activation: Activation::Relu, dropout: 0.0 };
        assert_eq!(bad.validate().unwrap_err(), "hidden[1]: layer sizes must be >= 1, got 0");
        let huge = BackboneConfig::Mlp { hidden: vec![4, 1 << 17], activation: Activation::Relu, dropout: 0.0 };
        assert_eq!(huge.validate().unwrap_err(), "hidden[1]: must be <= 65536 (the layer-width limit), got 131072");
        let huge = BackboneConfig::Lenet { fc: vec![i64::MAX] };
        assert!(huge.validate().unwrap_err().starts_with("fc[0]: must be <= 65536"));
    }

    #[test]
    fn cnn_feature_sizes() {
        // DANN digits: 28 -conv5-> 24 -pool-> 12 -conv5-> 8 -pool-> 4: 48·4·4 = 768; LeNet: 50·4·4 = 800 -> fc 500.
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let x = Tensor::zeros([3, 1, 28, 28], (tch::Kind::Float, tch::Device::Cpu));
        let d = build_backbone(&BackboneConfig::DannDigits { fc: vec![] }, &(vs.root() / "a"), &[1, 28, 28]).unwrap();
        assert_eq!((d.out_dim(), d.forward_t(&x, true).size()), (768, vec![3, 768]));
        let l = build_backbone(&BackboneConfig::Lenet { fc: vec![500] }, &(vs.root() / "b"), &[1, 28, 28]).unwrap();
        assert_eq!((l.out_dim(), l.forward_t(&x, false).size()), (500, vec![3, 500]));
        let e = build_backbone(&BackboneConfig::Lenet { fc: vec![] }, &(vs.root() / "c"), &[2]).unwrap_err();
        assert!(e.to_string().contains("image inputs"), "{e}");
        let e = build_backbone(&BackboneConfig::Torchscript { path: "/nonexistent.pt".into() }, &vs.root(), &[2]);
        assert!(e.unwrap_err().to_string().starts_with("model.backbone.path: /nonexistent.pt"));
    }

    #[test]
    fn torchscript_backbone_runs_and_trains() {
        // testdata/tiny_mlp.pt (written by testdata/make_torchscript.py): y = tanh(x Wᵀ + b),
        // W[i, j] = 0.1 (i + 1) − 0.05 j, b[i] = 0.01 i. Reference: row [1, 2, 3] gives
        // tanh(0.2), tanh(0.81), tanh(1.42), tanh(2.03) (0.6 (i + 1) − 0.4 + 0.01 i; computed from the formula, and printed by PyTorch).
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tiny_mlp.pt");
        let b = build_backbone(&BackboneConfig::Torchscript { path }, &(vs.root() / "backbone"), &[3]).unwrap();
        assert_eq!(b.out_dim(), 4);
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, -1.0, 0.5, 0.0]).reshape([2, 3]);
        let y = b.forward_t(&x, false);
        for (i, z) in [0.2f64, 0.81, 1.42, 2.03].iter().enumerate() {
            assert!((y.double_value(&[0, i as i64]) - z.tanh()).abs() < 1e-6);
        }
        // Its parameters are in the VarStore and receive gradients.
        assert_eq!(vs.trainable_variables().len(), 2);
        b.forward_t(&x, true).sum(tch::Kind::Float).backward();
        assert!(vs.trainable_variables().iter().all(|v| v.grad().defined()));
    }

    #[test]
    fn sparse_inputs_give_the_dense_result_and_gradient() {
        // The same MLP on x dense and on x as a sparse COO tensor: outputs and weight gradients must agree
        // (the dense path is libtorch's addmm, an independent computation).
        tch::manual_seed(2);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = BackboneConfig::Mlp { hidden: vec![5, 3], activation: Activation::Sigmoid, dropout: 0.0 };
        let b = build_backbone(&cfg, &vs.root(), &[20]).unwrap();
        let opts = (tch::Kind::Float, tch::Device::Cpu);
        let x = Tensor::rand([6, 20], opts).ge(0.8).to_kind(tch::Kind::Float) * Tensor::rand([6, 20], opts);
        let _ = x.get(3).fill_(0.0); // an empty row
        let grads = |input: &Tensor| {
            vs.trainable_variables().iter_mut().for_each(|v| v.zero_grad());
            let y = b.forward_t(input, true);
            (y * Tensor::arange(3, opts)).sum(tch::Kind::Float).backward();
            let g: Vec<Tensor> = vs.trainable_variables().iter().map(|v| v.grad().copy()).collect();
            (b.forward_t(input, false), g)
        };
        let (yd, gd) = grads(&x);
        let (ys, gs) = grads(&x.to_sparse_sparse_dim(2));
        assert!(yd.allclose(&ys, 1e-5, 1e-6, false));
        for (a, c) in gd.iter().zip(&gs) {
            assert!(a.allclose(c, 1e-5, 1e-6, false));
        }
    }
}
