//! `model.init`: how the layers dalab builds are initialised.
//!
//! tch's layers start with tch's defaults (not PyTorch's: He-uniform weights). Papers whose code is in TensorFlow
//! start from TF-slim's instead (ADDA's LeNet and adversary: `slim.conv2d` / `slim.fully_connected` with their
//! default `xavier_initializer()` and zero biases), so a reproduction can ask for those: the whole model is
//! re-initialised after it is built, before the first step (and before any method copies one network onto another,
//! which happens in `begin_stage`).

use serde::{Deserialize, Serialize};
use tch::nn;

/// The `model.init` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// tch's defaults: a linear or conv weight is U(−√(6/fan_in), √(6/fan_in)) (He/Kaiming-uniform with the ReLU
    /// gain; PyTorch's own is 1/√fan_in), a linear bias U(−1/√fan_in, 1/√fan_in), a conv bias 0; batch norm γ = 1,
    /// β = 0; whatever a method sets itself.
    #[default]
    Default,
    /// Glorot & Bengio (2010), uniform: every weight with fan_in and fan_out (a linear layer's `[out, in]`, a
    /// convolution's `[out, in, k…]` with fan = channels × kernel size) is U(−a, a) with a = √(6 / (fan_in +
    /// fan_out)), every bias 0 — TF-slim's default for `conv2d` and `fully_connected`. Batch-norm scales and
    /// non-trainable variables (statistics, fixed transforms) are left as built.
    Xavier,
}

impl Init {
    /// Whether this is the default (not written into trial configs then, so trial ids stay as they were).
    pub fn is_default(&self) -> bool {
        *self == Init::Default
    }

    /// Re-initialises the trainable variables of `vs` whose names `owned` accepts (the layers dalab built: not a
    /// TorchScript backbone's, whose weights are the user's). Returns how many tensors were set.
    pub fn apply(self, vs: &nn::VarStore, owned: impl Fn(&str) -> bool) -> usize {
        if self == Init::Default {
            return 0;
        }
        let mut n = 0;
        for (name, t) in vs.variables() {
            if !owned(&name) || !t.requires_grad() {
                continue;
            }
            let leaf = name.rsplit('.').next().unwrap_or(&name);
            let size = t.size();
            tch::no_grad(|| {
                if leaf == "weight" && size.len() >= 2 {
                    let receptive: i64 = size[2..].iter().product();
                    let (fan_in, fan_out) = (size[1] * receptive, size[0] * receptive);
                    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
                    let _ = t.shallow_clone().uniform_(-a, a);
                    n += 1;
                } else if leaf == "bias" {
                    let _ = t.shallow_clone().zero_();
                    n += 1;
                }
            });
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    fn store() -> nn::VarStore {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let _ = nn::conv2d(&root / "conv", 3, 20, 5, Default::default());
        let _ = nn::linear(&root / "fc", 1250, 500, Default::default());
        let _ = crate::batch_norm1d(&(&root / "bn"), 500);
        let _ = root.var_copy("transform", &Tensor::eye(4, (Kind::Float, Device::Cpu)));
        let _ = (&root / "frozen").var_copy("weight", &Tensor::ones([4, 4], (Kind::Float, Device::Cpu)));
        let _ = (&root / "frozen").var_copy("bias", &Tensor::ones([4], (Kind::Float, Device::Cpu)));
        for (k, v) in vs.variables() {
            if k.starts_with("frozen") || k == "transform" {
                let _ = v.set_requires_grad(false);
            }
        }
        let _ = (&root / "user").var_copy("weight", &Tensor::ones([3, 3], (Kind::Float, Device::Cpu)));
        vs
    }

    fn get(vs: &nn::VarStore, name: &str) -> Tensor {
        vs.variables()[name].shallow_clone()
    }

    #[test]
    fn xavier_bounds_zero_biases_and_what_it_leaves_alone() {
        tch::manual_seed(0);
        let vs = store();
        let n = Init::Xavier.apply(&vs, |k| !k.starts_with("user."));
        assert_eq!(n, 5, "conv and fc weight and bias, batch norm β (0 already)");
        // conv [20, 3, 5, 5]: fan_in 75, fan_out 500 → a = √(6/575); fc [500, 1250]: a = √(6/1750).
        for (name, a) in [("conv.weight", (6.0f64 / 575.0).sqrt()), ("fc.weight", (6.0f64 / 1750.0).sqrt())] {
            let w = get(&vs, name);
            let max = w.abs().max().double_value(&[]);
            assert!(max <= a && max > 0.95 * a, "{name}: max |w| {max} vs bound {a}");
            // Uniform on (−a, a): variance a²/3.
            let var = w.var(false).double_value(&[]);
            assert!((var / (a * a / 3.0) - 1.0).abs() < 0.05, "{name}: variance {var} vs {}", a * a / 3.0);
        }
        for name in ["conv.bias", "fc.bias"] {
            assert_eq!(get(&vs, name).abs().max().double_value(&[]), 0.0, "{name}");
        }
        // Batch norm's γ = 1 kept; non-trainable and unowned variables untouched.
        assert_eq!(get(&vs, "bn.weight").min().double_value(&[]), 1.0);
        assert_eq!(get(&vs, "transform").sum(Kind::Double).double_value(&[]), 4.0);
        assert_eq!(get(&vs, "frozen.weight").sum(Kind::Double).double_value(&[]), 16.0);
        assert_eq!(get(&vs, "frozen.bias").sum(Kind::Double).double_value(&[]), 4.0);
        assert_eq!(get(&vs, "user.weight").sum(Kind::Double).double_value(&[]), 9.0);
    }

    #[test]
    fn the_default_changes_nothing() {
        let vs = store();
        let before = get(&vs, "fc.bias").copy();
        assert_eq!(Init::Default.apply(&vs, |_| true), 0);
        assert!(get(&vs, "fc.bias").equal(&before));
        // tch's default linear bias is U(−1/√1250, 1/√1250), not zero: the two inits do differ.
        assert!(before.abs().max().double_value(&[]) > 0.0);
        assert!(Init::Default.is_default() && !Init::Xavier.is_default());
    }
}
