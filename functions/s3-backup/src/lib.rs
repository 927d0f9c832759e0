//! s3-backup: application-consistent backups of OpenClaw's state directory to S3, made on the
//! instance by an SSM Run Command whose script this crate writes, then read back and verified.
//!
//! observe (gateways by tag; each one's verified records) → plan ([`plan::plan`], pure) → apply
//! (pre-signed URLs for exactly this run's objects, the script, read-back verification, Object Lock
//! retention and the record, the month's first copied to `monthly/`) → report. A restore (by hand)
//! finds the newest recorded backup that still verifies and unpacks it beside the live state.
//!
//! # Layout
//! - [`event`]: the invocation's input (the daily schedule, a manual backup, a restore), parsed strictly.
//! - [`config`]: the environment, read once at init.
//! - `backup` (private): the backup flow — observe, [`plan`] (pure), apply.
//! - [`history`]: a gateway's verified backups, read from the bucket's keys (pure).
//! - [`drift`]: the bucket's settings against the template's (pure).
//! - [`restore`]: the restore flow and its pure choices (which gateway, which backups, where).
//! - [`report`]: what a run answers, logs, measures and tells a human.
//! - [`aws`]: the EC2, SSM and S3 calls.

pub mod aws;
mod backup;
pub mod config;
pub mod drift;
pub mod event;
pub mod history;
pub mod plan;
pub mod report;
pub mod restore;

use std::time::Duration;

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::config::Env;
use openclaw_ops_shared::invocation;
use openclaw_ops_shared::{Error, Function};
use serde_json::Value;

pub use crate::aws::Clients;
pub use crate::config::Config;
use crate::event::Event;
use crate::plan::Trigger;
pub use crate::report::Response;

pub const FUNCTION: &str = "s3-backup";
/// Kept back from the invocation's deadline to verify and report.
const RESERVE: Duration = Duration::from_secs(20);

pub struct Handler {
    pub(crate) config: Config,
    pub(crate) clients: Clients,
}

impl Function for Handler {
    type Output = Response;

    fn init(env: &impl Env, sdk: &SdkConfig) -> Result<Self, Error> {
        let config = Config::from_env(env)?;
        Ok(Handler { clients: Clients::new(sdk, &config), config })
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Response, Error> {
        let request = Event::parse(event.payload)?;
        let deadline = invocation::deadline(&event.context, RESERVE);
        match request {
            Event::Schedule { time } => self
                .back_up_all(Trigger::Schedule, time, None, self.config.dry_run, deadline)
                .await
                .map(Response::Backup),
            Event::Backup { reason, dry_run } => self
                .back_up_all(Trigger::Manual, chrono::Utc::now(), reason, self.config.dry_run || dry_run, deadline)
                .await
                .map(Response::Backup),
            Event::Restore { gateway, backup, dry_run } => {
                self.restore(&gateway, &backup, self.config.dry_run || dry_run, deadline).await.map(Response::Restore)
            }
        }
    }
}

#[cfg(test)]
mod tests;
