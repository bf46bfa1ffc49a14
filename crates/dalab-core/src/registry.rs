//! The explicit method registry.
//!
//! Each method crate is added with one line (`registry.add::<Dann>()`) in the CLI. The registry keeps, for each
//! method, type-erased functions to parse its typed config straight from the YAML deserializer (so unknown keys
//! and wrong types are reported with the parser's line and column), to validate it, and to build the method.
//! Parsed configs are kept as resolved JSON values (every default filled in), which is what the runner hashes,
//! writes to `config.yaml` and overrides with `--set`/sweeps.

use crate::{BuildEnv, Error, Method, MethodFactory, Result, Setting, Validate};
use dalab_classic::{ClassicFactory, ClassicInputs, Fitted};
use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::cell::RefCell;
use std::fmt;
use tch::nn;

type ParseFn = fn(&mut dyn erased_serde::Deserializer<'_>) -> std::result::Result<Value, erased_serde::Error>;
type ValidateFn = fn(&Value) -> std::result::Result<(), String>;
type BuildFn = fn(&Value, &nn::Path, BuildEnv) -> Result<Box<dyn Method>>;
type FitFn = fn(&Value, &ClassicInputs<'_>) -> Result<Fitted>;

/// How a registered method produces a model.
#[derive(Clone, Copy)]
enum Kind {
    /// Built around the backbone and trained by the one trainer (dalab-train).
    Trained(BuildFn),
    /// Fitted in closed form on fixed features (dalab-classic); the runner calls it directly.
    Classic(FitFn),
}

/// One registered method.
#[derive(Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub summary: &'static str,
    default_config: fn() -> Value,
    parse: ParseFn,
    validate: ValidateFn,
    kind: Kind,
    /// The settings (`setting:`) the method runs in.
    pub settings: &'static [Setting],
    /// Its parameter groups (trained methods; `optim.groups.<name>`).
    pub groups: &'static [&'static str],
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry").field("name", &self.name).finish_non_exhaustive()
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("method configs serialize to JSON (plain serde structs)")
}

fn parse_as<C: Serialize + serde::de::DeserializeOwned>(
    d: &mut dyn erased_serde::Deserializer<'_>,
) -> std::result::Result<Value, erased_serde::Error> {
    let cfg: C = erased_serde::deserialize(d)?;
    Ok(to_value(&cfg))
}

fn from_value<C: serde::de::DeserializeOwned>(name: &str, v: &Value) -> Result<C> {
    serde_json::from_value(v.clone()).map_err(|e| Error::Config(format!("methods.{name}: {e}")))
}

fn validate_as<C: serde::de::DeserializeOwned + Validate>(v: &Value) -> std::result::Result<(), String> {
    serde_json::from_value::<C>(v.clone()).map_err(|e| e.to_string())?.validate()
}

fn build_as<M: MethodFactory>(v: &Value, vs: &nn::Path, env: BuildEnv) -> Result<Box<dyn Method>> {
    M::build(&from_value(M::NAME, v)?, vs, env)
}

fn fit_as<M: ClassicFactory>(v: &Value, inputs: &ClassicInputs<'_>) -> Result<Fitted> {
    M::fit(&from_value(M::NAME, v)?, inputs).map_err(|e| Error::Other(format!("{}: {e}", M::NAME)))
}

/// The registry entry of a method whose options are `C`.
fn entry<C>(
    name: &'static str,
    summary: &'static str,
    kind: Kind,
    settings: &'static [Setting],
    groups: &'static [&'static str],
) -> Entry
where
    C: Serialize + serde::de::DeserializeOwned + Default + Validate + 'static,
{
    Entry {
        name,
        summary,
        default_config: || to_value(&C::default()),
        parse: parse_as::<C>,
        validate: validate_as::<C>,
        kind,
        settings,
        groups,
    }
}

/// The list of known methods, in registration order.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers method `M`. Panics on a duplicate name (a programming error, caught by the CLI's tests).
    pub fn add<M: MethodFactory>(&mut self) -> &mut Self {
        self.push(entry::<M::Config>(M::NAME, M::SUMMARY, Kind::Trained(build_as::<M>), M::SETTINGS, M::GROUPS))
    }

    /// Registers the closed-form method `M` (fitted on fixed features by the runner, not trained).
    pub fn add_classic<M: ClassicFactory>(&mut self) -> &mut Self {
        self.push(entry::<M::Config>(M::NAME, M::SUMMARY, Kind::Classic(fit_as::<M>), &[Setting::Unsupervised], &[]))
    }

    fn push(&mut self, e: Entry) -> &mut Self {
        assert!(self.get(e.name).is_none(), "method `{}` registered twice", e.name);
        self.entries.push(e);
        self
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.name).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.get(name).ok_or_else(|| Error::UnknownMethod { name: name.to_string(), known: self.names().join(", ") })
    }

    /// The method's config with every default, as a JSON value.
    pub fn default_config(&self, name: &str) -> Result<Value> {
        Ok((self.entry(name)?.default_config)())
    }

    /// Parses and validates a config given as a value (after `--set` overrides or sweeps); errors name
    /// `methods.<name>.<key>`.
    pub fn resolve(&self, name: &str, value: &Value) -> Result<Value> {
        let e = self.entry(name)?;
        let prefix = format!("methods.{name}");
        let cfg = parse_value(e, value).map_err(|m| Error::Config(format!("{prefix}: {m}")))?;
        self.validate(name, &cfg)?;
        Ok(cfg)
    }

    /// Validates a resolved config; the error starts with `methods.<name>.`.
    pub fn validate(&self, name: &str, value: &Value) -> Result<()> {
        (self.entry(name)?.validate)(value).map_err(|m| Error::Config(format!("methods.{name}.{m}")))
    }

    /// Whether `name` is a closed-form method (fitted with [`Registry::fit_classic`], not trained).
    pub fn is_classic(&self, name: &str) -> bool {
        self.get(name).is_some_and(|e| matches!(e.kind, Kind::Classic(_)))
    }

    /// A config error unless method `name` runs in `setting`.
    pub fn check_setting(&self, name: &str, setting: Setting) -> Result<()> {
        let e = self.entry(name)?;
        if e.settings.contains(&setting) {
            return Ok(());
        }
        let ok: Vec<&str> = e.settings.iter().map(|s| s.name()).collect();
        Err(Error::Config(format!(
            "setting: method `{name}` does not run in the `{}` setting (it supports: {})",
            setting.name(),
            ok.join(", ")
        )))
    }

    /// Builds a trained method from its resolved config.
    pub fn build(&self, name: &str, value: &Value, vs: &nn::Path, env: BuildEnv) -> Result<Box<dyn Method>> {
        match self.entry(name)?.kind {
            Kind::Trained(build) => build(value, vs, env),
            Kind::Classic(_) => Err(Error::Config(format!(
                "method `{name}` is fitted in closed form on fixed features; it has no trainable model"
            ))),
        }
    }

    /// Fits a closed-form method from its resolved config.
    pub fn fit_classic(&self, name: &str, value: &Value, inputs: &ClassicInputs<'_>) -> Result<Fitted> {
        match self.entry(name)?.kind {
            Kind::Classic(fit) => fit(value, inputs),
            Kind::Trained(_) => Err(Error::Config(format!("method `{name}` is trained, not fitted in closed form"))),
        }
    }
}

fn parse_value(e: &Entry, value: &Value) -> std::result::Result<Value, String> {
    let mut d = <dyn erased_serde::Deserializer>::erase(value.clone());
    (e.parse)(&mut d).map_err(|err| err.to_string())
}

thread_local! {
    static PARSING: RefCell<Option<Registry>> = const { RefCell::new(None) };
}

/// Runs `f` (a deserialization of something containing [`MethodSpecs`]) with `registry` as the source of
/// method config types.
pub fn with_registry<R>(registry: &Registry, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Registry>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let old = self.0.take();
            PARSING.with(|p| *p.borrow_mut() = old);
        }
    }
    let old = PARSING.with(|p| p.borrow_mut().replace(registry.clone()));
    let _reset = Reset(old);
    f()
}

/// The `methods:` section of an experiment: an ordered map from method name to its options
/// (`dann: {trade_off: 1.0}`; `source-only:` or `source-only: {}` for the defaults). Deserializing it parses each
/// method's options with that method's own config type, so errors carry the parser's position.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MethodSpecs(pub Vec<(String, Value)>);

impl Serialize for MethodSpecs {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct OptionsSeed(Entry);

impl<'de> DeserializeSeed<'de> for OptionsSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        struct V(Entry);
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "the options of method `{}` (a map, or nothing for the defaults)", self.0.name)
            }
            // `name:` with nothing after it means "all defaults".
            fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Value, E> {
                Ok((self.0.default_config)())
            }
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Value, E> {
                Ok((self.0.default_config)())
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> std::result::Result<Value, D2::Error> {
                use serde::de::Error as _;
                let mut erased = <dyn erased_serde::Deserializer>::erase(d);
                (self.0.parse)(&mut erased).map_err(D2::Error::custom)
            }
        }
        d.deserialize_option(V(self.0))
    }
}

impl<'de> Deserialize<'de> for MethodSpecs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MethodSpecs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from method name to its options, e.g. `dann: {trade_off: 1.0}`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<MethodSpecs, A::Error> {
                use serde::de::Error as _;
                let registry = PARSING.with(|p| p.borrow().clone()).ok_or_else(|| {
                    A::Error::custom("internal: methods parsed outside dalab_core::registry::with_registry")
                })?;
                let mut out: Vec<(String, Value)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let entry = *registry.get(&name).ok_or_else(|| {
                        A::Error::custom(format!(
                            "unknown method `{name}` (registered: {})",
                            registry.names().join(", ")
                        ))
                    })?;
                    if out.iter().any(|(n, _)| *n == name) {
                        return Err(A::Error::custom(format!("method `{name}` is listed twice")));
                    }
                    let v = map.next_value_seed(OptionsSeed(entry))?;
                    out.push((name, v));
                }
                Ok(MethodSpecs(out))
            }
        }
        d.deserialize_map(V)
    }
}
