//! Configuration from environment variables (set by template.yaml from stack parameters).
//! Every reader takes a lookup function so tests can feed a map instead of the process environment.

use std::str::FromStr;

use crate::Error;
use crate::tags::TagFilter;

/// A source of configuration values: `std::env::var` in production, a map in tests.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Fixed values, for tests and tools: `MapEnv::new(&[("NAME", "value")])`.
#[derive(Debug, Clone, Default)]
pub struct MapEnv(std::collections::HashMap<String, String>);

impl MapEnv {
    pub fn new(pairs: &[(&str, &str)]) -> Self {
        MapEnv(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }
}

impl Env for MapEnv {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// A value that must be present and non-empty.
pub fn required(env: &impl Env, name: &str) -> Result<String, Error> {
    match env.get(name) {
        Some(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
        _ => Err(Error::Config(format!("{name} is required"))),
    }
}

/// A value with a default; an empty variable counts as unset (CloudFormation passes "" for blanks).
pub fn optional(env: &impl Env, name: &str) -> Option<String> {
    env.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// A parsed value with a default.
pub fn parsed<T>(env: &impl Env, name: &str, default: T) -> Result<T, Error>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(env, name) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|e| Error::Config(format!("{name}={raw:?}: {e}"))),
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`), case-insensitive.
pub fn flag(env: &impl Env, name: &str, default: bool) -> Result<bool, Error> {
    match optional(env, name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(false),
        Some(v) => Err(Error::Config(format!("{name}={v:?}: expected true or false"))),
    }
}

/// A `key=value` tag selector.
pub fn tag_filter(env: &impl Env, name: &str, default: &str) -> Result<TagFilter, Error> {
    let raw = optional(env, name).unwrap_or_else(|| default.to_owned());
    raw.parse().map_err(|e| Error::Config(format!("{name}={raw:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> MapEnv {
        MapEnv::new(pairs)
    }

    #[test]
    fn required_rejects_missing_and_blank() {
        assert!(required(&env(&[]), "X").is_err());
        assert!(required(&env(&[("X", "  ")]), "X").is_err());
        assert_eq!(required(&env(&[("X", " a ")]), "X").unwrap(), "a");
    }

    #[test]
    fn parsed_uses_default_for_blank_and_names_the_variable_on_error() {
        assert_eq!(parsed(&env(&[("N", "")]), "N", 7u32).unwrap(), 7);
        assert_eq!(parsed(&env(&[("N", "9")]), "N", 7u32).unwrap(), 9);
        let err = parsed(&env(&[("N", "seven")]), "N", 7u32).unwrap_err().to_string();
        assert!(err.contains("N=\"seven\""), "{err}");
    }

    #[test]
    fn flags() {
        assert!(flag(&env(&[("F", "TRUE")]), "F", false).unwrap());
        assert!(!flag(&env(&[("F", "0")]), "F", true).unwrap());
        assert!(flag(&env(&[]), "F", true).unwrap());
        assert!(flag(&env(&[("F", "maybe")]), "F", true).is_err());
    }

    #[test]
    fn tag_filters() {
        let f = tag_filter(&env(&[]), "T", "openclaw:snapshot=daily").unwrap();
        assert_eq!((f.key.as_str(), f.value.as_str()), ("openclaw:snapshot", "daily"));
        assert!(tag_filter(&env(&[("T", "novalue")]), "T", "a=b").is_err());
    }
}
