//! `cargo xtask`: dalab's build tasks, std only so it builds in seconds.
//!
//! - `cargo xtask setup [--cpu|--cuda] [--tensorboard]`: install libtorch (PyTorch 2.13.0 from PyPI) into the user
//!   cache and link it at `<repo>/.libtorch`, where `.cargo/config.toml` points tch (`LIBTORCH`) and the rpath of
//!   every binary. A no-op when already installed.
//! - `cargo xtask dalab [--release] ARGS...` (alias `cargo dalab ...`): setup, then the `dalab` binary.
//! - `cargo xtask test [NEXTEST ARGS...]`: setup (with the TensorBoard reader), then every test of the workspace.
//! - `cargo xtask bench-metrics`: dalab-metrics next to the NumPy/scikit-learn peer, medians and ratios.
//! - `cargo xtask reproduce [--quick] [TABLE...]`: the paper tables of experiments/reproduce/, regenerating
//!   docs/results/ (`--quick`: the smoke run the test command ends with).
//! - `cargo xtask selection [--quick] [TABLE...]`: the same for the selection-regret studies of
//!   experiments/selection/ (`dalab report --selection`), into docs/results/selection-<table>.md.

mod archive;
mod bench_metrics;
mod python;
mod reproduce;
mod slurm;

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The PyTorch release tch 0.26.0 is built for.
const TORCH_VERSION: &str = "2.13.0";
/// The two small CUDA wheels `libtorch_cpu.so` links against (toolchain.md): enough for a CPU-only libtorch.
const CPU_EXTRA_WHEELS: &[&str] = &["nvidia-cuda-runtime==13.0.96", "nvidia-cuda-cupti==13.0.85"];
/// The TensorBoard release whose `EventAccumulator` the tests use to read our event files, and the safetensors
/// release they read saved models with (`safetensors.numpy`, no PyTorch needed).
const PYLIB_REQS: &[&str] = &["tensorboard==2.20.0", "safetensors==0.8.0"];

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup_cmd(&args[1..]).map(|_| ()),
        Some("dalab") => dalab(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("bench-metrics") => {
            // The bench crate also holds libtorch benches, so it needs the install.
            check_rustflags().and_then(|_| setup(&parse_setup(&[])?)).and_then(|_| bench_metrics::run(&args[1..]))
        }
        Some(cmd @ ("reproduce" | "selection" | "transfer")) => {
            let suite = match cmd {
                "reproduce" => &reproduce::REPRODUCE,
                "selection" => &reproduce::SELECTION,
                _ => &reproduce::TRANSFER,
            };
            check_rustflags().and_then(|_| setup(&parse_setup(&[])?)).and_then(|_| reproduce::run(suite, &args[1..]))
        }
        Some("-h" | "--help" | "help") | None => {
            eprintln!("{}", USAGE);
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <task>
  setup [--cpu|--cuda] [--tensorboard]   install libtorch 2.13.0 (and the TensorBoard reader) if missing
  dalab [--release] ARGS...              setup, then run `dalab ARGS...` (alias: cargo dalab ...); dev build
                                         unless --release
  test [ARGS...]                         setup, then run all tests (cargo nextest run --workspace ARGS...)
  bench-metrics [ARGS...]                dalab-metrics vs the NumPy/scikit-learn peer (--help for options)
  reproduce [--quick] [TABLE...]         run the paper tables of experiments/reproduce/, write docs/results/
  selection [--quick] [TABLE...]         run the selection-regret studies of experiments/selection/, write
                                         docs/results/selection-<table>.md
  transfer [--quick] [TABLE...]          run the inductive-transfer studies of experiments/transfer/, write
                                         docs/results/transfer-<table>.md
environment: DALAB_CACHE_DIR (default ~/.cache/dalab), DALAB_TORCH=cpu|cuda (default: cuda when nvidia-smi sees a GPU)";

fn repo_root() -> PathBuf {
    // xtask/Cargo.toml lives one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is inside the workspace").to_path_buf()
}

fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = env::var_os("DALAB_CACHE_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(d).join("dalab"));
    }
    match env::var_os("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".cache").join("dalab")),
        None => {
            Err("neither DALAB_CACHE_DIR, XDG_CACHE_HOME nor HOME is set: cannot choose where to put libtorch".into())
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Variant {
    Cpu,
    Cuda,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Cpu => "cpu",
            Variant::Cuda => "cuda",
        }
    }
}

fn gpu_present() -> bool {
    Command::new("nvidia-smi").arg("-L").output().map(|o| o.status.success() && !o.stdout.is_empty()).unwrap_or(false)
}

struct SetupOpts {
    variant: Variant,
    tensorboard: bool,
}

fn parse_setup(args: &[String]) -> Result<SetupOpts> {
    let mut variant = match env::var("DALAB_TORCH").ok().as_deref() {
        Some("cpu") => Some(Variant::Cpu),
        Some("cuda") => Some(Variant::Cuda),
        Some("") | None => None,
        Some(other) => return Err(format!("DALAB_TORCH must be `cpu` or `cuda`, got `{other}`")),
    };
    let mut tensorboard = false;
    for a in args {
        match a.as_str() {
            "--cpu" => variant = Some(Variant::Cpu),
            "--cuda" => variant = Some(Variant::Cuda),
            "--tensorboard" => tensorboard = true,
            other => return Err(format!("setup: unknown option `{other}`\n{USAGE}")),
        }
    }
    let variant = variant.unwrap_or(if gpu_present() { Variant::Cuda } else { Variant::Cpu });
    Ok(SetupOpts { variant, tensorboard })
}

fn setup_cmd(args: &[String]) -> Result<PathBuf> {
    let opts = parse_setup(args)?;
    setup(&opts)
}

/// Installs what is missing and returns the libtorch install directory (the one holding `torch/`).
fn setup(opts: &SetupOpts) -> Result<PathBuf> {
    let cache = cache_dir()?;
    fs::create_dir_all(&cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let dir = cache.join(format!("torch-{TORCH_VERSION}-{}", opts.variant.name()));
    let marker = dir.join(".dalab-complete");
    if !marker.exists() {
        install_libtorch(&dir, opts.variant)?;
    }
    link_libtorch(&dir)?;
    if opts.tensorboard {
        install_tensorboard(&dir)?;
    }
    Ok(dir)
}

fn run_status(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{shown} failed with {status}")) }
}

fn python() -> String {
    env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Makes sure `python3 -m pip` works, installing Debian's pip when it does not (we are root on these machines).
fn ensure_pip() -> Result<()> {
    let py = python();
    let ok = |py: &str| {
        Command::new(py).args(["-m", "pip", "--version"]).output().map(|o| o.status.success()).unwrap_or(false)
    };
    if ok(&py) {
        return Ok(());
    }
    eprintln!("xtask: `{py} -m pip` is not available; installing Debian's python3-pip");
    run_status(Command::new("apt-get").arg("update").arg("-qq"))?;
    run_status(Command::new("apt-get").args(["install", "-y", "-qq", "python3", "python3-pip"]))?;
    if ok(&py) { Ok(()) } else { Err(format!("`{py} -m pip` still does not work after installing python3-pip")) }
}

fn pip_install_target(target: &Path, reqs: &[&str], no_deps: bool) -> Result<()> {
    let mut cmd = Command::new(python());
    cmd.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--root-user-action=ignore",
        "--target",
    ]);
    cmd.arg(target);
    if no_deps {
        cmd.arg("--no-deps");
    }
    // pip refuses --target inside a venv-less user site setup on some Debian pythons; this flag lifts it.
    if pip_needs_break_system_packages() {
        cmd.arg("--break-system-packages");
    }
    cmd.args(reqs);
    run_status(&mut cmd)
}

fn pip_needs_break_system_packages() -> bool {
    // Debian's own python3 marks itself EXTERNALLY-MANAGED (PEP 668).
    Command::new(python())
        .args(["-c", "import sys,sysconfig,os;print(os.path.exists(os.path.join(sysconfig.get_path('stdlib'),'EXTERNALLY-MANAGED')))"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "True")
        .unwrap_or(false)
}

fn install_libtorch(dir: &Path, variant: Variant) -> Result<()> {
    ensure_pip()?;
    let partial = dir.with_extension(format!("partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    eprintln!(
        "xtask: installing libtorch {TORCH_VERSION} ({}) from PyPI into {} (one time; {})",
        variant.name(),
        dir.display(),
        if variant == Variant::Cpu { "~540 MB download" } else { "~2.7 GB download" }
    );
    let torch = format!("torch=={TORCH_VERSION}");
    match variant {
        Variant::Cpu => {
            let mut reqs = vec![torch.as_str()];
            reqs.extend_from_slice(CPU_EXTRA_WHEELS);
            pip_install_target(&partial, &reqs, true)?;
        }
        Variant::Cuda => pip_install_target(&partial, &[torch.as_str()], false)?,
    }
    let torch_dir = partial.join("torch");
    let lib = torch_dir.join("lib").join("libtorch_cpu.so");
    if !lib.exists() {
        return Err(format!("pip finished but {} is missing", lib.display()));
    }
    // The wheel has no `build-version`; writing it makes tch's build check the version.
    let version = read_wheel_version(&torch_dir)?;
    if version.split('+').next() != Some(TORCH_VERSION) {
        return Err(format!("PyPI gave torch {version}, but tch 0.26.0 needs {TORCH_VERSION}"));
    }
    fs::write(torch_dir.join("build-version"), format!("{version}\n"))
        .map_err(|e| format!("cannot write build-version: {e}"))?;
    fs::write(partial.join(".dalab-complete"), format!("torch {version} ({})\n", variant.name()))
        .map_err(|e| format!("cannot write marker: {e}"))?;
    let _ = fs::remove_dir_all(dir);
    fs::rename(&partial, dir).map_err(|e| format!("cannot move {} to {}: {e}", partial.display(), dir.display()))?;
    Ok(())
}

fn read_wheel_version(torch_dir: &Path) -> Result<String> {
    let path = torch_dir.join("version.py");
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("__version__"))
        .and_then(|rest| rest.split(['\'', '"']).nth(1))
        .map(str::to_string)
        .ok_or_else(|| format!("{}: no __version__ line", path.display()))
}

/// Points `<repo>/.libtorch` (the path .cargo/config.toml and the rpath use) at the install.
fn link_libtorch(dir: &Path) -> Result<()> {
    let link = repo_root().join(".libtorch");
    if fs::read_link(&link).is_ok_and(|current| current == dir) {
        return Ok(());
    }
    if link.symlink_metadata().is_ok() {
        if link.is_dir() && link.symlink_metadata().map(|m| !m.file_type().is_symlink()).unwrap_or(false) {
            return Err(format!(
                "{} is a real directory; remove it so xtask can link the cached libtorch",
                link.display()
            ));
        }
        fs::remove_file(&link).map_err(|e| format!("cannot replace {}: {e}", link.display()))?;
    }
    std::os::unix::fs::symlink(dir, &link)
        .map_err(|e| format!("cannot link {} -> {}: {e}", link.display(), dir.display()))?;
    eprintln!("xtask: {} -> {}", link.display(), dir.display());
    Ok(())
}

/// The Python readers, next to libtorch (`<install>/pylib`), for the tests that read our event files with
/// TensorBoard's own `EventAccumulator` and our saved models with the `safetensors` package. Reinstalled when the
/// requirements change (the marker file records them).
fn install_tensorboard(dir: &Path) -> Result<()> {
    let pylib = dir.join("pylib");
    let marker = pylib.join(".dalab-complete");
    let reqs = PYLIB_REQS.join(" ");
    if fs::read_to_string(&marker).is_ok_and(|m| m == reqs) {
        return Ok(());
    }
    ensure_pip()?;
    eprintln!("xtask: installing {reqs} into {}", pylib.display());
    let partial = dir.join(format!("pylib.partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    pip_install_target(&partial, PYLIB_REQS, false)?;
    fs::write(partial.join(".dalab-complete"), &reqs).map_err(|e| format!("cannot write marker: {e}"))?;
    let _ = fs::remove_dir_all(&pylib);
    fs::rename(&partial, &pylib).map_err(|e| format!("cannot move {} to {}: {e}", partial.display(), pylib.display()))
}

fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A `RUSTFLAGS` variable replaces the rustflags of .cargo/config.toml, which carry the rpath to libtorch.
fn check_rustflags() -> Result<()> {
    if env::var_os("RUSTFLAGS").is_some_and(|v| !v.is_empty()) {
        return Err("RUSTFLAGS is set: it would replace the rpath flags of .cargo/config.toml and the binaries \
                    would not find libtorch. Unset it (pass lint flags after `--` instead)."
            .into());
    }
    Ok(())
}

/// Runs the `dalab` binary. The dev profile by default: a clean build takes ~110 s on 2 cores (release: ~220 s)
/// and shares its artifacts with the tests; the heavy lifting is in libtorch, which is optimised either way.
/// `--release` first builds an optimised binary, for long runs whose Rust side matters (data decoding,
/// divergences on large samples).
fn dalab(args: &[String]) -> Result<()> {
    check_rustflags()?;
    setup(&parse_setup(&[])?)?;
    let (release, args) = match args.first().map(String::as_str) {
        Some("--release") => (true, &args[1..]),
        _ => (false, args),
    };
    let mut cmd = Command::new(cargo());
    cmd.current_dir(repo_root()).args(["run", "--quiet", "--package", "dalab-cli", "--bin", "dalab"]);
    if release {
        cmd.arg("--release");
    }
    cmd.arg("--").args(args);
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        // dalab printed its own error already.
        std::process::exit(status.code().unwrap_or(1));
    }
}

/// The report's plots need a TrueType font; the tests draw plots, so `cargo xtask test` makes sure Debian's
/// DejaVu fonts are there (we are root on these machines; elsewhere install fonts-dejavu-core or set DALAB_FONT).
fn ensure_font() -> Result<()> {
    let font = Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
    if font.exists() || env::var_os("DALAB_FONT").is_some() {
        return Ok(());
    }
    eprintln!("xtask: no DejaVu font for the report plots; installing Debian's fonts-dejavu-core");
    run_status(Command::new("apt-get").arg("update").arg("-qq"))?;
    run_status(Command::new("apt-get").args(["install", "-y", "-qq", "fonts-dejavu-core"]))
}

fn test(args: &[String]) -> Result<()> {
    check_rustflags()?;
    let dir = setup(&SetupOpts { tensorboard: true, ..parse_setup(&[])? })?;
    ensure_font()?;
    let root = repo_root();
    let mut cmd_env: Vec<(&str, OsString)> = vec![("DALAB_TENSORBOARD_PYTHONPATH", dir.join("pylib").into_os_string())];
    if env::var_os("DALAB_DATA_DIR").is_none() {
        let shared = root.join("..").join("shared").join("datasets");
        if shared.is_dir() {
            eprintln!("xtask: DALAB_DATA_DIR not set; using {}", shared.display());
            cmd_env.push(("DALAB_DATA_DIR", shared.into_os_string()));
        }
    }
    // The Slurm launcher's tests run against a real one-node Slurm, started here and stopped when `cluster` drops.
    let cluster = slurm::Cluster::start()?;
    cmd_env.push(("SLURM_CONF", cluster.conf().into_os_string()));
    cmd_env.push(("DALAB_SLURM_TESTS", "1".into()));
    let has_nextest =
        Command::new(cargo()).args(["nextest", "--version"]).output().map(|o| o.status.success()).unwrap_or(false);
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&root).envs(cmd_env);
    if has_nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!("xtask: cargo-nextest not found; using cargo test");
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(args);
    // Doc tests are off in this workspace (each would be one more binary linking libtorch); examples in docs are
    // checked by the unit and integration tests instead.
    let tests = run_status(&mut cmd);
    drop(cluster);
    tests?;
    // The Python package: its wheel built, installed into a virtual environment and tested with pytest.
    if args.is_empty() {
        python::test(&root)?;
    }
    // The reproduction suite's smoke run, on the benchmark files when they are here (CI has ../shared).
    if args.is_empty() {
        if reproduce::data_available(&root) {
            reproduce::run(&reproduce::REPRODUCE, &["--quick".to_string()])?;
            reproduce::run(&reproduce::SELECTION, &["--quick".to_string()])?;
            reproduce::run(&reproduce::TRANSFER, &["--quick".to_string()])?;
        } else {
            eprintln!("xtask: no benchmark data (DALAB_DATA_DIR, ../shared/datasets); skipping `reproduce --quick`");
        }
    }
    Ok(())
}
