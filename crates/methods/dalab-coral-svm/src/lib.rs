//! CORAL (Sun, Feng & Saenko, AAAI 2016) as the paper evaluates it: the source features are whitened with
//! their own covariance and re-coloured with the target's,
//!
//! X_S ↦ X_S (C_S + λI)^(−1/2) (C_T + λI)^(1/2),  λ = 1 ("C + I"; rows not centred, as in the authors' code),
//!
//! then a linear SVM (libsvm's C-SVC, C from {1e-3, …, 1e4} by 2-fold cross-validation on the transformed
//! source) is trained on them and applied to the target as it is. The covariances are those of the samples
//! the trial has: under the standard protocol, the drawn source samples and the whole target.
//! (`coral` is the same transform with a softmax classifier trained by the trainer.)
//!
//! `form: authors-code` trains instead what the authors' MATLAB code hands libsvm: the precomputed matrix
//! `K = X_S A X_Sᵀ` (entries `(x_i A)·x_j`: transformed against untransformed source samples, neither symmetric
//! nor PSD), with test entries `(x_i A)·x_t`; `form: transformed` (default) is the linear SVM on `X_S A` that the
//! paper's text describes, i.e. `K = X_S A Aᵀ X_Sᵀ`.

use dalab_classic::svm::{Kernel, SvmSettings, fit_cv, fit_cv_kernel, fitted};
use dalab_classic::{Error, SvmKernel};
use dalab_metrics::coral::{CoralTransform, CoralTransformSettings};
use serde::{Deserialize, Serialize};

/// Which matrix the SVM is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// An SVM on the transformed source `X_S A` (`svm.kernel`: linear or RBF), as the paper describes.
    #[default]
    Transformed,
    /// The authors' code: libsvm on the precomputed `X_S A X_Sᵀ` (`svm.kernel` must be `linear`).
    AuthorsCode,
}

dalab_classic::method_config! {
    /// The `methods.coral-svm` options.
    pub struct CoralSvmConfig {
        /// λ added to both covariances (the paper: 1).
        lambda: f64 = 1.0, positive;
        /// `transformed` (default) or `authors-code`.
        form: Form = Form::Transformed;
        svm: SvmSettings = SvmSettings::default(), nested;
    }
    check: authors_code_is_linear;
}

fn authors_code_is_linear(cfg: &CoralSvmConfig) -> Result<(), String> {
    if cfg.form == Form::AuthorsCode && cfg.svm.kernel != SvmKernel::Linear {
        return Err("form: `authors-code` is the precomputed linear form; it needs `svm.kernel: linear`".into());
    }
    Ok(())
}

dalab_classic::classic_factory! {
    /// The registry entry.
    pub CoralSvm: "coral-svm", "CORAL transform of the source + linear SVM, the paper's protocol (Sun et al. 2016)";
    fit(cfg: &CoralSvmConfig, inputs) {
        let settings = CoralTransformSettings { lambda: cfg.lambda };
        let coral = CoralTransform::fit(inputs.source_x, inputs.target_x, &settings)
            .map_err(|e| Error::Invalid(format!("CORAL transform: {e}")))?;
        let (svm, table) = match cfg.form {
            Form::Transformed => {
                let xs = coral.apply(inputs.source_x).map_err(|e| Error::Invalid(format!("CORAL transform: {e}")))?;
                fit_cv(xs.view(), inputs.source_y, &cfg.svm, inputs.seed)?
            }
            Form::AuthorsCode => {
                let kernel = Kernel::Bilinear(coral.matrix);
                fit_cv_kernel(inputs.source_x, inputs.source_y, &kernel, &cfg.svm, inputs.seed)?
            }
        };
        Ok(fitted(svm, &table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_classic::{ClassicFactory, ClassicInputs, Validate};
    use ndarray::{Array2, Axis, concatenate};

    #[test]
    fn validation_names_the_key() {
        let bad = CoralSvmConfig { lambda: 0.0, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err(), "lambda: must be a finite number > 0, got 0");
        let bad = CoralSvmConfig { svm: SvmSettings { folds: 0, ..Default::default() }, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err(), "svm.folds: must be >= 2, got 0");
        let rbf = SvmSettings { kernel: dalab_classic::SvmKernel::Rbf, ..Default::default() };
        let bad = CoralSvmConfig { form: Form::AuthorsCode, svm: rbf, ..Default::default() };
        assert!(bad.validate().unwrap_err().starts_with("form: `authors-code`"));
    }

    /// `authors-code` is the SVM on the precomputed `X_S A X_Sᵀ`: the same as fitting the bilinear kernel with
    /// `A` directly.
    #[test]
    fn authors_code_form_is_the_bilinear_kernel_of_a() {
        let n = 60;
        let y: Vec<i64> = (0..n).map(|i| (i % 3) as i64).collect();
        let xs = Array2::from_shape_fn((n, 4), |(i, j)| {
            ((i * 5 + j * 3) as f64 * 0.37).sin() + if j as i64 == y[i] { 1.0 } else { 0.0 }
        });
        let xt = xs.mapv(|v| 1.5 * v + 0.2);
        let inputs = ClassicInputs { source_x: xs.view(), source_y: &y, target_x: xt.view(), num_classes: 3, seed: 4 };
        let cfg = CoralSvmConfig { form: Form::AuthorsCode, ..Default::default() };
        let got = CoralSvm::fit(&cfg, &inputs).unwrap().classifier.predict(xt.view());
        let a = CoralTransform::fit(xs.view(), xt.view(), &CoralTransformSettings { lambda: 1.0 }).unwrap().matrix;
        let (direct, _) = fit_cv_kernel(xs.view(), &y, &Kernel::Bilinear(a), &SvmSettings::default(), 4).unwrap();
        assert_eq!(got, direct.predict(xt.view()));
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
