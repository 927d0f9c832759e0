//! The follow-up check's one-shot EventBridge Scheduler schedule: it invokes this function with a
//! [`FollowUp`] event at a time, then deletes itself.

use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::error::ProvideErrorMetadata;
use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
use chrono::{DateTime, SecondsFormat, Utc};
use openclaw_ops_shared::error::Failure;
use serde::Serialize;

use crate::apply::Outcome;
use crate::config::FollowUpSettings;
use crate::follow_up::{FollowUp, at_expression};

/// A schedule the run asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Scheduled {
    pub name: String,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// Scheduler answered ConflictException: an earlier delivery of the same event made it.
    pub already: bool,
}

/// What the follow-up needs beyond the client: the settings, and the function's own ARN (from the
/// invocation's context), which the schedule invokes.
#[derive(Debug, Clone, Copy)]
pub struct FollowUpTarget<'a> {
    pub settings: &'a FollowUpSettings,
    pub function_arn: &'a str,
}

#[derive(Debug, Clone)]
pub struct Scheduler {
    client: Client,
}

impl Scheduler {
    pub fn new(client: Client) -> Self {
        Scheduler { client }
    }

    /// Creates the schedule that delivers `event` at `at` (rounded up to the second). Its name is
    /// the event's: a second delivery asking for the same one is told it exists, and that is fine.
    #[tracing::instrument(skip_all)]
    pub async fn schedule(
        &self,
        target: FollowUpTarget<'_>,
        event: &FollowUp,
        at: DateTime<Utc>,
    ) -> Result<Scheduled, Failure> {
        let name = event.schedule_name();
        let input = serde_json::to_string(event).map_err(|e| e.to_string())?;
        let window =
            FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off).build().map_err(|e| e.to_string())?;
        let invoke = Target::builder()
            .arn(target.function_arn)
            .role_arn(&target.settings.role_arn)
            .input(input)
            .build()
            .map_err(|e| e.to_string())?;
        let sent = self
            .client
            .create_schedule()
            .name(&name)
            .group_name(&target.settings.schedule_group)
            .description(format!(
                "openclaw-ops spot-recovery: is {} (replacing {}) serving? check {}",
                event.replacement_id, event.instance_id, event.attempt
            ))
            .schedule_expression(at_expression(at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(invoke)
            .send()
            .await;
        let scheduled = |already| Scheduled { name: name.clone(), attempt: event.attempt, at, already };
        match sent {
            Ok(_) => Ok(scheduled(false)),
            Err(e) if e.code() == Some("ConflictException") => Ok(scheduled(true)),
            Err(e) => Err(Failure::from_sdk("scheduler:CreateSchedule", &e).context(name)),
        }
    }
}

/// After a takeover whose replacement was not seen serving: the first follow-up check, recorded
/// in the outcome (a failure to schedule it is a failed step: nothing would confirm the gateway).
#[tracing::instrument(skip_all, fields(old = %old, new = %new))]
pub async fn first_check(
    scheduler: &Scheduler,
    target: Option<FollowUpTarget<'_>>,
    old: &str,
    new: &str,
    outcome: &mut Outcome,
) {
    let Some(target) = target else {
        outcome.step(format!(
            "{new} replaced, not yet seen serving; no follow-up check is configured (FOLLOW_UP_SCHEDULE_GROUP)"
        ));
        return;
    };
    let now = Utc::now();
    let settings = target.settings;
    let give_up_after = chrono::Duration::from_std(settings.give_up_after).unwrap_or(chrono::Duration::MAX);
    let event = FollowUp::first(old, new, now, give_up_after);
    let at = now + chrono::Duration::from_std(settings.interval).unwrap_or(chrono::Duration::MAX);
    match scheduler.schedule(target, &event, at).await {
        Ok(s) => {
            outcome.step(format!(
                "{new} replaced, not yet seen serving: follow-up check {} at {}{}",
                s.name,
                s.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                if s.already { " (already scheduled by an earlier delivery)" } else { "" }
            ));
            outcome.follow_up = Some(s);
        }
        Err(e) => outcome.fail("follow-up", e),
    }
}
