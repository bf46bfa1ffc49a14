//! `dalab report`: result tables (Markdown and CSV) and accuracy curves (PNG) from an experiment's folder.
//!
//! Rows are methods × swept values, columns are tasks plus their average, cells are the mean ± sample standard
//! deviation over seeds of the target accuracy of the selected model (the separate target test set where the
//! dataset has one). The caption says how many seeds and which selection rule; a target-label oracle is
//! marked in the caption and in every row it touches. Swept keys that are random draws of a protocol
//! ([`POOLED_KEYS`], e.g. the CORAL standard protocol's `dataset.sample_seed`) are pooled like seeds: one row,
//! every draw a value of its cells.

use crate::store::{TrialStatus, status};
use crate::trial::{TrialResult, label};
use crate::{Error, Result, io_err};
use dalab_train::{EvalRecord, Validator};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Swept keys whose values are replicates (random draws of a protocol), pooled into the cells like seeds.
pub const POOLED_KEYS: &[&str] = &["dataset.sample_seed"];

/// Paper numbers to show next to ours (`--reference FILE`):
///
/// ```yaml
/// caption: DANN paper (Ganin et al., JMLR 2016), Table 1a
/// tolerance: 1.5                # optional: differences beyond ±1.5 points are marked
/// rows:
///   - name: DANN (paper)
///     compare_to: dann          # a row of our table: adds a row of differences (ours − paper)
///     values: {books→kitchen: 77.9}
///     notes: {books→kitchen: why the cell differs}   # optional, printed under the table
/// notes: text printed under the table   # optional
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    #[serde(default)]
    pub caption: String,
    /// Differences (points) beyond ± this are marked in bold.
    #[serde(default)]
    pub tolerance: Option<f64>,
    #[serde(default)]
    pub rows: Vec<ReferenceRow>,
    #[serde(default)]
    pub notes: String,
    /// The split the paper scores: `target` (the target training data the method adapted to, transductive) or
    /// `target_test` (the separate test split). Default: the test split when every trial has one.
    #[serde(default)]
    pub split: Option<Split>,
    /// Figures the paper shows that the report should draw too (`boundaries`: the DANN paper's Figure 2 for every
    /// trial on 2-d inputs, as `dalab report --boundaries`).
    #[serde(default)]
    pub figures: Vec<Figure>,
    /// The row the gain table measures against (`--baseline`; default [`BASELINE`]), e.g. `target-only` for the
    /// single-task baselines of multi-task learning.
    #[serde(default)]
    pub baseline: Option<String>,
}

/// A figure a reference file asks for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// The DANN paper's Figure 2 for trials on 2-d inputs (`--boundaries`).
    Boundaries,
    /// Accuracy against a swept key (`--plot-sweep KEY`).
    Sweep(String),
    /// Torrey & Shavlik's three measures of transfer per row (`--transfer-measures`).
    TransferMeasures,
    /// The accuracy on every domain of a (multi-source) task after each stage, and the forgetting (`--per-task`).
    PerTask,
}

/// Which target accuracy a table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Target,
    TargetTest,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceRow {
    pub name: String,
    #[serde(default)]
    pub compare_to: Option<String>,
    /// Task → accuracy in percent.
    pub values: BTreeMap<String, f64>,
    /// Task (or `avg`) → an explanation of the difference.
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
}

/// Reads a reference file; errors name the file, line and key.
pub fn load_reference(path: &Path) -> Result<Reference> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let r: std::result::Result<Reference, serde_saphyr::Error> = serde_saphyr::from_str(&text);
    r.map_err(|e| {
        let msg = e.without_snippet().to_string();
        let first = msg.lines().next().unwrap_or("invalid YAML");
        match e.location() {
            Some(l) => Error::Config(format!("{}:{}:{}: {first}", path.display(), l.line(), l.column())),
            None => Error::Config(format!("{}: {first}", path.display())),
        }
    })
}

/// One cell: accuracies (in [0, 1]) over seeds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub values: Vec<f64>,
    /// What each value is a replicate of (`seed=…` and any pooled draw), to pair cells across rows.
    pub keys: Vec<String>,
}

impl Cell {
    /// In points: `mean ± std` over its values, or the value alone when there is one.
    pub fn text(&self) -> String {
        if self.values.len() > 1 {
            format!("{:.1} ± {:.1}", 100.0 * self.mean(), 100.0 * self.std())
        } else {
            format!("{:.1}", 100.0 * self.mean())
        }
    }

    pub fn mean(&self) -> f64 {
        self.values.iter().sum::<f64>() / self.values.len() as f64
    }

    /// Sample standard deviation (n − 1); 0 for one value.
    pub fn std(&self) -> f64 {
        let n = self.values.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        (self.values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    }
}

/// The aggregated results of an experiment folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub experiment: String,
    /// Row labels in order.
    pub rows: Vec<String>,
    /// Task labels in order.
    pub tasks: Vec<String>,
    /// (row, task) → cell.
    pub cells: BTreeMap<(String, String), Cell>,
    /// Selection rules seen (normally one).
    pub selections: Vec<String>,
    pub oracle: bool,
    /// True when the cells are target *test* accuracies.
    pub test_split: bool,
    pub failed: usize,
    /// Swept keys pooled like seeds ([`POOLED_KEYS`] that vary in this experiment).
    pub pooled: Vec<String>,
    /// Trial folders of finished trials, by row and task (for curves).
    pub trial_dirs: BTreeMap<(String, String), Vec<PathBuf>>,
    /// The validator that picked one sweep point per method × task × seed (`--select-by`), if any.
    pub select_by: Option<String>,
    /// (row, task) → the sweep point `select_by` chose for each value of the cell, in the cell's order (`trade_off=0.1`);
    /// only for methods with more than one sweep point.
    pub picks: BTreeMap<(String, String), Vec<String>>,
    /// The row the gains are measured against ([`BASELINE`] unless changed).
    pub baseline: String,
    /// Rows with a trial that was given target labels (`setting:` supervised or semi-supervised).
    pub labelled_rows: Vec<String>,
}

/// The row every other row's gain is measured against: the source-only model, same task, seeds and selection.
pub const BASELINE: &str = "source-only";

/// Significance level of the negative-transfer flag (one-sided paired t-test).
pub const NEGATIVE_TRANSFER_ALPHA: f64 = 0.05;

/// One-sided paired t-test of "`row` is below the baseline": the mean paired difference (row − baseline, over
/// the replicates both cells have) and its p-value, `P(T_{n−1} ≤ t)`, `t = mean / (sd / √n)` (as
/// `scipy.stats.ttest_rel(row, baseline, alternative="less")`). Needs n ≥ 2 pairs; with identical differences
/// (sd = 0) the p-value is 0 for a negative mean and 1 otherwise.
pub fn paired_loss_test(row: &Cell, baseline: &Cell) -> Option<(f64, usize, Option<f64>)> {
    let diffs: Vec<f64> = row
        .keys
        .iter()
        .zip(&row.values)
        .filter_map(|(k, v)| baseline.keys.iter().position(|b| b == k).map(|j| v - baseline.values[j]))
        .collect();
    let n = diffs.len();
    if n == 0 {
        return None;
    }
    let mean = diffs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Some((mean, n, None));
    }
    let sd = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let p = if sd == 0.0 {
        if mean < 0.0 { 0.0 } else { 1.0 }
    } else {
        use statrs::distribution::{ContinuousCDF, StudentsT};
        let t = mean / (sd / (n as f64).sqrt());
        StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("n >= 2 degrees of freedom").cdf(t)
    };
    Some((mean, n, Some(p)))
}

/// The finished trials of an experiment folder (only those in `only`, when given: the trials of the current
/// experiment file, leaving out folders of earlier versions of it), in folder order, and the number of failed ones.
pub fn load_results(
    exp_dir: &Path,
    only: Option<&std::collections::HashSet<String>>,
) -> Result<(Vec<(TrialResult, PathBuf)>, usize)> {
    let entries = std::fs::read_dir(exp_dir).map_err(io_err(exp_dir))?;
    let mut results: Vec<(TrialResult, PathBuf)> = Vec::new();
    let mut failed = 0;
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    for d in dirs {
        let Some(name) = d.file_name().and_then(|n| n.to_str()) else { continue };
        if name.starts_with('.') || name == "plots" || only.is_some_and(|o| !o.contains(name)) {
            continue;
        }
        match status(&d) {
            TrialStatus::Done(r) => results.push((*r, d)),
            TrialStatus::Failed(_) => failed += 1,
            TrialStatus::Pending => {}
        }
    }
    if results.is_empty() {
        return Err(Error::Other(format!(
            "{}: no finished trial (no */result.json); run the experiment first",
            exp_dir.display()
        )));
    }
    Ok((results, failed))
}

/// Whether tables show target *test* accuracies: `split`, or by default the test split when every trial has one.
pub fn test_split(results: &[(TrialResult, PathBuf)], split: Option<Split>, exp_dir: &Path) -> Result<bool> {
    let all_have_test = results.iter().all(|(r, _)| r.selected.target_test.is_some());
    match split {
        None => Ok(all_have_test),
        Some(Split::Target) => Ok(false),
        Some(Split::TargetTest) if all_have_test => Ok(true),
        Some(Split::TargetTest) => {
            Err(Error::Other(format!("{}: split target_test: a trial has no target test split", exp_dir.display())))
        }
    }
}

/// Reads the finished trials of an experiment folder into a table (see [`load_results`]). `row_order` /
/// `task_order` fix the order; anything else comes after, sorted.
pub fn collect(
    exp_dir: &Path,
    only: Option<&std::collections::HashSet<String>>,
    row_order: &[String],
    task_order: &[String],
    split: Option<Split>,
) -> Result<Table> {
    collect_with(exp_dir, only, row_order, task_order, split, None)
}

/// [`collect`], with `select_by`: one sweep point per method × task × seed, the one whose kept model scores
/// highest by the validator ([`crate::selection::pick_sweep_points`]); rows are then methods.
pub fn collect_with(
    exp_dir: &Path,
    only: Option<&std::collections::HashSet<String>>,
    row_order: &[String],
    task_order: &[String],
    split: Option<Split>,
    select_by: Option<Validator>,
) -> Result<Table> {
    let (mut results, failed) = load_results(exp_dir, only)?;
    let experiment = results[0].0.experiment.clone();
    let test_split = test_split(&results, split, exp_dir)?;
    let mut row_order = row_order.to_vec();
    // Each trial's sweep point (pooled keys left out), for the table of what `select_by` chose: only trials of a
    // method with more than one point.
    let mut points: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    if let Some(v) = select_by {
        let point = |r: &TrialResult| {
            let mut p = r.sweep.clone();
            p.retain(|k, _| !POOLED_KEYS.contains(&k.as_str()));
            p
        };
        let mut labels: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for (r, _) in &results {
            labels.entry(r.method.clone()).or_default().insert(label(&r.method, &point(r)));
        }
        points = results
            .iter()
            .filter(|(r, _)| labels[&r.method].len() > 1)
            .map(|(r, _)| (r.trial.clone(), point(r)))
            .collect();
        // A tie goes to the sweep point the experiment lists first (its row order), not to the trial ids' hash order.
        let pos = |r: &TrialResult| row_order.iter().position(|o| *o == label(&r.method, &r.sweep));
        results.sort_by_key(|(r, _)| pos(r).unwrap_or(usize::MAX));
        results = crate::selection::pick_sweep_points(results, v, test_split)?;
        results.sort_by(|a, b| a.1.cmp(&b.1));
        let mut methods: Vec<String> = Vec::new();
        for l in &row_order {
            let m = l.split(" (").next().unwrap_or(l).to_string();
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
        row_order = methods;
    }
    let mut rows: Vec<String> = Vec::new();
    let mut tasks: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(String, String), Cell> = BTreeMap::new();
    let mut trial_dirs: BTreeMap<(String, String), Vec<PathBuf>> = BTreeMap::new();
    let mut selections: Vec<String> = Vec::new();
    let mut oracle = select_by.is_some_and(Validator::is_oracle);
    let mut pooled: Vec<String> = Vec::new();
    let mut labelled_rows: Vec<String> = Vec::new();
    let mut picks: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (r, d) in &results {
        let mut sweep = r.sweep.clone();
        let mut key = format!("seed={}", r.seed);
        for k in POOLED_KEYS {
            if let Some(v) = sweep.remove(*k) {
                key.push_str(&format!(" {k}={v}"));
                if !pooled.iter().any(|p| p == k) {
                    pooled.push(k.to_string());
                }
            }
        }
        let row = label(&r.method, &sweep);
        let task = r.task();
        if !rows.contains(&row) {
            rows.push(row.clone());
        }
        if !tasks.contains(&task) {
            tasks.push(task.clone());
        }
        let acc = if test_split { r.selected.target_test.unwrap_or(r.selected.target) } else { r.selected.target };
        let cell = cells.entry((row.clone(), task.clone())).or_default();
        cell.values.push(acc);
        cell.keys.push(key);
        if let Some(p) = points.get(&r.trial) {
            let chosen = label(&r.method, p);
            let chosen = chosen.strip_prefix(&format!("{} (", r.method)).and_then(|c| c.strip_suffix(')'));
            picks.entry((row.clone(), task.clone())).or_default().push(chosen.unwrap_or_default().to_string());
        }
        if r.labelled_target.is_some() && !labelled_rows.contains(&row) {
            labelled_rows.push(row.clone());
        }
        trial_dirs.entry((row, task)).or_default().push(d.clone());
        let sel = r.selection.label().to_string();
        if !selections.contains(&sel) {
            selections.push(sel);
        }
        oracle |= r.oracle;
    }
    order_by(&mut rows, &row_order);
    order_by(&mut tasks, task_order);
    let select_by = select_by.map(|v| {
        if v.is_oracle() { "target_oracle (ORACLE: uses target labels)".to_string() } else { v.name().to_string() }
    });
    Ok(Table {
        experiment,
        rows,
        tasks,
        cells,
        selections,
        oracle,
        test_split,
        failed,
        pooled,
        trial_dirs,
        select_by,
        picks,
        baseline: BASELINE.to_string(),
        labelled_rows,
    })
}

/// Sorts `v`: items of `order` first in that order, the rest alphabetically.
fn order_by(v: &mut [String], order: &[String]) {
    v.sort_by_key(|x| (order.iter().position(|o| o == x).unwrap_or(usize::MAX), x.clone()));
}

impl Table {
    /// Mean of the task means of a row, when the row has every task.
    pub fn average(&self, row: &str) -> Option<f64> {
        let means: Option<Vec<f64>> =
            self.tasks.iter().map(|t| self.cells.get(&(row.to_string(), t.clone())).map(Cell::mean)).collect();
        means.filter(|m| !m.is_empty()).map(|m| m.iter().sum::<f64>() / m.len() as f64)
    }

    fn seeds_note(&self) -> String {
        let mut ns: Vec<usize> = self.cells.values().map(|c| c.values.len()).collect();
        ns.sort();
        ns.dedup();
        let what = if self.pooled.is_empty() {
            "seed".to_string()
        } else {
            format!("run (seeds × random draws of {})", self.pooled.join(", "))
        };
        match ns.as_slice() {
            [1] => format!("1 {what}"),
            [n] => format!("{n} {}", plural(&what)),
            _ => format!("{}–{} {} per cell", ns[0], ns[ns.len() - 1], plural(&what)),
        }
    }

    /// The caption: what the numbers are.
    pub fn caption(&self) -> String {
        let what = if self.test_split { "target test accuracy" } else { "target accuracy" };
        let mut c = format!(
            "{}: {what} (%), mean ± std over {}; model selection: {}.",
            self.experiment,
            self.seeds_note(),
            self.selections.join(", ")
        );
        if let Some(v) = &self.select_by {
            c.pop();
            c.push_str(&format!("; sweep point chosen per task and seed by {v} (of each trial's kept model)."));
        }
        if self.oracle {
            c.push_str(" ORACLE: models were selected with target labels; not an unsupervised DA result.");
        }
        if !self.labelled_rows.is_empty() {
            c.push_str(&format!(
                " Trained with target labels (`setting:` supervised or semi-supervised; not unsupervised DA): {}.",
                self.labelled_rows.join(", ")
            ));
        }
        if self.failed > 0 {
            c.push_str(&format!(" {} failed trial(s) are not included.", self.failed));
        }
        c
    }

    fn cell_text(&self, row: &str, task: &str) -> String {
        match self.cells.get(&(row.to_string(), task.to_string())) {
            None => "–".into(),
            Some(c) => c.text(),
        }
    }

    /// An error naming a reference row's `compare_to` that is no row of the table, or (unless `subset`: the table
    /// shows only some of the experiment's tasks, e.g. under `--set tasks=[...]`) a task of its values that is no
    /// task of the table (a typo there would otherwise show as an empty cell). A `compare_to` among `left_out`
    /// (rows of the experiment file that overrides such as `~methods.dann` removed) is no error: that paper row
    /// is shown without its difference row.
    pub fn check_reference(&self, r: &Reference, subset: bool, left_out: &[String]) -> Result<()> {
        for rr in &r.rows {
            if let Some(c) = rr
                .compare_to
                .as_deref()
                .filter(|c| !self.rows.iter().any(|row| row == c) && !left_out.iter().any(|row| row == c))
            {
                return Err(Error::Config(format!(
                    "reference row `{}`: compare_to `{c}` is no row of the table (rows: {})",
                    rr.name,
                    self.rows.join(", ")
                )));
            }
            if subset {
                continue;
            }
            if let Some(t) = rr.values.keys().chain(rr.notes.keys()).find(|t| *t != "avg" && !self.tasks.contains(t)) {
                return Err(Error::Config(format!(
                    "reference row `{}`: task `{t}` is no task of the table (tasks: {})",
                    rr.name,
                    self.tasks.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The Markdown table with its caption, plus reference rows and differences when given.
    pub fn markdown(&self, reference: Option<&Reference>) -> String {
        let mut s = format!("**{}**\n\n", self.caption());
        s.push_str(&format!("| method | {} | avg |\n", self.tasks.join(" | ")));
        s.push_str(&format!("|---|{}---|\n", "---|".repeat(self.tasks.len())));
        for row in &self.rows {
            let cells: Vec<String> = self.tasks.iter().map(|t| self.cell_text(row, t)).collect();
            let avg = self.average(row).map(|a| format!("{:.1}", 100.0 * a)).unwrap_or_else(|| "–".into());
            s.push_str(&format!("| {row} | {} | {avg} |\n", cells.join(" | ")));
        }
        if let Some(r) = reference {
            for rr in &r.rows {
                let vals: Vec<String> = self
                    .tasks
                    .iter()
                    .map(|t| rr.values.get(t).map(|v| format!("{v:.1}")).unwrap_or("–".into()))
                    .collect();
                let avg = ref_average(rr, &self.tasks).map(|a| format!("{a:.1}")).unwrap_or("–".into());
                s.push_str(&format!("| *{}* | {} | {avg} |\n", rr.name, vals.join(" | ")));
                if let Some(ours) = rr.compare_to.as_deref().filter(|o| self.rows.iter().any(|r| r == o)) {
                    let mark = |d: f64| {
                        // A difference that rounds to zero prints as +0.0, whatever its sign.
                        let t = if d.abs() < 0.05 { "+0.0".to_string() } else { format!("{d:+.1}") };
                        if r.tolerance.is_some_and(|tol| d.abs() > tol) { format!("**{t}**") } else { t }
                    };
                    let diffs: Vec<String> = self
                        .tasks
                        .iter()
                        .map(|t| match (self.cells.get(&(ours.to_string(), t.clone())), rr.values.get(t)) {
                            (Some(c), Some(p)) => mark(100.0 * c.mean() - p),
                            _ => "–".into(),
                        })
                        .collect();
                    let avg = match (self.average(ours), ref_average(rr, &self.tasks)) {
                        (Some(a), Some(p)) => mark(100.0 * a - p),
                        _ => "–".into(),
                    };
                    s.push_str(&format!("| Δ {ours} − {} | {} | {avg} |\n", rr.name, diffs.join(" | ")));
                }
            }
            if !r.caption.is_empty() {
                s.push_str(&format!("\nReference rows (*italic*): {}.\n", r.caption));
            }
            if let Some(tol) = r.tolerance {
                s.push_str(&format!("Δ in **bold**: beyond ±{tol} points.\n"));
            }
            let notes: Vec<String> = r
                .rows
                .iter()
                .flat_map(|rr| rr.notes.iter().map(move |(task, text)| format!("- {} {task}: {text}", rr.name)))
                .collect();
            if !notes.is_empty() {
                s.push_str(&format!("\nNotes:\n{}\n", notes.join("\n")));
            }
            if !r.notes.trim().is_empty() {
                s.push_str(&format!("\n{}\n", r.notes.trim()));
            }
        }
        if let Some(p) = self.picks_markdown() {
            s.push_str(&p);
        }
        if let Some(g) = self.gains_markdown() {
            s.push_str(&g);
        }
        s
    }

    /// The sweep point `--select-by` chose per row and task (one per value of the cell, in its order: seeds,
    /// draws); None without a selection or a row with more than one sweep point.
    pub fn picks_markdown(&self) -> Option<String> {
        let v = self.select_by.as_ref().filter(|_| !self.picks.is_empty())?;
        let mut s = format!(
            "\n**Sweep point chosen by {v}** (per task; one per run of the cell, in the order of its seeds).\n\n\
             | method | {} |\n|---|{}\n",
            self.tasks.join(" | "),
            "---|".repeat(self.tasks.len())
        );
        for row in self.rows.iter().filter(|r| self.picks.keys().any(|(pr, _)| pr == *r)) {
            let cells: Vec<String> = self
                .tasks
                .iter()
                .map(|t| self.picks.get(&(row.clone(), t.clone())).map_or("–".to_string(), |p| p.join("; ")))
                .collect();
            s.push_str(&format!("| {row} | {} |\n", cells.join(" | ")));
        }
        Some(s)
    }

    /// The gain of every other row over the baseline row, per task, in points (mean of the paired differences
    /// over the replicates both cells have: same task, seed, draw and selection rule), with a significant loss —
    /// negative transfer — marked ▼ ([`paired_loss_test`], p < [`NEGATIVE_TRANSFER_ALPHA`]). None without a
    /// baseline row or another row.
    pub fn gains_markdown(&self) -> Option<String> {
        let base = &self.baseline;
        if !self.rows.contains(base) || self.rows.len() < 2 {
            return None;
        }
        let mut s = format!(
            "\n**Gain vs {base} (points; ▼ = significantly below {base}: negative transfer).**\n\n| method | {} | avg |\n|---|{}---|\n",
            self.tasks.join(" | "),
            "---|".repeat(self.tasks.len())
        );
        let mut flagged = Vec::new();
        for row in self.rows.iter().filter(|r| *r != base) {
            let mut texts = Vec::new();
            let mut means = Vec::new();
            for t in &self.tasks {
                let test = match (self.cells.get(&(row.clone(), t.clone())), self.cells.get(&(base.clone(), t.clone())))
                {
                    (Some(c), Some(b)) => paired_loss_test(c, b),
                    _ => None,
                };
                texts.push(match test {
                    None => "–".to_string(),
                    Some((d, n, p)) => {
                        means.push(d);
                        let mut x = format!("{:+.1}", 100.0 * d);
                        if p.is_some_and(|p| p < NEGATIVE_TRANSFER_ALPHA) {
                            x.push_str(" ▼");
                            flagged.push(format!(
                                "{row} on {t} ({:+.1}, p = {:.3}, n = {n})",
                                100.0 * d,
                                p.expect("flagged")
                            ));
                        }
                        x
                    }
                });
            }
            let avg = if means.len() == self.tasks.len() {
                format!("{:+.1}", 100.0 * means.iter().sum::<f64>() / means.len() as f64)
            } else {
                "–".into()
            };
            s.push_str(&format!("| {row} | {} | {avg} |\n", texts.join(" | ")));
        }
        s.push_str(&format!(
            "\nGain = the row − {base} on the same task, seeds and selection rule: the mean of the paired differences. \
             ▼: one-sided paired t-test (H₁: the row is below {base}; n − 1 degrees of freedom, n ≥ 2 paired seeds), \
             p < {NEGATIVE_TRANSFER_ALPHA}. "
        ));
        if flagged.is_empty() {
            s.push_str("No cell is significantly below it.\n");
        } else {
            s.push_str(&format!("Negative transfer: {}.\n", flagged.join("; ")));
        }
        Some(s)
    }

    /// The same table as CSV: `row,<task> mean,<task> std,<task> n,...,avg` (accuracies in %).
    pub fn csv(&self, reference: Option<&Reference>) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let mut head = vec!["row".to_string()];
        for t in &self.tasks {
            head.extend([q(&format!("{t} mean")), q(&format!("{t} std")), q(&format!("{t} n"))]);
        }
        head.push("avg".into());
        let mut s = head.join(",") + "\n";
        for row in &self.rows {
            let mut f = vec![q(row)];
            for t in &self.tasks {
                match self.cells.get(&(row.clone(), t.clone())) {
                    Some(c) => f.extend([
                        format!("{:.4}", 100.0 * c.mean()),
                        format!("{:.4}", 100.0 * c.std()),
                        c.values.len().to_string(),
                    ]),
                    None => f.extend([String::new(), String::new(), "0".into()]),
                }
            }
            f.push(self.average(row).map(|a| format!("{:.4}", 100.0 * a)).unwrap_or_default());
            s.push_str(&(f.join(",") + "\n"));
        }
        for rr in reference.map(|r| r.rows.as_slice()).unwrap_or_default() {
            let mut f = vec![q(&rr.name)];
            for t in &self.tasks {
                f.extend([
                    rr.values.get(t).map(|v| format!("{v:.4}")).unwrap_or_default(),
                    String::new(),
                    String::new(),
                ]);
            }
            f.push(ref_average(rr, &self.tasks).map(|a| format!("{a:.4}")).unwrap_or_default());
            s.push_str(&(f.join(",") + "\n"));
            // The Markdown's difference row: ours − paper, per task and on the average.
            if let Some(ours) = rr.compare_to.as_deref().filter(|o| self.rows.iter().any(|r| r == o)) {
                let mut f = vec![q(&format!("Δ {ours} − {}", rr.name))];
                for t in &self.tasks {
                    let d = match (self.cells.get(&(ours.to_string(), t.clone())), rr.values.get(t)) {
                        (Some(c), Some(p)) => format!("{:.4}", 100.0 * c.mean() - p),
                        _ => String::new(),
                    };
                    f.extend([d, String::new(), String::new()]);
                }
                f.push(match (self.average(ours), ref_average(rr, &self.tasks)) {
                    (Some(a), Some(p)) => format!("{:.4}", 100.0 * a - p),
                    _ => String::new(),
                });
                s.push_str(&(f.join(",") + "\n"));
            }
        }
        s
    }
}

/// `seed` → `seeds`, `run (…)` → `runs (…)`.
fn plural(what: &str) -> String {
    match what.split_once(' ') {
        Some((head, rest)) => format!("{head}s {rest}"),
        None => format!("{what}s"),
    }
}

fn ref_average(rr: &ReferenceRow, tasks: &[String]) -> Option<f64> {
    let v: Option<Vec<f64>> = tasks.iter().map(|t| rr.values.get(t).copied()).collect();
    v.filter(|v| !v.is_empty()).map(|v| v.iter().sum::<f64>() / v.len() as f64)
}

/// Mean and std over seeds of target accuracy at each evaluation step: `(step, mean, std)` in percent.
pub fn curve(trial_dirs: &[PathBuf], test_split: bool) -> Result<Vec<(usize, f64, f64)>> {
    let mut by_step: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for d in trial_dirs {
        let p = d.join("metrics.jsonl");
        let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let r: EvalRecord =
                serde_json::from_str(line).map_err(|e| Error::Other(format!("{}:{}: {e}", p.display(), i + 1)))?;
            let acc = if test_split { r.target_test.unwrap_or(r.target) } else { r.target };
            by_step.entry(r.step).or_default().push(100.0 * acc);
        }
    }
    Ok(by_step
        .into_iter()
        .map(|(s, v)| {
            let c = Cell { values: v, keys: vec![] };
            (s, c.mean(), c.std())
        })
        .collect())
}

fn find_font() -> Option<Vec<u8>> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("DALAB_FONT").map(PathBuf::from).into_iter().collect();
    for p in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    ] {
        candidates.push(PathBuf::from(p));
    }
    candidates.into_iter().find_map(|p| std::fs::read(p).ok())
}

pub(crate) fn register_font() -> Result<()> {
    use std::sync::OnceLock;
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = find_font().ok_or_else(|| {
            "no TrueType font for plot labels (install Debian's fonts-dejavu-core, or set DALAB_FONT to a .ttf)"
                .to_string()
        })?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
            .map_err(|_| "the font file could not be parsed".to_string())
    })
    .clone()
    .map_err(Error::Other)
}

/// Draws one PNG per task: target accuracy vs iteration, a line per row (mean over seeds) and a band (± std), each
/// row in the same colour in every plot, the reference's values for the task as dashed lines, the y-axis scaled to
/// what is drawn (2 points of margin). Returns the files written.
pub fn plot_curves(table: &Table, reference: Option<&Reference>, out_dir: &Path) -> Result<Vec<PathBuf>> {
    use plotters::prelude::*;
    register_font()?;
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let mut written = Vec::new();
    for task in &table.tasks {
        let mut series = Vec::new();
        for (i, row) in table.rows.iter().enumerate() {
            if let Some(dirs) = table.trial_dirs.get(&(row.clone(), task.clone())) {
                series.push((i, row.clone(), curve(dirs, table.test_split)?));
            }
        }
        let paper: Vec<(String, f64)> = reference
            .map(|r| r.rows.iter().filter_map(|rr| rr.values.get(task).map(|v| (rr.name.clone(), *v))).collect())
            .unwrap_or_default();
        let max_step = series.iter().flat_map(|(_, _, c)| c.iter().map(|p| p.0)).max().unwrap_or(1).max(1) as f64;
        let (lo, hi) = series
            .iter()
            .flat_map(|(_, _, c)| c.iter().map(|&(_, m, sd)| (m - sd, m + sd)))
            .chain(paper.iter().map(|(_, v)| (*v, *v)))
            .fold((f64::MAX, f64::MIN), |(a, b), (l, h)| (a.min(l), b.max(h)));
        let (y0, y1) = if lo > hi { (0.0, 100.0) } else { ((lo - 2.0).max(0.0), (hi + 2.0).min(100.0)) };
        let file = file_stem(task);
        let path = out_dir.join(format!("{file}.png"));
        let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
            let root = BitMapBackend::new(&path, (900, 540)).into_drawing_area();
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(format!("{} — {task}", table.experiment), ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(42)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..max_step, y0..y1)?;
            chart
                .configure_mesh()
                .x_desc("iteration")
                .y_desc(if table.test_split { "target test accuracy (%)" } else { "target accuracy (%)" })
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:.1}"))
                .draw()?;
            for (i, label, c) in &series {
                let color = Palette99::pick(*i).to_rgba();
                let mut band: Vec<(f64, f64)> = c.iter().map(|&(s, m, sd)| (s as f64, (m + sd).min(y1))).collect();
                band.extend(c.iter().rev().map(|&(s, m, sd)| (s as f64, (m - sd).max(y0))));
                chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.18).filled())))?;
                chart
                    .draw_series(LineSeries::new(c.iter().map(|&(s, m, _)| (s as f64, m)), color.stroke_width(2)))?
                    .label(label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
            for (k, (name, v)) in paper.iter().enumerate() {
                let color = Palette99::pick(table.rows.len() + k).to_rgba();
                chart
                    .draw_series(DashedLineSeries::new(vec![(0.0, *v), (max_step, *v)], 8, 6, color.stroke_width(2)))?
                    .label(format!("{name}: {v:.1}"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1)));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
            root.present()?;
            Ok(())
        };
        draw().map_err(|e| Error::Other(format!("{}: cannot draw the plot: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

/// Torrey & Shavlik's three measures of transfer (Handbook of Research on Machine Learning Applications, 2009,
/// "Transfer Learning", Figure 2) of one learning curve `(step, accuracy)`: **start** = the accuracy at the first
/// evaluation; **slope** = the mean accuracy over the evaluations in the first third of training (the area under
/// the curve's early part divided by its length, what a faster learner raises); **asymptote** = the accuracy at
/// the last evaluation.
pub fn transfer_measures(curve: &[(usize, f64)]) -> Option<(f64, f64, f64)> {
    let (first, last) = (curve.first()?, curve.last()?);
    let cut = first.0 + (last.0 - first.0) / 3;
    let early: Vec<f64> = curve.iter().filter(|(s, _)| *s <= cut).map(|(_, a)| *a).collect();
    Some((first.1, early.iter().sum::<f64>() / early.len() as f64, last.1))
}

/// Accuracies over seeds in points: `mean ± std`, or the value alone for one seed.
fn points(v: &[f64]) -> String {
    Cell { values: v.to_vec(), keys: vec![] }.text()
}

/// `dalab report --transfer-measures`: per row and task the three measures of [`transfer_measures`] on each trial's
/// evaluations of its last stage (where a method has several: the learning curve of the transferred model), mean ±
/// std over seeds, in points.
pub fn transfer_measures_markdown(table: &Table) -> Result<String> {
    let what = if table.test_split { "target test accuracy" } else { "target accuracy" };
    let mut s = format!(
        "\n**{}: measures of transfer (Torrey & Shavlik) of {what} (%), mean ± std over seeds: start (first \
         evaluation) / slope (mean over the first third of the steps) / asymptote (last evaluation).**\n\n\
         | method | {} |\n|---|{}\n",
        table.experiment,
        table.tasks.join(" | "),
        "---|".repeat(table.tasks.len())
    );
    for row in &table.rows {
        let mut cells = Vec::new();
        for task in &table.tasks {
            let mut m: [Vec<f64>; 3] = Default::default();
            for d in table.trial_dirs.get(&(row.clone(), task.clone())).into_iter().flatten() {
                let r: TrialResult = match status(d) {
                    TrialStatus::Done(r) => *r,
                    _ => continue,
                };
                // The last stage's evaluations (a multi-stage method's final model learning).
                let evals = if r.evaluations.is_empty() { vec![r.last.clone()] } else { r.evaluations.clone() };
                let curve: Vec<(usize, f64)> = evals
                    .iter()
                    .filter(|e| e.stage == r.last.stage)
                    .map(|e| (e.step, crate::selection::target_accuracy(e, table.test_split)))
                    .collect();
                if let Some((a, b, c)) = transfer_measures(&curve) {
                    m[0].push(a);
                    m[1].push(b);
                    m[2].push(c);
                }
            }
            cells.push(if m[0].is_empty() {
                "–".to_string()
            } else {
                m.iter().map(|v| points(v)).collect::<Vec<_>>().join(" / ")
            });
        }
        s.push_str(&format!("| {row} | {} |\n", cells.join(" | ")));
    }
    Ok(s)
}

/// The accuracy of an evaluation on task `j` of a task `a+b+…→c` (the sources in order, then the target), scored
/// with the task's own output: a source domain's on its test split when the table shows test accuracies and the
/// dataset has one, else on its training data; the target's on the target test split where there is one.
fn task_accuracy(e: &EvalRecord, sources: &[&str], j: usize, test_split: bool) -> Option<f64> {
    match sources.get(j) {
        Some(name) => test_split
            .then(|| e.source_domains_test.get(*name).copied())
            .flatten()
            .or_else(|| e.source_domains.get(*name).copied())
            .or((sources.len() == 1).then_some(e.source)),
        None => Some(crate::selection::target_accuracy(e, test_split)),
    }
}

/// `dalab report --per-task`: for each task `a+b+…→c` of the table, the accuracy on every one of its domains (each
/// scored with its own output by methods with one per task; see `task_accuracy` for the splits) at the end of
/// each stage of every row, mean ± std over seeds, in points;
/// and per row the **forgetting**: the mean over the tasks learnt before the last stage of (accuracy at the end of
/// the task's own stage − accuracy at the end of training), for rows with one stage per task (progressive networks,
/// fine-tuning through a sequence), where a task is shown only from its own stage on.
pub fn per_task_markdown(table: &Table) -> Result<String> {
    let what = if table.test_split { "target test" } else { "target" };
    let mut s = format!(
        "\n**{}: accuracy (%) on every task after each stage, mean ± std over seeds** (each task with its own \
         output; sources: {}; target: {what}). Forgetting: the mean drop of the earlier tasks from the end of their \
         own stage to the end of training.\n",
        table.experiment,
        if table.test_split {
            "their test splits where the dataset has them, else training data"
        } else {
            "training data"
        }
    );
    for task in &table.tasks {
        let Some((src, tgt)) = crate::config::split_task(task) else { continue };
        let sources: Vec<&str> = src.split('+').map(str::trim).collect();
        let names: Vec<String> =
            sources.iter().map(|d| d.to_string()).chain(std::iter::once(format!("{tgt} (target)"))).collect();
        s.push_str(&format!(
            "\n{task}\n\n| method | after stage | {} | forgetting |\n|---|---|{}---|\n",
            names.join(" | "),
            "---|".repeat(names.len())
        ));
        for row in &table.rows {
            // stage → task → accuracies over seeds; and each seed's forgetting.
            let mut stages: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
            let mut forgetting = Vec::new();
            for d in table.trial_dirs.get(&(row.clone(), task.clone())).into_iter().flatten() {
                let r: TrialResult = match status(d) {
                    TrialStatus::Done(r) => *r,
                    _ => continue,
                };
                let evals = if r.evaluations.is_empty() { vec![r.last.clone()] } else { r.evaluations.clone() };
                // The last evaluation of each stage, in order.
                let mut ends: Vec<&EvalRecord> = Vec::new();
                for e in &evals {
                    match ends.last_mut() {
                        Some(l) if l.stage == e.stage => *l = e,
                        _ => ends.push(e),
                    }
                }
                for (si, e) in ends.iter().enumerate() {
                    let name = e.stage.clone().unwrap_or_else(|| "train".into());
                    if stages.len() <= si {
                        stages.push((name, vec![Vec::new(); names.len()]));
                    }
                    for j in 0..names.len() {
                        if let Some(a) = task_accuracy(e, &sources, j, table.test_split) {
                            stages[si].1[j].push(a);
                        }
                    }
                }
                if ends.len() == names.len() && ends.len() > 1 {
                    let last = ends[ends.len() - 1];
                    let drops: Vec<f64> = (0..names.len() - 1)
                        .filter_map(|j| {
                            Some(
                                task_accuracy(ends[j], &sources, j, table.test_split)?
                                    - task_accuracy(last, &sources, j, table.test_split)?,
                            )
                        })
                        .collect();
                    if !drops.is_empty() {
                        forgetting.push(drops.iter().sum::<f64>() / drops.len() as f64);
                    }
                }
            }
            let n = stages.len();
            // One stage per task (a sequence): stage k learns task k; the tasks after it are not learnt yet.
            let sequence = n == names.len() && n > 1;
            for (si, (stage, accs)) in stages.iter().enumerate() {
                let cells: Vec<String> = accs
                    .iter()
                    .enumerate()
                    .map(|(j, v)| if v.is_empty() || (sequence && j > si) { "–".to_string() } else { points(v) })
                    .collect();
                let f = if si + 1 == n && !forgetting.is_empty() { points(&forgetting) } else { String::new() };
                let stage = if sequence { format!("{stage} ({})", names[si]) } else { stage.clone() };
                s.push_str(&format!("| {row} | {stage} | {} | {f} |\n", cells.join(" | ")));
            }
        }
    }
    Ok(s)
}

/// A plot's file name (without `.png`) for `name`: `→` spelt `_to_`, anything but ASCII letters, digits, `-` and `_`
/// replaced by `_`.
fn file_stem(name: &str) -> String {
    name.replace('→', "_to_")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect()
}

/// A line of a sweep plot: the value of the swept key (as text) → (the value, the accuracies over seeds).
type SweepPoints = BTreeMap<String, (f64, Vec<f64>)>;

/// `dalab report --plot-sweep KEY`: target accuracy against the numeric values of the swept `key` (the full
/// dotted key or its last part), one line per method and combination of the other swept values, per task — e.g.
/// accuracy against the number of copied layers for each layer-transfer condition (Yosinski et al., Figure 2).
/// Returns the Markdown table (lines × values, mean ± std over seeds) and the PNGs written to `out_dir`.
pub fn plot_sweep(
    results: &[(TrialResult, PathBuf)],
    key: &str,
    test_split: bool,
    experiment: &str,
    out_dir: &Path,
) -> Result<(String, Vec<PathBuf>)> {
    use plotters::prelude::*;
    let matches = |k: &str| k == key || k.rsplit('.').next() == Some(key);
    // (task, line) → x → accuracies.
    let mut data: BTreeMap<(String, String), SweepPoints> = BTreeMap::new();
    let (mut lines, mut tasks): (Vec<String>, Vec<String>) = (vec![], vec![]);
    let mut full_key = None;
    for (r, _) in results {
        let Some((k, v)) = r.sweep.iter().find(|(k, _)| matches(k)) else { continue };
        let x = v
            .as_f64()
            .ok_or_else(|| Error::Other(format!("--plot-sweep {key}: value {v} of `{k}` is not a number")))?;
        full_key.get_or_insert_with(|| k.clone());
        let mut rest = r.sweep.clone();
        rest.remove(k);
        for p in POOLED_KEYS {
            rest.remove(*p);
        }
        let line = label(&r.method, &rest);
        if !lines.contains(&line) {
            lines.push(line.clone());
        }
        if !tasks.contains(&r.task()) {
            tasks.push(r.task());
        }
        let acc = if test_split { r.selected.target_test.unwrap_or(r.selected.target) } else { r.selected.target };
        data.entry((r.task(), line)).or_default().entry(format!("{x}")).or_insert((x, vec![])).1.push(acc);
    }
    let Some(full_key) = full_key else {
        return Err(Error::Other(format!("--plot-sweep {key}: no finished trial has a swept key `{key}`")));
    };
    let mut xs: Vec<f64> = data.values().flat_map(|m| m.values().map(|(x, _)| *x)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let what = if test_split { "target test accuracy" } else { "target accuracy" };
    let mut md = String::new();
    let short = full_key.rsplit('.').next().unwrap_or(&full_key).to_string();
    register_font()?;
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let mut written = Vec::new();
    for task in &tasks {
        md.push_str(&format!(
            "\n**{experiment}, {task}: {what} (%) against `{full_key}`, mean ± std over seeds.**\n\n| | {} |\n|---|{}\n",
            xs.iter().map(|x| format!("{short} = {x}")).collect::<Vec<_>>().join(" | "),
            "---|".repeat(xs.len())
        ));
        let mut series = Vec::new();
        for line in &lines {
            let Some(m) = data.get(&(task.clone(), line.clone())) else { continue };
            let mut pts = Vec::new();
            let cells: Vec<String> = xs
                .iter()
                .map(|x| match m.get(&format!("{x}")) {
                    Some((_, v)) => {
                        let c = Cell { values: v.clone(), keys: vec![] };
                        pts.push((*x, 100.0 * c.mean(), 100.0 * c.std()));
                        c.text()
                    }
                    None => "–".into(),
                })
                .collect();
            md.push_str(&format!("| {line} | {} |\n", cells.join(" | ")));
            series.push((line.clone(), pts));
        }
        let file = file_stem(&format!("sweep-{short}-{task}"));
        let path = out_dir.join(format!("{file}.png"));
        let (x0, x1) = (xs[0], xs[xs.len() - 1].max(xs[0] + 1e-9));
        let (lo, hi) = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| (q.1 - q.2, q.1 + q.2)))
            .fold((100f64, 0f64), |(a, b), (l, h)| (a.min(l), b.max(h)));
        let (y0, y1) = ((lo - 2.0).max(0.0), (hi + 2.0).min(100.0));
        let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
            let root = BitMapBackend::new(&path, (900, 560)).into_drawing_area();
            root.fill(&WHITE)?;
            let pad = 0.05 * (x1 - x0);
            let mut chart = ChartBuilder::on(&root)
                .caption(format!("{experiment} — {task}"), ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(42)
                .y_label_area_size(56)
                .build_cartesian_2d((x0 - pad)..(x1 + pad), y0..y1)?;
            chart.configure_mesh().x_desc(full_key.as_str()).y_desc(format!("{what} (%)")).draw()?;
            for (i, (label, pts)) in series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart.draw_series(pts.iter().map(|&(x, m, sd)| {
                    PathElement::new(vec![(x, (m - sd).max(y0)), (x, (m + sd).min(y1))], color.stroke_width(1))
                }))?;
                chart.draw_series(pts.iter().map(|&(x, m, _)| Circle::new((x, m), 4, color.filled())))?;
                chart
                    .draw_series(LineSeries::new(pts.iter().map(|&(x, m, _)| (x, m)), color.stroke_width(2)))?
                    .label(label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
            root.present()?;
            Ok(())
        };
        draw().map_err(|e| Error::Other(format!("{}: cannot draw the plot: {e}", path.display())))?;
        md.push_str(&format!("\n![{task}: {what} against {full_key}](plots/{file}.png)\n"));
        written.push(path);
    }
    Ok((md, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_statistics_match_hand_values() {
        // mean(0.7, 0.8, 0.9) = 0.8; sample std = sqrt((0.01+0+0.01)/2) = 0.1.
        let c = Cell { values: vec![0.7, 0.8, 0.9], keys: vec![] };
        assert!((c.mean() - 0.8).abs() < 1e-15);
        assert!((c.std() - 0.1).abs() < 1e-15);
        assert_eq!(Cell { values: vec![0.5], keys: vec![] }.std(), 0.0);
    }

    /// Writes a finished trial's result.json (method `svm`, task A→W) into `dir/id`.
    fn write_result(dir: &Path, id: &str, sweep: serde_json::Value, acc: f64) {
        let rec = serde_json::json!({"step": 0, "source": 1.0, "target": acc});
        let r = serde_json::json!({
            "trial": id, "experiment": "e", "method": "svm", "source": "A", "target": "W", "seed": 0,
            "sweep": sweep, "selection": "last", "oracle": false, "selected": rec, "last": rec,
            "steps": 0, "seconds": 0.1, "device": "cpu", "dalab_version": "0"
        });
        std::fs::create_dir_all(dir.join(id)).unwrap();
        std::fs::write(dir.join(id).join("result.json"), r.to_string()).unwrap();
    }

    /// The per-task table of a sequence: each task's accuracy after each stage (the sources' test splits where
    /// recorded), tasks not learnt yet blank, and the forgetting = mean drop of the earlier tasks, by hand.
    #[test]
    fn per_task_table_and_forgetting_of_a_constructed_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let ev = |stage: &str, a: f64, b: f64, c: f64| {
            serde_json::json!({"step": 1, "stage": stage, "source": 0.0, "target": 0.0, "target_test": c,
                "source_domains": {"a": 0.99, "b": 0.99}, "source_domains_test": {"a": a, "b": b}})
        };
        let evals = [ev("task1", 0.9, 0.5, 0.5), ev("task2", 0.8, 0.7, 0.5), ev("task3", 0.6, 0.65, 0.75)];
        let r = serde_json::json!({
            "trial": "p", "experiment": "e", "method": "progressive", "source": "a+b", "target": "c", "seed": 0,
            "sweep": {}, "selection": "last", "oracle": false, "selected": evals[2], "last": evals[2],
            "evaluations": evals, "steps": 3, "seconds": 0.1, "device": "cpu", "dalab_version": "0"
        });
        std::fs::create_dir_all(dir.path().join("p")).unwrap();
        std::fs::write(dir.path().join("p/result.json"), r.to_string()).unwrap();
        let t = collect(dir.path(), None, &[], &[], None).unwrap();
        let md = per_task_markdown(&t).unwrap();
        assert!(md.contains("| method | after stage | a | b | c (target) | forgetting |"), "{md}");
        assert!(md.contains("| progressive | task1 (a) | 90.0 | – | – |  |"), "{md}");
        assert!(md.contains("| progressive | task2 (b) | 80.0 | 70.0 | – |  |"), "{md}");
        // Forgetting: a 90 → 60, b 70 → 65: (30 + 5) / 2 = 17.5.
        assert!(md.contains("| progressive | task3 (c (target)) | 60.0 | 65.0 | 75.0 | 17.5 |"), "{md}");
        // On the training split the sources' training accuracies are shown.
        let tr = collect(dir.path(), None, &[], &[], Some(Split::Target)).unwrap();
        assert!(per_task_markdown(&tr).unwrap().contains("| progressive | task1 (a) | 99.0 |"));
    }

    /// The split of a table: the test split by default when every trial has one; `target` when asked for.
    #[test]
    fn the_split_is_the_test_one_unless_the_reference_asks_for_the_target() {
        let dir = tempfile::tempdir().unwrap();
        write_result(dir.path(), "t", serde_json::json!({}), 0.4);
        let p = dir.path().join("t/result.json");
        let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        r["selected"]["target_test"] = serde_json::json!(0.6);
        std::fs::write(&p, r.to_string()).unwrap();
        let cell = |t: &Table| t.cells[&("svm".to_string(), "A→W".to_string())].values[0];
        let auto = collect(dir.path(), None, &[], &[], None).unwrap();
        assert!(auto.test_split && cell(&auto) == 0.6);
        let tr = collect(dir.path(), None, &[], &[], Some(Split::Target)).unwrap();
        assert!(!tr.test_split && cell(&tr) == 0.4);
        let e = std::fs::remove_dir_all(dir.path().join("t"));
        assert!(e.is_ok());
        write_result(dir.path(), "u", serde_json::json!({}), 0.4);
        let e = collect(dir.path(), None, &[], &[], Some(Split::TargetTest)).unwrap_err().to_string();
        assert!(e.ends_with("split target_test: a trial has no target test split"), "{e}");
    }

    /// The p-values of SciPy's `ttest_rel(row, base, alternative="less")` on the same numbers
    /// (tests/reference/selection_reference.py, SciPy 1.17.1); pairs are matched by seed, not by position.
    #[test]
    fn paired_loss_test_matches_scipy() {
        let cell = |v: &[f64], seeds: &[u64]| Cell {
            values: v.to_vec(),
            keys: seeds.iter().map(|s| format!("seed={s}")).collect(),
        };
        let cases: [(&[f64], &[f64], f64); 3] = [
            (&[0.70, 0.72, 0.69], &[0.75, 0.76, 0.74], 0.002531661836908986),
            (&[0.80, 0.70, 0.78], &[0.79, 0.74, 0.77], 0.36391723651204566),
            (&[0.60, 0.61], &[0.62, 0.66], 0.1288810584091566),
        ];
        for (row, base, want) in cases {
            let seeds: Vec<u64> = (0..row.len() as u64).collect();
            let mut rev_seeds = seeds.clone();
            rev_seeds.reverse();
            let mut rev_base = base.to_vec();
            rev_base.reverse();
            let (d, n, p) = paired_loss_test(&cell(row, &seeds), &cell(&rev_base, &rev_seeds)).unwrap();
            let p = p.unwrap();
            assert!((p - want).abs() < 1e-9, "{row:?} vs {base:?}: p {p} vs SciPy {want}");
            assert_eq!(n, row.len());
            let mean = row.iter().zip(base).map(|(a, b)| a - b).sum::<f64>() / n as f64;
            assert!((d - mean).abs() < 1e-15);
        }
        // One pair: a gain, no test. Identical negative differences: p = 0.
        assert_eq!(paired_loss_test(&cell(&[0.5], &[0]), &cell(&[0.6], &[0])).map(|t| t.2), Some(None));
        let (_, _, p) = paired_loss_test(&cell(&[0.5, 0.6], &[0, 1]), &cell(&[0.6, 0.7], &[0, 1])).unwrap();
        assert_eq!(p, Some(0.0));
    }

    /// A constructed negative transfer: a method consistently below source-only is marked ▼ with its p-value;
    /// one that varies around it is not; a row against a missing baseline gives no gain table.
    #[test]
    fn negative_transfer_is_flagged_in_the_gain_table() {
        let tmp = tempfile::tempdir().unwrap();
        let put = |method: &str, seed: u64, acc: f64| {
            let id = format!("{method}_s{seed}");
            let rec = serde_json::json!({"step": 10, "source": 1.0, "target": acc});
            let r = serde_json::json!({
                "trial": id, "experiment": "e", "method": method, "source": "A", "target": "W", "seed": seed,
                "sweep": {}, "selection": "last", "oracle": false, "selected": rec, "last": rec,
                "steps": 10, "seconds": 0.1, "device": "cpu", "dalab_version": "0"
            });
            std::fs::create_dir_all(tmp.path().join(&id)).unwrap();
            std::fs::write(tmp.path().join(&id).join("result.json"), r.to_string()).unwrap();
        };
        for (seed, (so, bad, noisy)) in
            [(0.75, 0.70, 0.80), (0.76, 0.72, 0.70), (0.74, 0.69, 0.78)].into_iter().enumerate()
        {
            put("source-only", seed as u64, so);
            put("bad", seed as u64, bad);
            put("noisy", seed as u64, noisy);
        }
        let t = collect(tmp.path(), None, &[], &[], None).unwrap();
        let md = t.markdown(None);
        assert!(
            md.contains("**Gain vs source-only (points; ▼ = significantly below source-only: negative transfer).**")
        );
        assert!(md.contains("| bad | -4.7 ▼ | -4.7 |"), "{md}");
        assert!(md.contains("| noisy | +1.0 | +1.0 |"), "{md}");
        assert!(md.contains("Negative transfer: bad on A→W (-4.7, p = 0.003, n = 3)."), "{md}");
        let mut no_base = t.clone();
        no_base.baseline = "dann".into();
        assert!(no_base.gains_markdown().is_none());
    }

    /// Start, slope (mean over the first third of the steps) and asymptote of a curve, by hand.
    #[test]
    fn transfer_measures_of_a_hand_made_curve() {
        let (start, slope, asymptote) = transfer_measures(&[(100, 0.5), (200, 0.6), (300, 0.7), (600, 0.9)]).unwrap();
        // The first third ends at 100 + (600 − 100)/3 = 266: evaluations 100 and 200.
        assert_eq!((start, asymptote), (0.5, 0.9));
        assert!((slope - 0.55).abs() < 1e-15);
        assert_eq!(transfer_measures(&[]), None);
    }

    /// Accuracy against a swept number: one line per combination of the other swept values, cells mean ± std.
    #[test]
    fn plot_sweep_tabulates_lines_against_the_swept_values() {
        let tmp = tempfile::tempdir().unwrap();
        let mut results = Vec::new();
        for (n, tune, seed, acc) in
            [(0, false, 0, 0.5), (0, false, 1, 0.7), (2, false, 0, 0.4), (0, true, 0, 0.8), (2, true, 0, 0.9)]
        {
            let rec = serde_json::json!({"step": 10, "source": 1.0, "target": acc});
            let r: TrialResult = serde_json::from_value(serde_json::json!({
                "trial": format!("t{n}{tune}{seed}"), "experiment": "e", "method": "lt", "source": "A", "target": "B",
                "seed": seed, "sweep": {"methods.lt.copy_layers": n, "methods.lt.fine_tune": tune},
                "selection": "last", "oracle": false, "selected": rec, "last": rec,
                "steps": 10, "seconds": 0.1, "device": "cpu", "dalab_version": "0"
            }))
            .unwrap();
            results.push((r, tmp.path().to_path_buf()));
        }
        let (md, files) = plot_sweep(&results, "copy_layers", false, "e", &tmp.path().join("plots")).unwrap();
        assert!(md.contains("| | copy_layers = 0 | copy_layers = 2 |"), "{md}");
        assert!(md.contains("| lt (fine_tune=false) | 60.0 ± 14.1 | 40.0 |"), "{md}");
        assert!(md.contains("| lt (fine_tune=true) | 80.0 | 90.0 |"), "{md}");
        assert_eq!(files.len(), 1);
        assert!(std::fs::read(&files[0]).unwrap().starts_with(b"\x89PNG"));
        let e = plot_sweep(&results, "nope", false, "e", tmp.path()).unwrap_err().to_string();
        assert_eq!(e, "--plot-sweep nope: no finished trial has a swept key `nope`");
    }

    /// `--select-by`: per task and seed the sweep point whose kept model scores highest (not the best on target),
    /// one row per method, and a table of the points it chose; a method with one point has no entry there.
    #[test]
    fn select_by_keeps_the_best_scored_sweep_point_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let put = |id: &str, method: &str, seed: u64, sweep: serde_json::Value, acc: f64, reverse: f64| {
            let rec = serde_json::json!({"step": 10, "source": 1.0, "target": acc, "validators": {"reverse": reverse}});
            let r = serde_json::json!({
                "trial": id, "experiment": "e", "method": method, "source": "A", "target": "W", "seed": seed,
                "sweep": sweep, "selection": "last", "oracle": false, "selected": rec, "last": rec,
                "steps": 10, "seconds": 0.1, "device": "cpu", "dalab_version": "0"
            });
            std::fs::create_dir_all(dir.path().join(id)).unwrap();
            std::fs::write(dir.path().join(id).join("result.json"), r.to_string()).unwrap();
        };
        let lam = |v: f64| serde_json::json!({"methods.dann.trade_off": v});
        // Seed 0: λ = 0.1 scores higher (0.9) but is worse on target (0.70 < 0.80); seed 1: λ = 1 scores higher.
        put("d01_s0", "dann", 0, lam(0.1), 0.70, 0.9);
        put("d1_s0", "dann", 0, lam(1.0), 0.80, 0.8);
        put("d01_s1", "dann", 1, lam(0.1), 0.72, 0.5);
        put("d1_s1", "dann", 1, lam(1.0), 0.60, 0.6);
        // Seed 2: a tie, broken by the experiment's order (λ = 0.1 first), not by the trial ids (λ = 1's sorts first).
        put("a_d1_s2", "dann", 2, lam(1.0), 0.90, 0.7);
        put("z_d01_s2", "dann", 2, lam(0.1), 0.50, 0.7);
        put("so_s0", "source-only", 0, serde_json::json!({}), 0.65, 0.1);
        put("so_s1", "source-only", 1, serde_json::json!({}), 0.66, 0.1);
        let order = ["source-only", "dann (trade_off=0.1)", "dann (trade_off=1.0)"].map(String::from);
        let t = collect_with(dir.path(), None, &order, &[], None, Some(Validator::Reverse)).unwrap();
        assert_eq!(t.rows, ["source-only", "dann"]);
        let cell = &t.cells[&("dann".to_string(), "A→W".to_string())];
        assert_eq!(cell.keys, ["seed=0", "seed=1", "seed=2"]);
        assert!((cell.mean() - 0.60).abs() < 1e-12, "{:?}", cell.values);
        assert_eq!(t.picks.len(), 1);
        assert_eq!(
            t.picks[&("dann".to_string(), "A→W".to_string())],
            ["trade_off=0.1", "trade_off=1.0", "trade_off=0.1"]
        );
        let md = t.markdown(None);
        assert!(md.contains("**Sweep point chosen by reverse** (per task"), "{md}");
        assert!(
            md.contains("| method | A→W |\n|---|---|\n| dann | trade_off=0.1; trade_off=1.0; trade_off=0.1 |\n"),
            "{md}"
        );
        let t = collect(dir.path(), None, &[], &[], None).unwrap();
        assert!(t.picks.is_empty() && t.picks_markdown().is_none());
    }

    /// Draws of `dataset.sample_seed` pool into one row (like seeds); another swept key keeps its own rows.
    #[test]
    fn random_draws_are_pooled_like_seeds() {
        let dir = tempfile::tempdir().unwrap();
        for (i, acc) in [0.4, 0.5, 0.6].into_iter().enumerate() {
            write_result(dir.path(), &format!("t{i}"), serde_json::json!({"dataset.sample_seed": i}), acc);
        }
        let t = collect(dir.path(), None, &[], &[], None).unwrap();
        assert_eq!(t.rows, vec!["svm"]);
        let cell = &t.cells[&("svm".to_string(), "A→W".to_string())];
        assert_eq!(cell.values.len(), 3);
        assert!((cell.mean() - 0.5).abs() < 1e-12);
        assert!(t.caption().contains("over 3 runs (seeds × random draws of dataset.sample_seed)"), "{}", t.caption());
        write_result(dir.path(), "u", serde_json::json!({"dataset.sample_seed": 0, "methods.svm.folds": 3}), 0.7);
        let t = collect(dir.path(), None, &[], &[], None).unwrap();
        assert_eq!(t.rows, vec!["svm", "svm (folds=3)"]);
    }

    /// Δ cells beyond the tolerance are bold, those within are not; notes are printed under the table.
    #[test]
    fn reference_marks_differences_beyond_the_tolerance_and_prints_notes() {
        let dir = tempfile::tempdir().unwrap();
        write_result(dir.path(), "t", serde_json::json!({}), 0.40);
        let t = collect(dir.path(), None, &[], &[], None).unwrap();
        let reference = |paper: f64| Reference {
            caption: "paper".into(),
            tolerance: Some(1.5),
            rows: vec![ReferenceRow {
                name: "P".into(),
                compare_to: Some("svm".into()),
                values: [("A→W".to_string(), paper)].into(),
                notes: [("A→W".to_string(), "because".to_string())].into(),
            }],
            notes: "More.".into(),
            split: None,
            figures: vec![],
            baseline: None,
        };
        let far = t.markdown(Some(&reference(43.0)));
        assert!(far.contains("| Δ svm − P | **-3.0** | **-3.0** |"), "{far}");
        assert!(far.contains("Δ in **bold**: beyond ±1.5 points.") && far.contains("- P A→W: because"), "{far}");
        assert!(far.trim_end().ends_with("More."), "{far}");
        let near = t.markdown(Some(&reference(41.0)));
        assert!(near.contains("| Δ svm − P | -1.0 | -1.0 |"), "{near}");
        let zero = t.markdown(Some(&reference(40.000_01)));
        assert!(zero.contains("| Δ svm − P | +0.0 | +0.0 |"), "{zero}");
        // The CSV carries the difference row too; a reference naming no row or task of the table is an error.
        let csv = t.csv(Some(&reference(43.0)));
        assert!(csv.contains("\"Δ svm − P\",-3.0000,,,-3.0000"), "{csv}");
        assert_eq!(t.check_reference(&reference(43.0), false, &[]).ok(), Some(()));
        let mut bad = reference(43.0);
        bad.rows[0].compare_to = Some("svn".into());
        let e = t.check_reference(&bad, false, &[]).unwrap_err().to_string();
        assert_eq!(e, "reference row `P`: compare_to `svn` is no row of the table (rows: svm)");
        // A row the overrides left out of the run: the paper row stays, without a difference row.
        assert!(t.check_reference(&bad, false, &["svn".to_string()]).is_ok());
        let shown = t.markdown(Some(&bad));
        assert!(shown.contains("| *P* | 43.0 | 43.0 |") && !shown.contains("| Δ"), "{shown}");
        let mut bad = reference(43.0);
        bad.rows[0].values.insert("A→X".into(), 1.0);
        let e = t.check_reference(&bad, false, &[]).unwrap_err().to_string();
        assert_eq!(e, "reference row `P`: task `A→X` is no task of the table (tasks: A→W)");
        assert!(t.check_reference(&bad, true, &[]).is_ok(), "a subset of the tasks (`--set tasks=...`)");
    }

    #[test]
    fn order_puts_known_items_first() {
        let mut v = vec!["c".to_string(), "a".into(), "b".into()];
        order_by(&mut v, &["b".to_string()]);
        assert_eq!(v, vec!["b", "a", "c"]);
    }
}
