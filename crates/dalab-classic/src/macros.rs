//! [`method_config!`]: a method's options as one declaration (trained and closed-form methods alike);
//! [`classic_factory!`]: a closed-form method's registry entry.

/// Declares a method's options: the struct (serde, `deny_unknown_fields`, defaults in code), its `Default` from
/// the `= value` of each field and its `Validate` from the checks named after the value. A check is a function
/// `fn(key: &str, value: &T) -> Result<(), String>`: those of [`crate::checks`] (`non_negative`, `positive`,
/// `fraction`, `at_least_one`, `non_empty`, `nested`, `each`) or any other path. A check across fields follows
/// the struct as `check: path;`, a `fn(&Self) -> Result<(), String>` run after the fields' checks.
/// Re-exported as `dalab_core::method_config!`.
///
/// ```ignore
/// dalab_core::method_config! {
///     /// The `methods.mcc` options.
///     pub struct MccConfig {
///         /// λ: weight of the class-confusion loss.
///         trade_off: f64 = 1.0, non_negative;
///         temperature: f64 = 2.5, positive;
///         head: HeadConfig = HeadConfig::default(), nested;
///     }
/// }
/// ```
#[macro_export]
macro_rules! method_config {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $( $(#[$fm:meta])* $field:ident : $ty:ty = $default:expr $(, $check:path)* ; )*
        }
        $( check: $whole:path; )?
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $( $(#[$fm])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl $crate::Validate for $name {
            #[allow(unused_imports)]
            fn validate(&self) -> std::result::Result<(), String> {
                use $crate::checks::*;
                $( $( $check(stringify!($field), &self.$field)?; )* )*
                $( $whole(self)?; )?
                Ok(())
            }
        }
    };
}

/// Declares a closed-form method's registry entry: a unit struct implementing [`crate::ClassicFactory`].
///
/// ```ignore
/// dalab_classic::classic_factory! {
///     /// The registry entry.
///     pub Svm: "svm", "no adaptation: linear SVM on the source features";
///     fit(cfg: &SvmSettings, inputs) { ... }
/// }
/// ```
#[macro_export]
macro_rules! classic_factory {
    (
        $(#[$m:meta])*
        pub $name:ident : $key:literal, $summary:literal;
        fit($cfg:ident : &$cty:ty, $inputs:ident) $body:block
    ) => {
        $(#[$m])*
        #[derive(Debug)]
        pub struct $name;

        impl $crate::ClassicFactory for $name {
            const NAME: &'static str = $key;
            const SUMMARY: &'static str = $summary;
            type Config = $cty;

            fn fit($cfg: &$cty, $inputs: &$crate::ClassicInputs<'_>) -> $crate::Result<$crate::Fitted> $body
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::Validate;

    crate::method_config! {
        /// A nested section.
        pub struct Inner {
            rate: f64 = 0.5, fraction;
        }
    }

    crate::method_config! {
        /// Options with defaults and checks.
        pub struct Opts {
            trade_off: f64 = 1.0, non_negative;
            width: usize = 3, at_least_one;
            inner: Inner = Inner::default(), nested;
        }
    }

    #[test]
    fn defaults_checks_and_unknown_keys() {
        let d = Opts::default();
        assert_eq!((d.trade_off, d.width, d.inner.rate), (1.0, 3, 0.5));
        assert!(d.validate().is_ok());
        let bad = Opts { trade_off: -2.0, ..Opts::default() };
        assert_eq!(bad.validate().unwrap_err(), "trade_off: must be a finite number >= 0, got -2");
        let bad = Opts { inner: Inner { rate: 1.5 }, ..Opts::default() };
        assert_eq!(bad.validate().unwrap_err(), "inner.rate: must be in [0, 1), got 1.5");
        let parsed: Opts = serde_json::from_str(r#"{"width": 7}"#).unwrap();
        assert_eq!((parsed.trade_off, parsed.width), (1.0, 7));
        let e = serde_json::from_str::<Opts>(r#"{"widht": 7}"#).unwrap_err().to_string();
        assert!(e.contains("unknown field `widht`"), "{e}");
    }

    fn fits(l: &Lists) -> Result<(), String> {
        if l.items.len() as i64 <= l.dim { Ok(()) } else { Err("items: more than `dim`".into()) }
    }

    crate::method_config! {
        /// Lists, a signed count and a check across fields.
        pub struct Lists {
            dim: i64 = 2, at_least_one;
            items: Vec<Inner> = vec![Inner::default()], non_empty, each;
        }
        check: fits;
    }

    #[test]
    fn list_checks_and_the_check_across_fields() {
        assert!(Lists::default().validate().is_ok());
        let bad = Lists { dim: 0, ..Lists::default() };
        assert_eq!(bad.validate().unwrap_err(), "dim: must be >= 1, got 0");
        let bad = Lists { items: vec![], ..Lists::default() };
        assert_eq!(bad.validate().unwrap_err(), "items: must not be empty");
        let bad = Lists { items: vec![Inner::default(), Inner { rate: -1.0 }], ..Lists::default() };
        assert_eq!(bad.validate().unwrap_err(), "items[1].rate: must be in [0, 1), got -1");
        let bad = Lists { items: vec![Inner::default(); 3], ..Lists::default() };
        assert_eq!(bad.validate().unwrap_err(), "items: more than `dim`");
    }
}
