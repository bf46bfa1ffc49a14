//! The experiment YAML: parsing (serde-saphyr, `deny_unknown_fields` everywhere), `extends:`, `--set`
//! overrides, `sweep:` grids, validation, and errors that name the file, line, column and key path in one line.
//!
//! Pipeline: the file is parsed strictly as typed YAML (errors with line/column), then as a tree; `extends`
//! bases are merged under it (maps merge key by key, anything else is replaced), `--set` overrides are applied,
//! the `sweep` grid is expanded, and every grid point is parsed and validated as a typed experiment before any
//! trial starts.

use crate::{Error, Result};
use dalab_core::registry::{MethodSpecs, with_registry};
use dalab_core::schedule::LrSchedule;
use dalab_core::{Registry, Validate, device::DeviceSpec};
use dalab_data::DatasetConfig;
use dalab_train::{ModelConfig, OptimConfig, Selection, SettingConfig, TrainConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An experiment: a dataset, its tasks, the methods to compare, the shared training settings and the seeds.
/// One trial is run per sweep point × method × task × seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// A base experiment file (relative to this one) whose keys this file overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// Name of the experiment: results go to `<runs dir>/<name>/`.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub dataset: DatasetConfig,
    /// Adaptation tasks: a list of `source→target` (or `source->target`), or `all` (every task of the dataset:
    /// each ordered pair of distinct domains; for moons, its one task).
    pub tasks: Tasks,
    /// Methods and their options: `dann: {trade_off: 1.0}`.
    pub methods: MethodSpecs,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    /// Learning-rate schedule (multiplies `optim.lr`).
    #[serde(default)]
    pub schedule: LrSchedule,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub selection: Selection,
    /// Who may see target labels: `unsupervised` (default), `{semi_supervised: {labels_per_class: k}}`,
    /// `supervised`. Each method must support it.
    #[serde(default, skip_serializing_if = "SettingConfig::is_unsupervised")]
    pub setting: SettingConfig,
    /// One trial per seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// `auto` (CUDA when available), `cpu`, `cuda`, `cuda:N`.
    #[serde(default = "DeviceSpec::auto")]
    pub device: DeviceSpec,
    /// Where the trials run: `{kind: local}` (default: child processes, `--jobs`) or `{kind: slurm, partition: …}`
    /// (a Slurm job array; docs/configuration.md, "Running on a cluster"). Not part of any trial's config.
    #[serde(default, skip_serializing_if = "crate::slurm::Launcher::is_local")]
    pub launcher: crate::slurm::Launcher,
    /// A grid over dotted keys: `methods.dann.trade_off: [0.1, 1.0]`. Every combination is a sweep point.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sweep: BTreeMap<String, Vec<Value>>,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// `tasks:` either `all` or a list of `source→target`.
#[derive(Debug, Clone, PartialEq)]
pub enum Tasks {
    All,
    List(Vec<String>),
}

impl Serialize for Tasks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Tasks::All => s.serialize_str("all"),
            Tasks::List(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Tasks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Tasks;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`all` or a list of tasks `source→target`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Tasks, E> {
                if v == "all" { Ok(Tasks::All) } else { Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)) }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Tasks, A::Error> {
                let mut v = Vec::new();
                while let Some(t) = seq.next_element::<String>()? {
                    v.push(t);
                }
                Ok(Tasks::List(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Splits `a→b` / `a->b` into its domains.
pub fn split_task(task: &str) -> Option<(&str, &str)> {
    let (a, b) = task.split_once('→').or_else(|| task.split_once("->"))?;
    let (a, b) = (a.trim(), b.trim());
    (!a.is_empty() && !b.is_empty()).then_some((a, b))
}

impl ExperimentConfig {
    /// The tasks as `(source, target)` pairs (`all` expanded).
    pub fn task_pairs(&self) -> Vec<(String, String)> {
        match &self.tasks {
            Tasks::All => {
                let d = self.dataset.domains();
                let mut v = Vec::new();
                for s in &d {
                    for t in &d {
                        if self.dataset.check_task(s, t).is_ok() {
                            v.push((s.clone(), t.clone()));
                        }
                    }
                }
                v
            }
            Tasks::List(l) => {
                l.iter().filter_map(|t| split_task(t).map(|(a, b)| (a.to_string(), b.to_string()))).collect()
            }
        }
    }

    /// Semantic checks after parsing; the error names the key path.
    pub fn validate(&self, registry: &Registry) -> std::result::Result<(), String> {
        if self.name.is_empty()
            || self.name.starts_with('.')
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "name: must be letters, digits, `-`, `_`, `.` (it names the results folder), got {:?}",
                self.name
            ));
        }
        self.dataset.validate().map_err(|e| format!("dataset.{e}"))?;
        if let crate::slurm::Launcher::Slurm(c) = &self.launcher {
            c.validate().map_err(|e| format!("launcher.{e}"))?;
        }
        match &self.tasks {
            Tasks::All => {}
            Tasks::List(l) if l.is_empty() => return Err("tasks: must list at least one task `source→target`".into()),
            Tasks::List(l) => {
                for (i, t) in l.iter().enumerate() {
                    let Some((s, d)) = split_task(t) else {
                        return Err(format!("tasks[{i}]: expected `source→target`, got {t:?}"));
                    };
                    self.dataset.check_task(s, d).map_err(|e| format!("tasks[{i}]: {e}"))?;
                }
            }
        }
        if self.methods.0.is_empty() {
            return Err("methods: must list at least one method".into());
        }
        for (name, cfg) in &self.methods.0 {
            registry.validate(name, cfg).map_err(|e| e.to_string())?;
        }
        self.setting.validate().map_err(|e| format!("setting.{e}"))?;
        for (name, _) in &self.methods.0 {
            registry.check_setting(name, self.setting.setting()).map_err(|e| e.to_string())?;
        }
        self.model.validate().map_err(|e| format!("model.{e}"))?;
        self.optim.validate().map_err(|e| format!("optim.{e}"))?;
        for g in self.optim.groups.keys() {
            let has = |n: &String| registry.get(n).is_some_and(|e| e.groups.contains(&g.as_str()));
            if !self.methods.0.iter().any(|(n, _)| has(n)) {
                let known: Vec<String> = self
                    .methods
                    .0
                    .iter()
                    .filter_map(|(n, _)| registry.get(n).map(|e| format!("{n}: {}", e.groups.join(", "))))
                    .collect();
                return Err(format!(
                    "optim.groups.{g}: no method of this experiment has a parameter group `{g}` ({})",
                    known.join("; ")
                ));
            }
        }
        self.schedule.validate().map_err(|e| format!("schedule.{e}"))?;
        self.train.validate().map_err(|e| format!("train.{e}"))?;
        if self.seeds.is_empty() {
            return Err("seeds: must list at least one seed".into());
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(s) = self.seeds.iter().find(|s| !seen.insert(**s)) {
            return Err(format!("seeds: seed {s} is listed twice"));
        }
        let device = self.device.resolve().map_err(|e| e.to_string())?;
        if self.train.amp != dalab_train::Amp::Off && !device.is_cuda() {
            return Err(format!(
                "train.amp: `{}` needs a CUDA device, and the experiment runs on {device:?}",
                serde_json::to_value(self.train.amp)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            ));
        }
        Ok(())
    }
}

/// One point of the sweep grid: the experiment with the point's values applied, and the values.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    pub config: ExperimentConfig,
    /// `(dotted key, value)` for each swept key (empty without a sweep).
    pub values: Vec<(String, Value)>,
}

/// A loaded experiment: every sweep point, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// The file it came from (or `<text>`).
    pub origin: String,
    pub name: String,
    /// The merged tree (after `extends` and `--set`), with the `sweep` key.
    pub tree: Value,
    pub points: Vec<SweepPoint>,
    /// Each method's parameter groups (from the registry): a trial's `optim.groups` keeps only its method's.
    pub groups: BTreeMap<String, Vec<&'static str>>,
}

impl Experiment {
    /// The first point's config (the shared settings: name, dataset, tasks, seeds, ...).
    pub fn base(&self) -> &ExperimentConfig {
        &self.points[0].config
    }
}

/// Reads YAML as dalab does everywhere: an explicit tag other than YAML's standard ones (`!!str`, `!!int`,
/// `!!float`, `!!bool`, `!!null`, `!!seq`, `!!map`) is an error, not dropped: serde-saphyr otherwise reads
/// `lr: !!python/object:os.system 0.05` as 0.05, and a file meant for another loader would run silently.
fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, serde_saphyr::options!(reject_unsupported_tags: true))
}

fn yaml_to_tree(text: &str, origin: &str) -> Result<Value> {
    let v: std::result::Result<Value, serde_saphyr::Error> = from_yaml(text);
    let v = v.map_err(|e| Error::Config(yaml_error_line(text, origin, &e)))?;
    match v {
        Value::Object(_) => Ok(v),
        Value::Null => Err(Error::Config(format!("{origin}: the file is empty"))),
        _ => Err(Error::Config(format!("{origin}: expected a map of keys (name, dataset, tasks, methods, ...)"))),
    }
}

/// Merges `over` into `base`: maps key by key (recursively), anything else replaced; `key: null` (or `~`)
/// removes an inherited key (`methods: {coral: null}` drops the base's coral; an option falls back to its
/// default).
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(_) if v.is_null() => {
                        b.shift_remove(&k);
                    }
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The merged tree of `path` and the files it extends; `texts` receives each file's (name, text), the child
/// first.
fn load_tree(path: &Path, depth: usize, chain: &mut Vec<PathBuf>, texts: &mut Vec<(String, String)>) -> Result<Value> {
    let origin = path.display().to_string();
    let canon = path.canonicalize().map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    if chain.contains(&canon) {
        return Err(Error::Config(format!("{origin}: extends: cycle through this file")));
    }
    if depth > 16 {
        return Err(Error::Config(format!("{origin}: extends: more than 16 levels")));
    }
    chain.push(canon);
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let mut tree = yaml_to_tree(&text, &origin)?;
    texts.push((origin.clone(), text));
    let ext = tree.as_object_mut().expect("checked").remove("extends");
    match ext {
        None => Ok(tree),
        Some(Value::String(base_rel)) => {
            let base_path = path.parent().unwrap_or(Path::new(".")).join(&base_rel);
            if !base_path.is_file() {
                return Err(Error::Config(format!("{origin}: extends: no such file {}", base_path.display())));
            }
            let mut base = load_tree(&base_path, depth + 1, chain, texts)?;
            merge(&mut base, tree);
            Ok(base)
        }
        Some(other) => Err(Error::Config(format!("{origin}: extends: expected a file name, got {other}"))),
    }
}

/// Sets `path` (dotted) in `tree` to `value`, creating maps on the way.
fn set_path(tree: &mut Value, path: &str, value: Value) -> std::result::Result<(), String> {
    let mut cur = tree;
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("`{path}` is not a dotted key path"));
    }
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            if cur.is_null() {
                *cur = Value::Object(Map::new());
            } else {
                return Err(format!("`{}` is not a map", parts[..i].join(".")));
            }
        }
        let obj = cur.as_object_mut().expect("made a map");
        if i + 1 == parts.len() {
            obj.insert(p.to_string(), value);
            return Ok(());
        }
        cur = obj.entry(p.to_string()).or_insert(Value::Null);
    }
    Ok(())
}

/// Removes the dotted `path` from `tree`; an error when it is not there.
fn remove_path(tree: &mut Value, path: &str) -> std::result::Result<(), String> {
    let (parent, last) = match path.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, path),
    };
    let holder = match parent {
        Some(p) => p.split('.').try_fold(&mut *tree, |cur, k| cur.as_object_mut()?.get_mut(k)),
        None => Some(tree),
    };
    match holder.and_then(Value::as_object_mut).and_then(|m| m.remove(last)) {
        Some(_) => Ok(()),
        None => Err(format!("no key `{path}` in the experiment to delete")),
    }
}

fn get_path<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(tree, |cur, p| cur.as_object()?.get(p))
}

/// Parses a `key=value` override; the value is YAML (`0.1`, `[15, 15]`, `{kind: constant}`, `dann`).
pub fn parse_set(s: &str) -> Result<(String, Value)> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(Error::Config(format!("--set {s}: expected key.path=value")));
    };
    let value: std::result::Result<Value, serde_saphyr::Error> = from_yaml(v);
    let value =
        value.map_err(|e| Error::Config(format!("--set {s}: the value is not valid YAML: {}", first_line(&e))))?;
    Ok((k.trim().to_string(), value))
}

fn first_line(e: &serde_saphyr::Error) -> String {
    e.without_snippet().to_string().lines().next().unwrap_or("").to_string()
}

/// Parses a tree as a typed experiment; errors name the key path.
fn typed(tree: &Value, registry: &Registry) -> std::result::Result<ExperimentConfig, String> {
    with_registry(registry, || {
        serde_path_to_error::deserialize::<_, ExperimentConfig>(tree.clone()).map_err(|e| {
            let mut path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // A tagged enum (buffered by serde) names itself, not its unknown field: add the field.
            if let Some(field) = unknown_field(&inner)
                && !path.ends_with(&format!(".{field}"))
                && path != field
            {
                path = if path == "." || path.is_empty() { field.to_string() } else { format!("{path}.{field}") };
            }
            if path == "." || path.is_empty() { inner } else { format!("{path}: {inner}") }
        })
    })
}

/// Loads an experiment file with `--set` overrides, expands its sweep and validates every point.
pub fn load_experiment(path: &Path, sets: &[String], registry: &Registry) -> Result<Experiment> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let tree = yaml_to_tree(&text, &origin)?;
    // A file that stands alone is first parsed strictly from its text, for errors with line and column.
    if tree.get("extends").is_none() {
        let parsed: std::result::Result<ExperimentConfig, serde_saphyr::Error> =
            with_registry(registry, || from_yaml(&text));
        parsed.map_err(|e| Error::Config(located(&text, &origin, &e, registry)))?;
    }
    let mut texts = Vec::new();
    let mut tree = load_tree(path, 0, &mut Vec::new(), &mut texts)?;
    build(&mut tree, &origin, sets, registry).map_err(|e| match e {
        Error::Config(m) if texts.len() > 1 => Error::Config(attribute(&m, &origin, &texts)),
        e => e,
    })
}

/// An error `origin: key.path: message` of a merged experiment, told at the file of the chain that sets
/// `key.path` (the child first, as the child's value wins), with that value's line and column; unchanged
/// when no file sets it (a default, a missing key).
fn attribute(m: &str, origin: &str, texts: &[(String, String)]) -> String {
    let Some((path, msg)) = m.strip_prefix(origin).and_then(|r| r.strip_prefix(": ")).and_then(|r| r.split_once(": "))
    else {
        return m.to_string();
    };
    let indexed: Vec<(&str, Vec<crate::yaml_index::Node>)> =
        texts.iter().map(|(f, t)| (f.as_str(), crate::yaml_index::index(t))).collect();
    // The exact key first; else the deepest key above it that a file sets (a mapping given whole).
    let exact = indexed.iter().find_map(|(f, nodes)| {
        // A wrong value is shown at the value, an unknown key at the key.
        let value = nodes.iter().find(|n| n.path == path && n.is_key == msg.starts_with("unknown field"));
        value.or_else(|| nodes.iter().find(|n| n.path == path)).map(|n| (*f, n))
    });
    let above = || {
        indexed
            .iter()
            .filter_map(|(f, nodes)| {
                let n = nodes
                    .iter()
                    .filter(|n| path.strip_prefix(n.path.as_str()).is_some_and(|r| r.starts_with(['.', '['])))
                    .max_by_key(|n| n.path.len())?;
                Some((*f, n))
            })
            .max_by_key(|(_, n)| n.path.len())
    };
    match exact.or_else(above) {
        Some((f, n)) if f == origin => format!("{f}:{}:{}: {path}: {msg}", n.line, n.col),
        Some((f, n)) => format!("{f}:{}:{}: {path}: {msg} (in the file `{origin}` extends)", n.line, n.col),
        None => m.to_string(),
    }
}

/// Parses an experiment from YAML text (no `extends`), with `--set` overrides.
pub fn parse_experiment(text: &str, origin: &str, sets: &[String], registry: &Registry) -> Result<Experiment> {
    let parsed: std::result::Result<ExperimentConfig, serde_saphyr::Error> =
        with_registry(registry, || from_yaml(text));
    parsed.map_err(|e| Error::Config(located(text, origin, &e, registry)))?;
    let mut tree = yaml_to_tree(text, origin)?;
    if tree.get("extends").is_some() {
        return Err(Error::Config(format!("{origin}: extends: only files can extend others")));
    }
    build(&mut tree, origin, sets, registry)
}

fn build(tree: &mut Value, origin: &str, sets: &[String], registry: &Registry) -> Result<Experiment> {
    for s in sets {
        let ok_before = typed(tree, registry).is_ok();
        if let Some(path) = s.strip_prefix('~') {
            // `~key.path`: delete the key (Hydra's syntax), e.g. `~methods.dan`.
            remove_path(tree, path).map_err(|m| Error::Config(format!("{s}: {m}")))?;
        } else {
            let (k, v) = parse_set(s)?;
            match k.strip_prefix("sweep.") {
                // `sweep.<dotted key>=[a, b]`: one axis of the sweep grid (its key stays one dotted string).
                Some(axis) => {
                    let sweep = tree.as_object_mut().expect("a map").entry("sweep").or_insert(Value::Null);
                    if sweep.is_null() {
                        *sweep = Value::Object(Map::new());
                    }
                    let Some(m) = sweep.as_object_mut() else {
                        return Err(Error::Config(format!("--set {s}: `sweep` is not a map")));
                    };
                    m.insert(axis.to_string(), v);
                }
                None => set_path(tree, &k, v).map_err(|m| Error::Config(format!("--set {s}: {m}")))?,
            }
        }
        // An override that breaks a config that parsed before is named as the culprit.
        if let (true, Err(m)) = (ok_before, typed(tree, registry)) {
            return Err(Error::Config(format!("--set {s}: {m}")));
        }
    }
    let base = typed(tree, registry).map_err(|m| Error::Config(format!("{origin}: {m}")))?;
    base.validate(registry).map_err(|m| Error::Config(format!("{origin}: {m}")))?;
    // The sweep grid; every key must exist in the resolved config (defaults filled in).
    let resolved = serde_json::to_value(&base).expect("configs serialize");
    let mut grid: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (key, values) in &base.sweep {
        if key.starts_with("sweep") || key == "name" {
            return Err(Error::Config(format!("{origin}: sweep.{key}: this key cannot be swept")));
        }
        if get_path(&resolved, key).is_none() {
            return Err(Error::Config(format!("{origin}: sweep.{key}: no such key in the experiment")));
        }
        if values.is_empty() {
            return Err(Error::Config(format!("{origin}: sweep.{key}: the list of values is empty")));
        }
        grid = grid
            .into_iter()
            .flat_map(|point| {
                values.iter().map(move |v| {
                    let mut p = point.clone();
                    p.push((key.clone(), v.clone()));
                    p
                })
            })
            .collect();
    }
    let mut points = Vec::with_capacity(grid.len());
    for values in grid {
        let mut t = resolved.clone();
        for (k, v) in &values {
            set_path(&mut t, k, v.clone()).map_err(|m| Error::Config(format!("{origin}: sweep.{k}: {m}")))?;
        }
        let where_ = || values.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
        // Parsing again resolves method options (defaults filled in) after the sweep changed one.
        let cfg = typed(&t, registry).map_err(|m| Error::Config(format!("{origin}: sweep point {}: {m}", where_())))?;
        cfg.validate(registry).map_err(|m| Error::Config(format!("{origin}: sweep point {}: {m}", where_())))?;
        points.push(SweepPoint { config: cfg, values });
    }
    let groups = base
        .methods
        .0
        .iter()
        .map(|(m, _)| (m.clone(), registry.get(m).map_or_else(Vec::new, |e| e.groups.to_vec())))
        .collect();
    Ok(Experiment { origin: origin.to_string(), name: base.name.clone(), tree: tree.clone(), points, groups })
}

/// [`yaml_error_line`], with the innermost key of an error inside a method's options. serde-saphyr reads those
/// through the registry's buffer and places a type error in flow style (`dann: {trade_off: abc}`) at the options'
/// mapping: the typed parse of the same tree names the key (`methods.dann.trade_off`), and the text's index gives
/// the position of its value.
fn located(text: &str, origin: &str, e: &serde_saphyr::Error, registry: &Registry) -> String {
    let line = yaml_error_line(text, origin, e);
    let deeper = || -> Option<String> {
        let rest = line.strip_prefix(origin)?.strip_prefix(':')?;
        let mut parts = rest.splitn(3, ": ");
        let (_, path, msg) = (parts.next()?, parts.next()?, parts.next()?);
        let method = path.strip_prefix("methods.")?;
        if method.contains(['.', '[']) || msg.starts_with("unknown field") {
            return None;
        }
        let tree = yaml_to_tree(text, origin).ok()?;
        let typed_error = typed(&tree, registry).err()?;
        let inner = typed_error.split(": ").next()?;
        if !inner.starts_with(&format!("{path}.")) {
            return None;
        }
        let nodes = crate::yaml_index::index(text);
        let n =
            nodes.iter().find(|n| n.path == inner && !n.is_key).or_else(|| nodes.iter().find(|n| n.path == inner))?;
        Some(format!("{origin}:{}:{}: {inner}: {msg}", n.line, n.col))
    };
    deeper().unwrap_or(line)
}

/// Turns a serde-saphyr error into one line: `file:line:col: key.path: message`.
fn yaml_error_line(text: &str, origin: &str, e: &serde_saphyr::Error) -> String {
    let line = yaml_error_line_plain(text, origin, e);
    match look_alike_hint(&line) {
        Some(hint) => format!("{line} ({hint})"),
        None => line,
    }
}

fn yaml_error_line_plain(text: &str, origin: &str, e: &serde_saphyr::Error) -> String {
    let mut msg = first_line(e).trim().to_string();
    if msg.is_empty() {
        msg = "invalid YAML".into();
    }
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
        msg.truncate(msg.trim_end().len());
    }
    // serde-saphyr's wording for an option-less struct or variant (`kind: constant`), and for a tag it does not know.
    if let Some(m) = msg.strip_suffix(", expected one of") {
        msg = format!("{m}: no options are allowed here");
    }
    if let Some(tag) = msg.strip_prefix("unsupported tag ") {
        msg = format!(
            "YAML tag {tag} is not allowed (only the standard !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)"
        );
    }
    match e.location() {
        Some(loc) if loc.line() > 0 => {
            let (mut line, mut col) = (loc.line() as usize, loc.column() as usize);
            if let Some(r) = refine(text, line, col, &msg) {
                return r.line(origin);
            }
            // Located at a key whose value holds the unknown field (a buffered tagged enum): name the field.
            let below = unknown_field(&msg).and_then(|f| crate::yaml_index::field_below(text, line, col, f));
            // A tag: the key or value it is on, in flow style too.
            let tagged = msg.starts_with("YAML tag ").then(|| crate::yaml_index::node_at(text, line, col)).flatten();
            if let Some(n) = below.or(tagged) {
                (line, col) = (n.line, n.col);
                return format!("{origin}:{line}:{col}: {}: {msg}", n.path);
            }
            // A flow collection on the line (`optim: {lr: .nan}`): the node at the position is deeper than the
            // line's key.
            let by_line = key_path_at(text, line);
            if let (Some(p), Some(n)) = (&by_line, crate::yaml_index::node_at(text, line, col))
                && n.path.strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with(['.', '[']))
            {
                return format!("{origin}:{line}:{col}: {}: {msg}", n.path);
            }
            match by_line {
                Some(path) => format!("{origin}:{line}:{col}: {path}: {msg}"),
                None => format!("{origin}:{line}:{col}: {msg}"),
            }
        }
        _ => format!("{origin}: {msg}"),
    }
}

/// A serde-saphyr error made precise with the text's index; see [`refine`].
struct Refined {
    /// Where the wrong node starts (None: the error concerns the whole document).
    at: Option<(usize, usize)>,
    path: String,
    msg: String,
}

impl Refined {
    fn line(&self, origin: &str) -> String {
        let path = if self.path.is_empty() { String::new() } else { format!("{}: ", self.path) };
        match self.at {
            Some((l, c)) => format!("{origin}:{l}:{c}: {path}{}", self.msg),
            None => format!("{origin}: {path}{}", self.msg),
        }
    }
}

/// The cases where serde-saphyr's position or wording does not name the wrong key:
/// - `missing field`: located at the last key of the mapping that lacks it (or at the key of a buffered tagged
///   enum holding it): names the missing key's own path and the mapping it belongs in;
/// - a type or value error inside a buffered tagged enum (`backbone: {kind: mlp, hidden: 15}`), located at the
///   enum's key: names the value inside it that has the unexpected type (`model.backbone.hidden`);
/// - `expected string scalar` (a list or mapping where one value belongs) and `invalid u64` (no value shown):
///   say what was found;
/// - a duplicate key: where it was first given, without serde-saphyr's advice about its own options;
/// - an unknown name with characters that are not ASCII (a homoglyph, an invisible character): says which, and
///   the ASCII name it looks like.
fn refine(text: &str, line: usize, col: usize, msg: &str) -> Option<Refined> {
    use crate::yaml_index::{Kind, key_and_value, parent, values_inside};
    let nodes = crate::yaml_index::index(text);
    let at_key = key_and_value(&nodes, line, col);
    let innermost = || nodes.iter().rfind(|n| n.line == line && n.col == col);
    if let Some(field) = msg.strip_prefix("missing field `").and_then(|f| f.strip_suffix('`')) {
        let (k, v) = at_key?;
        let owner = if v.kind == Kind::Map { k.path.as_str() } else { parent(&k.path) };
        let path = if owner.is_empty() { field.to_string() } else { format!("{owner}.{field}") };
        return Some(match nodes.iter().find(|n| n.is_key && n.path == owner) {
            Some(o) => Refined { at: Some((o.line, o.col)), path, msg: format!("missing (required in `{owner}`)") },
            None => Refined { at: None, path, msg: "missing (a required top-level key)".into() },
        });
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ").or_else(|| msg.strip_prefix("invalid value: "))
        && let Some((k, v)) = at_key
        && v.kind == Kind::Map
    {
        let unexpected = rest.split(", expected ").next().unwrap_or(rest);
        let wanted = match unexpected {
            "sequence" => Some(Kind::Seq),
            "map" => Some(Kind::Map),
            u => u
                .split_once(['`', '"'])
                .map(|(_, v)| Kind::Scalar(v.trim_end_matches(['`', '"']).replace("\\\"", "\"").to_string())),
        }?;
        let hits: Vec<&crate::yaml_index::Node> = values_inside(&nodes, &k.path).filter(|n| n.kind == wanted).collect();
        return match hits[..] {
            [] => None,
            [hit] => Some(Refined { at: Some((hit.line, hit.col)), path: hit.path.clone(), msg: msg.to_string() }),
            // Several values fit the description: name them all rather than guess.
            _ => {
                let list: Vec<String> = hits.iter().map(|h| format!("{} at {}:{}", h.path, h.line, h.col)).collect();
                let msg = format!("{msg} (one of: {})", list.join(", "));
                Some(Refined { at: Some((line, col)), path: k.path.clone(), msg })
            }
        };
    }
    // An unknown variant inside a buffered tagged enum: the key (`{rotate: 3}`) or the value (`kind: linar`) below.
    if let Some(name) = msg.strip_prefix("unknown variant `").and_then(|r| r.split_once('`')).map(|(n, _)| n)
        && let Some((k, v)) = at_key
        && v.kind == Kind::Map
    {
        let inside = |n: &&crate::yaml_index::Node| {
            n.path.strip_prefix(k.path.as_str()).is_some_and(|r| r.starts_with(['.', '[']))
        };
        let hit = nodes.iter().filter(inside).find(|n| {
            (n.is_key && n.path.rsplit(['.', ']']).next() == Some(name)) || n.kind == Kind::Scalar(name.to_string())
        })?;
        return Some(Refined { at: Some((hit.line, hit.col)), path: hit.path.clone(), msg: msg.to_string() });
    }
    // A sequence of the wrong length inside a buffered tagged enum: the sequence below with that many items.
    if let Some(len) =
        msg.strip_prefix("invalid length ").and_then(|r| r.split(',').next()).and_then(|n| n.parse::<usize>().ok())
        && let Some((k, v)) = at_key
        && v.kind == Kind::Map
    {
        let items = |p: &str| {
            nodes
                .iter()
                .filter(|n| {
                    !n.is_key
                        && n.path
                            .strip_prefix(p)
                            .is_some_and(|r| r.starts_with('[') && r.find(']').is_some_and(|e| e + 1 == r.len()))
                })
                .count()
        };
        let hit = values_inside(&nodes, &k.path).find(|n| n.kind == Kind::Seq && items(&n.path) == len)?;
        return Some(Refined { at: Some((hit.line, hit.col)), path: hit.path.clone(), msg: msg.to_string() });
    }
    if msg == "expected string scalar" {
        let n = innermost()?;
        let found = match n.kind {
            Kind::Seq => "a sequence",
            Kind::Map => "a mapping",
            _ => return None,
        };
        let msg = format!("invalid type: {found}, expected a single value (a number, string or boolean)");
        return Some(Refined { at: Some((line, col)), path: n.path.clone(), msg });
    }
    if let Some(ty) = msg.strip_prefix("invalid ").filter(|t| !t.contains(' ')) {
        let n = innermost()?;
        let Kind::Scalar(v) = &n.kind else { return None };
        let expected = match ty {
            t if t.starts_with('u') => "a non-negative integer",
            t if t.starts_with('i') => "an integer",
            "bool" => "true or false",
            _ => return None,
        };
        let msg = format!("invalid {ty}: expected {expected}, got `{v}`");
        return Some(Refined { at: Some((line, col)), path: n.path.clone(), msg });
    }
    if msg.starts_with("duplicate mapping key") {
        let n = nodes.iter().find(|n| n.is_key && n.line == line && n.col == col)?;
        let first = nodes.iter().find(|o| o.is_key && o.path == n.path)?;
        let msg = format!("duplicate key (first given at line {}:{})", first.line, first.col);
        return Some(Refined { at: Some((line, col)), path: n.path.clone(), msg });
    }
    None
}

/// For a message about an unknown name (`unknown field`, `unknown method`, `unknown variant`) whose name holds
/// characters that are not printable ASCII: which ones, and the expected name it is a look-alike of, if any.
/// Names of domains and tasks may be any Unicode; keys, methods and variants are ASCII.
pub(crate) fn look_alike_hint(msg: &str) -> Option<String> {
    let (name, rest) = ["unknown field `", "unknown method `", "unknown variant `"]
        .iter()
        .find_map(|p| msg.split_once(p))
        .and_then(|(_, rest)| rest.split_once('`'))?;
    // The names the message offers (`expected one of a, b` or `(registered: a, b)`).
    let expected: Vec<&str> =
        rest.split([',', ' ', '(', ')', ':', '`']).filter(|w| !w.is_empty() && w.is_ascii()).collect();
    let odd: Vec<(usize, char)> = name.chars().enumerate().filter(|(_, c)| !c.is_ascii_graphic()).collect();
    if odd.is_empty() {
        return None;
    }
    let list: Vec<String> = odd.iter().map(|(i, c)| format!("U+{:04X} at character {}", *c as u32, i + 1)).collect();
    let mut hint = format!("the name holds characters that are not ASCII: {}", list.join(", "));
    // Invisible characters dropped, or look-alikes in their places: the expected name it matches.
    let visible: String = name.chars().filter(|c| !is_invisible(*c)).collect();
    let chars: Vec<char> = visible.chars().collect();
    let like = expected.iter().find(|e| {
        let ec: Vec<char> = e.chars().collect();
        ec.len() == chars.len() && ec.iter().zip(&chars).all(|(a, b)| a == b || !b.is_ascii())
    });
    if let Some(e) = like {
        hint.push_str(&format!("; did you mean `{e}`?"));
    }
    Some(hint)
}

/// Zero-width and formatting characters that show as nothing.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{202A}'..='\u{202E}')
}

/// `X` of a message `unknown field `X`...`.
fn unknown_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("unknown field `")?.split_once('`').map(|(f, _)| f)
}

/// The key path (`optim.lr`, `tasks[1]`) of the block-style YAML entry on 1-based line `line`, found by walking
/// up the indentation. Returns None for lines that hold no key (comments, flow collections spanning lines).
pub fn key_path_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let target = *lines.get(line.checked_sub(1)?)?;
    let mut parts: Vec<String> = Vec::new();
    let (mut indent, entry) = parse_entry(target)?;
    parts.push(entry.clone());
    let mut is_item = entry.starts_with('[');
    let mut item_indent = indent;
    let mut count_items = 0usize;
    for l in lines[..line - 1].iter().rev() {
        let Some((ind, e)) = parse_entry(l) else { continue };
        if is_item && ind == item_indent && e.starts_with('[') {
            count_items += 1; // an earlier sibling item
            continue;
        }
        if ind < indent || (is_item && ind <= item_indent && !e.starts_with('[')) {
            if is_item {
                let last = parts.last_mut().expect("non-empty");
                *last = format!("[{count_items}]{}", last.trim_start_matches("[]"));
            }
            parts.push(e.clone());
            indent = ind;
            is_item = e.starts_with('[');
            item_indent = ind;
            count_items = 0;
            if ind == 0 && !is_item {
                break;
            }
        }
    }
    if is_item {
        let last = parts.last_mut().expect("non-empty");
        *last = format!("[{count_items}]{}", last.trim_start_matches("[]"));
    }
    parts.reverse();
    let mut out = String::new();
    for p in parts {
        if p.starts_with('[') || out.is_empty() {
            out.push_str(&p);
        } else {
            out.push('.');
            out.push_str(&p);
        }
    }
    Some(out)
}

/// `(indent, entry)` for a line: a key `k` (from `k: ...`), or `[]k` for a list item `- k: ...`, or `[]` for a
/// plain list item. None for blank lines and comments.
fn parse_entry(line: &str) -> Option<(usize, String)> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
        return None;
    }
    let indent = line.len() - trimmed.len();
    let (item, rest) = match trimmed.strip_prefix("- ").or_else(|| (trimmed == "-").then_some("")) {
        Some(r) => (true, r.trim_start()),
        None => (false, trimmed),
    };
    let key = rest
        .split_once(':')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with(['{', '[', '"', '\'']) && !k.contains(' ') || k.starts_with('"'));
    match (item, key) {
        (true, Some(k)) => Some((indent, format!("[]{}", k.trim_matches('"')))),
        (true, None) => Some((indent, "[]".into())),
        (false, Some(k)) => Some((indent, k.trim_matches('"').to_string())),
        (false, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: &str = "name: x\nmethods:\n  dann:\n    trade_off: 1\n    discriminator:\n      hidden: [1]\ntasks:\n  - a→b\n  - c→d\noptim:\n  lr: 0.1\n";

    #[test]
    fn key_paths_from_lines() {
        assert_eq!(key_path_at(Y, 1).as_deref(), Some("name"));
        assert_eq!(key_path_at(Y, 4).as_deref(), Some("methods.dann.trade_off"));
        assert_eq!(key_path_at(Y, 6).as_deref(), Some("methods.dann.discriminator.hidden"));
        assert_eq!(key_path_at(Y, 8).as_deref(), Some("tasks[0]"));
        assert_eq!(key_path_at(Y, 9).as_deref(), Some("tasks[1]"));
        assert_eq!(key_path_at(Y, 11).as_deref(), Some("optim.lr"));
    }

    #[test]
    fn tasks_split_on_either_arrow() {
        assert_eq!(split_task("A→W"), Some(("A", "W")));
        assert_eq!(split_task("books -> kitchen"), Some(("books", "kitchen")));
        assert_eq!(split_task("A-W"), None);
        assert_eq!(split_task("→W"), None);
    }

    #[test]
    fn merge_and_set_paths() {
        let mut a = serde_json::json!({"optim": {"lr": 0.1, "momentum": 0.9}, "seeds": [0, 1]});
        merge(&mut a, serde_json::json!({"optim": {"lr": 0.2}, "seeds": [5]}));
        assert_eq!(a, serde_json::json!({"optim": {"lr": 0.2, "momentum": 0.9}, "seeds": [5]}));
        // `null` removes an inherited key (a method, an option), at any depth; a new key may be null.
        let mut m = serde_json::json!({"methods": {"coral": {}, "dann": {"trade_off": 2, "discriminator": {}}}});
        merge(&mut m, serde_json::json!({"methods": {"coral": null, "dann": {"discriminator": null}, "mcd": null}}));
        assert_eq!(m, serde_json::json!({"methods": {"dann": {"trade_off": 2}, "mcd": null}}));
        set_path(&mut a, "train.iterations", serde_json::json!(10)).unwrap();
        assert_eq!(get_path(&a, "train.iterations"), Some(&serde_json::json!(10)));
        assert!(set_path(&mut a, "seeds.x", serde_json::json!(1)).unwrap_err().contains("`seeds` is not a map"));
        assert_eq!(parse_set("optim.lr=0.5").unwrap(), ("optim.lr".into(), serde_json::json!(0.5)));
        assert_eq!(parse_set("model.backbone.hidden=[15, 15]").unwrap().1, serde_json::json!([15, 15]));
        assert!(parse_set("optim.lr").unwrap_err().to_string().contains("expected key.path=value"));
        let e = parse_set("optim.lr=!!python/object:os.system 0.05").unwrap_err().to_string();
        assert!(e.contains("!!python/object:os.system"), "{e}");
    }

    #[test]
    fn yaml_errors_name_the_innermost_key() {
        let err = |text: &str| {
            let e = from_yaml::<ExperimentConfig>(text).unwrap_err();
            yaml_error_line(text, "x.yaml", &e)
        };
        // A tag other than the standard ones, in block and flow style.
        let e = err("name: t\noptim:\n  lr: !!python/object:os.system 0.05\n");
        assert!(e.starts_with("x.yaml:3:33: optim.lr: YAML tag `!!python/object:os.system` is not allowed"), "{e}");
        let e = err("name: t\noptim: {momentum: 0.5, lr: !custom 0.05}\n");
        assert!(e.starts_with("x.yaml:2:36: optim.lr: YAML tag `!custom`"), "{e}");
        // An unknown key beside `kind:` (a tagged enum: serde-saphyr locates it at `schedule`).
        let e = err("name: t\nschedule:\n  kind: constant\n  alpha: 3\n");
        assert_eq!(e, "x.yaml:4:3: schedule.alpha: unknown field `alpha`: no options are allowed here");
        let e = err("name: t\nschedule: {kind: dann, alpha: 3, beta: 1, bta: 2}\n");
        assert!(e.starts_with("x.yaml:2:43: schedule.bta: unknown field `bta`, expected one of alpha, beta"), "{e}");
        let e = err("name: t\nmodel:\n  backbone: {kind: mlp, hidden: [3], hiden: [4]}\n");
        assert!(e.starts_with("x.yaml:3:38: model.backbone.hiden: unknown field `hiden`"), "{e}");
    }

    #[test]
    fn yaml_errors_inside_tagged_enums_missing_keys_and_wrong_shapes() {
        let err = |text: &str| {
            let e = from_yaml::<ExperimentConfig>(text).unwrap_err();
            yaml_error_line(text, "x.yaml", &e)
        };
        // A type error inside a buffered tagged enum: serde-saphyr locates it at `backbone`.
        let e = err("name: t\nmodel:\n  backbone: {kind: mlp, hidden: 15}\n");
        assert_eq!(e, "x.yaml:3:33: model.backbone.hidden: invalid type: integer `15`, expected a sequence");
        let e = err("name: t\nmodel:\n  backbone:\n    kind: mlp\n    hidden: [15, abc]\n");
        assert!(e.starts_with("x.yaml:5:18: model.backbone.hidden[1]: invalid type: string \"abc\""), "{e}");
        let e = err("name: t\nmodel:\n  backbone: {kind: mlp, hidden: [4], activation: 3}\n");
        assert!(e.starts_with("x.yaml:3:50: model.backbone.activation: invalid type: integer `3`"), "{e}");
        let e = err("name: t\nmodel:\n  backbone: {kind: mlp, hidden: [3], activation: 3}\n");
        assert!(
            e.starts_with("x.yaml:3:3: model.backbone: invalid type: integer `3`, expected string or map (one of: model.backbone.hidden[0] at 3:34, model.backbone.activation at 3:50)"),
            "{e}"
        );
        // A missing key: the key's own path, and the mapping it belongs in (not the mapping's last key).
        let e = err("name: t\ndataset: {seed: 3}\ndevice: cpu\n");
        assert_eq!(e, "x.yaml:2:1: dataset.name: missing (required in `dataset`)");
        let e = err("dataset: {name: moons}\ndevice: cpu\n");
        assert_eq!(e, "x.yaml: name: missing (a required top-level key)");
        let e = err("name: t\nmodel:\n  backbone: {kind: mlp}\n");
        assert_eq!(e, "x.yaml:3:3: model.backbone.hidden: missing (required in `model.backbone`)");
        // A list or a mapping where one value belongs, a number that is not one, a duplicate key.
        let e = err("name: t\ntrain:\n  batch_size: [32]\n");
        assert_eq!(
            e,
            "x.yaml:3:15: train.batch_size: invalid type: a sequence, expected a single value (a number, string or boolean)"
        );
        let e = err("name: t\ntrain: {iterations: -5}\n");
        assert_eq!(e, "x.yaml:2:21: train.iterations: invalid u64: expected a non-negative integer, got `-5`");
        let e = err("name: t\ndevice: cpu\nseeds: [1]\ndevice: cuda\n");
        assert_eq!(e, "x.yaml:4:1: device: duplicate key (first given at line 2:1)");
    }

    #[test]
    fn look_alike_names_are_pointed_out() {
        let hint = look_alike_hint(
            "methods.sour\u{441}e-only: unknown method `sour\u{441}e-only` (registered: dann, source-only)",
        );
        assert_eq!(
            hint.as_deref(),
            Some("the name holds characters that are not ASCII: U+0441 at character 5; did you mean `source-only`?")
        );
        let hint = look_alike_hint("x: unknown field `tr\u{200b}ade_off`, expected one of trade_off, discriminator");
        assert_eq!(
            hint.as_deref(),
            Some("the name holds characters that are not ASCII: U+200B at character 3; did you mean `trade_off`?")
        );
        assert_eq!(look_alike_hint("x: unknown field `gama`, expected one of gamma"), None, "ASCII: no hint");
        let hint = look_alike_hint("x: unknown field `\u{e9}t\u{e9}`, expected one of a").unwrap();
        assert!(!hint.contains("did you mean"), "{hint}");
    }
}
