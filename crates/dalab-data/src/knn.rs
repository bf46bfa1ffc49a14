//! Euclidean 1-nearest-neighbour baseline: the sanity check that pins the preprocessing of the feature
//! benchmarks (JDA paper, Long et al. 2013, "NN" column).
//!
//! Distances are summed in f64 over the f32 features in sample order; ties go to the first source sample
//! (as `argmin` does). A partial sum that already reaches the best distance so far is abandoned, which gives
//! the same answer as the full computation (sums of squares only grow) at a fraction of the cost.

use crate::{Domain, Result};
use rayon::prelude::*;
use std::path::Path;

/// Index of the nearest source row for each target row.
pub fn nearest(source: &Domain, target: &Domain) -> Result<Vec<usize>> {
    let (sx, tx) = (source.x.to_dense()?, target.x.to_dense()?);
    let d = (sx.len() / source.len().max(1)).max(1);
    // f64 copies, so that the inner loop is plain indexing (fast even in unoptimised test builds).
    let xs: Vec<f64> = sx.as_standard_layout().iter().map(|&v| f64::from(v)).collect();
    let xt: Vec<f64> = tx.as_standard_layout().iter().map(|&v| f64::from(v)).collect();
    Ok(nearest_rows(&xs, &xt, d))
}

/// Index of the nearest row of `xs` for each row of `xt`, both row-major with `d` columns (Euclidean; ties go
/// to the first row).
pub fn nearest_rows(xs: &[f64], xt: &[f64], d: usize) -> Vec<usize> {
    let d = d.max(1);
    let ns = xs.len() / d;
    xt.par_chunks(d)
        .map(|q| {
            let mut best = f64::INFINITY;
            let mut arg = 0;
            'rows: for j in 0..ns {
                let r = &xs[j * d..(j + 1) * d];
                let mut acc = 0f64;
                let mut k = 0;
                while k < d {
                    let end = (k + 32).min(d);
                    while k < end {
                        let t = q[k] - r[k];
                        acc += t * t;
                        k += 1;
                    }
                    // Sums of squares only grow: this row cannot win (ties keep the earlier row).
                    if acc >= best {
                        continue 'rows;
                    }
                }
                best = acc;
                arg = j;
            }
            arg
        })
        .collect()
}

/// Accuracy (%) of the 1-NN classifier trained on `source`, on `target`.
pub fn one_nn_accuracy(source: &Domain, target: &Domain) -> Result<f64> {
    if target.is_empty() || source.is_empty() {
        return Ok(0.0);
    }
    let nn = nearest(source, target)?;
    let hits = nn.iter().zip(&target.y).filter(|&(&j, &y)| source.y[j] == y).count();
    Ok(100.0 * hits as f64 / target.len() as f64)
}

/// One row of the 1-NN table.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRow {
    pub dataset: String,
    pub source: String,
    pub target: String,
    /// Our accuracy (%).
    pub accuracy: f64,
    /// The published value (%), where there is one.
    pub paper: Option<f64>,
}

impl BaselineRow {
    /// True when the accuracy rounds to the paper's two decimals.
    pub fn matches_paper(&self) -> Option<bool> {
        self.paper.map(|p| format!("{:.2}", self.accuracy) == format!("{p:.2}"))
    }
}

/// JDA paper (Long et al., ICCV 2013), Table 2, "NN" column: SURF tasks and the two digit tasks.
pub const JDA_NN: [(&str, &str, &str, f64); 14] = [
    ("office-caltech10-surf", "C", "A", 23.70),
    ("office-caltech10-surf", "C", "W", 25.76),
    ("office-caltech10-surf", "C", "D", 25.48),
    ("office-caltech10-surf", "A", "C", 26.00),
    ("office-caltech10-surf", "A", "W", 29.83),
    ("office-caltech10-surf", "A", "D", 25.48),
    ("office-caltech10-surf", "W", "C", 19.86),
    ("office-caltech10-surf", "W", "A", 22.96),
    ("office-caltech10-surf", "W", "D", 59.24),
    ("office-caltech10-surf", "D", "C", 26.27),
    ("office-caltech10-surf", "D", "A", 28.50),
    ("office-caltech10-surf", "D", "W", 63.39),
    ("jda-digits", "mnist", "usps", 65.94),
    ("jda-digits", "usps", "mnist", 44.70),
];

/// Runs the 1-NN baseline on the JDA tasks of `datasets` (`office-caltech10-surf`, `jda-digits`; empty =
/// both) with their default preprocessing, loading each domain once.
pub fn jda_table(data_dir: &Path, datasets: &[String]) -> Result<Vec<BaselineRow>> {
    use crate::DatasetConfig;
    let want = |d: &str| datasets.is_empty() || datasets.iter().any(|x| x == d);
    for d in datasets {
        if !JDA_NN.iter().any(|r| r.0 == d) {
            return Err(crate::Error::Invalid(format!(
                "no 1-NN reference for dataset `{d}` (have: office-caltech10-surf, jda-digits); for any other \
                 dataset, run the method `1nn` with `dalab run` (methods: {{1nn: {{}}}})"
            )));
        }
    }
    let mut rows = Vec::new();
    if want("office-caltech10-surf") {
        let cfg = crate::office_caltech::OfficeCaltechSurfConfig::default();
        let doms: Vec<(String, Domain)> = crate::office_caltech::DOMAINS
            .iter()
            .map(|(d, _)| cfg.load_domain(d, data_dir).map(|x| (d.to_string(), x)))
            .collect::<Result<_>>()?;
        let get = |n: &str| &doms.iter().find(|(k, _)| k == n).expect("all four loaded").1;
        for (ds, s, t, p) in JDA_NN.iter().filter(|r| r.0 == "office-caltech10-surf") {
            rows.push(BaselineRow {
                dataset: ds.to_string(),
                source: s.to_string(),
                target: t.to_string(),
                accuracy: one_nn_accuracy(get(s), get(t))?,
                paper: Some(*p),
            });
        }
    }
    if want("jda-digits") {
        let cfg = DatasetConfig::JdaDigits(Default::default());
        for (ds, s, t, p) in JDA_NN.iter().filter(|r| r.0 == "jda-digits") {
            let task = cfg.load_task(s, t, data_dir)?;
            rows.push(BaselineRow {
                dataset: ds.to_string(),
                source: s.to_string(),
                target: t.to_string(),
                accuracy: one_nn_accuracy(&task.source, &task.target)?,
                paper: Some(*p),
            });
        }
    }
    Ok(rows)
}

/// Renders 1-NN rows as a text table with the paper's values and a match column.
pub fn render_table(rows: &[BaselineRow]) -> String {
    let mut s = format!("{:<22} {:<16} {:>8} {:>8}  match\n", "dataset", "task", "1-NN %", "paper %");
    for r in rows {
        let task = format!("{}→{}", r.source, r.target);
        let paper = r.paper.map_or("-".to_string(), |p| format!("{p:.2}"));
        let m = match r.matches_paper() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        // `→` is one char but three bytes: pad by chars.
        let pad = 16usize.saturating_sub(task.chars().count());
        s.push_str(&format!("{:<22} {task}{} {:>8.2} {:>8}  {m}\n", r.dataset, " ".repeat(pad), r.accuracy, paper));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn dom(x: ndarray::Array2<f32>, y: Vec<i64>) -> Domain {
        Domain::new("d", x.into_dyn(), y, vec!["a".into(), "b".into()]).unwrap()
    }

    #[test]
    fn nearest_matches_brute_force_and_breaks_ties_to_the_first() {
        let s = dom(array![[0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [5.0, 5.0]], vec![0, 1, 0, 1]);
        let t = dom(array![[0.9, 1.2], [4.0, 4.0], [0.1, -0.1]], vec![1, 1, 1]);
        assert_eq!(nearest(&s, &t).unwrap(), vec![1, 3, 0]);
        assert!((one_nn_accuracy(&s, &t).unwrap() - 200.0 / 3.0).abs() < 1e-12);
        // Random data against a brute-force argmin.
        let n = 40;
        let xs = ndarray::Array2::from_shape_fn((n, 37), |(i, j)| ((i * 7919 + j * 104729) % 1000) as f32 / 100.0);
        let xt = ndarray::Array2::from_shape_fn((n, 37), |(i, j)| ((i * 31 + j * 17 + 5) % 1000) as f32 / 100.0);
        let (s, t) = (dom(xs.clone(), vec![0; n]), dom(xt.clone(), vec![0; n]));
        let got = nearest(&s, &t).unwrap();
        for (i, q) in xt.rows().into_iter().enumerate() {
            let d: Vec<f64> = xs
                .rows()
                .into_iter()
                .map(|r| r.iter().zip(q).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum())
                .collect();
            let best = (0..n).fold(0, |b, j| if d[j] < d[b] { j } else { b });
            assert_eq!(got[i], best, "row {i}");
        }
    }

    #[test]
    fn table_rendering() {
        let rows = vec![BaselineRow {
            dataset: "x".into(),
            source: "C".into(),
            target: "A".into(),
            accuracy: 23.7,
            paper: Some(23.70),
        }];
        let t = render_table(&rows);
        assert!(t.contains("C→A") && t.contains("23.70") && t.contains("yes"), "{t}");
    }
}
