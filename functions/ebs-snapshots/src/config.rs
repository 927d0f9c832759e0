//! The function's configuration (names and defaults: docs/ARCHITECTURE.md, "Configuration").

use openclaw_ops_shared::Error;
use openclaw_ops_shared::backup::settings::DEFAULT_STATE_DIR;
use openclaw_ops_shared::config::{self, Env};
use openclaw_ops_shared::tags::TagFilter;

use crate::consistency::{self, Consistency};
use crate::copy::CopyConfig;
use crate::event::{CLOCK_SKEW, Freshness};
use crate::plan::Policy;

pub const DEFAULT_SNAPSHOT_TAG: &str = "openclaw:snapshot=daily";

/// EventBridge's `MaximumEventAgeInSeconds` on the schedule (6 h) plus Lambda's asynchronous
/// `MaximumEventAgeInSeconds` (6 h): template.yaml sets `MAX_EVENT_AGE_SECONDS` to their sum, and
/// tests/tests/template.rs checks it does.
pub const DEFAULT_MAX_EVENT_AGE_SECONDS: u32 = 43_200;

/// The circuit breaker's default: a week-long outage of the schedule on the seed's two snapshotted
/// volumes (data and root) leaves at most `RETENTION_DAYS` = 7 expired dates each (14 deletes on the
/// first run back), plus a few `spot-final` snapshots and duplicates (6): 20. More than that in one
/// run is not something a normal week produces (docs/ARCHITECTURE.md, "Circuit breaker").
pub const DEFAULT_MAX_DELETES: u32 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub topic_arn: String,
    pub snapshot_tag: TagFilter,
    pub policy: Policy,
    pub dry_run: bool,
    /// Snapshot writes (create, delete) per second: under EC2's refill of mutating requests.
    pub write_rate: u32,
    /// The most deletions one run carries out without a manual `prune` confirming them.
    pub max_deletes: u32,
    pub freshness: Freshness,
    /// The off-region copy, when `SNAPSHOT_COPY_REGION` is set.
    pub copy: Option<CopyConfig>,
    /// App-consistent snapshots of the gateway's data volume (docs/ARCHITECTURE.md, "Consistency").
    pub consistency: consistency::Settings,
}

/// The freeze's default hard limit: the freeze's SSM round trip (delivery, the checkpoint, the
/// poll that sees it end: 2 to 5 s), `CreateSnapshot` (about 1 s) and the thaw's round trip (2 to
/// 5 s) take several seconds; 30 leaves room for a slow agent and stays a short pause for the gateway.
pub const DEFAULT_FREEZE_LIMIT_SECONDS: u64 = 30;
/// Below this, no freeze leaves `CreateSnapshot` time inside the limit; above it, the gateway would
/// stall too long should the thaw never come.
pub const FREEZE_LIMIT_RANGE: std::ops::RangeInclusive<u64> = 10..=120;

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, Error> {
        let max_event_age_secs = config::parsed(env, "MAX_EVENT_AGE_SECONDS", DEFAULT_MAX_EVENT_AGE_SECONDS)?;
        let policy = Policy {
            retention_days: config::parsed(env, "RETENTION_DAYS", 7)?,
            min_snapshots: config::parsed(env, "MIN_SNAPSHOTS", 3)?,
            max_event_age_secs,
        };
        if policy.retention_days == 0 {
            return Err(Error::Config("RETENTION_DAYS must be at least 1".into()));
        }
        if policy.min_snapshots == 0 {
            return Err(Error::Config(
                "MIN_SNAPSHOTS must be at least 1: a floor of 0 lets a volume's whole history expire".into(),
            ));
        }
        let wanted = match config::optional(env, "SNAPSHOT_CONSISTENCY").as_deref() {
            None | Some("app") => Consistency::App,
            Some("crash") => Consistency::Crash,
            Some(other) => {
                return Err(Error::Config(format!("SNAPSHOT_CONSISTENCY must be app or crash, not {other:?}")));
            }
        };
        let freeze_limit = config::parsed(env, "FREEZE_LIMIT_SECONDS", DEFAULT_FREEZE_LIMIT_SECONDS)?;
        if !FREEZE_LIMIT_RANGE.contains(&freeze_limit) {
            return Err(Error::Config(format!(
                "FREEZE_LIMIT_SECONDS must be between {} and {}, not {freeze_limit}",
                FREEZE_LIMIT_RANGE.start(),
                FREEZE_LIMIT_RANGE.end()
            )));
        }
        let consistency = consistency::Settings {
            wanted,
            data_device: config::optional(env, "DATA_DEVICE").unwrap_or_else(|| "/dev/sdf".into()),
            state_dir: config::optional(env, "STATE_DIR").unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            freeze_limit: std::time::Duration::from_secs(freeze_limit),
        };
        Ok(Config {
            consistency,
            topic_arn: config::required(env, "NOTIFY_TOPIC_ARN")?,
            snapshot_tag: config::tag_filter(env, "SNAPSHOT_TAG", DEFAULT_SNAPSHOT_TAG)?,
            policy,
            dry_run: config::flag(env, "DRY_RUN", false)?,
            write_rate: config::parsed(env, "EC2_WRITE_RATE", 4)?,
            max_deletes: config::parsed(env, "MAX_DELETES", DEFAULT_MAX_DELETES)?,
            freshness: Freshness {
                max_age: chrono::TimeDelta::seconds(i64::from(max_event_age_secs)),
                skew: CLOCK_SKEW,
            },
            copy: CopyConfig::from_env(env)?,
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
        assert_eq!(c.policy, Policy { retention_days: 7, min_snapshots: 3, max_event_age_secs: 43_200 });
        assert_eq!(c.freshness.max_age, chrono::TimeDelta::hours(12));
        assert_eq!(c.max_deletes, 20);
        assert!(!c.dry_run);
        assert_eq!(c.consistency.wanted, Consistency::App);
        assert_eq!(c.consistency.data_device, "/dev/sdf");
        assert_eq!(c.consistency.state_dir, "/home/openclaw/data/openclaw");
        assert_eq!(c.consistency.freeze_limit, std::time::Duration::from_secs(30));
    }

    #[test]
    fn consistency_settings_are_checked() {
        let with = |k, v| Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t"), (k, v)]));
        assert_eq!(with("SNAPSHOT_CONSISTENCY", "crash").unwrap().consistency.wanted, Consistency::Crash);
        assert!(with("SNAPSHOT_CONSISTENCY", "fs").unwrap_err().to_string().contains("app or crash"));
        assert!(with("FREEZE_LIMIT_SECONDS", "5").unwrap_err().to_string().contains("between 10 and 120"));
        assert!(with("FREEZE_LIMIT_SECONDS", "600").is_err());
        assert_eq!(with("FREEZE_LIMIT_SECONDS", "45").unwrap().consistency.freeze_limit.as_secs(), 45);
    }

    #[test]
    fn topic_is_required_and_bad_values_are_named() {
        assert!(Config::from_env(&env(&[])).unwrap_err().to_string().contains("NOTIFY_TOPIC_ARN"));
        let bad = Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t"), ("RETENTION_DAYS", "0")]));
        assert!(bad.unwrap_err().to_string().contains("RETENTION_DAYS"));
        let bad = Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t"), ("MIN_SNAPSHOTS", "-1")]));
        assert!(bad.unwrap_err().to_string().contains("MIN_SNAPSHOTS"));
        let bad = Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t"), ("MIN_SNAPSHOTS", "0")]));
        assert!(bad.unwrap_err().to_string().contains("MIN_SNAPSHOTS must be at least 1"));
        let bad = Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t"), ("MAX_DELETES", "many")]));
        assert!(bad.unwrap_err().to_string().contains("MAX_DELETES"));
    }
}
