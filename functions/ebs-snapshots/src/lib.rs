//! ebs-snapshots: daily EBS snapshots of the gateway's volumes, 7-day retention, never losing history.
//!
//! observe (volumes by tag, the suite's snapshots) → plan ([`plan::plan`] and the circuit breaker
//! [`plan::limit`], pure) → apply (skipped in dry-run) → report (JSON response, log line, EMF
//! metrics, notification when a human should know).

pub mod apply;
pub mod aws;
pub mod config;
pub mod consistency;
pub mod copy;
pub mod event;
pub mod plan;
pub mod report;
pub mod verify;

use aws_config::SdkConfig;
use chrono::Utc;
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::config::Env;
use openclaw_ops_shared::invocation;
use openclaw_ops_shared::notification::Publisher;
use openclaw_ops_shared::run;
use openclaw_ops_shared::{Error, Function};
use serde_json::Value;

pub use crate::aws::Clients;
use crate::aws::Ec2;
pub use crate::config::Config;
use crate::consistency::hook::Hook;
use crate::event::Event;
use crate::report::Report;

pub const FUNCTION: &str = "ebs-snapshots";

/// The clients and configuration, built once per container in the init phase.
pub struct Handler {
    config: Config,
    ec2: Ec2,
    hook: Hook,
    publisher: Publisher,
    /// The DR region's EC2 when copies are on (`SNAPSHOT_COPY_REGION`).
    dr: Option<copy::Dr>,
}

const RESERVE: std::time::Duration = std::time::Duration::from_secs(30);

impl Handler {
    pub fn new(config: Config, clients: Clients) -> Self {
        let publisher = Publisher::new(clients.sns, &config.topic_arn);
        let hook = Hook::new(clients.ssm, config.consistency.clone());
        Handler { config, ec2: clients.ec2, hook, publisher, dr: clients.dr }
    }
}

impl Function for Handler {
    type Output = Report;

    fn init(env: &impl Env, sdk: &SdkConfig) -> Result<Self, Error> {
        let config = Config::from_env(env)?;
        let clients = Clients::new(sdk, &config);
        Ok(Handler::new(config, clients))
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Report, Error> {
        let trigger = Event::parse(event.payload)?;
        // A forged or replayed `time` would move "today": refused before any AWS call.
        trigger.check_time(Utc::now(), self.config.freshness)?;
        let now = trigger.time(Utc::now());
        let dry_run = self.config.dry_run || trigger.dry_run();

        // Independent reads, at once: a cold start's time is mostly round trips.
        let dr_snapshots = async {
            match &self.dr {
                Some(dr) => dr.snapshots().await.map(Some),
                None => Ok(None),
            }
        };
        let (volumes, snapshots, dr_snapshots) =
            tokio::try_join!(self.ec2.volumes(&self.config.snapshot_tag), self.ec2.owned_snapshots(), dr_snapshots)?;

        let plan = plan::plan(&volumes, &snapshots, &self.config.policy, now);
        let dr_plan = self.dr.as_ref().zip(dr_snapshots.as_deref()).map(|(dr, dr_snapshots)| {
            copy::plan(&plan, &snapshots, dr_snapshots, &self.config.policy, now, &dr.config.region)
        });
        // One circuit breaker over both regions' deletions.
        let (plan, dr_plan) =
            copy::limit(plan, dr_plan, self.config.max_deletes, trigger.confirmed_deletes()).map_err(Error::Input)?;

        let pacing = apply::Pacing {
            per_second: self.config.write_rate,
            burst: apply::BURST,
            deadline: invocation::deadline(&event.context, RESERVE),
        };
        // Whether each new snapshot is taken app-consistent: decided from the agents SSM lists.
        let agents = self.hook.agents(&consistency::instances_to_check(&plan.create, &self.config.consistency)).await?;
        let choices: Vec<_> =
            plan.create.iter().map(|s| consistency::decide(s, &self.config.consistency, &agents)).collect();
        let intended: Vec<_> = plan.create.iter().map(|s| s.volume_id.clone()).zip(choices.iter().cloned()).collect();
        let how = apply::Creates { hook: &self.hook, choices: &choices, token: &event.context.request_id };
        let outcome = if dry_run { None } else { Some(apply::apply(&self.ec2, &plan, pacing, Some(how)).await) };
        let dr_outcome = match (&self.dr, &dr_plan) {
            (Some(dr), Some(dr_plan)) if !dry_run => Some(dr.apply(dr_plan, pacing).await),
            _ => None,
        };

        let event_id = match &trigger {
            Event::Schedule { event_id, .. } => Some(event_id.clone()),
            Event::Manual(_) => None,
        };
        let selected = volumes.into_iter().map(|v| v.source.volume_id).collect();
        let mut report = Report::new(trigger.name(), event_id, selected, plan, outcome).with_consistency_plan(intended);
        if let Some(dr_plan) = dr_plan {
            report = report.with_dr(dr_plan, dr_outcome);
        }
        run::finish(report, &self.publisher).await
    }
}

#[cfg(test)]
mod tests;
