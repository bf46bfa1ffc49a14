//! The Python package's part of `cargo xtask test`: builds the `dalab` wheel (python/, pyo3 + maturin, abi3),
//! installs it into a virtual environment under target/ (made when missing, with maturin, pytest and NumPy from
//! PyPI), imports it, and runs its pytest suite (python/tests).

use crate::{Result, python, run_status};
use std::path::Path;
use std::process::Command;

pub fn test(root: &Path) -> Result<()> {
    let venv = root.join("target").join("python-venv");
    let py = venv.join("bin").join("python");
    if !py.exists() {
        let made = Command::new(python()).arg("-m").arg("venv").arg(&venv).status().is_ok_and(|s| s.success());
        if !made {
            eprintln!("xtask: `{} -m venv` failed; installing Debian's python3-venv", python());
            let _ = std::fs::remove_dir_all(&venv);
            run_status(Command::new("apt-get").arg("update").arg("-qq"))?;
            run_status(Command::new("apt-get").args(["install", "-y", "-qq", "python3-venv"]))?;
            run_status(Command::new(python()).arg("-m").arg("venv").arg(&venv))?;
        }
    }
    let pip = |args: &[&str]| {
        let mut c = Command::new(&py);
        c.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet"]).args(args);
        run_status(&mut c)
    };
    if !venv.join("bin").join("maturin").exists() || !venv.join("bin").join("pytest").exists() {
        eprintln!("xtask: installing maturin, pytest and NumPy into {}", venv.display());
        pip(&["maturin>=1.5,<2", "pytest", "numpy"])?;
    }
    let wheels = root.join("target").join("python-wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    eprintln!("xtask: building the dalab wheel (python/)");
    run_status(
        Command::new(venv.join("bin").join("maturin"))
            .args(["build", "--release", "--quiet", "--out"])
            .arg(&wheels)
            .current_dir(root.join("python"))
            .env("CARGO_TARGET_DIR", root.join("target").join("python-build")),
    )?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| format!("{}: {e}", wheels.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("maturin wrote no wheel into {}", wheels.display()))?;
    pip(&["--force-reinstall", "--no-deps", &wheel.display().to_string()])?;
    run_status(Command::new(&py).args([
        "-c",
        "import dalab, numpy as np; r = dalab.mmd2(np.eye(4), np.eye(4) + 1.0); print('python: dalab', dalab.__version__, 'imports; mmd2', round(r['mmd2'], 6))",
    ]))?;
    run_status(
        Command::new(&py).args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "python/tests"]).current_dir(root),
    )
}
