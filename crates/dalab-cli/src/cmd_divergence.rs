//! `dalab divergence`: MMD², proxy A-distance and CORAL distance between the domains of a dataset (any the data
//! layer loads) or between feature files, for every ordered pair of domains (or the pairs asked). All the metric
//! logic lives in `dalab_metrics::{options, report}`; this module loads the domains, prints the table and writes
//! `<out-dir>/<name>.csv` and `<out-dir>/<name>.json`.

use anyhow::{Context, bail};
use dalab_data::DatasetConfig;
use dalab_metrics::options::{DivergenceOptions, parse_named_path};
use dalab_metrics::report::{self, DivergenceReport};
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// Divergences between the domains of a dataset, or between domains given as feature files (.npy, .npz, .csv,
/// .mat).
#[derive(clap::Args, Debug)]
pub struct DivergenceArgs {
    /// A dataset by name (its default options, e.g. `office-caltech10-surf`, `amazon-reviews`, `jda-digits`), or an
    /// experiment YAML whose `dataset:` section is used (protocol, preprocessing, your own feature files). Each
    /// domain's training data is flattened to one row per sample.
    #[arg(long, conflicts_with_all = ["source", "domain"])]
    pub dataset: Option<String>,
    /// With --dataset: only these domains (comma-separated; default all).
    #[arg(long, value_delimiter = ',', requires = "dataset")]
    pub domains: Option<Vec<String>>,
    /// Source feature file (with --target; computes source→target only).
    #[arg(long, requires = "target", conflicts_with = "domain")]
    pub source: Option<PathBuf>,
    /// Target feature file.
    #[arg(long, requires = "source")]
    pub target: Option<PathBuf>,
    /// A named domain, NAME=PATH; repeat for every domain (all ordered pairs are computed unless --pairs).
    #[arg(long, value_name = "NAME=PATH")]
    pub domain: Vec<String>,
    /// Only these ordered pairs, e.g. `amazon:webcam,webcam:amazon`.
    #[arg(long, value_name = "SRC:TGT,...")]
    pub pairs: Option<String>,
    /// Variable to read from .mat/.npz files (default: the only or the obvious one).
    #[arg(long)]
    pub key: Option<String>,
    /// Variable of the labels in .mat/.npz files, used only to check the orientation (default: `labels`,
    /// `label`, `Y`, `y` or `gnd` when the file has one): a label count that fits only the columns is an error.
    #[arg(long)]
    pub labels: Option<String>,
    /// How the files store their samples: `rows` (one sample per row) or `samples-as-columns` (the JDA/GFK MAT
    /// releases: transposed when read).
    #[arg(long, default_value = "rows", value_parser = ["rows", "samples-as-columns"])]
    pub layout: String,
    /// Metrics to compute.
    #[arg(long, value_delimiter = ',', default_value = "mmd,a-distance,coral")]
    pub metrics: Vec<String>,
    /// MMD kernel: dan (5 Gaussians, σ² × {1/4,1/2,1,2,4}), dan-paper (33, 2^(k/2)), gaussian, linear.
    #[arg(long, default_value = "dan")]
    pub kernel: String,
    /// Bandwidth multipliers replacing the kernel family's (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub multipliers: Option<Vec<f64>>,
    /// Kernel weights (comma-separated; default 1 each).
    #[arg(long, value_delimiter = ',')]
    pub weights: Option<Vec<f64>>,
    /// Bandwidth policy: mean-sq-dist, median, fixed.
    #[arg(long, default_value = "mean-sq-dist")]
    pub bandwidth: String,
    /// Base squared bandwidth σ² for --bandwidth fixed.
    #[arg(long)]
    pub sigma2: Option<f64>,
    /// Largest pooled sample used by the median heuristic (a seeded subsample above it).
    #[arg(long, default_value_t = 1000)]
    pub median_max_points: usize,
    /// MMD² estimator: biased, unbiased, linear.
    #[arg(long, default_value = "biased")]
    pub estimator: String,
    /// Precision of the Gram products: f64 or f32.
    #[arg(long, default_value = "f64")]
    pub precision: String,
    /// Permutations of the MMD two-sample test (0: no test).
    #[arg(long, default_value_t = 0)]
    pub permutations: usize,
    /// Seed of the permutation test, the median subsample and the A-distance split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// C grid of the A-distance's linear SVM (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub c_grid: Option<Vec<f64>>,
    /// k-fold cross-validation for the A-distance (default: one random half for training, as the DANN paper).
    #[arg(long, default_value_t = 0)]
    pub folds: usize,
    /// Threads (default: all cores, or RAYON_NUM_THREADS).
    #[arg(long)]
    pub threads: Option<usize>,
    /// With --dataset: measure the features before the dataset's per-domain standardisation (`normalize:
    /// sum-zscore` → `sum`, `zscore` → `none`), which otherwise removes much of the shift being measured.
    #[arg(long, requires = "dataset")]
    pub raw_features: bool,
    /// Directory for the CSV and JSON outputs.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// File stem of the outputs.
    #[arg(long, default_value = "divergence")]
    pub name: String,
}

/// The `dataset:` of `spec`: a dataset name (default options) or an experiment YAML file.
pub(crate) fn dataset_config(spec: &str) -> anyhow::Result<DatasetConfig> {
    if spec.ends_with(".yaml") || spec.ends_with(".yml") {
        let text = std::fs::read_to_string(spec).with_context(|| format!("reading {spec}"))?;
        let doc: serde_json::Value = serde_saphyr::from_str(&text).with_context(|| format!("{spec}: not YAML"))?;
        let section = doc.get("dataset").cloned().with_context(|| format!("{spec}: no `dataset:` section"))?;
        return serde_json::from_value(section).with_context(|| format!("{spec}: dataset"));
    }
    let names = ["moons", "office-caltech10-surf", "amazon-reviews", "digits", "jda-digits"];
    if !names.contains(&spec) {
        bail!(
            "--dataset: unknown dataset `{spec}` (by name: {}; `feature-files` and `image-folders` need an experiment \
             YAML with their `dataset:` section)",
            names.join(", ")
        );
    }
    Ok(serde_json::from_value(serde_json::json!({ "name": spec }))?)
}

/// Loads every domain (or those in `only`) of a dataset as `[n, features]` f64 matrices (images flattened), each
/// domain's training data as the data layer gives it for a task that contains it.
pub(crate) fn dataset_domains(
    cfg: &DatasetConfig,
    only: Option<&[String]>,
    data_dir: &Path,
) -> anyhow::Result<Vec<(String, Array2<f64>)>> {
    let all = cfg.domains();
    let names: Vec<String> = match only {
        Some(o) => {
            for d in o {
                if !all.contains(d) {
                    bail!("--domains: dataset `{}` has no domain `{d}` (domains: {})", cfg.name(), all.join(", "));
                }
            }
            o.to_vec()
        }
        None => all.clone(),
    };
    let mut out = Vec::with_capacity(names.len());
    for d in &names {
        // A task that contains `d`: as its source if the dataset allows, else as its target.
        let as_source = all.iter().find(|o| cfg.check_task(d, o).is_ok());
        let as_target = all.iter().find(|o| cfg.check_task(o, d).is_ok());
        let domain = match (as_source, as_target) {
            (Some(o), _) => cfg.load_task(d, o, data_dir)?.source,
            (None, Some(o)) => cfg.load_task(o, d, data_dir)?.target,
            (None, None) => bail!("dataset `{}`: domain `{d}` is in no task", cfg.name()),
        };
        let x = domain.x.to_dense()?;
        let n = domain.len();
        let flat = x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
        let dim = flat.len().checked_div(n).unwrap_or(0);
        out.push((d.clone(), Array2::from_shape_vec((n, dim), flat)?));
    }
    Ok(out)
}

/// What `dalab divergence` measured: the dataset and its feature normalisation.
pub(crate) fn measured_features(spec: &str, cfg: &DatasetConfig, data_dir: &Path) -> String {
    format!(
        "dataset {spec}: each domain's training data after the dataset's preprocessing ({}), one row per sample; \
         data directory {}",
        cfg.normalization().unwrap_or_else(|| "as configured".into()),
        data_dir.display()
    )
}

/// Why divergences after a per-domain standardisation (`what`, e.g. `normalize: sum-zscore`) mislead.
pub(crate) fn standardisation_warning(what: &str) -> String {
    format!(
        "{what} standardises every feature per domain, which removes each domain's mean and scale, much of the shift \
         being measured: these divergences understate it (on Office-Caltech SURF the MMD permutation test gave \
         p = 1.00 after sum-zscore, 0.048 on the raw files); --raw-features measures the features before that step"
    )
}

/// Runs `dalab divergence`; dataset files are looked up in `data_dir`.
pub fn run(args: &DivergenceArgs, data_dir: &Path) -> anyhow::Result<()> {
    let options = DivergenceOptions {
        metrics: args.metrics.clone(),
        kernel: args.kernel.clone(),
        multipliers: args.multipliers.clone(),
        weights: args.weights.clone(),
        bandwidth: args.bandwidth.clone(),
        sigma2: args.sigma2,
        median_max_points: args.median_max_points,
        estimator: args.estimator.clone(),
        precision: args.precision.clone(),
        permutations: args.permutations,
        seed: args.seed,
        c_grid: args.c_grid.clone(),
        folds: args.folds,
    };
    let settings = options.settings()?;
    let mut pairs = match &args.pairs {
        Some(p) => Some(report::parse_pairs(p)?),
        None => None,
    };
    let matrices = match &args.dataset {
        Some(spec) => {
            let mut cfg = dataset_config(spec)?;
            let standardised = cfg.per_domain_standardisation();
            if args.raw_features {
                cfg = cfg.without_per_domain_standardisation();
            }
            println!("# {}", measured_features(spec, &cfg, data_dir));
            if let (Some(s), false) = (&standardised, args.raw_features) {
                eprintln!("warning: {}", standardisation_warning(s));
            }
            dataset_domains(&cfg, args.domains.as_deref(), data_dir)?
        }
        None => {
            println!("# features as stored in the files (no preprocessing)");
            if args.source.is_some() && pairs.is_none() {
                pairs = Some(vec![("source".to_string(), "target".to_string())]);
            }
            read_files(args)?
        }
    };
    if matrices.len() < 2 {
        bail!("give --dataset with at least two domains, --source and --target, or at least two --domain NAME=PATH");
    }
    let views: Vec<(String, _)> = matrices.iter().map(|(n, x)| (n.clone(), x.view())).collect();
    let result: DivergenceReport =
        dalab_metrics::with_threads(args.threads, || report::compute(&views, pairs.as_deref(), &settings))??;
    print!("{}", result.table());
    let (csv, json) = result.write(&args.out_dir, &args.name)?;
    println!("wrote {} and {}", csv.display(), json.display());
    Ok(())
}

fn read_files(args: &DivergenceArgs) -> anyhow::Result<Vec<(String, Array2<f64>)>> {
    let files: Vec<(String, PathBuf)> = match (&args.source, &args.target) {
        (Some(s), Some(t)) => vec![("source".to_string(), s.clone()), ("target".to_string(), t.clone())],
        _ => args.domain.iter().map(|d| parse_named_path(d)).collect::<Result<_, _>>()?,
    };
    let layout = match args.layout.as_str() {
        "samples-as-columns" => dalab_data::features::Layout::SamplesAsColumns,
        _ => dalab_data::features::Layout::Rows,
    };
    let mut matrices = Vec::with_capacity(files.len());
    for (name, path) in &files {
        let x = dalab_data::features::read_samples(path, args.key.as_deref(), args.labels.as_deref(), layout)
            .with_context(|| format!("reading domain `{name}` from {}", path.display()))?;
        matrices.push((name.clone(), x));
    }
    Ok(matrices)
}

/// `dalab report --divergences`: for each task of `table`, the proxy A-distance and MMD² (DAN's 5 Gaussian
/// kernels, biased estimator, 99-permutation test) between its source and target training data, measured on the
/// task's features before any per-domain standardisation (the dataset config of one of the task's trials, with
/// [`DatasetConfig::without_per_domain_standardisation`]), next to the best gain over the baseline row.
pub fn task_divergences(table: &dalab_runner::report::Table, data_dir: &Path) -> anyhow::Result<String> {
    let options = DivergenceOptions {
        metrics: vec!["mmd".into(), "a-distance".into()],
        permutations: 99,
        ..DivergenceOptions::default()
    };
    let settings = options.settings()?;
    let mut s = String::from(
        "\n**Shift of each task** (source vs target training data; proxy A-distance 2(1 − 2ε) of a linear SVM, \
         MMD² with DAN's 5 Gaussian kernels and its permutation p-value over 99 permutations).\n\n\
         | task | features measured | proxy A-distance | MMD² | p | best gain vs baseline |\n|---|---|---|---|---|---|\n",
    );
    for task in &table.tasks {
        let Some(dir) = table.trial_dirs.iter().find(|((_, t), _)| t == task).and_then(|(_, d)| d.first()) else {
            continue;
        };
        let path = dir.join("config.yaml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let trial: dalab_runner::TrialConfig =
            serde_saphyr::from_str(&text).with_context(|| format!("{}: not a trial config", path.display()))?;
        let cfg = trial.dataset.without_per_domain_standardisation();
        let what = match (trial.dataset.per_domain_standardisation(), cfg.normalization()) {
            (Some(before), Some(now)) => format!("{now} (the trials': {before})"),
            (None, Some(now)) => now,
            (_, None) => "as the trials".into(),
        };
        let data = cfg.load_task(&trial.source, &trial.target, data_dir)?;
        let rows = |d: &dalab_data::Domain| -> anyhow::Result<Array2<f64>> {
            let x = d.x.to_dense()?;
            let n = d.len();
            let flat: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            Ok(Array2::from_shape_vec((n, flat.len().checked_div(n).unwrap_or(0)), flat)?)
        };
        let (xs, xt) = (rows(&data.source)?, rows(&data.target)?);
        let views = [("source".to_string(), xs.view()), ("target".to_string(), xt.view())];
        let pair = [("source".to_string(), "target".to_string())];
        let r = report::compute(&views, Some(&pair), &settings)?;
        let p = &r.pairs[0];
        let best = table
            .rows
            .iter()
            .filter(|row| **row != table.baseline)
            .filter_map(|row| {
                let c = table.cells.get(&(row.clone(), task.clone()))?;
                let b = table.cells.get(&(table.baseline.clone(), task.clone()))?;
                dalab_runner::report::paired_loss_test(c, b).map(|(d, _, _)| (d, row))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map_or("–".to_string(), |(d, row)| format!("{:+.1} ({row})", 100.0 * d));
        let (pad, mmd, pv) = (
            p.a_distance.as_ref().map_or("–".into(), |a| format!("{:.2}", a.d_a)),
            p.mmd.as_ref().map_or("–".into(), |m| format!("{:.4}", m.mmd2)),
            p.mmd
                .as_ref()
                .and_then(|m| m.permutation_test.as_ref())
                .map(|t| t.p_value)
                .map_or("–".into(), |v| format!("{v:.2}")),
        );
        s.push_str(&format!("| {task} | {what} | {pad} | {mmd} | {pv} | {best} |\n"));
    }
    Ok(s)
}
