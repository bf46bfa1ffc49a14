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
fn dataset_domains(spec: &str, only: Option<&[String]>, data_dir: &Path) -> anyhow::Result<Vec<(String, Array2<f64>)>> {
    let cfg = dataset_config(spec)?;
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
            println!(
                "# dataset {spec} (each domain's training data after the dataset's preprocessing; data directory {})",
                data_dir.display()
            );
            dataset_domains(spec, args.domains.as_deref(), data_dir)?
        }
        None => {
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
    let mut matrices = Vec::with_capacity(files.len());
    for (name, path) in &files {
        let x = dalab_data::features::read_matrix(path, args.key.as_deref())
            .with_context(|| format!("reading domain `{name}` from {}", path.display()))?;
        matrices.push((name.clone(), x));
    }
    Ok(matrices)
}
