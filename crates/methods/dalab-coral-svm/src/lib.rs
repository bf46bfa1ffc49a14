//! CORAL (Sun, Feng & Saenko, AAAI 2016) as the paper evaluates it: the source features are whitened with
//! their own covariance and re-coloured with the target's,
//!
//! X_S ↦ X_S (C_S + λI)^(−1/2) (C_T + λI)^(1/2),  λ = 1 ("C + I"; rows not centred, as in the authors' code),
//!
//! then a linear SVM (libsvm's C-SVC, C from {1e-3, …, 1e4} by 2-fold cross-validation on the transformed
//! source) is trained on them and applied to the target as it is. The covariances are those of the samples
//! the trial has: under the standard protocol, the drawn source samples and the whole target.
//! (`coral` is the same transform with a softmax classifier trained by the trainer.)

use dalab_classic::svm::{SvmSettings, fit_cv};
use dalab_classic::{ClassicFactory, ClassicInputs, Error, Fitted, Result, Validate};
use dalab_metrics::coral::{CoralTransform, CoralTransformSettings};
use serde::{Deserialize, Serialize};

/// The `methods.coral-svm` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoralSvmConfig {
    /// λ added to both covariances (the paper: 1).
    pub lambda: f64,
    pub svm: SvmSettings,
}

impl Default for CoralSvmConfig {
    fn default() -> Self {
        Self { lambda: 1.0, svm: SvmSettings::default() }
    }
}

impl Validate for CoralSvmConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return Err(format!("lambda: must be a finite number > 0, got {}", self.lambda));
        }
        self.svm.validate().map_err(|e| format!("svm.{e}"))
    }
}

/// The registry entry.
#[derive(Debug)]
pub struct CoralSvm;

impl ClassicFactory for CoralSvm {
    const NAME: &'static str = "coral-svm";
    const SUMMARY: &'static str = "CORAL transform of the source + linear SVM, the paper's protocol (Sun et al. 2016)";
    type Config = CoralSvmConfig;

    fn fit(cfg: &CoralSvmConfig, inputs: &ClassicInputs<'_>) -> Result<Fitted> {
        let settings = CoralTransformSettings { lambda: cfg.lambda };
        let coral = CoralTransform::fit(inputs.source_x, inputs.target_x, &settings)
            .map_err(|e| Error::Invalid(format!("CORAL transform: {e}")))?;
        let xs = coral.apply(inputs.source_x).map_err(|e| Error::Invalid(format!("CORAL transform: {e}")))?;
        let (svm, table) = fit_cv(xs.view(), inputs.source_y, &cfg.svm, inputs.seed)?;
        Ok(dalab_classic::svm::fitted(svm, &table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Axis, concatenate};

    #[test]
    fn validation_names_the_key() {
        let bad = CoralSvmConfig { lambda: 0.0, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err(), "lambda: must be a finite number > 0, got 0");
        let bad = CoralSvmConfig { svm: SvmSettings { folds: 0, ..Default::default() }, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err(), "svm.folds: must be >= 2, got 0");
    }

    /// The target is the source with its class-bearing feature shrunk 20 times: an SVM trained on the raw
    /// source misreads the scaled feature; after CORAL the source has the target's scale, and the classifier
    /// transfers. The fitted SVM must be the one trained on `X_S A` (checked against a direct fit).
    #[test]
    fn coral_recovers_a_scaled_feature_and_equals_the_two_steps() {
        let n = 80;
        let y: Vec<i64> = (0..n).map(|i| (i % 2) as i64).collect();
        let xs = Array2::from_shape_fn((n, 3), |(i, j)| {
            let s = if y[i] == 1 { 1.0 } else { -1.0 };
            let noise = ((i * 7 + j * 13) as f64 * 0.61).sin();
            match j {
                0 => noise * 2.0,
                1 => s + 0.6 * noise,
                _ => noise,
            }
        });
        let mut xt = xs.clone();
        xt.column_mut(1).mapv_inplace(|v| 0.05 * v);
        let inputs = ClassicInputs { source_x: xs.view(), source_y: &y, target_x: xt.view(), num_classes: 2, seed: 0 };
        let (na, _) = fit_cv(xs.view(), &y, &SvmSettings::default(), 0).unwrap();
        let na = dalab_classic::accuracy(&na.predict(xt.view()), &y);
        let coral = CoralSvm::fit(&CoralSvmConfig::default(), &inputs).unwrap();
        let acc = dalab_classic::accuracy(&coral.classifier.predict(xt.view()), &y);
        assert!(acc > 0.95 && acc > na + 0.2, "coral {acc} vs no adaptation {na}");

        let a = CoralTransform::fit(xs.view(), xt.view(), &CoralTransformSettings { lambda: 1.0 }).unwrap();
        let (direct, _) = fit_cv(a.apply(xs.view()).unwrap().view(), &y, &SvmSettings::default(), 0).unwrap();
        let both = concatenate![Axis(0), xs.view(), xt.view()];
        assert_eq!(coral.classifier.predict(both.view()), direct.predict(both.view()));
    }
}
