//! Checks of option values for [`crate::method_config!`]: each returns `key: message`.

use crate::Validate;
use std::fmt::Display;

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

/// A count ≥ 1 (any integer type).
pub fn at_least_one<T: PartialOrd + From<u8> + Display>(key: &str, v: &T) -> Result<(), String> {
    if *v >= T::from(1) { Ok(()) } else { Err(format!("{key}: must be >= 1, got {v}")) }
}

/// A list with at least one entry (e.g. the layers a loss is applied to).
pub fn non_empty<T>(key: &str, v: &[T]) -> Result<(), String> {
    if v.is_empty() { Err(format!("{key}: must not be empty")) } else { Ok(()) }
}

/// A nested section: its own checks, under `key.`.
pub fn nested<T: Validate>(key: &str, v: &T) -> Result<(), String> {
    v.validate().map_err(|e| format!("{key}.{e}"))
}

/// A list of nested sections: each one's checks, under `key[i].`.
pub fn each<T: Validate>(key: &str, v: &[T]) -> Result<(), String> {
    v.iter().enumerate().try_for_each(|(i, x)| x.validate().map_err(|e| format!("{key}[{i}].{e}")))
}
