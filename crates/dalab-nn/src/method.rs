//! [`HeadMethod`]: the method most papers write down, `L = CE(C(F(x_s)), y_s) + λ · T(batch)`, on the backbone
//! and a [`ClassifierHead`]. A method crate gives the transfer term `T` as a closure over the features and
//! logits of one forward pass over `[x_s; x_t]`; `HeadMethod` does the rest (the forward pass, the source
//! cross-entropy, the weighting, the logged scalars `loss/cls` and `loss/<name>`, `predict` and `features`).

use crate::heads::{ClassifierHead, HeadConfig, Pair};
use dalab_core::{BuildEnv, DaBatch, FeatureExtractor, Method, Result, StepCtx, StepOutput};
use tch::{Tensor, nn};

/// The transfer term of a [`HeadMethod`]: from the forward pass `((f_s, ℓ_s), (f_t, ℓ_t))` and the batch, the
/// term `T` (its value is logged as `loss/<name>`) and any scalars of its own.
pub type Transfer = Box<dyn FnMut(&Pair, &DaBatch, &StepCtx) -> Result<StepOutput> + Send>;

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
}

/// `L = CE(ℓ_s, y_s) + trade_off · T`: see the module documentation.
pub struct HeadMethod {
    net: HeadNet,
    trade_off: f64,
    name: &'static str,
    transfer: Transfer,
}

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
        Ok(Box::new(Self { net, trade_off, name, transfer: Box::new(transfer) }))
    }
}

impl Method for HeadMethod {
    fn training_loss(&mut self, batch: &DaBatch, ctx: &StepCtx) -> Result<StepOutput> {
        let pair = self.net.forward_pair(batch);
        let cls = (pair.0).1.cross_entropy_for_logits(&batch.source_y);
        let t = (self.transfer)(&pair, batch, ctx)?;
        let (c, v) = (cls.double_value(&[]), t.loss.double_value(&[]));
        let mut out = StepOutput::new(cls + t.loss * self.trade_off).with("loss/cls", c);
        out.scalars.push((format!("loss/{}", self.name), v));
        out.scalars.extend(t.scalars);
        Ok(out)
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.net.predict(x)
    }

    fn features(&self, x: &Tensor) -> Tensor {
        self.net.features(x)
    }
}
