//! `dalab predict` and `dalab eval`: a trial's saved model (`model.safetensors`, rebuilt from its config.yaml and
//! model.json) applied to a domain or a feature file.

use anyhow::{Context, bail};
use dalab_cli::registry;
use dalab_data::{DatasetConfig, Domain, Features};
use dalab_runner::TrialConfig;
use dalab_train::checkpoint::ModelInfo;
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Which of a trial's models.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The model the selection rule kept (`model.safetensors`).
    Selected,
    /// The model at the end of training (`model-last.safetensors`).
    Last,
}

/// Where the inputs come from.
#[derive(clap::Args, Debug)]
pub struct InputArgs {
    /// The trial folder (`<runs dir>/<experiment>/<trial id>`).
    pub run_dir: PathBuf,
    /// A domain of the trial's dataset (or of `--dataset`), loaded as the trial's task loads it: its source, its
    /// target, or another domain preprocessed as a target of the trial's source.
    #[arg(long, conflicts_with = "features")]
    pub domain: Option<String>,
    /// Score the target's separate test split (datasets that have one) instead of its training data.
    #[arg(long, requires = "domain")]
    pub test_split: bool,
    /// Another dataset: a name (`digits`) or an experiment YAML whose `dataset:` section is used.
    #[arg(long, requires = "domain")]
    pub dataset: Option<String>,
    /// A feature file (.npy/.npz/.csv/.mat), one sample per row, with the trial's input size.
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// The key of the matrix inside a .npz/.mat file.
    #[arg(long, requires = "features")]
    pub key: Option<String>,
    #[arg(long, value_enum, default_value = "selected")]
    pub model: Which,
}

struct Loaded {
    method: Box<dyn dalab_core::Method>,
    _vs: tch::nn::VarStore,
    info: ModelInfo,
    config: TrialConfig,
}

fn load(dir: &Path, which: Which) -> anyhow::Result<Loaded> {
    let cfg_path = dir.join("config.yaml");
    let text = std::fs::read_to_string(&cfg_path).with_context(|| format!("{}: not a trial folder", dir.display()))?;
    let config: TrialConfig = serde_saphyr::from_str(&text).with_context(|| format!("{}", cfg_path.display()))?;
    let info_path = dir.join("model.json");
    let info: ModelInfo = serde_json::from_slice(
        &std::fs::read(&info_path)
            .with_context(|| format!("{}: no saved model (trial not finished?)", dir.display()))?,
    )
    .with_context(|| format!("{}", info_path.display()))?;
    let (file, stage) = match which {
        Which::Selected => ("model.safetensors", &info.selected_stage),
        Which::Last => ("model-last.safetensors", &info.last_stage),
    };
    let reg = registry();
    let (c, dev) = (&config, tch::Device::Cpu);
    let (vs, method) =
        dalab_train::load_model(&reg, &c.method, &c.method_config, &c.model, &info, stage, &dir.join(file), dev)?;
    Ok(Loaded { method, _vs: vs, info, config })
}

/// The domain `name` as the trial's task (or `dataset`'s first task containing it) loads it.
fn domain(l: &Loaded, args: &InputArgs, name: &str, data_dir: &Path) -> anyhow::Result<Domain> {
    let c = &l.config;
    let cfg: DatasetConfig = match &args.dataset {
        Some(spec) => crate::cmd_divergence::dataset_config(spec)?,
        None => c.dataset.clone(),
    };
    let task = if args.dataset.is_none() && (name == c.source || name == c.target) {
        cfg.load_task(&c.source, &c.target, data_dir)?
    } else if cfg.check_task(&c.source, name).is_ok() {
        cfg.load_task(&c.source, name, data_dir)?
    } else {
        let other = cfg.domains().into_iter().find(|o| cfg.check_task(o, name).is_ok());
        let Some(o) = other else { bail!("--domain: dataset `{}` has no task with target `{name}`", cfg.name()) };
        cfg.load_task(&o, name, data_dir)?
    };
    if args.test_split {
        return task.target_test.with_context(|| format!("--test-split: domain `{name}` has no separate test split"));
    }
    Ok(if args.dataset.is_none() && name == c.source { task.source } else { task.target })
}

/// The inputs and, when known, their labels.
fn inputs(l: &Loaded, args: &InputArgs, data_dir: &Path) -> anyhow::Result<(String, Features, Option<Vec<i64>>)> {
    match (&args.domain, &args.features) {
        (Some(name), _) => {
            let d = domain(l, args, name, data_dir)?;
            let what = if args.test_split { format!("{name} (test split)") } else { name.clone() };
            Ok((what, d.x, Some(d.y)))
        }
        (None, Some(path)) => {
            let m = dalab_data::features::read_matrix(path, args.key.as_deref())?;
            let want: i64 = l.info.input_shape.iter().product();
            if m.ncols() as i64 != want {
                bail!(
                    "{}: rows have {} values, the model takes {want} (input shape {:?})",
                    path.display(),
                    m.ncols(),
                    l.info.input_shape
                );
            }
            let mut shape = vec![m.nrows()];
            shape.extend(l.info.input_shape.iter().map(|&d| d as usize));
            let x = ndarray::ArrayD::from_shape_vec(shape, m.iter().map(|&v| v as f32).collect())?;
            Ok((path.display().to_string(), Features::Dense(x), None))
        }
        (None, None) => bail!("give --domain NAME or --features FILE"),
    }
}

fn logits(l: &Loaded, x: &Features) -> anyhow::Result<Tensor> {
    Ok(dalab_train::predict_all(l.method.as_ref(), x, l.config.train.eval_batch_size, tch::Device::Cpu)?)
}

/// `dalab predict`: per-sample predictions and class probabilities as CSV.
pub fn predict(args: &InputArgs, out: Option<&Path>, data_dir: &Path) -> anyhow::Result<()> {
    let l = load(&args.run_dir, args.model)?;
    let (what, x, y) = inputs(&l, args, data_dir)?;
    let z = logits(&l, &x)?;
    let pred = Vec::<i64>::try_from(z.argmax(-1, false))?;
    let k = z.size()[1] as usize;
    let p = Vec::<f64>::try_from(z.softmax(-1, Kind::Double).reshape([-1]))?;
    let mut csv = String::from("index");
    if y.is_some() {
        csv.push_str(",label");
    }
    csv.push_str(",prediction");
    for c in 0..k {
        csv.push_str(&format!(",p{c}"));
    }
    csv.push('\n');
    for (i, &pr) in pred.iter().enumerate() {
        csv.push_str(&i.to_string());
        if let Some(y) = &y {
            csv.push_str(&format!(",{}", y[i]));
        }
        csv.push_str(&format!(",{pr}"));
        for v in &p[i * k..(i + 1) * k] {
            csv.push_str(&format!(",{v:.6}"));
        }
        csv.push('\n');
    }
    match out {
        Some(path) => {
            std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("{} predictions for {what} written to {}", pred.len(), path.display());
        }
        None => std::io::stdout().write_all(csv.as_bytes())?,
    }
    Ok(())
}

/// `dalab eval`: the accuracy of a saved model on a labelled domain.
pub fn eval(args: &InputArgs, data_dir: &Path) -> anyhow::Result<()> {
    let l = load(&args.run_dir, args.model)?;
    let (what, x, y) = inputs(&l, args, data_dir)?;
    let Some(y) = y else { bail!("dalab eval needs labels: use --domain (dalab predict scores feature files)") };
    let pred = Vec::<i64>::try_from(logits(&l, &x)?.argmax(-1, false))?;
    let correct = pred.iter().zip(&y).filter(|(p, t)| p == t).count();
    let step = match args.model {
        Which::Selected => l.info.selected_step,
        Which::Last => l.info.last_step,
    };
    println!(
        "accuracy {:.6} ({correct}/{}) on {what}; {} model of {} (step {step})",
        correct as f64 / y.len().max(1) as f64,
        y.len(),
        match args.model {
            Which::Selected => "selected",
            Which::Last => "last",
        },
        l.info.method
    );
    Ok(())
}

/// The DANN paper's Figure 2 for the trial in `dir` when its inputs are 2-d points (e.g. the moons): its selected
/// model's decision regions over the plane of both domains' samples, and the first two principal components of its
/// features on both domains, as `out_dir/boundary-<trial>.png`. None when the inputs are not 2-d.
pub fn boundary_figure(dir: &Path, data_dir: &Path, out_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let l = load(dir, Which::Selected)?;
    if l.info.input_shape != [2] {
        return Ok(None);
    }
    let c = &l.config;
    let task = c.dataset.load_task(&c.source, &c.target, data_dir)?;
    let points = |d: &Domain| -> anyhow::Result<(Tensor, Vec<dalab_runner::figures::Point>)> {
        let x = d.x.to_dense()?;
        let v: Vec<f32> = x.iter().copied().collect();
        let pts = v.chunks(2).zip(&d.y).map(|(p, &y)| (f64::from(p[0]), f64::from(p[1]), y)).collect();
        Ok((Tensor::from_slice(&v).view([-1, 2]), pts))
    };
    let (xs, src) = points(&task.source)?;
    let (xt, tgt) = points(&task.target)?;
    // The plane of both samples, 5% margin, 160 × 160 cells.
    let n = 160usize;
    let all = || src.iter().chain(&tgt);
    let lim = |f: fn(&dalab_runner::figures::Point) -> f64| {
        let (lo, hi) = all().map(f).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let m = 0.05 * (hi - lo).max(1e-9);
        (lo - m, hi + m)
    };
    let (xr, yr) = (lim(|p| p.0), lim(|p| p.1));
    let mut grid = Vec::with_capacity(2 * n * n);
    for gy in 0..n {
        for gx in 0..n {
            let (cx, cy) = (
                xr.0 + (gx as f64 + 0.5) * (xr.1 - xr.0) / n as f64,
                yr.0 + (gy as f64 + 0.5) * (yr.1 - yr.0) / n as f64,
            );
            grid.extend([cx as f32, cy as f32]);
        }
    }
    let grid = Tensor::from_slice(&grid).view([-1, 2]);
    let (probs, fs, ft) = tch::no_grad(|| {
        (l.method.predict(&grid).softmax(-1, Kind::Double), l.method.features(&xs), l.method.features(&xt))
    });
    let (pmax, arg) = probs.max_dim(-1, false);
    let cells: Vec<(i64, f64)> = Vec::<i64>::try_from(arg)?.into_iter().zip(Vec::<f64>::try_from(pmax)?).collect();
    // PCA of the pooled features: the top two right singular vectors of the centred matrix, each signed so that
    // its largest entry is positive (a deterministic orientation).
    let f = Tensor::cat(&[fs.flatten(1, -1), ft.flatten(1, -1)], 0).to_kind(Kind::Double);
    let centred = &f - f.mean_dim(0, true, Kind::Double);
    let (_, s, v) = centred.svd(true, true);
    let k = v.size()[1].min(2);
    let axes = v.narrow(1, 0, k);
    let sign = axes.gather(0, &axes.abs().argmax(0, true), false).sign();
    let axes = axes * sign;
    let proj = centred.matmul(&axes);
    let sq: Vec<f64> = Vec::try_from(s.square())?;
    let explained = sq.iter().take(2).sum::<f64>() / sq.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let coords: Vec<f64> = Vec::try_from(proj.contiguous().view([-1]))?;
    let at = |i: usize| (coords[i * k as usize], if k > 1 { coords[i * 2 + 1] } else { 0.0 });
    let ns = src.len();
    let pca_source = (0..ns).map(|i| (at(i).0, at(i).1, src[i].2)).collect();
    let pca_target = (0..tgt.len()).map(|i| (at(ns + i).0, at(ns + i).1, tgt[i].2)).collect();
    let acc = |x: &Tensor, pts: &[dalab_runner::figures::Point]| -> anyhow::Result<f64> {
        let pred: Vec<i64> = Vec::try_from(tch::no_grad(|| l.method.predict(x)).argmax(-1, false))?;
        Ok(pred.iter().zip(pts).filter(|(p, q)| **p == q.2).count() as f64 / pts.len().max(1) as f64)
    };
    let title = format!(
        "{} on {}→{}, seed {}: source {:.1}%, target {:.1}% (model of step {})",
        c.method,
        c.source,
        c.target,
        c.seed,
        100.0 * acc(&xs, &src)?,
        100.0 * acc(&xt, &tgt)?,
        l.info.selected_step
    );
    let fig = dalab_runner::figures::BoundaryFigure {
        title,
        x_range: xr,
        y_range: yr,
        n,
        cells,
        source: src,
        target: tgt,
        pca_source,
        pca_target,
        pca_explained: explained,
    };
    std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "trial".into());
    let path = out_dir.join(format!("boundary-{name}.png"));
    dalab_runner::figures::draw_boundary(&fig, &path)?;
    Ok(Some(path))
}
