//! Checks of option values for [`crate::method_config!`]: each returns `key: message`.

use crate::Validate;

/// A finite number ≥ 0.
pub fn non_negative(key: &str, v: &f64) -> Result<(), String> {
    if v.is_finite() && *v >= 0.0 { Ok(()) } else { Err(format!("{key}: must be a finite number >= 0, got {v}")) }
}

/// A finite number > 0.
pub fn positive(key: &str, v: &f64) -> Result<(), String> {
    if v.is_finite() && *v > 0.0 { Ok(()) } else { Err(format!("{key}: must be a finite number > 0, got {v}")) }
}

/// A number in [0, 1).
pub fn fraction(key: &str, v: &f64) -> Result<(), String> {
    if (0.0..1.0).contains(v) { Ok(()) } else { Err(format!("{key}: must be in [0, 1), got {v}")) }
}

/// A count ≥ 1.
pub fn at_least_one(key: &str, v: &usize) -> Result<(), String> {
    if *v >= 1 { Ok(()) } else { Err(format!("{key}: must be >= 1, got {v}")) }
}

/// A nested section: its own checks, under `key.`.
pub fn nested<T: Validate>(key: &str, v: &T) -> Result<(), String> {
    v.validate().map_err(|e| format!("{key}.{e}"))
}
