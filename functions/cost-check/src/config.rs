//! cost-check's configuration (docs/ARCHITECTURE.md, "Configuration").

use openclaw_ops_shared::Error;
use openclaw_ops_shared::config::{self, Env};
use openclaw_ops_shared::tags::TagFilter;
use rust_decimal::Decimal;

use crate::estimate::{Estimate, Tier};
use crate::plan::Thresholds;
use crate::prices::PriceTable;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub topic_arn: String,
    pub tier: Tier,
    pub estimate: Estimate,
    pub prices: PriceTable,
    pub thresholds: Thresholds,
    pub tag: Option<TagFilter>,
    /// The suite's own cost-allocation tag: its costs are then measured by it (one more request).
    pub suite_tag: Option<TagFilter>,
    /// This project deployed the gateway stack (stacks/gateway.yaml): what it adds is expected.
    pub gateway_stack: bool,
}

fn optional_tag(env: &impl Env, name: &str) -> Result<Option<TagFilter>, Error> {
    match config::optional(env, name) {
        None => Ok(None),
        Some(_) => Ok(Some(config::tag_filter(env, name, "")?)),
    }
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, Error> {
        let tier: Tier = config::parsed(env, "COST_TIER", Tier::Full)?;
        let gateway_stack = match config::optional(env, "COST_GATEWAY_STACK").as_deref() {
            None | Some("none") => false,
            Some("deployed") => true,
            Some(other) => return Err(Error::Config(format!("COST_GATEWAY_STACK={other:?}: deployed or none"))),
        };
        let prices = PriceTable::built_in();
        let mut estimate = Estimate::built_in(tier, gateway_stack, &prices);
        if let Some(json) = config::optional(env, "COST_ESTIMATE") {
            estimate = estimate.with_override(&json, &prices).map_err(Error::Config)?;
        }
        let thresholds = Thresholds {
            warn_pct: config::parsed(env, "COST_WARN_PCT", Decimal::TEN)?,
            alert_pct: config::parsed(env, "COST_ALERT_PCT", Decimal::from(25))?,
            part_warn_usd: config::parsed(env, "COST_PART_WARN_USD", Decimal::from(3))?,
            part_alert_usd: config::parsed(env, "COST_PART_ALERT_USD", Decimal::from(15))?,
        };
        if thresholds.warn_pct > thresholds.alert_pct {
            return Err(Error::Config("COST_WARN_PCT must not exceed COST_ALERT_PCT".into()));
        }
        if thresholds.part_warn_usd > thresholds.part_alert_usd || thresholds.part_warn_usd < Decimal::ZERO {
            return Err(Error::Config("COST_PART_WARN_USD must be between 0 and COST_PART_ALERT_USD".into()));
        }
        Ok(Config {
            topic_arn: config::required(env, "NOTIFY_TOPIC_ARN")?,
            tier,
            estimate,
            prices,
            thresholds,
            tag: optional_tag(env, "COST_TAG")?,
            suite_tag: optional_tag(env, "COST_SUITE_TAG")?,
            gateway_stack,
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
    fn defaults_and_errors() {
        let c = Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t")])).unwrap();
        assert_eq!(c.tier, Tier::Full);
        assert_eq!(c.thresholds.warn_pct, Decimal::TEN);
        assert!(c.tag.is_none() && c.suite_tag.is_none() && !c.gateway_stack);
        assert_eq!((c.thresholds.part_warn_usd, c.thresholds.part_alert_usd), (Decimal::from(3), Decimal::from(15)));
        let c =
            Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t"), ("COST_TIER", "budget"), ("COST_TAG", "app=openclaw")]))
                .unwrap();
        assert_eq!(c.tier, Tier::Budget);
        assert_eq!(c.tag.unwrap().key, "app");
        let c = Config::from_env(&env(&[
            ("NOTIFY_TOPIC_ARN", "t"),
            ("COST_GATEWAY_STACK", "deployed"),
            ("COST_SUITE_TAG", "openclaw:cost=ops-suite"),
        ]))
        .unwrap();
        assert!(c.gateway_stack && !c.estimate.additions.is_empty());
        assert_eq!(c.suite_tag.unwrap().value, "ops-suite");
        for (k, v) in [
            ("COST_TIER", "cheap"),
            ("COST_WARN_PCT", "x"),
            ("COST_ESTIMATE", "{"),
            ("COST_TAG", "novalue"),
            ("COST_WARN_PCT", "30"),
            ("COST_PART_WARN_USD", "20"),
            ("COST_PART_ALERT_USD", "lots"),
            ("COST_GATEWAY_STACK", "yes"),
            ("COST_SUITE_TAG", "novalue"),
        ] {
            let err = Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", "t"), (k, v)])).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{k}={v}");
        }
    }
}
