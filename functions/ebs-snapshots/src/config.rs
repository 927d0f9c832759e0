//! The function's configuration (names and defaults: docs/ARCHITECTURE.md, "Configuration").

use openclaw_ops_shared::Error;
use openclaw_ops_shared::config::{self, Env};
use openclaw_ops_shared::tags::TagFilter;

use crate::plan::Policy;

pub const DEFAULT_SNAPSHOT_TAG: &str = "openclaw:snapshot=daily";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub topic_arn: String,
    pub snapshot_tag: TagFilter,
    pub policy: Policy,
    pub dry_run: bool,
    /// Snapshot writes (create, delete) per second: under EC2's refill of mutating requests.
    pub write_rate: u32,
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, Error> {
        let policy = Policy {
            retention_days: config::parsed(env, "RETENTION_DAYS", 7)?,
            min_snapshots: config::parsed(env, "MIN_SNAPSHOTS", 3)?,
        };
        if policy.retention_days == 0 {
            return Err(Error::Config("RETENTION_DAYS must be at least 1".into()));
        }
        Ok(Config {
            topic_arn: config::required(env, "NOTIFY_TOPIC_ARN")?,
            snapshot_tag: config::tag_filter(env, "SNAPSHOT_TAG", DEFAULT_SNAPSHOT_TAG)?,
            policy,
            dry_run: config::flag(env, "DRY_RUN", false)?,
            write_rate: config::parsed(env, "EC2_WRITE_RATE", 4)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use openclaw_ops_shared::config::MapEnv;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> MapEnv {
        MapEnv::new(pairs)
    }

    #[test]
    fn defaults_follow_the_architecture() {
        let c = Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "arn:aws:sns:us-east-1:1:ops")])).unwrap();
        assert_eq!(c.snapshot_tag.to_string(), "openclaw:snapshot=daily");
        assert_eq!(c.policy, Policy { retention_days: 7, min_snapshots: 3 });
        assert!(!c.dry_run);
    }

    #[test]
    fn topic_is_required_and_bad_values_are_named() {
        assert!(Config::from_env(&env(&[])).unwrap_err().to_string().contains("NOTIFY_TOPIC_ARN"));
        let bad = Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t"), ("RETENTION_DAYS", "0")]));
        assert!(bad.unwrap_err().to_string().contains("RETENTION_DAYS"));
        let bad = Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t"), ("MIN_SNAPSHOTS", "-1")]));
        assert!(bad.unwrap_err().to_string().contains("MIN_SNAPSHOTS"));
    }
}
