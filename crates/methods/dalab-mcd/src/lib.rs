//! MCD (Saito, Watanabe, Ushiku & Harada, CVPR 2018): maximum classifier discrepancy.
//!
//! A generator G (the backbone) and two classifiers F1, F2 (two heads). With d(p1, p2) = mean |p1 − p2| (the L1
//! distance of the two softmax outputs, averaged over classes and samples), each iteration runs three steps:
//!
//! - A: G, F1, F2 minimise CE(F1(G(x_s)), y_s) + CE(F2(G(x_s)), y_s);
//! - B: G fixed, F1, F2 minimise CE_s(F1) + CE_s(F2) − d(F1(G(x_t)), F2(G(x_t)));
//! - C: F1, F2 fixed, G minimises d(F1(G(x_t)), F2(G(x_t))), `num_k` times.
//!
//! Groups: `generator` (the backbone) and `classifiers` (both heads). The prediction is the ensemble F1 + F2 of
//! the logits, as the authors' evaluation reports it. Default `num_k` = 4 (the authors' code).

use dalab_core::{FeatureExtractor, Group, Method, Optimizers, Result, Scalars, StageBatch, StepCtx};
use dalab_nn::{ClassifierHead, HeadConfig};
use tch::Tensor;

dalab_core::method_config! {
    /// The `methods.mcd` options.
    pub struct McdConfig {
        /// Generator steps (C) per iteration.
        num_k: usize = 4, at_least_one, at_most_iterations;
        /// Each classifier: bottleneck, hidden layers, output (the authors' digits classifiers have hidden layers).
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Mcd: "mcd", "maximum classifier discrepancy: two classifiers against a generator (Saito et al. 2018)";
    groups: ["generator", "classifiers"];
    build(cfg: &McdConfig, vs, env) {
        let d = env.backbone.out_dim();
        let c1 = ClassifierHead::new(&(vs / "c1"), d, env.num_classes, &cfg.head);
        let c2 = ClassifierHead::new(&(vs / "c2"), d, env.num_classes, &cfg.head);
        Ok(Box::new(Model { g: env.backbone, c: [c1, c2], num_k: cfg.num_k }))
    }
}

/// The discrepancy d(p1, p2) = mean |softmax(ℓ1) − softmax(ℓ2)|.
pub fn discrepancy(l1: &Tensor, l2: &Tensor) -> Tensor {
    (l1.softmax(-1, l1.kind()) - l2.softmax(-1, l2.kind())).abs().mean(l1.kind())
}

struct Model {
    g: Box<dyn FeatureExtractor>,
    c: [ClassifierHead; 2],
    num_k: usize,
}

impl Model {
    fn logits(&self, f: &Tensor, train: bool) -> (Tensor, Tensor) {
        (self.c[0].forward_t(f, train).1, self.c[1].forward_t(f, train).1)
    }
}

impl Method for Model {
    fn groups(&self) -> Vec<Group> {
        vec![Group::new("generator", &["backbone."]), Group::new("classifiers", &["method.c1.", "method.c2."])]
    }

    fn train_step(&mut self, batch: StageBatch<'_>, _ctx: &StepCtx, opt: &mut dyn Optimizers) -> Result<Scalars> {
        let StageBatch::Both(b) = batch else {
            return Err(dalab_core::Error::Other("mcd: its one stage needs source and target batches".into()));
        };
        let ce = |(l1, l2): (Tensor, Tensor)| {
            l1.cross_entropy_for_logits(&b.source_y) + l2.cross_entropy_for_logits(&b.source_y)
        };
        // A: everything on the source.
        let cls = opt.backward_step("loss/cls", &ce(self.logits(&self.g.forward_t(&b.source_x, true), true)), &[])?;
        // B: the classifiers on a fixed generator: source accuracy up, target discrepancy up.
        let ns = b.source_x.size()[0];
        let f = self.g.forward_t(&Tensor::cat(&[&b.source_x, &b.target_x], 0), true).detach();
        let (l1, l2) = self.logits(&f, true);
        let nt = f.size()[0] - ns;
        let d_b = discrepancy(&l1.narrow(0, ns, nt), &l2.narrow(0, ns, nt));
        let loss_b = ce((l1.narrow(0, 0, ns), l2.narrow(0, 0, ns))) - &d_b;
        let d_b = d_b.detach();
        opt.backward_step("loss/classifiers", &loss_b, &["classifiers"])?;
        // C: the generator against the fixed classifiers, num_k times.
        let mut d_c = dalab_core::Scalar::Value(f64::NAN);
        for _ in 0..self.num_k {
            let (t1, t2) = self.logits(&self.g.forward_t(&b.target_x, true), true);
            d_c = opt.backward_step("loss/discrepancy", &discrepancy(&t1, &t2), &["generator"])?;
        }
        Ok(vec![
            ("loss/cls".into(), cls.scaled(0.5)),
            ("discrepancy/classifiers".into(), d_b.into()),
            ("loss/discrepancy".into(), d_c),
        ])
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        let (l1, l2) = self.logits(&self.g.forward_t(x, false), false);
        l1 + l2
    }

    fn features(&self, x: &Tensor) -> Tensor {
        self.g.forward_t(x, false)
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Mcd, McdConfig { num_k: 0, ..Default::default() } => "num_k: must be >= 1, got 0");

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn discrepancy_reference_values() {
        // Identical predictions: 0. Two confident, opposite predictions over 2 classes: |1 − 0| and |0 − 1|, mean 1.
        let a = Tensor::from_slice(&[50.0f64, 0.0, 0.0, 50.0]).reshape([2, 2]);
        assert_eq!(discrepancy(&a, &a).double_value(&[]), 0.0);
        assert!((discrepancy(&a, &a.flip([1])).double_value(&[]) - 1.0).abs() < 1e-12);
        // softmax([0, ln 3]) = (1/4, 3/4) vs uniform: |1/4 − 1/2| = 1/4 for both classes.
        let b = Tensor::from_slice(&[0.0f64, 3f64.ln()]).reshape([1, 2]);
        let u = Tensor::zeros([1, 2], (Kind::Double, Device::Cpu));
        assert!((discrepancy(&b, &u).double_value(&[]) - 0.25).abs() < 1e-12);
    }

    /// The defining property: step A steps everything, B only the classifiers (and gives the generator no
    /// gradient), C only the generator, `num_k` times, in that order.
    #[test]
    fn the_three_steps_touch_the_right_groups_in_order() {
        struct Record<'a>(&'a tch::nn::VarStore, Vec<(String, Vec<String>, bool)>);
        impl Optimizers for Record<'_> {
            fn backward_step(&mut self, name: &str, loss: &Tensor, groups: &[&str]) -> Result<dalab_core::Scalar> {
                for (_, mut t) in self.0.variables() {
                    t.zero_grad();
                }
                loss.backward();
                let g = self.0.variables()["backbone.fc0.weight"].grad();
                let generator_grad = g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0;
                self.1.push((name.into(), groups.iter().map(|s| s.to_string()).collect(), generator_grad));
                Ok(loss.into())
            }
        }
        let cfg = McdConfig { num_k: 2, ..Default::default() };
        let (vs, mut m) = dalab_conformance::build::<Mcd>(&cfg, 0);
        let (xs, source_y, xt) = dalab_conformance::synthetic_shift(12, 1);
        let b = dalab_core::DaBatch { source_x: xs, source_y, target_x: xt };
        let mut rec = Record(&vs, Vec::new());
        m.train_step(StageBatch::Both(&b), &StepCtx::at(0, 1, Device::Cpu), &mut rec).unwrap();
        let steps: Vec<(&str, Vec<&str>, bool)> =
            rec.1.iter().map(|(n, g, d)| (n.as_str(), g.iter().map(String::as_str).collect(), *d)).collect();
        assert_eq!(
            steps,
            vec![
                ("loss/cls", vec![], true),
                ("loss/classifiers", vec!["classifiers"], false),
                ("loss/discrepancy", vec!["generator"], true),
                ("loss/discrepancy", vec!["generator"], true),
            ]
        );
    }
}
