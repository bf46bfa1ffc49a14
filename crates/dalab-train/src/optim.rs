//! The optimizers of a method's parameter groups: SGD (momentum, Nesterov, weight decay) and Adam.
//!
//! Written here on tch tensors instead of using tch's `nn::Optimizer`, because that one keeps its state (momentum
//! buffers, Adam's moments) inside libtorch's C++ optimizer, where tch offers no way to read or restore it, and a
//! checkpoint must hold it for a resumed run to continue bit for bit. The update rules are those documented for
//! `torch.optim.SGD` and `torch.optim.Adam` (dampening 0, no AMSGrad); [`tests`] checks them against closed forms.

use crate::config::{OptimConfig, OptimKind};
use dalab_core::Group;
use tch::{Kind, Tensor};

/// One trainable variable of a group and its optimizer state.
struct Param {
    name: String,
    t: Tensor,
    /// Multiplier of the group's learning rate (`model.backbone_lr_mult` for backbone variables).
    lr_mult: f64,
    /// SGD: `[momentum buffer]`; Adam: `[exp_avg, exp_avg_sq]`; empty before the first step.
    state: Vec<Tensor>,
    /// Adam's step count of this variable.
    steps: i64,
}

/// The optimizer of one parameter group.
pub struct GroupOptimizer {
    pub name: &'static str,
    pub cfg: OptimConfig,
    params: Vec<Param>,
}

impl std::fmt::Debug for GroupOptimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupOptimizer({}, {} variables, {:?})", self.name, self.params.len(), self.cfg.kind)
    }
}

impl GroupOptimizer {
    /// `vars` are `(name, tensor, lr multiplier)`.
    pub fn new(group: &Group, cfg: OptimConfig, vars: Vec<(String, Tensor, f64)>) -> Self {
        let params = vars
            .into_iter()
            .map(|(name, t, lr_mult)| Param { name, t, lr_mult, state: Vec::new(), steps: 0 })
            .collect();
        Self { name: group.name, cfg, params }
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// The group's variables.
    pub fn tensors(&self) -> impl Iterator<Item = &Tensor> {
        self.params.iter().map(|p| &p.t)
    }

    /// One update with base learning rate `lr` of every variable that has a gradient.
    pub fn step(&mut self, lr: f64) {
        let c = &self.cfg;
        tch::no_grad(|| {
            for p in &mut self.params {
                let g0 = p.t.grad();
                if !g0.defined() || p.lr_mult == 0.0 {
                    continue;
                }
                let g = if c.weight_decay != 0.0 { &g0 + &p.t * c.weight_decay } else { g0 };
                let lr = lr * p.lr_mult;
                let update = match c.kind {
                    OptimKind::Sgd => {
                        if c.momentum == 0.0 {
                            g
                        } else {
                            if p.state.is_empty() {
                                p.state.push(g.copy());
                            } else {
                                let _ = p.state[0].g_mul_scalar_(c.momentum).g_add_(&g);
                            }
                            let buf = &p.state[0];
                            if c.nesterov { &g + buf * c.momentum } else { buf.shallow_clone() }
                        }
                    }
                    OptimKind::Adam => {
                        let [b1, b2] = c.adam_betas();
                        if p.state.is_empty() {
                            p.state = vec![p.t.zeros_like(), p.t.zeros_like()];
                        }
                        p.steps += 1;
                        let _ = p.state[0].g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                        let _ = p.state[1].g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
                        let bc1 = 1.0 - b1.powi(p.steps as i32);
                        let bc2 = 1.0 - b2.powi(p.steps as i32);
                        let denom = p.state[1].sqrt() / bc2.sqrt() + c.adam_eps();
                        &p.state[0] / denom / bc1
                    }
                };
                // p ← p − lr·update in one kernel, without a temporary of the parameter's size.
                let neg_lr = Tensor::from(-lr).to_kind(p.t.kind()).to_device(p.t.device());
                let _ = p.t.shallow_clone().f_addcmul_(&update, &neg_lr);
            }
        });
    }

    /// The gradients of the group's variables that have one (what a loss scaler unscales and checks).
    pub fn grads(&self) -> Vec<Tensor> {
        self.params.iter().map(|p| p.t.grad()).filter(Tensor::defined).collect()
    }

    /// The optimizer state as named tensors (`<prefix><variable>/<slot>`), for checkpoints.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for p in &self.params {
            for (i, s) in p.state.iter().enumerate() {
                out.push((format!("{prefix}{}/{i}", p.name), s.shallow_clone()));
            }
            if p.steps > 0 {
                out.push((format!("{prefix}{}/steps", p.name), Tensor::from_slice(&[p.steps])));
            }
        }
        out
    }

    /// Restores [`GroupOptimizer::state`] from `get(name)`.
    pub fn load_state(&mut self, prefix: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) {
        let slots = match self.cfg.kind {
            OptimKind::Sgd if self.cfg.momentum == 0.0 => 0,
            OptimKind::Sgd => 1,
            OptimKind::Adam => 2,
        };
        for p in &mut self.params {
            let loaded: Vec<Tensor> = (0..slots).map_while(|i| get(&format!("{prefix}{}/{i}", p.name))).collect();
            p.state = if loaded.len() == slots {
                loaded.into_iter().map(|t| t.to_device(p.t.device()).to_kind(p.t.kind())).collect()
            } else {
                Vec::new()
            };
            p.steps = get(&format!("{prefix}{}/steps", p.name)).map_or(0, |t| t.to_kind(Kind::Int64).int64_value(&[0]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, nn};

    fn param(v: &[f32]) -> (nn::VarStore, Tensor) {
        let vs = nn::VarStore::new(Device::Cpu);
        let t = vs.root().var_copy("w", &Tensor::from_slice(v));
        (vs, t)
    }

    fn run(cfg: OptimConfig, grads: &[f32], lr: f64, steps: usize) -> Vec<f32> {
        let (_vs, w) = param(&[1.0, -2.0]);
        let mut opt = GroupOptimizer::new(&Group::all(), cfg, vec![("w".into(), w.shallow_clone(), 1.0)]);
        for _ in 0..steps {
            let mut w2 = w.shallow_clone();
            w2.zero_grad();
            (&w * Tensor::from_slice(grads)).sum(Kind::Float).backward();
            opt.step(lr);
        }
        Vec::<f32>::try_from(&w).unwrap()
    }

    /// SGD with momentum μ on a constant gradient g: v_t = g·(1 + μ + … + μ^{t−1}), w_t = w_0 − lr·Σ v.
    #[test]
    fn sgd_momentum_matches_the_closed_form() {
        let cfg = OptimConfig { kind: OptimKind::Sgd, lr: 0.1, momentum: 0.5, ..Default::default() };
        let w = run(cfg, &[1.0, 2.0], 0.1, 3);
        // Σ_{t=1..3} (1 − 0.5^t)/(1 − 0.5) = 1 + 1.5 + 1.75 = 4.25
        assert!((w[0] - (1.0 - 0.1 * 4.25)).abs() < 1e-6, "{w:?}");
        assert!((w[1] - (-2.0 - 0.1 * 2.0 * 4.25)).abs() < 1e-6, "{w:?}");
    }

    /// Adam on a constant gradient: the bias-corrected moments are exactly g and g², so each step moves
    /// w by −lr·g/(|g| + ε·…) ≈ −lr·sign(g).
    #[test]
    fn adam_on_a_constant_gradient_moves_by_lr_per_step() {
        let cfg = OptimConfig { kind: OptimKind::Adam, lr: 0.01, ..Default::default() };
        let w = run(cfg, &[3.0, -0.5], 0.01, 4);
        assert!((w[0] - (1.0 - 0.04)).abs() < 1e-5, "{w:?}");
        assert!((w[1] - (-2.0 + 0.04)).abs() < 1e-5, "{w:?}");
    }

    /// The state round trip: an optimizer restored from another's state continues identically.
    #[test]
    fn state_round_trip_continues_identically() {
        for kind in [OptimKind::Sgd, OptimKind::Adam] {
            let cfg = OptimConfig { kind, lr: 0.1, momentum: 0.9, weight_decay: 0.01, ..Default::default() };
            let (_vs, w) = param(&[1.0, -2.0]);
            let step = |opt: &mut GroupOptimizer, w: &Tensor| {
                let mut w2 = w.shallow_clone();
                w2.zero_grad();
                (w * w).sum(Kind::Float).backward();
                opt.step(0.1);
            };
            let mut a = GroupOptimizer::new(&Group::all(), cfg.clone(), vec![("w".into(), w.shallow_clone(), 1.0)]);
            step(&mut a, &w);
            step(&mut a, &w);
            let saved: Vec<(String, Tensor)> = a.state("o/").into_iter().map(|(k, t)| (k, t.copy())).collect();
            let w_saved = w.copy();
            step(&mut a, &w);
            let expect = w.copy();
            let (_vs2, w2) = param(&[0.0, 0.0]);
            tch::no_grad(|| w2.shallow_clone().copy_(&w_saved));
            let mut b = GroupOptimizer::new(&Group::all(), cfg, vec![("w".into(), w2.shallow_clone(), 1.0)]);
            b.load_state("o/", &mut |k| saved.iter().find(|(n, _)| n == k).map(|(_, t)| t.copy()));
            step(&mut b, &w2);
            assert!(w2.equal(&expect), "{kind:?}: {w2} vs {expect}");
        }
    }
}
