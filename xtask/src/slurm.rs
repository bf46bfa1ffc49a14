//! A one-node Slurm cluster on localhost for the tests of `dalab run --launcher slurm` (facts measured in
//! shared/reference/slurm.md): Debian's slurm-wlm and munge, installed when missing; munged, slurmctld and slurmd
//! started as root with a generated slurm.conf under a temporary directory (no cgroups, no systemd, non-default
//! ports), stopped again when the guard is dropped.

use crate::{Result, run_status};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running one-node cluster; stopped on drop.
pub struct Cluster {
    dir: PathBuf,
}

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

/// Installs Debian's slurm-wlm and munge when their daemons or sbatch are missing.
pub fn ensure_installed() -> Result<()> {
    if ["sbatch", "squeue", "sinfo", "scancel", "slurmctld", "slurmd", "munged"].iter().all(|c| have(c)) {
        return Ok(());
    }
    eprintln!("xtask: installing Debian's slurm-wlm and munge for the Slurm tests");
    run_status(Command::new("apt-get").arg("update").arg("-qq"))?;
    run_status(Command::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args([
        "install",
        "-y",
        "-qq",
        "slurm-wlm",
        "munge",
    ]))
}

fn output(cmd: &str, args: &[&str]) -> Result<String> {
    let o = Command::new(cmd).args(args).output().map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if !o.status.success() {
        return Err(format!("{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

impl Cluster {
    /// Starts munged, slurmctld and slurmd, and waits until the node is idle.
    pub fn start() -> Result<Self> {
        ensure_installed()?;
        let dir = std::env::temp_dir().join(format!("dalab-slurm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["munge", "state", "spool", "log"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let cluster = Cluster { dir: dir.clone() };
        let m = dir.join("munge");
        std::fs::set_permissions(&m, std::fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
        let mut key = vec![0u8; 1024];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(|e| format!("/dev/urandom: {e}"))?,
            &mut key,
        )
        .map_err(|e| format!("/dev/urandom: {e}"))?;
        write(&m.join("munge.key"), &key)?;
        std::fs::set_permissions(m.join("munge.key"), std::fs::Permissions::from_mode(0o400))
            .map_err(|e| e.to_string())?;
        let socket = m.join("munge.socket.2");
        let p = |f: &str| m.join(f).display().to_string();
        run_status(Command::new("munged").args([
            "--force".to_string(),
            format!("--socket={}", socket.display()),
            format!("--key-file={}", p("munge.key")),
            format!("--pid-file={}", p("munged.pid")),
            format!("--log-file={}", p("munged.log")),
            format!("--seed-file={}", p("munged.seed")),
        ]))?;
        let host = output("hostname", &["-s"])?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // RealMemory a little below what the machine has (MiB).
        let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| t.lines().find(|l| l.starts_with("MemTotal:")).map(str::to_string))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            .unwrap_or(2 << 20);
        let mem = (mem_kib / 1024) * 9 / 10;
        let d = |f: &str| dir.join(f).display().to_string();
        let conf = format!(
            "ClusterName=dalab\nSlurmctldHost={host}\nSlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\n\
             AuthInfo=socket={socket}\nCredType=cred/munge\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nMpiDefault=none\n\
             JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\nReturnToService=2\n\
             SlurmctldPort=16817\nSlurmdPort=16818\nStateSaveLocation={}\nSlurmdSpoolDir={}\n\
             SlurmctldPidFile={}\nSlurmdPidFile={}\nSlurmctldLogFile={}\nSlurmdLogFile={}\n\
             NodeName={host} CPUs={cpus} RealMemory={mem} State=UNKNOWN\n\
             PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            d("state"),
            d("spool"),
            d("slurmctld.pid"),
            d("slurmd.pid"),
            d("log/slurmctld.log"),
            d("log/slurmd.log"),
            socket = socket.display(),
        );
        write(&dir.join("slurm.conf"), conf.as_bytes())?;
        for daemon in ["slurmctld", "slurmd"] {
            run_status(Command::new(daemon).env("SLURM_CONF", cluster.conf()))?;
        }
        let started = Instant::now();
        loop {
            let state = Command::new("sinfo").args(["-h", "-o", "%T"]).env("SLURM_CONF", cluster.conf()).output().ok();
            let state = state.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
            if state == "idle" {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "the one-node Slurm did not come up in 60 s (sinfo: `{state}`; logs in {})",
                    dir.join("log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        eprintln!("xtask: one-node Slurm up ({host}, {cpus} CPUs), SLURM_CONF={}", cluster.conf().display());
        Ok(cluster)
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for pid_file in ["slurmd.pid", "slurmctld.pid", "munge/munged.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(pid_file)) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
