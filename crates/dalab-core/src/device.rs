//! Device selection. libtorch's CUDA backend lives in `libtorch_cuda.so`, which our binaries do not link
//! (rustc links with `--as-needed`); [`init_cuda`] loads it when it is installed, before the first tensor
//! operation, so one binary runs on CPU-only and CUDA installs alike.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use tch::Device;

/// The `device:` setting: `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct DeviceSpec(pub String);

impl DeviceSpec {
    pub fn auto() -> Self {
        DeviceSpec("auto".into())
    }

    pub fn resolve(&self) -> Result<Device> {
        let s = self.0.trim();
        match s {
            "" | "auto" => Ok(if cuda_available() { Device::Cuda(0) } else { Device::Cpu }),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Self::cuda(0),
            _ => match s.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => Self::cuda(n),
                None => Err(Error::Config(format!("device: expected auto, cpu, cuda or cuda:N, got `{s}`"))),
            },
        }
    }

    fn cuda(n: usize) -> Result<Device> {
        if !cuda_available() {
            return Err(Error::Config(format!(
                "device: cuda:{n} asked for, but CUDA is not available ({})",
                cuda_status()
            )));
        }
        let count = tch::Cuda::device_count() as usize;
        if n >= count {
            return Err(Error::Config(format!("device: cuda:{n} asked for, but there are {count} CUDA device(s)")));
        }
        Ok(Device::Cuda(n))
    }
}

static CUDA_INIT: OnceLock<String> = OnceLock::new();

/// Loads libtorch's CUDA backend if it is installed next to `libtorch_cpu.so`. Idempotent; returns a one-line
/// status (what was loaded, or why not).
pub fn init_cuda() -> &'static str {
    CUDA_INIT.get_or_init(load_cuda_backend)
}

fn cuda_status() -> &'static str {
    init_cuda()
}

/// True when libtorch can use a CUDA device.
pub fn cuda_available() -> bool {
    init_cuda();
    tch::Cuda::is_available()
}

/// Finds the directory of the loaded `libtorch_cpu.so` in /proc/self/maps.
fn libtorch_dir() -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()))
}

fn load_cuda_backend() -> String {
    // Make sure libtorch_cpu is mapped (any call into it does), then look next to it.
    let _ = tch::utils::has_mps();
    let Some(dir) = libtorch_dir() else {
        return "libtorch_cpu.so not found in the process maps".into();
    };
    let lib = dir.join("libtorch_cuda.so");
    if !lib.exists() {
        return format!("CPU-only libtorch at {} (`cargo xtask setup --cuda` installs the CUDA one)", dir.display());
    }
    let Ok(c) = std::ffi::CString::new(lib.as_os_str().as_encoded_bytes()) else {
        return "libtorch path contains a NUL byte".into();
    };
    // SAFETY: dlopen with a valid C string; the handle is intentionally never closed (libtorch stays loaded).
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local C string or null.
        let msg = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "unknown error".to_string()
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        return format!("cannot load {}: {msg}", lib.display());
    }
    format!("loaded {}", lib.display())
}

/// A one-line description of a device for logs (`cpu (2 threads)`, `cuda:0 (NVIDIA H100 ...)`).
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_spec_parses_and_rejects() {
        assert_eq!(DeviceSpec("cpu".into()).resolve().unwrap(), Device::Cpu);
        let e = DeviceSpec("gpu0".into()).resolve().unwrap_err().to_string();
        assert!(e.starts_with("device: expected auto, cpu, cuda or cuda:N"), "{e}");
        // On a machine without CUDA, asking for it names the reason; with CUDA, auto picks it.
        if cuda_available() {
            assert_eq!(DeviceSpec::auto().resolve().unwrap(), Device::Cuda(0));
        } else {
            assert_eq!(DeviceSpec::auto().resolve().unwrap(), Device::Cpu);
            assert!(DeviceSpec("cuda".into()).resolve().unwrap_err().to_string().contains("not available"));
        }
    }
}
