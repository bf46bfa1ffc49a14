//! [`method_factory!`]: a trained method's registry entry as one declaration (its options are declared with
//! `dalab_core::method_config!`, defined in dalab-classic so that closed-form methods need no libtorch). They exist
//! so that a method crate holds its formula and nothing else.

/// Declares a method's registry entry: a unit struct implementing [`crate::MethodFactory`].
///
/// ```ignore
/// dalab_core::method_factory! {
///     /// The registry entry.
///     pub Mcc: "mcc", "minimum class confusion on target predictions (Jin et al. 2020)";
///     build(cfg: &MccConfig, vs, env) { ... }
/// }
/// ```
/// Optional lines after the summary: `settings: [Setting::Unsupervised, ...];` and `groups: ["a", "b"];`.
#[macro_export]
macro_rules! method_factory {
    (
        $(#[$m:meta])*
        pub $name:ident : $key:literal, $summary:literal;
        $( settings: [$($setting:expr),* $(,)?]; )?
        $( groups: [$($group:literal),* $(,)?]; )?
        build($cfg:ident : &$cty:ty, $vs:ident, $env:ident) $body:block
    ) => {
        $(#[$m])*
        #[derive(Debug)]
        pub struct $name;

        impl $crate::MethodFactory for $name {
            const NAME: &'static str = $key;
            const SUMMARY: &'static str = $summary;
            $( const SETTINGS: &'static [$crate::Setting] = &[$($setting),*]; )?
            $( const GROUPS: &'static [&'static str] = &[$($group),*]; )?
            type Config = $cty;

            fn build(
                $cfg: &$cty,
                $vs: &::tch::nn::Path,
                $env: $crate::BuildEnv,
            ) -> $crate::Result<Box<dyn $crate::Method>> {
                $body
            }
        }
    };
}
