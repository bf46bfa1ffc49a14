//! The experiment YAML: parsing (serde-saphyr, `deny_unknown_fields` everywhere), validation, and errors that
//! name the file, line, column and key path in one line.

use crate::{Error, Result};
use dalab_core::registry::{MethodSpecs, with_registry};
use dalab_core::schedule::LrSchedule;
use dalab_core::{Registry, Validate, device::DeviceSpec};
use dalab_data::DatasetConfig;
use dalab_train::{ModelConfig, OptimConfig, Selection, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// An experiment: a dataset, its tasks, the methods to compare, the shared training settings and the seeds.
/// One trial is run per method × task × seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Name of the experiment: results go to `<runs dir>/<name>/`.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub dataset: DatasetConfig,
    /// Adaptation tasks as `source→target` (or `source->target`).
    pub tasks: Vec<String>,
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
    /// One trial per seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// `auto` (CUDA when available), `cpu`, `cuda`, `cuda:N`.
    #[serde(default = "DeviceSpec::auto")]
    pub device: DeviceSpec,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// Splits `a→b` / `a->b` into its domains.
pub fn split_task(task: &str) -> Option<(&str, &str)> {
    let (a, b) = task.split_once('→').or_else(|| task.split_once("->"))?;
    let (a, b) = (a.trim(), b.trim());
    (!a.is_empty() && !b.is_empty()).then_some((a, b))
}

impl ExperimentConfig {
    /// Semantic checks after parsing; the error names the key path.
    pub fn validate(&self, registry: &Registry) -> std::result::Result<(), String> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(format!(
                "name: must be a non-empty name of letters, digits, `-`, `_`, `.` (it names the results folder), got {:?}",
                self.name
            ));
        }
        if self.name.starts_with('.') {
            return Err(format!("name: must not start with `.`, got {:?}", self.name));
        }
        self.dataset.validate().map_err(|e| format!("dataset.{e}"))?;
        if self.tasks.is_empty() {
            return Err("tasks: must list at least one task `source→target`".into());
        }
        let domains = self.dataset.domains();
        for (i, t) in self.tasks.iter().enumerate() {
            let Some((s, d)) = split_task(t) else {
                return Err(format!("tasks[{i}]: expected `source→target`, got {t:?}"));
            };
            for dom in [s, d] {
                if !domains.iter().any(|k| k == dom) {
                    return Err(format!(
                        "tasks[{i}]: dataset `{}` has no domain `{dom}` (domains: {})",
                        self.dataset.name(),
                        domains.join(", ")
                    ));
                }
            }
        }
        if self.methods.0.is_empty() {
            return Err("methods: must list at least one method".into());
        }
        for (name, cfg) in &self.methods.0 {
            registry.validate(name, cfg).map_err(|e| e.to_string())?;
        }
        self.model.validate().map_err(|e| format!("model.{e}"))?;
        self.optim.validate().map_err(|e| format!("optim.{e}"))?;
        self.schedule.validate().map_err(|e| format!("schedule.{e}"))?;
        self.train.validate().map_err(|e| format!("train.{e}"))?;
        if self.seeds.is_empty() {
            return Err("seeds: must list at least one seed".into());
        }
        self.device.resolve().map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Parses and validates an experiment from YAML text. `origin` names the source in messages (a file path).
pub fn parse_experiment(text: &str, origin: &str, registry: &Registry) -> Result<ExperimentConfig> {
    let parsed: std::result::Result<ExperimentConfig, serde_saphyr::Error> =
        with_registry(registry, || serde_saphyr::from_str(text));
    let cfg = parsed.map_err(|e| Error::Config(yaml_error_line(text, origin, &e)))?;
    cfg.validate(registry).map_err(|m| Error::Config(format!("{origin}: {m}")))?;
    Ok(cfg)
}

/// Reads and parses an experiment file.
pub fn load_experiment(path: &Path, registry: &Registry) -> Result<ExperimentConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    parse_experiment(&text, &path.display().to_string(), registry)
}

/// Turns a serde-saphyr error into one line: `file:line:col: key.path: message`.
fn yaml_error_line(text: &str, origin: &str, e: &serde_saphyr::Error) -> String {
    let inner = e.without_snippet().to_string();
    // The message's first line, without the location serde-saphyr appends (we put it in front).
    let mut msg = inner.lines().next().unwrap_or("invalid YAML").trim().to_string();
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    match e.location() {
        Some(loc) if loc.line() > 0 => {
            let (line, col) = (loc.line() as usize, loc.column() as usize);
            match key_path_at(text, line) {
                Some(path) => format!("{origin}:{line}:{col}: {path}: {msg}"),
                None => format!("{origin}:{line}:{col}: {msg}"),
            }
        }
        _ => format!("{origin}: {msg}"),
    }
}

/// The key path (`optim.lr`, `tasks[1]`) of the block-style YAML entry on 1-based line `line`, found by walking
/// up the indentation. Returns None for lines that hold no key (comments, flow collections spanning lines).
pub fn key_path_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let target = *lines.get(line.checked_sub(1)?)?;
    // (indent, key or list index) from the target line upwards.
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
}
