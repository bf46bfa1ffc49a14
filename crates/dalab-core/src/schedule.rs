//! Schedules of the DANN paper (Ganin et al., JMLR 2016, §5.2.2), as functions of the training progress
//! p ∈ [0, 1].

use crate::Validate;
use serde::{Deserialize, Serialize};

/// The adaptation factor λ_p (the coefficient of the gradient reversal layer, or of a transfer loss).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LambdaSchedule {
    /// λ_p = 2 / (1 + exp(−γ·p)) − 1: 0 at the start, → 1 at the end (γ = 10 in the paper).
    Dann { gamma: f64 },
    /// λ_p = 1 throughout. (A struct variant, `Constant {}`, so that serde rejects unknown keys beside
    /// `kind: constant`: a unit variant of an internally tagged enum accepts and ignores any other key.)
    Constant {},
}

impl Default for LambdaSchedule {
    fn default() -> Self {
        LambdaSchedule::Dann { gamma: 10.0 }
    }
}

impl LambdaSchedule {
    pub fn at(&self, p: f64) -> f64 {
        match *self {
            LambdaSchedule::Dann { gamma } => 2.0 / (1.0 + (-gamma * p).exp()) - 1.0,
            LambdaSchedule::Constant {} => 1.0,
        }
    }
}

impl Validate for LambdaSchedule {
    fn validate(&self) -> Result<(), String> {
        match *self {
            LambdaSchedule::Dann { gamma } if !(gamma.is_finite() && gamma > 0.0) => {
                Err(format!("gamma: must be a finite number > 0, got {gamma}"))
            }
            _ => Ok(()),
        }
    }
}

/// The learning-rate schedule, as a multiplier of the base learning rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LrSchedule {
    /// μ_p = μ0 / (1 + α·p)^β (the paper: α = 10, β = 0.75).
    Dann { alpha: f64, beta: f64 },
    /// Caffe's "inv" policy, used by the DAN/RTN code: μ_i = μ0 · (1 + γ·i)^(−power), i the iteration.
    Inv { gamma: f64, power: f64 },
    /// μ0 throughout. (`{}`: unknown keys are rejected, as for [`LambdaSchedule::Constant`].)
    Constant {},
}

impl Default for LrSchedule {
    fn default() -> Self {
        LrSchedule::Dann { alpha: 10.0, beta: 0.75 }
    }
}

impl LrSchedule {
    /// Multiplier of the base learning rate at progress `p` and iteration `iteration`.
    pub fn factor(&self, p: f64, iteration: usize) -> f64 {
        match *self {
            LrSchedule::Dann { alpha, beta } => (1.0 + alpha * p).powf(-beta),
            LrSchedule::Inv { gamma, power } => (1.0 + gamma * iteration as f64).powf(-power),
            LrSchedule::Constant {} => 1.0,
        }
    }
}

impl Validate for LrSchedule {
    fn validate(&self) -> Result<(), String> {
        let check = |k: &str, v: f64| {
            if v.is_finite() && v >= 0.0 { Ok(()) } else { Err(format!("{k}: must be a finite number >= 0, got {v}")) }
        };
        match *self {
            LrSchedule::Dann { alpha, beta } => check("alpha", alpha).and(check("beta", beta)),
            LrSchedule::Inv { gamma, power } => check("gamma", gamma).and(check("power", power)),
            LrSchedule::Constant {} => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_dann_matches_the_formula_at_known_points() {
        let s = LambdaSchedule::default();
        assert_eq!(s.at(0.0), 0.0);
        // 2/(1+e^-5) - 1 = tanh(2.5) = 0.98661429815143...
        assert!((s.at(0.5) - 2.5f64.tanh()).abs() < 1e-15);
        assert!((s.at(1.0) - 5.0f64.tanh()).abs() < 1e-15);
        // Monotone increasing.
        let v: Vec<f64> = (0..=100).map(|i| s.at(i as f64 / 100.0)).collect();
        assert!(v.windows(2).all(|w| w[1] > w[0]));
        assert_eq!(LambdaSchedule::Constant {}.at(0.3), 1.0);
    }

    #[test]
    fn lr_dann_and_inv() {
        let s = LrSchedule::default();
        assert_eq!(s.factor(0.0, 0), 1.0);
        // 11^-0.75 = 0.16555...
        assert!((s.factor(1.0, 0) - 11f64.powf(-0.75)).abs() < 1e-15);
        let inv = LrSchedule::Inv { gamma: 1e-3, power: 0.75 };
        assert!((inv.factor(0.0, 1000) - 2f64.powf(-0.75)).abs() < 1e-15);
        assert!(LrSchedule::Dann { alpha: -1.0, beta: 0.75 }.validate().unwrap_err().starts_with("alpha:"));
    }

    /// Every variant rejects keys it does not have (serde's `deny_unknown_fields` does not reach the unit
    /// variants of an internally tagged enum), and the serialized form is the plain `{kind: ...}`.
    #[test]
    fn unknown_keys_are_rejected_in_every_variant() {
        use serde_json::{from_value, json, to_value};
        for v in [json!({"kind": "constant", "gamma": 10}), json!({"kind": "dann", "gamma": 10, "gama": 1})] {
            let e = from_value::<LambdaSchedule>(v.clone()).unwrap_err().to_string();
            assert!(e.contains("unknown field"), "{v}: {e}");
        }
        for v in [
            json!({"kind": "constant", "alpha": 3}),
            json!({"kind": "dann", "alpha": 3, "beta": 1, "bta": 1}),
            json!({"kind": "inv", "gamma": 3, "power": 1, "pow": 1}),
        ] {
            let e = from_value::<LrSchedule>(v.clone()).unwrap_err().to_string();
            assert!(e.contains("unknown field"), "{v}: {e}");
        }
        assert_eq!(to_value(LambdaSchedule::Constant {}).unwrap(), json!({"kind": "constant"}));
        assert_eq!(to_value(LrSchedule::Constant {}).unwrap(), json!({"kind": "constant"}));
        assert_eq!(from_value::<LrSchedule>(json!({"kind": "constant"})).unwrap(), LrSchedule::Constant {});
    }
}
