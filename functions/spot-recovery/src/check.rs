//! The follow-up invocation: observe the replacement (is it still the one that took over, does it
//! serve?) → [`follow_up::plan`] → apply (the next schedule, if any) → report (a notification when
//! it serves or must be escalated).

use chrono::{DateTime, SecondsFormat, Utc};
use openclaw_ops_shared::Error;
use openclaw_ops_shared::metrics::Metrics;
use openclaw_ops_shared::notification::{Notification, Severity};
use openclaw_ops_shared::run::RunReport;
use serde::Serialize;
use serde_json::Value;

use crate::FUNCTION;
use crate::aws::Clients;
use crate::aws::scheduler::{FollowUpTarget, Scheduled};
use crate::config::{Address, Config};
use crate::follow_up::{self, FollowUp, FollowUpPlan, Seen, Serving};
use crate::plan::REPLACES;

/// What the follow-up invocation answers, logs and notifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CheckReport {
    pub function: &'static str,
    pub follow_up: FollowUp,
    /// `serving`, `again` or `escalate`.
    pub decision: &'static str,
    pub observed: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Scheduled>,
    pub dry_run: bool,
}

/// The serving evidence for the replacement: the target's health in the full tier; EC2's status
/// checks otherwise (the budget tier has no load balancer looking at `/healthz`).
async fn observe(clients: &Clients, config: &Config, event: &FollowUp) -> Result<Seen, Error> {
    let id = &event.replacement_id;
    let Some(instance) = clients.ec2.instance(id).await? else { return Ok(Seen::Gone("not found".into())) };
    // Only the instance that took over from this one: a follow-up naming any other instance is not
    // one this function scheduled, and nothing is done about it.
    if instance.tags.get(REPLACES) != Some(&event.instance_id) {
        return Err(Error::Input(format!(
            "follow-up event: {id} does not carry {REPLACES}={}: it is not the replacement of that instance",
            event.instance_id
        )));
    }
    if !matches!(instance.state.as_str(), "running" | "pending") {
        return Ok(Seen::Gone(instance.state));
    }
    let serving = match &config.address {
        Address::TargetGroup { arn } => {
            // One look: the wait ends at once.
            let state =
                clients.target_group.wait_healthy(arn, id, tokio::time::Instant::now()).await.map_err(Error::Aws)?;
            if state == "healthy" { Serving::Yes } else { Serving::No(format!("target {state}")) }
        }
        Address::ElasticIp { .. } | Address::None => match clients.ec2.status_checks(id).await? {
            Some((instance, system)) if instance == "ok" && system == "ok" => Serving::Yes,
            Some((instance, system)) => Serving::No(format!("status checks: instance {instance}, system {system}")),
            None => Serving::No("no status checks yet".into()),
        },
    };
    Ok(Seen::Up(serving))
}

pub async fn run(
    clients: &Clients,
    config: &Config,
    payload: Value,
    function_arn: &str,
    now: DateTime<Utc>,
) -> Result<CheckReport, Error> {
    let event = FollowUp::parse(payload)?;
    let seen = observe(clients, config, &event).await?;
    let settings = config.follow_up.as_ref();
    let interval = settings.map(|s| s.interval).unwrap_or(std::time::Duration::from_secs(300));
    let interval = chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    let decided = follow_up::plan(&event, &seen, now, interval);
    let mut report = CheckReport {
        function: FUNCTION,
        follow_up: event,
        decision: "",
        observed: String::new(),
        next: None,
        dry_run: config.dry_run,
    };
    match decided {
        FollowUpPlan::Serving { .. } => {
            report.decision = "serving";
            report.observed = "serving".into();
        }
        FollowUpPlan::Escalate { observed, .. } => {
            report.decision = "escalate";
            report.observed = observed;
        }
        FollowUpPlan::Again { observed, next, at, .. } => {
            report.decision = "again";
            report.observed = observed;
            if !config.dry_run {
                let settings = settings.ok_or_else(|| {
                    Error::Config(
                        "FOLLOW_UP_SCHEDULE_GROUP is not set: the next follow-up check cannot be scheduled".into(),
                    )
                })?;
                let target = FollowUpTarget { settings, function_arn };
                let scheduled = clients.scheduler.schedule(target, &next, at).await.map_err(Error::Aws)?;
                report.next = Some(scheduled);
            }
        }
    }
    Ok(report)
}

impl RunReport for CheckReport {
    fn summary(&self) -> String {
        format!("spot-recovery follow-up of {}: {}", self.follow_up.replacement_id, self.decision)
    }

    fn metrics(&self) -> Vec<Metrics> {
        vec![
            Metrics::new(FUNCTION)
                .count("FollowUpsServing", usize::from(self.decision == "serving"))
                .count("FollowUpsEscalated", usize::from(self.decision == "escalate")),
        ]
    }

    fn notifications(&self) -> Vec<Notification> {
        self.notification().into_iter().collect()
    }

    /// An escalation is told (critical notification), not retried: the check itself worked.
    fn failure(&self) -> Option<String> {
        None
    }
}

impl CheckReport {
    /// Serving: news that the gateway recovered. Escalate: critical. Again: quiet (the takeover's
    /// notification already said "not yet seen serving").
    pub fn notification(&self) -> Option<Notification> {
        let f = &self.follow_up;
        let since = f.taken_over.to_rfc3339_opts(SecondsFormat::Secs, true);
        let n = match self.decision {
            "serving" => Notification::new(
                FUNCTION,
                format!("{FUNCTION}:{}:follow-up:serving", f.instance_id),
                Severity::Info,
                format!("Gateway replacement {} is serving", f.replacement_id),
            )
            .text(format!(
                "{} took over from {} at {since} and is now seen serving (check {}): the gateway recovered.",
                f.replacement_id, f.instance_id, f.attempt
            )),
            "escalate" => Notification::new(
                FUNCTION,
                format!("{FUNCTION}:{}:follow-up:escalate", f.instance_id),
                Severity::Critical,
                format!("Gateway replacement {} NOT serving after a Spot interruption", f.replacement_id),
            )
            .text(format!(
                "{} took over from {} at {since}, but {}. No further check is scheduled: look at the instance \
                 (console output, /healthz on 127.0.0.1:18789) and replace it by hand if it does not recover.",
                f.replacement_id, f.instance_id, self.observed
            )),
            _ => return None,
        };
        Some(
            n.field("replacement", f.replacement_id.clone())
                .field("old instance", f.instance_id.clone())
                .field("check", f.attempt.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn report(decision: &'static str, observed: &str) -> CheckReport {
        let t = "2026-12-04T12:00:00Z".parse().unwrap();
        CheckReport {
            function: FUNCTION,
            follow_up: FollowUp::first("i-0123456789abcdef0", "i-0fedcba9876543210", t, Duration::minutes(30)),
            decision,
            observed: observed.into(),
            next: None,
            dry_run: false,
        }
    }

    #[test]
    fn serving_is_news_escalation_is_critical_and_another_look_is_quiet() {
        let n = report("serving", "serving").notification().unwrap();
        assert_eq!(n.severity, Severity::Info);
        assert!(n.title.contains("is serving"), "{}", n.title);
        assert!(n.text.contains("recovered"), "{}", n.text);
        let n = report("escalate", "replacement i-0fedcba9876543210 is terminated").notification().unwrap();
        assert_eq!(n.severity, Severity::Critical);
        assert!(n.title.contains("NOT serving"), "{}", n.title);
        assert!(n.text.contains("is terminated"), "{}", n.text);
        assert!(!n.text.contains("recovered"), "{}", n.text);
        assert_eq!(report("again", "target initial").notification(), None);
    }
}
