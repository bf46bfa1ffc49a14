//! Checks of option values for [`crate::method_config!`]: each returns `key: message`; and the limits every
//! config is held to before anything is built (`docs/configuration.md`, "Limits").

use crate::Validate;
use std::fmt::Display;

/// The largest iteration count (`train.iterations`, a stage's iterations such as `source_iterations`, and the
/// other step counts and intervals of methods): 10^9.
pub const MAX_ITERATIONS: u64 = 1_000_000_000;

/// The widest layer (a hidden layer of a backbone, head or discriminator, a bottleneck, a projection): 2^16.
pub const MAX_LAYER_WIDTH: u64 = 1 << 16;

/// The largest batch (`train.batch_size`, `train.eval_batch_size`): 2^20 samples.
pub const MAX_BATCH_SIZE: u64 = 1 << 20;

/// `v <= max` for any integer type; a negative value passes (other checks reject it).
fn le<T: Copy + PartialOrd + From<u8> + TryInto<u64>>(v: T, max: u64) -> bool {
    v < T::from(0) || v.try_into().is_ok_and(|u| u <= max)
}

/// An iteration count (or an interval in iterations) of at most [`MAX_ITERATIONS`] (any integer type).
pub fn at_most_iterations<T: Copy + Display + TryInto<u64> + PartialOrd + From<u8>>(
    key: &str,
    v: &T,
) -> Result<(), String> {
    if le(*v, MAX_ITERATIONS) {
        Ok(())
    } else {
        Err(format!("{key}: must be <= {MAX_ITERATIONS} (the iteration limit), got {v}"))
    }
}

/// A layer width of at most [`MAX_LAYER_WIDTH`] (any integer type).
pub fn at_most_width<T: Copy + Display + TryInto<u64> + PartialOrd + From<u8>>(key: &str, v: &T) -> Result<(), String> {
    if le(*v, MAX_LAYER_WIDTH) {
        Ok(())
    } else {
        Err(format!("{key}: must be <= {MAX_LAYER_WIDTH} (the layer-width limit), got {v}"))
    }
}

/// Layer widths: each in `1..=`[`MAX_LAYER_WIDTH`], named `key[i]`.
pub fn layer_widths(key: &str, v: &[i64]) -> Result<(), String> {
    for (i, &h) in v.iter().enumerate() {
        if h < 1 {
            return Err(format!("{key}[{i}]: layer sizes must be >= 1, got {h}"));
        }
        at_most_width(&format!("{key}[{i}]"), &h)?;
    }
    Ok(())
}

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

/// A finite learning rate > 0 that fits an f32 (libtorch's parameters are f32: a larger one overflows the
/// first step).
pub fn learning_rate(key: &str, v: &f64) -> Result<(), String> {
    if !(v.is_finite() && *v > 0.0) {
        Err(format!("{key}: must be a finite number > 0, got {v}"))
    } else if *v > f32::MAX as f64 {
        Err(format!("{key}: must be <= {:e} (f32::MAX), got {v:e}", f32::MAX))
    } else {
        Ok(())
    }
}

/// A nested section: its own checks, under `key.`.
pub fn nested<T: Validate>(key: &str, v: &T) -> Result<(), String> {
    v.validate().map_err(|e| format!("{key}.{e}"))
}

/// A list of nested sections: each one's checks, under `key[i].`.
pub fn each<T: Validate>(key: &str, v: &[T]) -> Result<(), String> {
    v.iter().enumerate().try_for_each(|(i, x)| x.validate().map_err(|e| format!("{key}[{i}].{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(at_most_iterations("n", &1_000_000_000usize).is_ok());
        assert_eq!(
            at_most_iterations("n", &1_000_000_001u64).unwrap_err(),
            "n: must be <= 1000000000 (the iteration limit), got 1000000001"
        );
        assert!(at_most_iterations("n", &-1i64).is_ok(), "negative values are left to the >= checks");
        assert!(at_most_width("w", &65536i64).is_ok());
        assert_eq!(
            at_most_width("w", &65537usize).unwrap_err(),
            "w: must be <= 65536 (the layer-width limit), got 65537"
        );
        assert_eq!(layer_widths("hidden", &[3, 0]).unwrap_err(), "hidden[1]: layer sizes must be >= 1, got 0");
        assert_eq!(
            layer_widths("hidden", &[3, 1 << 40]).unwrap_err(),
            "hidden[1]: must be <= 65536 (the layer-width limit), got 1099511627776"
        );
        assert!(learning_rate("lr", &0.05).is_ok() && learning_rate("lr", &(f32::MAX as f64)).is_ok());
        assert_eq!(learning_rate("lr", &-0.1).unwrap_err(), "lr: must be a finite number > 0, got -0.1");
        assert_eq!(
            learning_rate("lr", &f64::MAX).unwrap_err(),
            "lr: must be <= 3.4028235e38 (f32::MAX), got 1.7976931348623157e308"
        );
    }
}
