//! spot-recovery: the gateway survives an EC2 Spot interruption on its own.
//!
//! observe (the event's instance, its replacement if any, the gateway's volumes, the suite's
//! snapshots) → plan ([`plan::plan`], pure) → apply (skipped in dry-run) → report (JSON response,
//! one log line, EMF metrics, a notification with the recovery's timeline).

pub mod apply;
pub mod aws;
pub mod check;
pub mod config;
pub mod event;
pub mod follow_up;
pub mod plan;
pub mod report;

use std::time::Duration;

use aws_config::SdkConfig;
use chrono::Utc;
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::config::Env;
use openclaw_ops_shared::invocation;
use openclaw_ops_shared::run;
use openclaw_ops_shared::tags;
use openclaw_ops_shared::{Error, Function};
use serde_json::Value;

pub use crate::aws::Clients;
pub use crate::config::Config;
use crate::event::Event;
use crate::follow_up::FollowUp;
use crate::plan::{Observed, Plan};
use crate::report::Report;

pub const FUNCTION: &str = "spot-recovery";
/// Kept back from the invocation's deadline to report.
const RESERVE: Duration = Duration::from_secs(15);

/// What an invocation answers: a recovery's report, or a follow-up check's.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Response {
    Recovery(Box<Report>),
    FollowUp(Box<check::CheckReport>),
}

pub struct Handler {
    config: Config,
    clients: Clients,
}

impl Function for Handler {
    type Output = Response;

    fn init(env: &impl Env, sdk: &SdkConfig) -> Result<Self, Error> {
        let config = Config::from_env(env)?;
        Ok(Handler { clients: Clients::new(sdk, &config), config })
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Response, Error> {
        let function_arn = event.context.invoked_function_arn.clone();
        if FollowUp::claims(&event.payload) {
            let report = check::run(&self.clients, &self.config, event.payload, &function_arn, Utc::now()).await?;
            return run::finish(report, &self.clients.publisher).await.map(|r| Response::FollowUp(Box::new(r)));
        }
        let parsed = Event::parse(event.payload)?;
        let deadline = invocation::deadline(&event.context, RESERVE);
        let dry_run = self.config.dry_run;

        // observe: one read for an instance that is not the gateway, the rest only for the gateway,
        // and only for an interruption (a `running` notification needs the instance's tags alone).
        let ec2 = &self.clients.ec2;
        let mut observed = Observed { instance: ec2.instance(parsed.instance_id()).await?, ..Observed::default() };
        let running_again = matches!(&parsed, Event::StateChange { state, .. } if state == "running");
        if !running_again && observed.instance.as_ref().is_some_and(|i| i.has(&self.config.gateway_tag)) {
            observed.replacements = ec2.replacements(parsed.instance_id()).await?;
            observed.volumes = ec2.volumes(&self.config.gateway_tag).await?;
            observed.snapshots = ec2.owned_snapshots().await?;
            // The volumes this instance's snapshots were taken from, whatever their tags now: a
            // rescue instance may hold one the gateway tag no longer finds.
            let mut sources: Vec<String> = observed
                .snapshots
                .iter()
                .filter(|s| s.tags.get(tags::INSTANCE_ID).map(String::as_str) == Some(parsed.instance_id()))
                .map(|s| s.volume_id.clone())
                .filter(|id| !observed.volumes.iter().any(|v| &v.id == id))
                .collect();
            sources.sort();
            sources.dedup();
            observed.volumes.extend(ec2.volumes_by_id(&sources).await?);
            observed.subnets = ec2.subnets(&self.config.subnet_ids).await?;
        }

        let plan = plan::plan(&parsed, &observed, &self.config);
        if let Plan::Ignore { instance_id, reason, .. } = &plan {
            tracing::info!(%instance_id, %reason, event = parsed.name(), "nothing to do");
        }

        let outcome = match &plan {
            Plan::Ignore { .. } => None,
            Plan::Prepare(p) => {
                let notice = Report::early_notice(&parsed, p, dry_run);
                let publish = async {
                    match &notice {
                        Some(n) => self.clients.publisher.publish(n).await.map(|_| ()),
                        None => Ok(()),
                    }
                };
                if dry_run {
                    publish.await?;
                    None
                } else {
                    let backup = self.config.backup.as_ref();
                    let (published, mut outcome) =
                        tokio::join!(publish, apply::prepare(&self.clients, p, backup, parsed.time(), deadline));
                    if let Err(e) = published {
                        outcome.fail("notify", e.to_string());
                    }
                    Some(outcome)
                }
            }
            Plan::Replace(r) if !dry_run => {
                let follow_up = self
                    .config
                    .follow_up
                    .as_ref()
                    .map(|settings| aws::scheduler::FollowUpTarget { settings, function_arn: &function_arn });
                Some(
                    apply::replace(&self.clients, r, self.config.health_timeout, parsed.time(), deadline, follow_up)
                        .await,
                )
            }
            Plan::Clear(c) if !dry_run => Some(apply::clear(&self.clients, c, parsed.time()).await),
            Plan::Replace(_) | Plan::Held(_) | Plan::Clear(_) => None,
        };

        let report = Report { function: FUNCTION, event: parsed, dry_run, plan, outcome };
        run::finish(report, &self.clients.publisher).await.map(|r| Response::Recovery(Box::new(r)))
    }
}

#[cfg(test)]
mod tests;
