//! No adaptation, 1-nearest-neighbour: the "NN" column of the JDA (Long et al., ICCV 2013) and GFK tables.
//!
//! Each target sample gets the label of its nearest source sample (Euclidean distance on the features as the
//! dataset's preprocessing leaves them; ties go to the first source sample), by `dalab_data::knn`, the code that
//! `dalab baseline 1nn` checks against the JDA paper's column.

use dalab_classic::{Classifier, Fitted};
use ndarray::ArrayView2;

dalab_classic::method_config! {
    /// The `methods.1nn` options (none).
    pub struct OneNnConfig {}
}

dalab_classic::classic_factory! {
    /// The registry entry.
    pub OneNn: "1nn", "no adaptation: 1-nearest-neighbour on the source features (Euclidean)";
    fit(_cfg: &OneNnConfig, inputs) {
        let rows = inputs.source_x.as_standard_layout().iter().copied().collect();
        let model = Model { rows, labels: inputs.source_y.to_vec(), dim: inputs.source_x.ncols() };
        Ok(Fitted { classifier: Box::new(model), scalars: Vec::new() })
    }
}

struct Model {
    rows: Vec<f64>,
    labels: Vec<i64>,
    dim: usize,
}

impl Classifier for Model {
    fn predict(&self, x: ArrayView2<'_, f64>) -> Vec<i64> {
        let q: Vec<f64> = x.as_standard_layout().iter().copied().collect();
        dalab_data::knn::nearest_rows(&self.rows, &q, self.dim).into_iter().map(|j| self.labels[j]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_classic::{ClassicFactory, ClassicInputs};
    use ndarray::array;

    #[test]
    fn each_target_gets_the_label_of_its_nearest_source_sample() {
        let xs = array![[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 0.0]];
        let ys = [3, 1, 2, 7];
        let xt = array![[1.0, 1.0], [9.0, -1.0], [-1.0, 8.0], [6.0, 4.0]];
        let inputs = ClassicInputs { source_x: xs.view(), source_y: &ys, target_x: xt.view(), num_classes: 8, seed: 0 };
        let f = OneNn::fit(&OneNnConfig::default(), &inputs).unwrap();
        // (6, 4) is nearest to (10, 0), which is rows 1 and 3: the first (label 1) wins the tie.
        assert_eq!(f.classifier.predict(xt.view()), vec![3, 1, 2, 1]);
    }
}
