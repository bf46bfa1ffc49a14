//! Model selection across an experiment's trials: `dalab report --select-by VALIDATOR` (one sweep point per
//! method × task × seed, picked by a validator) and `dalab report --selection` (the selection-regret table: how
//! far each validator's pick falls below the target-label ORACLE's, and how well it ranks checkpoints and sweep
//! points). Formulas and the reading of the table: docs/model-selection.md, "Selection regret".
//!
//! A *group* is one method × task × seed (× pooled random draw, [`crate::report::POOLED_KEYS`]): its trials are
//! the method's sweep points, each with its evaluations (checkpoints) and their validator scores.

use crate::report::POOLED_KEYS;
use crate::trial::TrialResult;
use crate::{Error, Result};
use dalab_train::{EvalRecord, Validator};
use statrs::statistics::{Data, OrderStatistics, RankTieBreaker};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The accuracy a table reports of an evaluation: on the target test split when `test`, else on the target.
pub fn target_accuracy(e: &EvalRecord, test: bool) -> f64 {
    if test { e.target_test.unwrap_or(e.target) } else { e.target }
}

/// The score of `e` by `v` (higher is better): the validator's recorded score, or for the ORACLE
/// `target_oracle` the target accuracy. None where the validator did not score the evaluation.
pub fn score(e: &EvalRecord, v: Validator, test: bool) -> Option<f64> {
    if v.is_oracle() { Some(target_accuracy(e, test)) } else { e.validators.get(v.name()).copied() }
}

/// Spearman's rank correlation of `x` and `y`: Pearson's correlation of their ranks, ties given their average
/// rank (statrs's ranks), as `scipy.stats.spearmanr`. None with fewer than 3 pairs or a constant side.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 {
        return None;
    }
    let rx = Data::new(x.to_vec()).ranks(RankTieBreaker::Average);
    let ry = Data::new(y.to_vec()).ranks(RankTieBreaker::Average);
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let sxy: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let syy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// `(method, task, seed and pooled draws)`: the trials that differ only in their sweep point.
fn group_key(r: &TrialResult) -> (String, String, String) {
    let pooled: Vec<String> = POOLED_KEYS.iter().filter_map(|k| r.sweep.get(*k).map(|v| format!("{k}={v}"))).collect();
    (r.method.clone(), r.task(), format!("seed={} {}", r.seed, pooled.join(" ")))
}

/// `--select-by`: of each group's trials, the one whose kept model (`selected`, the trial's own selection rule)
/// scores highest by `v` (the first in folder order on ties), with its sweep values dropped but the pooled ones.
/// A trial without a score by `v` is an error that says how to get one.
pub fn pick_sweep_points(
    results: Vec<(TrialResult, PathBuf)>,
    v: Validator,
    test: bool,
) -> Result<Vec<(TrialResult, PathBuf)>> {
    let mut best: BTreeMap<(String, String, String), (f64, usize)> = BTreeMap::new();
    for (i, (r, _)) in results.iter().enumerate() {
        let s = score(&r.selected, v, test).ok_or_else(|| {
            let why = r.selected.validator_errors.get(v.name()).map_or_else(
                || format!("list `{v}` in train.validators and rerun"),
                |e| format!("it failed there: {e}"),
            );
            Error::Other(format!("--select-by {v}: trial {} has no `{v}` score at its kept model ({why})", r.trial))
        })?;
        let slot = best.entry(group_key(r)).or_insert((s, i));
        if s > slot.0 {
            *slot = (s, i);
        }
    }
    let keep: std::collections::HashSet<usize> = best.values().map(|&(_, i)| i).collect();
    Ok(results
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, (mut r, d))| {
            r.sweep.retain(|k, _| POOLED_KEYS.contains(&k.as_str()));
            (r, d)
        })
        .collect())
}

/// One row of the regret table: a selection rule's mean target accuracy and regret over the groups it scored.
#[derive(Debug, Clone, PartialEq)]
pub struct RegretRow {
    /// The validator's name, `target_oracle` or `last`.
    pub name: String,
    /// Picking over every checkpoint of every sweep point: (mean target accuracy of the pick, mean regret).
    pub all: Option<(f64, f64)>,
    /// Picking a sweep point by its last checkpoint: (mean target accuracy, mean regret vs the ORACLE's pick
    /// among last checkpoints).
    pub last: Option<(f64, f64)>,
    /// Mean over trials of Spearman's ρ between the score and target accuracy over a trial's checkpoints.
    pub rho_checkpoints: Option<f64>,
    /// Mean over groups of Spearman's ρ over the sweep points' last checkpoints.
    pub rho_sweep: Option<f64>,
    /// Groups scored (of [`MethodRegret::groups`]).
    pub groups: usize,
}

/// The regret table of one method.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodRegret {
    pub method: String,
    /// Sweep points per group (the largest).
    pub sweep_points: usize,
    pub groups: usize,
    /// Validators in [`Validator::ALL`] order, then `last`, then the ORACLE.
    pub rows: Vec<RegretRow>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The `(score, target accuracy)` of the candidate with the highest score (the first on ties).
fn argmax<'a>(cands: impl Iterator<Item = (Option<f64>, f64)> + 'a) -> Option<(f64, f64)> {
    cands.filter_map(|(s, a)| s.map(|s| (s, a))).fold(None, |b, c| match b {
        Some(b) if b.0 >= c.0 => Some(b),
        _ => Some(c),
    })
}

/// The selection-regret table of every method of `results` (target accuracy on the test split when `test`).
pub fn regret(results: &[&TrialResult], test: bool) -> Vec<MethodRegret> {
    let mut groups: BTreeMap<(String, String, String), Vec<&TrialResult>> = BTreeMap::new();
    for r in results {
        groups.entry(group_key(r)).or_default().push(r);
    }
    let mut methods: Vec<String> = Vec::new();
    for r in results {
        if !methods.contains(&r.method) {
            methods.push(r.method.clone());
        }
    }
    let evals = |r: &TrialResult| -> Vec<EvalRecord> {
        if r.evaluations.is_empty() { vec![r.last.clone()] } else { r.evaluations.clone() }
    };
    let mut out = Vec::new();
    for m in methods {
        let gs: Vec<&Vec<&TrialResult>> = groups.iter().filter(|(k, _)| k.0 == m).map(|(_, v)| v).collect();
        let seen: Vec<Validator> = Validator::ALL
            .into_iter()
            .filter(|v| {
                !v.is_oracle()
                    && gs.iter().any(|g| g.iter().any(|r| evals(r).iter().any(|e| e.validators.contains_key(v.name()))))
            })
            .collect();
        // Per group: the ORACLE's best over all checkpoints and over last checkpoints.
        let oracle: Vec<(f64, f64)> = gs
            .iter()
            .map(|g| {
                let all = g.iter().flat_map(|r| evals(r)).map(|e| target_accuracy(&e, test)).fold(f64::MIN, f64::max);
                let last = g.iter().map(|r| target_accuracy(&r.last, test)).fold(f64::MIN, f64::max);
                (all, last)
            })
            .collect();
        let row = |name: &str, v: Option<Validator>| -> RegretRow {
            let (mut all, mut all_regret, mut last, mut last_regret, mut rho_c, mut rho_s) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            let mut scored = 0;
            for (g, (o_all, o_last)) in gs.iter().zip(&oracle) {
                let Some(v) = v else {
                    // `last`: no selection, the mean over sweep points of the last checkpoint.
                    let accs: Vec<f64> = g.iter().map(|r| target_accuracy(&r.last, test)).collect();
                    let a = mean(&accs).expect("a group has a trial");
                    last.push(a);
                    last_regret.push(o_last - a);
                    scored += 1;
                    continue;
                };
                let mut any = false;
                if let Some((_, a)) =
                    argmax(g.iter().flat_map(|r| evals(r)).map(|e| (score(&e, v, test), target_accuracy(&e, test))))
                {
                    all.push(a);
                    all_regret.push(o_all - a);
                    any = true;
                }
                if let Some((_, a)) =
                    argmax(g.iter().map(|r| (score(&r.last, v, test), target_accuracy(&r.last, test))))
                {
                    last.push(a);
                    last_regret.push(o_last - a);
                }
                scored += usize::from(any);
                for r in g.iter() {
                    let pairs: Vec<(f64, f64)> = evals(r)
                        .iter()
                        .filter_map(|e| score(e, v, test).map(|s| (s, target_accuracy(e, test))))
                        .collect();
                    let (s, a): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
                    rho_c.extend(spearman(&s, &a));
                }
                let pairs: Vec<(f64, f64)> = g
                    .iter()
                    .filter_map(|r| score(&r.last, v, test).map(|s| (s, target_accuracy(&r.last, test))))
                    .collect();
                let (s, a): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
                rho_s.extend(spearman(&s, &a));
            }
            let pair = |a: &[f64], r: &[f64]| mean(a).zip(mean(r));
            RegretRow {
                name: name.to_string(),
                all: pair(&all, &all_regret),
                last: pair(&last, &last_regret),
                rho_checkpoints: mean(&rho_c),
                rho_sweep: mean(&rho_s),
                groups: scored,
            }
        };
        let mut rows: Vec<RegretRow> = seen.iter().map(|&v| row(v.name(), Some(v))).collect();
        rows.push(row("last", None));
        rows.push(row(Validator::TargetOracle.name(), Some(Validator::TargetOracle)));
        out.push(MethodRegret {
            method: m,
            sweep_points: gs.iter().map(|g| g.len()).max().unwrap_or(0),
            groups: gs.len(),
            rows,
        });
    }
    out
}

/// The regret tables as Markdown, accuracies and regrets in points.
pub fn markdown(experiment: &str, tables: &[MethodRegret], test: bool) -> String {
    let what = if test { "target test accuracy" } else { "target accuracy" };
    let mut s = format!(
        "**{experiment}: model selection without target labels — {what} (%) of each rule's pick and its regret \
         (ORACLE's pick − the rule's), mean over groups (task × seed); Spearman ρ between score and {what}.**\n"
    );
    let pct = |x: Option<(f64, f64)>| match x {
        Some((a, r)) => (format!("{:.1}", 100.0 * a), format!("{:.1}", 100.0 * r)),
        None => ("–".into(), "–".into()),
    };
    let rho = |x: Option<f64>| x.map_or("–".into(), |r| format!("{r:+.2}"));
    for t in tables {
        s.push_str(&format!(
            "\n*{}*: {} group(s), {} sweep point(s) each.\n\n\
             | selection | pick over all checkpoints | regret | pick over last checkpoints | regret | ρ checkpoints | ρ sweep points | groups |\n\
             |---|---|---|---|---|---|---|---|\n",
            t.method, t.groups, t.sweep_points
        ));
        for r in &t.rows {
            let name = match r.name.as_str() {
                "last" => "`last` (no selection: mean over sweep points)".to_string(),
                "target_oracle" => "target_oracle (ORACLE: uses target labels)".to_string(),
                n => format!("`{n}`"),
            };
            let (a, ar) = pct(r.all);
            let (l, lr) = pct(r.last);
            let (rc, rs) = if r.name == "last" {
                ("–".into(), "–".into())
            } else {
                (rho(r.rho_checkpoints), rho(r.rho_sweep))
            };
            s.push_str(&format!("| {name} | {a} | {ar} | {l} | {lr} | {rc} | {rs} | {} |\n", r.groups));
        }
    }
    s.push_str(
        "\nA rule's pick over all checkpoints takes, per group, the evaluation with its highest score among every \
         checkpoint of every sweep point; over last checkpoints, the sweep point whose last checkpoint scores \
         highest. Regret = the ORACLE's pick (highest target accuracy, same candidates) − the rule's, in points. \
         ρ checkpoints: mean over trials of Spearman's ρ over a trial's evaluations; ρ sweep points: mean over \
         groups of ρ over the last checkpoints of its sweep points (– with fewer than 3). docs/model-selection.md.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// SciPy's `spearmanr` on the same inputs (tests/reference/selection_reference.py, SciPy 1.17.1).
    #[test]
    fn spearman_matches_scipy_with_ties() {
        let cases: [(&[f64], &[f64], f64); 3] = [
            (&[0.1, 0.4, 0.35, 0.8, 0.8], &[0.70, 0.72, 0.71, 0.69, 0.75], 0.20519567041703085),
            (&[-1.0, -0.5, -0.2, -0.1], &[0.9, 0.8, 0.85, 0.6], -0.7999999999999999),
            (&[3.0, 1.0, 2.0], &[0.5, 0.7, 0.6], -1.0),
        ];
        for (x, y, want) in cases {
            let got = spearman(x, y).unwrap();
            assert!((got - want).abs() < 1e-12, "{x:?} {y:?}: {got} vs {want}");
        }
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0]), None, "fewer than 3 pairs");
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None, "a constant side");
    }

    /// A trial with evaluations `(step, target accuracy, {validator: score})`.
    fn trial(id: &str, seed: u64, lambda: f64, evals: &[(usize, f64, f64)]) -> TrialResult {
        let recs: Vec<serde_json::Value> = evals
            .iter()
            .map(|&(step, acc, dev)| json!({"step": step, "source": 1.0, "target": acc, "validators": {"dev": dev}}))
            .collect();
        serde_json::from_value(json!({
            "trial": id, "experiment": "e", "method": "dann", "source": "A", "target": "W", "seed": seed,
            "sweep": {"methods.dann.trade_off": lambda}, "selection": "last", "oracle": false,
            "selected": recs.last().unwrap(), "last": recs.last().unwrap(), "evaluations": recs,
            "steps": 2, "seconds": 0.1, "device": "cpu", "dalab_version": "0"
        }))
        .unwrap()
    }

    /// Hand-computed regret table of two seeds × three sweep points × two checkpoints.
    #[test]
    fn regret_and_sweep_picks_on_a_constructed_case() {
        let rs = [
            // seed 0: dev's best checkpoint overall is λ=1 step 1 (0.70); the ORACLE's is λ=0.1 step 1 (0.80).
            trial("a0", 0, 0.1, &[(1, 0.80, -0.5), (2, 0.75, -0.4)]),
            trial("b0", 0, 1.0, &[(1, 0.70, -0.1), (2, 0.60, -0.3)]),
            trial("c0", 0, 3.0, &[(1, 0.65, -0.9), (2, 0.66, -0.8)]),
            // seed 1: dev picks the ORACLE's checkpoint (λ=0.1 step 2, 0.90).
            trial("a1", 1, 0.1, &[(1, 0.85, -0.3), (2, 0.90, -0.2)]),
            trial("b1", 1, 1.0, &[(1, 0.70, -0.6), (2, 0.72, -0.5)]),
            trial("c1", 1, 3.0, &[(1, 0.50, -0.7), (2, 0.55, -0.9)]),
        ];
        let refs: Vec<&TrialResult> = rs.iter().collect();
        let t = &regret(&refs, false)[0];
        assert_eq!((t.method.as_str(), t.groups, t.sweep_points), ("dann", 2, 3));
        let row = |n: &str| t.rows.iter().find(|r| r.name == n).unwrap().clone();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let dev = row("dev");
        let (acc, reg) = dev.all.unwrap();
        assert!(close(acc, (0.70 + 0.90) / 2.0) && close(reg, (0.10 + 0.0) / 2.0), "{dev:?}");
        // Last checkpoints: seed 0 dev picks λ=1 (−0.3 > −0.4: 0.60; ORACLE 0.75), seed 1 λ=0.1 (0.90 = ORACLE).
        let (acc, reg) = dev.last.unwrap();
        assert!(close(acc, (0.60 + 0.90) / 2.0) && close(reg, (0.15 + 0.0) / 2.0), "{dev:?}");
        assert_eq!(dev.groups, 2);
        // Sweep-point ρ: seed 0 scores (−0.4, −0.3, −0.8) vs (0.75, 0.60, 0.66): ρ = −0.5; seed 1 (−0.2, −0.5,
        // −0.9) vs (0.90, 0.72, 0.55): ρ = 1.
        assert!(close(dev.rho_sweep.unwrap(), 0.25), "{dev:?}");
        let oracle = row("target_oracle");
        assert_eq!(oracle.all.unwrap(), ((0.80 + 0.90) / 2.0, 0.0));
        let last = row("last");
        let (acc, _) = last.last.unwrap();
        assert!(close(acc, ((0.75 + 0.60 + 0.66) / 3.0 + (0.90 + 0.72 + 0.55) / 3.0) / 2.0));
        assert!(last.all.is_none());

        // --select-by dev: per seed the trial whose kept (last) model scores highest: b0 and a1.
        let with_dirs: Vec<(TrialResult, PathBuf)> = rs.iter().map(|r| (r.clone(), PathBuf::from(&r.trial))).collect();
        let picked = pick_sweep_points(with_dirs.clone(), Validator::Dev, false).unwrap();
        let ids: Vec<&str> = picked.iter().map(|(r, _)| r.trial.as_str()).collect();
        assert_eq!(ids, ["b0", "a1"]);
        assert!(picked.iter().all(|(r, _)| r.sweep.is_empty()));
        let e = pick_sweep_points(with_dirs, Validator::Iwcv, false).unwrap_err().to_string();
        assert_eq!(
            e,
            "--select-by iwcv: trial a0 has no `iwcv` score at its kept model (list `iwcv` in train.validators and rerun)"
        );
    }

    /// Every experiment file says in its first lines how it selects models and hyperparameters without target
    /// labels (`Model selection:`), or that it uses the ORACLE and why (`ORACLE`).
    #[test]
    fn every_experiment_file_says_how_it_selects() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
        let mut files = Vec::new();
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() && p.file_name().is_some_and(|n| n != "reference") {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml") {
                    files.push(p);
                }
            }
        }
        assert!(files.len() >= 16, "{files:?}");
        for f in files {
            let head: Vec<String> = std::fs::read_to_string(&f).unwrap().lines().take(8).map(str::to_string).collect();
            assert!(
                head.iter().any(|l| l.starts_with('#') && (l.contains("Model selection") || l.contains("ORACLE"))),
                "{}: its first lines do not say how it selects (`# Model selection: ...` or `# ORACLE ...`)",
                f.display()
            );
        }
    }
}
