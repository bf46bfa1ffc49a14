//! `dalab data {list,verify,fetch}` and `dalab baseline 1nn`: thin shells over `dalab_data::{manifest,
//! fetch, knn}` (all logic and its tests live in dalab-data).

use anyhow::bail;
use dalab_data::fetch::FetchOptions;
use std::path::{Path, PathBuf};

/// Dataset files: what is known and present, checksums, downloads.
#[derive(clap::Subcommand, Debug)]
pub enum DataCmd {
    /// Known datasets (manifests in datasets/) and which of their files are in the data directory.
    List,
    /// Check the SHA-256 of the files of dataset NAME (all datasets when omitted).
    Verify {
        /// Dataset manifest name, e.g. office-caltech10-surf.
        name: Option<String>,
    },
    /// Download dataset NAME from its origin into the data directory (resumable, verified before it is
    /// moved into place); an image benchmark (office31, office-home, visda2017, domainnet): its archives,
    /// extracted under its root.
    Fetch {
        /// Dataset manifest name, e.g. office-caltech10-surf.
        name: String,
        /// Download `<MIRROR>/<path>` instead of the origin URLs (a mirror laid out as a data directory).
        #[arg(long)]
        mirror: Option<String>,
        /// Where interrupted downloads wait to be resumed (default: <system temp>/dalab-fetch).
        #[arg(long)]
        partial_dir: Option<PathBuf>,
    },
}

/// Runs a `dalab data` subcommand.
pub fn run_data(cmd: &DataCmd, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let dir = dalab_data::data_dir(data_dir);
    match cmd {
        DataCmd::List => {
            print!("{}", dalab_data::manifest::render_list(&dir));
            println!("\nimage benchmarks (`dataset: {{name: NAME}}`; `dalab data fetch NAME` downloads the archives):");
            for b in dalab_data::benchmarks::all() {
                let root = dir.join(&b.root);
                let state = if root.is_dir() { "present" } else { "not fetched" };
                println!(
                    "  {:<12} {state:<12} {} ({} domains, {} classes)",
                    b.name,
                    b.title,
                    b.domains.len(),
                    b.classes.len()
                );
            }
        }
        DataCmd::Verify { name } => {
            let reports = dalab_data::manifest::verify(&dir, name.as_deref())?;
            print!("{}", dalab_data::manifest::render_reports(&reports, true));
            let bad = reports.iter().filter(|r| !r.state.is_ok()).count();
            if bad > 0 {
                bail!("{bad} of {} files missing or corrupt in {}", reports.len(), dir.display());
            }
        }
        DataCmd::Fetch { name, mirror, partial_dir } => {
            let opts = FetchOptions { mirror: mirror.clone(), partial_dir: partial_dir.clone(), timeout: None };
            if let Some(b) = dalab_data::benchmarks::find(name) {
                // An image benchmark: archives, extracted under its root; no published checksums.
                for (file, outcome) in dalab_data::benchmarks::fetch(name, &dir, &opts)? {
                    match outcome {
                        dalab_data::benchmarks::ArchiveOutcome::Present => println!("{file}: present"),
                        dalab_data::benchmarks::ArchiveOutcome::Extracted { bytes, sha256 } => {
                            println!(
                                "{file}: downloaded {bytes} bytes, SHA-256 {sha256} (no published checksum to check it against), extracted"
                            )
                        }
                    }
                }
                println!(
                    "{}: {} under {} (recorded in FETCHED.yaml there)",
                    b.name,
                    b.title,
                    dir.join(&b.root).display()
                );
                return Ok(());
            }
            let files = dalab_data::fetch::fetch(name, &dir, &opts)?;
            print!("{}", dalab_data::fetch::render_outcomes(name, &files));
            let manual = files.iter().filter(|f| f.is_missing()).count();
            if manual > 0 {
                bail!("{manual} file(s) of `{name}` have no download URL; make them as described above");
            }
        }
    }
    Ok(())
}

/// Classical baselines that pin a dataset's preprocessing.
#[derive(clap::Args, Debug)]
pub struct BaselineArgs {
    /// The baseline: `1nn` (Euclidean 1-nearest-neighbour, JDA protocol; compared with the JDA paper).
    #[arg(value_parser = ["1nn"], default_value = "1nn")]
    pub baseline: String,
    /// Datasets to run (office-caltech10-surf, jda-digits); default: both.
    #[arg(long, value_delimiter = ',')]
    pub dataset: Vec<String>,
}

/// Runs `dalab baseline 1nn`: prints the table and fails when a value differs from the paper.
pub fn run_baseline(args: &BaselineArgs, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let dir = dalab_data::data_dir(data_dir);
    let rows = dalab_data::knn::jda_table(&dir, &args.dataset)?;
    print!("{}", dalab_data::knn::render_table(&rows));
    let off = rows.iter().filter(|r| r.matches_paper() == Some(false)).count();
    if off > 0 {
        bail!("{off} of {} tasks differ from the JDA paper's NN column", rows.len());
    }
    Ok(())
}
