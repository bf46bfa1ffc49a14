//! Divergences for every pair of named domains, rendered as a text table (with a settings header), CSV and
//! JSON. This is the logic behind `dalab divergence`; the CLI only reads files and prints.

use crate::adist::{ADistanceResult, ADistanceSettings, proxy_a_distance};
use crate::coral::{CoralResult, coral_distance};
use crate::error::{MetricsError, Result};
use crate::mmd::{MmdResult, MmdSettings, mmd2};
use crate::validate::{check_sample, invalid};
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Which metrics to compute, with their settings. `None` / `false` skips a metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DivergenceSettings {
    /// MMD² settings.
    pub mmd: Option<MmdSettings>,
    /// Proxy A-distance settings.
    pub a_distance: Option<ADistanceSettings>,
    /// Whether to compute the CORAL distance (it has no parameters).
    pub coral: bool,
}

impl Default for DivergenceSettings {
    fn default() -> Self {
        Self { mmd: Some(MmdSettings::default()), a_distance: Some(ADistanceSettings::default()), coral: true }
    }
}

/// One ordered pair of domains and its divergences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairResult {
    /// Source domain name.
    pub source: String,
    /// Target domain name.
    pub target: String,
    /// MMD², when asked for.
    pub mmd: Option<MmdResult>,
    /// Proxy A-distance, when asked for.
    pub a_distance: Option<ADistanceResult>,
    /// CORAL distance, when asked for.
    pub coral: Option<CoralResult>,
}

/// Divergences of several domain pairs, with the settings used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DivergenceReport {
    /// Settings used for every pair.
    pub settings: DivergenceSettings,
    /// Domain names and their (rows, columns), in input order.
    pub domains: Vec<DomainInfo>,
    /// One entry per ordered pair.
    pub pairs: Vec<PairResult>,
}

/// Name and shape of an input domain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainInfo {
    /// Domain name.
    pub name: String,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// Every ordered pair `(a, b)` with `a != b`, in input order.
pub fn all_ordered_pairs(names: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for a in names {
        for b in names {
            if a != b {
                out.push((a.clone(), b.clone()));
            }
        }
    }
    out
}

/// Parses `"a:b,c:d"` (whitespace around names ignored) into ordered pairs.
pub fn parse_pairs(spec: &str) -> Result<Vec<(String, String)>> {
    spec.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (a, b) =
                p.split_once(':').ok_or_else(|| invalid("pairs", format!("`{}` is not SOURCE:TARGET", p.trim())))?;
            let (a, b) = (a.trim(), b.trim());
            if a.is_empty() || b.is_empty() {
                return Err(invalid("pairs", format!("`{}` has an empty name", p.trim())));
            }
            Ok((a.to_string(), b.to_string()))
        })
        .collect()
}

/// Computes the asked-for divergences for `pairs` (all ordered pairs when `None`) of the named `domains`.
/// Domains are validated once (≥ 2 rows, ≥ 1 column, finite values); pairs must share the dimension.
pub fn compute(
    domains: &[(String, ArrayView2<'_, f64>)],
    pairs: Option<&[(String, String)]>,
    settings: &DivergenceSettings,
) -> Result<DivergenceReport> {
    if domains.len() < 2 {
        return Err(invalid("domains", format!("need at least two domains, got {}", domains.len())));
    }
    let names: Vec<String> = domains.iter().map(|(n, _)| n.clone()).collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(invalid("domains", format!("domain name `{n}` is given twice")));
        }
    }
    for (name, x) in domains {
        check_sample(&format!("domain `{name}`"), *x, 2, "a divergence")?;
    }
    let pairs: Vec<(String, String)> = match pairs {
        Some(p) => p.to_vec(),
        None => all_ordered_pairs(&names),
    };
    let find = |n: &str| {
        domains
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, x)| *x)
            .ok_or_else(|| MetricsError::UnknownDomain { name: n.to_string(), known: names.join(", ") })
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (s, t) in &pairs {
        let (xs, xt) = (find(s)?, find(t)?);
        let mmd = settings.mmd.as_ref().map(|m| mmd2(xs, xt, m)).transpose()?;
        let a_distance = settings.a_distance.as_ref().map(|a| proxy_a_distance(xs, xt, a)).transpose()?;
        let coral = if settings.coral { Some(coral_distance(xs, xt)?) } else { None };
        out.push(PairResult { source: s.clone(), target: t.clone(), mmd, a_distance, coral });
    }
    Ok(DivergenceReport {
        settings: settings.clone(),
        domains: domains
            .iter()
            .map(|(n, x)| DomainInfo { name: n.clone(), rows: x.nrows(), cols: x.ncols() })
            .collect(),
        pairs: out,
    })
}

fn json_line<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<unserialisable: {e}>"))
}

impl DivergenceReport {
    /// Column names of the table and the CSV.
    pub fn columns(&self) -> Vec<&'static str> {
        let mut c = vec!["source", "target", "n_source", "n_target", "dim"];
        if let Some(m) = &self.settings.mmd {
            c.extend(["mmd2", "mmd_base_sigma2"]);
            if m.permutations > 0 {
                c.push("mmd_p_value");
            }
        }
        if self.settings.a_distance.is_some() {
            c.extend(["a_distance", "a_epsilon", "a_best_c"]);
        }
        if self.settings.coral {
            c.push("coral");
        }
        c
    }

    /// One row per pair, as strings; `full` gives shortest round-trip numbers (CSV), otherwise rounded ones.
    fn cells(&self, full: bool) -> Vec<Vec<String>> {
        let num = |v: f64, digits: usize| {
            if full { format!("{v}") } else { format!("{v:.digits$}") }
        };
        let sci = |v: f64| if full { format!("{v}") } else { format!("{v:.4e}") };
        self.pairs
            .iter()
            .map(|p| {
                let (ns, nt, d) = p
                    .mmd
                    .as_ref()
                    .map(|m| (m.n_source, m.n_target, m.dim))
                    .or_else(|| p.a_distance.as_ref().map(|a| (a.n_source, a.n_target, a.dim)))
                    .or_else(|| p.coral.as_ref().map(|c| (c.n_source, c.n_target, c.dim)))
                    .unwrap_or((0, 0, 0));
                let mut row = vec![p.source.clone(), p.target.clone(), ns.to_string(), nt.to_string(), d.to_string()];
                if let Some(m) = &p.mmd {
                    row.push(sci(m.mmd2));
                    row.push(m.base_sigma2.map_or_else(|| "-".to_string(), sci));
                    if let Some(pt) = &m.permutation_test {
                        row.push(num(pt.p_value, 4));
                    }
                }
                if let Some(a) = &p.a_distance {
                    row.push(num(a.d_a, 4));
                    row.push(num(a.epsilon, 4));
                    row.push(sci(a.best_c));
                }
                if let Some(c) = &p.coral {
                    row.push(sci(c.coral));
                }
                row
            })
            .collect()
    }

    /// Settings header: `# `-prefixed lines, one per metric, the settings as JSON.
    pub fn header(&self) -> String {
        let mut h = String::from("# dalab divergence\n");
        match &self.settings.mmd {
            Some(m) => {
                let _ = writeln!(h, "# mmd2: {}", json_line(m));
            }
            None => h.push_str("# mmd2: not computed\n"),
        }
        match &self.settings.a_distance {
            Some(a) => {
                let _ = writeln!(
                    h,
                    "# a_distance = 2(1 - 2 epsilon), not clipped (negative when epsilon > 0.5): {}",
                    json_line(a)
                );
            }
            None => h.push_str("# a_distance: not computed\n"),
        }
        if self.settings.coral {
            h.push_str("# coral = ||C_s - C_t||_F^2 / (4 d^2), unbiased covariances\n");
        } else {
            h.push_str("# coral: not computed\n");
        }
        h
    }

    /// The settings header followed by an aligned text table.
    pub fn table(&self) -> String {
        let cols = self.columns();
        let rows = self.cells(false);
        let mut width: Vec<usize> = cols.iter().map(|c| c.chars().count()).collect();
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = self.header();
        let line = |cells: Vec<String>| {
            cells
                .iter()
                .zip(&width)
                .enumerate()
                .map(|(i, (c, w))| if i < 2 { format!("{c:<w$}") } else { format!("{c:>w$}") })
                .collect::<Vec<_>>()
                .join("  ")
        };
        let _ = writeln!(out, "{}", line(cols.iter().map(|c| c.to_string()).collect()));
        let _ = writeln!(out, "{}", line(width.iter().map(|w| "-".repeat(*w)).collect()));
        for r in rows {
            let _ = writeln!(out, "{}", line(r));
        }
        out
    }

    /// CSV (RFC 4180 quoting), header row then one row per pair, full-precision numbers.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let quote = |s: &str| {
            if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
        };
        let _ = writeln!(out, "{}", self.columns().join(","));
        for r in self.cells(true) {
            let _ = writeln!(out, "{}", r.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
        }
        out
    }

    /// The whole report (settings, domains, every result with its resolved parameters) as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| invalid("report", e.to_string()))
    }

    /// Writes `<dir>/<stem>.csv` and `<dir>/<stem>.json` (creating `dir`); returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf)> {
        let io =
            |p: &Path, e: std::io::Error| MetricsError::Io { path: p.display().to_string(), message: e.to_string() };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let csv = dir.join(format!("{stem}.csv"));
        let json = dir.join(format!("{stem}.json"));
        std::fs::write(&csv, self.to_csv()).map_err(|e| io(&csv, e))?;
        std::fs::write(&json, self.to_json()?).map_err(|e| io(&json, e))?;
        Ok((csv, json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmd::{BandwidthPolicy, Kernel};
    use ndarray::{Array2, array};

    fn doms() -> Vec<(String, Array2<f64>)> {
        vec![
            ("a".into(), array![[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [0.5, 0.1]]),
            ("b,x".into(), array![[3.0, 1.0], [4.0, 0.0], [5.0, 2.0]]),
            ("c".into(), array![[0.0, 1.5], [1.0, 0.5], [2.0, 2.5]]),
        ]
    }

    fn settings() -> DivergenceSettings {
        DivergenceSettings {
            mmd: Some(MmdSettings {
                kernel: Kernel::Linear,
                bandwidth: BandwidthPolicy::MeanSquaredDistance,
                ..MmdSettings::default()
            }),
            a_distance: None,
            coral: true,
        }
    }

    #[test]
    fn pairs_and_values() {
        let d = doms();
        let views: Vec<(String, ArrayView2<'_, f64>)> = d.iter().map(|(n, x)| (n.clone(), x.view())).collect();
        let r = compute(&views, None, &settings()).unwrap();
        let names: Vec<(&str, &str)> = r.pairs.iter().map(|p| (p.source.as_str(), p.target.as_str())).collect();
        assert_eq!(names, vec![("a", "b,x"), ("a", "c"), ("b,x", "a"), ("b,x", "c"), ("c", "a"), ("c", "b,x")]);
        // Linear-kernel MMD² = ‖mean_a − mean_c‖²: means (0.875, 0.775) and (1, 1.5).
        let ac = r.pairs[1].mmd.as_ref().unwrap().mmd2;
        assert!((ac - (0.125f64.powi(2) + 0.725f64.powi(2))).abs() < 1e-14, "{ac}");
        let csv = r.to_csv();
        let mut lines = csv.lines();
        assert_eq!(lines.next().unwrap(), "source,target,n_source,n_target,dim,mmd2,mmd_base_sigma2,coral");
        assert!(lines.next().unwrap().starts_with("a,\"b,x\",4,3,2,"));
        assert_eq!(csv.lines().count(), 7);
        let table = r.table();
        assert!(table.starts_with("# dalab divergence\n# mmd2: {\"kernel\":{\"type\":\"linear\"}"), "{table}");
        assert!(table.contains("# a_distance: not computed"));
        let back: DivergenceReport = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        // (serde_json's default float parsing is not bit-exact round trip; settings and names are.)
        assert_eq!(back.settings, r.settings);
        assert_eq!(back.domains, r.domains);
        assert_eq!(back.pairs.len(), 6);
        assert!((back.pairs[1].mmd.as_ref().unwrap().mmd2 - ac).abs() < 1e-15);
    }

    #[test]
    fn asked_pairs_and_errors() {
        let d = doms();
        let views: Vec<(String, ArrayView2<'_, f64>)> = d.iter().map(|(n, x)| (n.clone(), x.view())).collect();
        let p = parse_pairs(" c:a , a:c").unwrap();
        let r = compute(&views, Some(&p), &settings()).unwrap();
        assert_eq!(r.pairs.len(), 2);
        assert_eq!(r.pairs[0].source, "c");
        let e = compute(&views, Some(&parse_pairs("a:zz").unwrap()), &settings()).unwrap_err();
        assert_eq!(e.to_string(), "unknown domain `zz` in pair list; known domains: a, b,x, c");
        assert!(parse_pairs("a-b").unwrap_err().to_string().contains("`a-b` is not SOURCE:TARGET"));
        let bad = array![[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]];
        let v2 = vec![("a".to_string(), d[0].1.view()), ("w".to_string(), bad.view())];
        let e = compute(&v2, None, &settings()).unwrap_err();
        assert_eq!(e.to_string(), "feature dimensions differ: source has 2 columns, target has 3");
        let one = array![[1.0, 2.0]];
        let v3 = vec![("a".to_string(), d[0].1.view()), ("one".to_string(), one.view())];
        let e = compute(&v3, None, &settings()).unwrap_err();
        assert_eq!(e.to_string(), "domain `one` has 1 samples; 2 at least are needed for a divergence");
    }

    #[test]
    fn writes_files() {
        let d = doms();
        let views: Vec<(String, ArrayView2<'_, f64>)> = d.iter().map(|(n, x)| (n.clone(), x.view())).collect();
        let r = compute(&views, None, &settings()).unwrap();
        let dir = std::env::temp_dir().join(format!("dalab-metrics-report-{}", std::process::id()));
        let (csv, json) = r.write(&dir, "divergence").unwrap();
        assert_eq!(std::fs::read_to_string(&csv).unwrap(), r.to_csv());
        assert!(std::fs::read_to_string(&json).unwrap().contains("\"pairs\""));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
