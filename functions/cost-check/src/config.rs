//! cost-check's configuration (docs/ARCHITECTURE.md, "Configuration").

use openclaw_ops_shared::Error;
use openclaw_ops_shared::config::{self, Env};
use openclaw_ops_shared::tags::TagFilter;
use rust_decimal::Decimal;

use crate::compare::Thresholds;
use crate::estimate::{Estimate, Tier};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub topic_arn: String,
    pub tier: Tier,
    pub estimate: Estimate,
    pub thresholds: Thresholds,
    pub tag: Option<TagFilter>,
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, Error> {
        let tier: Tier = config::parsed(env, "COST_TIER", Tier::Full)?;
        let mut estimate = Estimate::built_in(tier);
        if let Some(json) = config::optional(env, "COST_ESTIMATE") {
            estimate = estimate.with_override(&json).map_err(Error::Config)?;
        }
        let thresholds = Thresholds {
            warn_pct: config::parsed(env, "COST_WARN_PCT", Decimal::TEN)?,
            alert_pct: config::parsed(env, "COST_ALERT_PCT", Decimal::from(25))?,
        };
        if thresholds.warn_pct > thresholds.alert_pct {
            return Err(Error::Config("COST_WARN_PCT must not exceed COST_ALERT_PCT".into()));
        }
        let tag = match config::optional(env, "COST_TAG") {
            None => None,
            Some(_) => Some(config::tag_filter(env, "COST_TAG", "")?),
        };
        Ok(Config { topic_arn: config::required(env, "NOTIFY_TOPIC_ARN")?, tier, estimate, thresholds, tag })
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
    fn defaults_and_errors() {
        let c = Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t")])).unwrap();
        assert_eq!(c.tier, Tier::Full);
        assert_eq!(c.thresholds.warn_pct, Decimal::TEN);
        assert!(c.tag.is_none());
        let c =
            Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t"), ("COST_TIER", "budget"), ("COST_TAG", "app=openclaw")]))
                .unwrap();
        assert_eq!(c.tier, Tier::Budget);
        assert_eq!(c.tag.unwrap().key, "app");
        for (k, v) in [
            ("COST_TIER", "cheap"),
            ("COST_WARN_PCT", "x"),
            ("COST_ESTIMATE", "{"),
            ("COST_TAG", "novalue"),
            ("COST_WARN_PCT", "30"),
        ] {
            let err = Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t"), (k, v)])).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{k}={v}");
        }
    }
}
