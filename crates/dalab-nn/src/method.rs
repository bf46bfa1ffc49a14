//! [`HeadMethod`]: the method most papers write down, `L = CE(C(F(x_s)), y_s) + λ · T(batch)`, on the backbone
//! and a [`ClassifierHead`]. A method crate gives the transfer term `T` as a closure over the features and
//! logits of one forward pass over `[x_s; x_t]`; `HeadMethod` does the rest (the forward pass, the source
//! cross-entropy, the weighting, the logged scalars `loss/cls` and `loss/<name>`, `predict` and `features`).
//! A method whose loss has another form gives the whole loss instead ([`HeadNet::into_method`]).

use crate::heads::{ClassifierHead, HeadConfig, Pair};
use dalab_core::{BuildEnv, DaBatch, FeatureExtractor, Method, Result, StepCtx, StepOutput};
use tch::{Tensor, nn};

/// The transfer term of a [`HeadMethod`]: from the forward pass `((f_s, ℓ_s), (f_t, ℓ_t))` and the batch, the
/// term `T` (its value is logged as `loss/<name>`) and any scalars of its own.
pub type Transfer = Box<dyn FnMut(&Pair, &DaBatch, &StepCtx) -> Result<StepOutput> + Send>;

/// The whole training loss of a method on a [`HeadNet`] ([`HeadNet::into_method`]): from the net and the batch,
/// the loss and its logged scalars.
pub type NetLoss = Box<dyn FnMut(&HeadNet, &DaBatch, &StepCtx) -> Result<StepOutput> + Send>;

/// A backbone and a classifier head: `features = head.features(backbone(x))`, `logits = head(features)`.
#[derive(Debug)]
pub struct HeadNet {
    pub backbone: Box<dyn FeatureExtractor>,
    pub head: ClassifierHead,
}

impl HeadNet {
    /// The head goes under `vs` (its classifier is `vs/classifier`), on the backbone of `env`.
    pub fn new(vs: &nn::Path, backbone: Box<dyn FeatureExtractor>, num_classes: i64, cfg: &HeadConfig) -> Self {
        let head = ClassifierHead::new(vs, backbone.out_dim(), num_classes, cfg);
        Self { backbone, head }
    }

    /// One training pass over `[x_s; x_t]`, split back into the source and target halves.
    pub fn forward_pair(&self, b: &DaBatch) -> Pair {
        self.head.forward_pair(self.backbone.as_ref(), &b.source_x, &b.target_x)
    }

    /// Class logits, eval mode.
    pub fn predict(&self, x: &Tensor) -> Tensor {
        self.head.predict(self.backbone.as_ref(), x)
    }

    /// The head's features, eval mode.
    pub fn features(&self, x: &Tensor) -> Tensor {
        self.head.eval_features(self.backbone.as_ref(), x)
    }

    /// This net as a single-loss method whose training loss is `loss` (`predict` and `features` are the net's),
    /// for a loss that is not `CE + λ·T` (RTN's residual source classifier, CORAL's transformed inputs).
    pub fn into_method(
        self,
        loss: impl FnMut(&HeadNet, &DaBatch, &StepCtx) -> Result<StepOutput> + Send + 'static,
    ) -> Box<dyn Method> {
        Box::new(NetMethod { net: self, loss: Box::new(loss) })
    }
}

/// A [`HeadNet`] and its training loss.
struct NetMethod {
    net: HeadNet,
    loss: NetLoss,
}

impl Method for NetMethod {
    fn training_loss(&mut self, batch: &DaBatch, ctx: &StepCtx) -> Result<StepOutput> {
        (self.loss)(&self.net, batch, ctx)
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.net.predict(x)
    }

    fn features(&self, x: &Tensor) -> Tensor {
        self.net.features(x)
    }
}

/// `L = CE(ℓ_s, y_s) + trade_off · T`: see the module documentation.
#[derive(Debug)]
pub struct HeadMethod;

impl HeadMethod {
    /// The method with transfer term `transfer`, logged as `loss/<name>`; `trade_off` = 0 trains on the source
    /// alone (the term is still computed and logged).
    pub fn boxed(
        vs: &nn::Path,
        env: BuildEnv,
        head: &HeadConfig,
        trade_off: f64,
        name: &'static str,
        transfer: impl FnMut(&Pair, &DaBatch, &StepCtx) -> Result<StepOutput> + Send + 'static,
    ) -> Result<Box<dyn Method>> {
        let net = HeadNet::new(vs, env.backbone, env.num_classes, head);
        Ok(Self::on(net, trade_off, name, transfer))
    }

    /// The same on a net the caller built, e.g. to size a discriminator on `net.head.feature_dim()` (its
    /// variables created after the head's, as they were before the method had a `HeadMethod`).
    pub fn on(
        net: HeadNet,
        trade_off: f64,
        name: &'static str,
        mut transfer: impl FnMut(&Pair, &DaBatch, &StepCtx) -> Result<StepOutput> + Send + 'static,
    ) -> Box<dyn Method> {
        net.into_method(move |net, batch, ctx| {
            let pair = net.forward_pair(batch);
            let cls = (pair.0).1.cross_entropy_for_logits(&batch.source_y);
            let t = transfer(&pair, batch, ctx)?;
            let (c, v) = (dalab_core::Scalar::from(&cls), dalab_core::Scalar::from(&t.loss));
            let mut out = StepOutput::new(cls + t.loss * trade_off).with("loss/cls", c);
            out.scalars.push((format!("loss/{name}"), v));
            out.scalars.extend(t.scalars);
            Ok(out)
        })
    }
}

/// Copies every variable under `from` (a VarStore name prefix) onto the one of the same name under `to` (the
/// networks' copies of ADDA and layer transfer). Returns how many were copied; an error names a variable of `from`
/// that `to` lacks.
pub fn copy_prefix(vs: &nn::VarStore, from: &str, to: &str) -> dalab_core::Result<usize> {
    let vars = vs.variables();
    let mut n = 0;
    for (k, v) in vars.iter().filter(|(k, _)| k.starts_with(from)) {
        let dst = format!("{to}{}", &k[from.len()..]);
        let t =
            vars.get(&dst).ok_or_else(|| dalab_core::Error::Other(format!("no variable `{dst}` to copy `{k}` to")))?;
        tch::no_grad(|| t.shallow_clone().copy_(v));
        n += 1;
    }
    Ok(n)
}

/// Stops training every variable whose VarStore name starts with one of `prefixes` (its gradient is no longer
/// computed, so no optimizer moves it): the frozen layers of layer transfer and progressive networks. Returns how
/// many variables were frozen.
pub fn freeze_prefixes(vs: &nn::VarStore, prefixes: &[&str]) -> usize {
    let mut n = 0;
    for (k, v) in vs.variables() {
        if prefixes.iter().any(|p| k.starts_with(p)) {
            let _ = v.set_requires_grad(false);
            n += 1;
        }
    }
    n
}

/// The layers of the backbone whose variables are under `prefix`, from the input: `conv<i>` before `fc<i>`, each
/// by index (how dalab-nn names the layers of its MLP, LeNet and DANN-digits backbones). An error for a backbone
/// whose variables are not named so (TorchScript).
pub fn backbone_layers(vs: &nn::VarStore, prefix: &str) -> dalab_core::Result<Vec<String>> {
    let mut names: Vec<(u8, usize, String)> = Vec::new();
    for k in vs.variables().keys() {
        let Some(rest) = k.strip_prefix(prefix) else { continue };
        let layer = rest.split('.').next().unwrap_or(rest);
        let parsed = [("conv", 0u8), ("fc", 1u8)]
            .iter()
            .find_map(|(p, kind)| layer.strip_prefix(p).and_then(|i| i.parse::<usize>().ok()).map(|i| (*kind, i)));
        let Some((kind, i)) = parsed else {
            return Err(dalab_core::Error::Other(format!(
                "backbone variable `{k}` is not in a layer named conv<i> or fc<i> (use an mlp, lenet or dann-digits \
                 backbone)"
            )));
        };
        if !names.iter().any(|n| n.2 == layer) {
            names.push((kind, i, layer.to_string()));
        }
    }
    names.sort();
    Ok(names.into_iter().map(|n| n.2).collect())
}
