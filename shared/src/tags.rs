//! Tag names the suite writes and reads (docs/ARCHITECTURE.md, "Tag contract").

use std::fmt;
use std::str::FromStr;

/// Every resource the suite creates carries this tag; it only ever deletes what carries it.
pub const MANAGED_BY: &str = "openclaw:managed-by";
pub const MANAGED_BY_VALUE: &str = "openclaw-ops";
pub const KIND: &str = "openclaw:kind";
pub const DATE: &str = "openclaw:date";
pub const VOLUME_ID: &str = "openclaw:volume-id";
pub const INSTANCE_ID: &str = "openclaw:instance-id";
pub const DEVICE: &str = "openclaw:device";
pub const NAME: &str = "Name";

/// A `key=value` selector, e.g. `openclaw:snapshot=daily`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    pub key: String,
    pub value: String,
}

impl FromStr for TagFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => {
                Ok(TagFilter { key: key.trim().to_owned(), value: value.trim().to_owned() })
            }
            _ => Err("expected key=value".to_owned()),
        }
    }
}

impl fmt::Display for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// EC2 tag keys beginning with `aws:` are AWS's own; EC2 refuses to have them set or copied.
pub fn is_reserved(key: &str) -> bool {
    key.to_ascii_lowercase().starts_with("aws:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("a=b=c".parse::<TagFilter>().unwrap().value, "b=c");
        assert!("=b".parse::<TagFilter>().is_err());
        assert!("a=".parse::<TagFilter>().is_err());
        assert_eq!("k=v".parse::<TagFilter>().unwrap().to_string(), "k=v");
    }

    #[test]
    fn reserved_keys() {
        assert!(is_reserved("aws:cloudformation:stack-name"));
        assert!(is_reserved("AWS:x"));
        assert!(!is_reserved("Name"));
    }
}
