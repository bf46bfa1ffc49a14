//! `cargo xtask reproduce [--quick] [--jobs N] [--runs-dir DIR] [TABLE...]`: runs the paper tables of
//! `experiments/reproduce/` (one experiment file per table, its paper numbers in `reference/<table>.yaml`) and
//! regenerates `docs/results/<table>.md`: our mean ± std per cell next to the paper's number and the difference
//! (marked beyond the reference's tolerance, with the explanations the reference file gives), the command, wall
//! time, machine and commit.
//!
//! `--quick` is the smoke run CI executes: the dev build, each table cut to the overrides in [`QUICK`], results
//! under the runs directory (`target/reproduce-quick` by default) and never in docs/.

use crate::archive::{self, Provenance};
use crate::{Result, cargo, repo_root, run_status};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A family of tables: where its experiment files are, how `--quick` cuts them, what the report adds.
pub struct Suite {
    /// The xtask subcommand.
    pub command: &'static str,
    /// The folder of its experiment files (and of `reference/<table>.yaml` paper numbers, where any).
    pub dir: &'static str,
    /// `--set` overrides of the quick mode, per table (a table not listed runs whole).
    pub quick: &'static [(&'static str, &'static [&'static str])],
    /// Extra `dalab report` flags, and the extra report file they write (appended to the document).
    pub report: Option<(&'static [&'static str], &'static str)>,
    /// Extra `dalab report` flags of single tables (e.g. a table whose rows choose a sweep point by a validator).
    pub table_report: &'static [(&'static str, &'static [&'static str])],
    /// `docs/results/<prefix><table>.md`.
    pub prefix: &'static str,
    /// Draw the learning curves (target accuracy against steps) and link them in the document.
    pub curves: bool,
}

/// `cargo xtask reproduce`: the paper tables.
pub const REPRODUCE: Suite = Suite {
    command: "reproduce",
    dir: "experiments/reproduce",
    quick: QUICK,
    report: None,
    // DANN's λ per task by reverse validation, the paper's rule (the table's experiment file says how).
    table_report: &[("dann-table1-rv", &["--select-by", "reverse"])],
    prefix: "",
    curves: false,
};

/// `cargo xtask transfer`: the inductive-transfer studies of experiments/transfer/ (docs/transfer.md).
pub const TRANSFER: Suite = Suite {
    command: "transfer",
    dir: "experiments/transfer",
    quick: &[
        (
            "layer-transfer-digits",
            &[
                "seeds=[0]",
                "train.iterations=60",
                "methods.layer-transfer.base_iterations=60",
                "train.eval_interval=30",
            ],
        ),
        (
            "transfer-curves-digits",
            &[
                "seeds=[0]",
                "train.iterations=60",
                "methods.layer-transfer.base_iterations=60",
                "train.eval_interval=30",
            ],
        ),
        (
            "mtl-amazon",
            &["tasks=[dvd+electronics+kitchen→books]", "seeds=[0]", "train.iterations=60", "train.eval_interval=30"],
        ),
        (
            "progressive-amazon",
            &["seeds=[0]", "train.iterations=60", "methods.progressive.task_iterations=60", "train.eval_interval=30"],
        ),
    ],
    report: None,
    table_report: &[],
    prefix: "transfer-",
    curves: true,
};

/// `cargo xtask selection`: the selection-regret studies of experiments/selection/ (docs/model-selection.md).
pub const SELECTION: Suite = Suite {
    command: "selection",
    dir: "experiments/selection",
    quick: &[
        ("amazon-dann-lambda", &["tasks=[books→kitchen]", "seeds=[0]", "train.iterations=400"]),
        ("office-caltech-surf-dann-lambda", &["tasks=[A→W]", "seeds=[0]", "train.iterations=400"]),
    ],
    report: Some((&["--selection", "--divergences"], "selection.md")),
    table_report: &[],
    prefix: "selection-",
    curves: false,
};

/// `--set` overrides of the quick mode of the paper tables, per table (a table not listed runs whole).
const QUICK: &[(&str, &[&str])] = &[
    ("coral-table1", &["tasks=[A→W]"]),
    ("coral-table3", &["tasks=[A→W]", "seeds=[0]"]),
    ("dann-table1", &["tasks=[books→kitchen]", "seeds=[0]", "train.iterations=3600"]),
    ("dann-table1-rv", &["tasks=[books→kitchen]", "sweep.methods.dann.trade_off=[0.1,1.0]", "train.iterations=3600"]),
    (
        "dann-table1-msda",
        &[
            "tasks=[books→kitchen]",
            // Each trial fits its own mSDA (~40 s in the dev build): the NN path is covered by DANN's.
            "~methods.source-only",
            "dataset.representation.layers=1",
            "methods.svm.c_grid=[0.001,0.01]",
            "train.iterations=1800",
        ],
    ),
    ("dann-figure2", &["seeds=[0]", "train.iterations=300"]),
    ("jda-table2-surf", &["tasks=[A→W]"]),
    ("jda-table2-digits", &["tasks=[usps→mnist]"]),
    (
        "adda-table2",
        &[
            "tasks=[mnist→usps]",
            "seeds=[0]",
            "methods.adda.source_iterations=100",
            "train.iterations=100",
            "train.eval_interval=50",
        ],
    ),
];

struct Opts {
    quick: bool,
    jobs: usize,
    runs_dir: Option<PathBuf>,
    tables: Vec<String>,
    /// `--report-only`: regenerate the files from the trials already in the runs directory, running none.
    report_only: bool,
    /// `--set` overrides given on the command line (a partial run: e.g. `~methods.dann` leaves a method out).
    sets: Vec<String>,
    /// `--no-archive`: neither reuse nor extend the trial archive of docs/results/trials/ (a full re-measurement).
    no_archive: bool,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        quick: false,
        jobs: 2,
        runs_dir: None,
        tables: Vec::new(),
        sets: Vec::new(),
        report_only: false,
        no_archive: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--report-only" => o.report_only = true,
            "--no-archive" => o.no_archive = true,
            "--jobs" | "-j" => {
                let v = it.next().ok_or("--jobs needs a number")?;
                o.jobs = v.parse().map_err(|_| format!("--jobs: not a number: {v}"))?;
            }
            "--runs-dir" => o.runs_dir = Some(PathBuf::from(it.next().ok_or("--runs-dir needs a folder")?)),
            "--set" => o.sets.push(it.next().ok_or("--set needs an override (key=value or ~key)")?.clone()),
            "-h" | "--help" => return Err(USAGE.to_string()),
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`\n{USAGE}")),
            s => o.tables.push(s.trim_end_matches(".yaml").to_string()),
        }
    }
    Ok(o)
}

const USAGE: &str = "usage: cargo xtask reproduce|selection [--quick] [--jobs N] [--runs-dir DIR] [TABLE...]
  TABLE: a file stem of experiments/reproduce/*.yaml (selection: experiments/selection/*.yaml; default: all)
  --quick     smoke run (dev build, a task or two per table; results under the runs dir, not docs/)
  --jobs N    trials at a time (default 2)
  --runs-dir  where the trials go (default: runs, or target/reproduce-quick with --quick)
  --report-only  regenerate the files from the trials in the runs dir, running none (missing cells: –)
  --set OVR   an override for every table run (repeatable; `~methods.dann` leaves a method out): a partial run,
              named as such in the generated file
  --no-archive  neither reuse the archived trials of docs/results/trials/<table>/ nor archive new ones (without
              it, a full run restores the archived trials of its plan, runs the rest, and archives what finished)";

/// Every table of the suite's folder, sorted.
fn all_tables(root: &Path, suite: &Suite) -> Result<Vec<String>> {
    let dir = root.join(suite.dir);
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".yaml").map(str::to_string))
        .collect();
    v.sort();
    Ok(v)
}

fn data_dir(root: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("DALAB_DATA_DIR") {
        return PathBuf::from(d);
    }
    let shared = root.join("..").join("shared").join("datasets");
    if shared.is_dir() { shared } else { root.join("data") }
}

/// Whether the benchmark files of the tables can be found (the quick run needs Office-Caltech SURF and the JDA
/// digits).
pub fn data_available(root: &Path) -> bool {
    let d = data_dir(root);
    d.join("office_caltech10_surf").is_dir() && d.join("digits").is_dir()
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The processor, with its family, model and stepping where /proc/cpuinfo has them: a VM's model name can be
/// as vague as "AMD EPYC", and the same seed trains another model on another processor (docs/configuration.md).
fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    describe_machine(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default(), cores)
}

fn describe_machine(info: &str, cores: usize) -> String {
    let field = |k: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|n| n.trim() == k))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let cpu = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let id = match (field("cpu family"), field("model"), field("stepping")) {
        (Some(f), Some(m), Some(s)) => format!(" (family {f} model {m} stepping {s})"),
        _ => String::new(),
    };
    format!("{cpu}{id}, {cores} cores, no GPU used")
}

fn commit(root: &Path) -> String {
    let head = output(Command::new("git").current_dir(root).args(["rev-parse", "--short", "HEAD"]));
    let dirty = !output(Command::new("git").current_dir(root).args(["status", "--porcelain", "--untracked-files=no"]))
        .is_empty();
    if head.is_empty() {
        "unknown".into()
    } else if dirty {
        format!("{head} + uncommitted changes")
    } else {
        head
    }
}

/// The trial ids of the experiment's plan under the overrides (`dalab run --dry-run`: one `<id>  <what>` line
/// per trial after a header line).
fn plan(exe: &Path, data: &Path, exp: &Path, runs: &Path, sets: &[&str]) -> Result<Vec<String>> {
    let mut cmd = Command::new(exe);
    cmd.arg("--data-dir").arg(data).arg("run").arg(exp).arg("--runs-dir").arg(runs).arg("--dry-run");
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().map_err(|e| format!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!("{} --dry-run: {}", exp.display(), String::from_utf8_lossy(&out.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().skip(1).filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect())
}

/// A top-level `key: value` of an experiment file (its first line of that key).
fn top_key(exp: &Path, key: &str) -> String {
    let prefix = format!("{key}:");
    std::fs::read_to_string(exp)
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix(prefix.as_str()).map(|d| d.trim().to_string())))
        .unwrap_or_default()
}

pub fn run(suite: &Suite, args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root = repo_root();
    let known = all_tables(&root, suite)?;
    let tables_dir = suite.dir;
    let tables = if o.tables.is_empty() { known.clone() } else { o.tables.clone() };
    if let Some(bad) = tables.iter().find(|t| !known.contains(t)) {
        return Err(format!("no table `{bad}` in {tables_dir}/ (have: {})", known.join(", ")));
    }
    let profile = if o.quick { "debug" } else { "release" };
    let mut build = Command::new(cargo());
    build.current_dir(&root).args(["build", "--quiet", "--package", "dalab-cli", "--bin", "dalab"]);
    if !o.quick {
        build.arg("--release");
    }
    run_status(&mut build)?;
    let exe = root.join("target").join(profile).join("dalab");
    let runs = o.runs_dir.clone().unwrap_or_else(|| {
        root.join(if o.quick { format!("target/{}-quick", suite.command) } else { "runs".to_string() })
    });
    let data = data_dir(&root);
    let results_dir = if o.quick { runs.join("results") } else { root.join("docs").join("results") };
    std::fs::create_dir_all(&results_dir).map_err(|e| format!("{}: {e}", results_dir.display()))?;
    let (machine, commit) = (machine(), commit(&root));
    let date = output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]));
    let mut failed = Vec::new();
    let mut summary = Vec::new();
    for t in &tables {
        let exp = root.join(tables_dir).join(format!("{t}.yaml"));
        let reference = root.join(tables_dir).join("reference").join(format!("{t}.yaml"));
        let mut sets: Vec<&str> = if o.quick {
            suite.quick.iter().find(|(n, _)| n == t).map(|(_, s)| s.to_vec()).unwrap_or_default()
        } else {
            vec![]
        };
        sets.extend(o.sets.iter().map(String::as_str));
        eprintln!("xtask: {} {t}{}", suite.command, if o.quick { " (quick)" } else { "" });
        let exp_dir = runs.join(top_key(&exp, "name"));
        let mut fresh = !o.report_only && !exp_dir.exists();
        // The archived trials of this plan (module `archive`): restored before the run, extended after it.
        let archive_dir = root.join("docs").join("results").join("trials").join(format!("{}{t}", suite.prefix));
        let planned = if o.quick || o.no_archive { Vec::new() } else { plan(&exe, &data, &exp, &runs, &sets)? };
        let restored = archive::restore(&archive_dir, &exp_dir, &planned)?;
        if !restored.is_empty() {
            eprintln!(
                "xtask: {t}: {} of {} trials restored from {}",
                restored.len(),
                planned.len(),
                archive_dir.display()
            );
            fresh = false;
        }
        let done =
            |ids: &[String]| ids.iter().filter(|id| exp_dir.join(id.as_str()).join("result.json").is_file()).count();
        let done_before = done(&planned);
        let started = Instant::now();
        let mut cmd = Command::new(&exe);
        cmd.arg("--data-dir").arg(&data).arg("run").arg(&exp).arg("--runs-dir").arg(&runs);
        cmd.args(["--jobs", &o.jobs.to_string()]);
        for s in &sets {
            cmd.args(["--set", s]);
        }
        let ran = !o.report_only && run_status(&mut cmd).is_ok();
        let ran_now = done(&planned) - done_before;
        if !o.report_only {
            // Also after a failed run: the trials that finished are kept.
            let p = Provenance { machine: &machine, commit: &commit, date: &date };
            let saved = archive::save(&exp_dir, &archive_dir, &planned, &p)?;
            if !saved.is_empty() {
                eprintln!("xtask: {t}: {} new trials archived in {}", saved.len(), archive_dir.display());
            }
        }
        if !o.report_only && !ran {
            failed.push(t.clone());
            continue;
        }
        let out = runs.join("reports").join(t);
        // The wall time of the run that computed the trials: measured now when every trial ran, else the one
        // recorded then (a rerun that only regenerates the report skips the finished trials).
        let record = out.join("wall_time_s");
        let measured = started.elapsed().as_secs_f64();
        // A partial run (`--set` on the command line) records no wall time for the table. A run that computed only
        // some trials (the others restored or finished before) records how many, so a later `--report-only` does not
        // pass its time off as the whole table's, nor an older full run's as this one's.
        let wall = if (fresh || ran_now > 0) && o.sets.is_empty() && !o.report_only {
            let (n, of) = if fresh { (0, 0) } else { (ran_now, planned.len()) };
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            std::fs::write(&record, wall_record(measured, o.jobs, &commit, n, of))
                .map_err(|e| format!("{}: {e}", record.display()))?;
            Some((measured, o.jobs, commit.clone(), n, of))
        } else {
            std::fs::read_to_string(&record).ok().and_then(|v| parse_wall_record(&v))
        };
        let mut rep = Command::new(&exe);
        rep.arg("--data-dir").arg(&data).arg("report").arg(&exp).arg("--runs-dir").arg(&runs).arg("--out").arg(&out);
        if !suite.curves {
            rep.arg("--no-plots");
        }
        for s in &sets {
            rep.args(["--set", s]);
        }
        if reference.exists() {
            rep.arg("--reference").arg(&reference);
        }
        if let Some((flags, _)) = suite.report {
            rep.args(flags);
        }
        if let Some((_, flags)) = suite.table_report.iter().find(|(n, _)| n == t) {
            rep.args(*flags);
        }
        rep.stdout(std::process::Stdio::null());
        if run_status(&mut rep).is_err() {
            failed.push(t.clone());
            continue;
        }
        let read =
            |f: &str| std::fs::read_to_string(out.join(f)).map_err(|e| format!("{}: {e}", out.join(f).display()));
        let mut table = read("report.md")?;
        if suite.curves {
            // The learning curves (`plots/<task>.png`, one per task), linked under the tables.
            let mut curves: Vec<String> = std::fs::read_dir(out.join("plots"))
                .map_err(|e| format!("{}: {e}", out.join("plots").display()))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".png") && !n.starts_with("boundary-") && !n.starts_with("sweep-"))
                .collect();
            curves.sort();
            for c in curves {
                table.push_str(&format!("\n![learning curves: {c}](plots/{c})\n"));
            }
        }
        // Figures the report links (`plots/*.png`: boundaries, sweeps) go beside the document, in `<prefix><table>/`.
        if table.contains("](plots/") {
            let figs = results_dir.join(format!("{}{t}", suite.prefix));
            std::fs::create_dir_all(&figs).map_err(|e| format!("{}: {e}", figs.display()))?;
            let plots = out.join("plots");
            for e in std::fs::read_dir(&plots).map_err(|e| format!("{}: {e}", plots.display()))?.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if table.contains(&format!("](plots/{name})")) {
                    std::fs::copy(e.path(), figs.join(&name)).map_err(|e| format!("{name}: {e}"))?;
                }
            }
            table = table.replace("](plots/", &format!("]({}{t}/", suite.prefix));
        }
        if let Some((_, file)) = suite.report {
            table.push('\n');
            table.push_str(&read(file)?);
        }
        let quick_note = if o.quick {
            format!("\n**Quick smoke run** (`--quick`, overrides {sets:?}): not the table's numbers.\n")
        } else if o.report_only {
            "\n**Report only** (`--report-only`): generated from the trials in the runs directory; a cell whose trial \
             has not been run shows –, and a row with one has no average.\n"
                .to_string()
        } else if !sets.is_empty() {
            format!("\n**Partial run** (overrides {sets:?}): the rows of what these overrides leave out are missing.\n")
        } else {
            String::new()
        };
        let wall_text = match &wall {
            Some((w, jobs, at, _, _)) if fresh => {
                format!("every trial run, wall time {w:.0} s with `--jobs {jobs}`, commit {at}")
            }
            _ if fresh => {
                format!("every trial run, wall time {measured:.0} s with `--jobs {}`, commit {commit}", o.jobs)
            }
            _ if ran_now > 0 => format!(
                "{ran_now} of its {} trials run now, wall time {measured:.0} s with `--jobs {}`, commit {commit}; the \
                 others had finished before",
                planned.len(),
                o.jobs
            ),
            Some((w, jobs, at, n, of)) if *n > 0 => format!(
                "report regenerated at commit {commit}; its last run computed {n} of its {of} trials at commit {at}, \
                 wall time {w:.0} s with `--jobs {jobs}` (the others had finished before; their trial time is in the \
                 archive line)"
            ),
            Some((w, jobs, at, _, _)) => format!(
                "report regenerated at commit {commit}; its trials ran at commit {at}, wall time {w:.0} s with \
                 `--jobs {jobs}`"
            ),
            None => format!("report regenerated at commit {commit}; wall time of its trials unknown"),
        };
        let archived = archive::summary(&archive_dir, &planned);
        let archived = if archived.is_empty() {
            String::new()
        } else {
            format!(
                "Trial archive [`trials/{0}{t}/`](trials/{0}{t}/) (each trial's config, result and machine; reused \
                 while the trial's config is unchanged): {archived}.\n",
                suite.prefix
            )
        };
        let doc = format!(
            "# {t}: {}\n\nGenerated by `cargo xtask {}{}{} {t}` on {date} ({wall_text}), {machine}.\nExperiment: \
             [`{tables_dir}/{t}.yaml`](../../{tables_dir}/{t}.yaml) (every setting and its source in its comments){}.\n\
             {archived}{quick_note}\n{table}",
            top_key(&exp, "description"),
            suite.command,
            if o.quick {
                " --quick"
            } else if o.report_only {
                " --report-only"
            } else {
                ""
            },
            o.sets.iter().map(|s| format!(" --set '{s}'")).collect::<String>(),
            if reference.exists() {
                format!("; paper numbers: [`{tables_dir}/reference/{t}.yaml`](../../{tables_dir}/reference/{t}.yaml)")
            } else {
                String::new()
            },
        );
        let file = results_dir.join(format!("{}{t}.md", suite.prefix));
        std::fs::write(&file, doc).map_err(|e| format!("{}: {e}", file.display()))?;
        summary.push(format!("{t}: {measured:.0} s → {}", file.display()));
    }
    for s in &summary {
        eprintln!("xtask: {s}");
    }
    if failed.is_empty() { Ok(()) } else { Err(format!("tables that failed: {}", failed.join(", "))) }
}

/// The wall-time record of a table's last run (`runs/reports/<table>/wall_time_s`): seconds, jobs, commit (spaces as
/// `_`), and, for a run that computed only `n` of the plan's `of` trials, those two counts (`0 0` when every trial ran).
fn wall_record(secs: f64, jobs: usize, commit: &str, n: usize, of: usize) -> String {
    format!("{secs:.1} {jobs} {} {n} {of}", commit.replace(' ', "_"))
}

/// Reads [`wall_record`]'s line; a record of the older three-field form is a full run.
fn parse_wall_record(v: &str) -> Option<(f64, usize, String, usize, usize)> {
    let mut f = v.split_whitespace();
    let (w, j) = (f.next()?.parse::<f64>().ok()?, f.next()?.parse::<usize>().ok()?);
    let at = f.next().unwrap_or("unknown").replace('_', " ");
    let n = f.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    Some((w, j, at, n, f.next().and_then(|x| x.parse().ok()).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::{describe_machine, parse_wall_record, wall_record};

    #[test]
    fn a_wall_record_round_trips_and_the_old_form_reads_as_a_full_run() {
        let line = wall_record(3936.04, 2, "0ebc73d + uncommitted changes", 6, 16);
        assert_eq!(line, "3936.0 2 0ebc73d_+_uncommitted_changes 6 16");
        assert_eq!(parse_wall_record(&line), Some((3936.0, 2, "0ebc73d + uncommitted changes".into(), 6, 16)));
        assert_eq!(parse_wall_record("2107.6 2 4438cff\n"), Some((2107.6, 2, "4438cff".into(), 0, 0)));
        assert_eq!(parse_wall_record("x 2 abc"), None);
    }

    #[test]
    fn the_machine_names_the_processor_family_model_and_stepping() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n\
                    stepping\t: 1\nmicrocode\t: 0x1\nprocessor\t: 1\ncpu family\t: 25\n";
        assert_eq!(describe_machine(info, 2), "AMD EPYC (family 25 model 17 stepping 1), 2 cores, no GPU used");
        // No family (another architecture's cpuinfo): the name alone; no cpuinfo at all: said so.
        assert_eq!(describe_machine("model name\t: Neoverse\n", 4), "Neoverse, 4 cores, no GPU used");
        assert_eq!(describe_machine("", 1), "unknown CPU, 1 cores, no GPU used");
    }
}
