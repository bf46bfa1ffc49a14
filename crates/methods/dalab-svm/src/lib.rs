//! No adaptation, linear SVM: the "NA" rows of the classic DA tables (CORAL AAAI'16 Tables 1 and 3).
//!
//! A one-vs-one linear SVM (libsvm's C-SVC) is trained on the source features as they are, C chosen by
//! stratified cross-validation on the source ([`dalab_classic::svm`]), and applied to the target.

use dalab_classic::svm::{SvmSettings, fit_cv, fitted};

dalab_classic::classic_factory! {
    /// The registry entry; its options are the SVM's (`c_grid`, `folds`, `tolerance`).
    pub Svm: "svm", "no adaptation: linear SVM on the source features, C by source cross-validation";
    fit(cfg: &SvmSettings, inputs) {
        let (svm, table) = fit_cv(inputs.source_x, inputs.source_y, cfg, inputs.seed)?;
        Ok(fitted(svm, &table))
    }
}
