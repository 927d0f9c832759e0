//! Carries out a plan. Each write stands alone: a failure is recorded and the rest go on.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use openclaw_ops_shared::error;
use serde::Serialize;
use tokio::time::Instant;

use crate::aws::{DeleteOutcome, Ec2};
use crate::consistency::Choice;
use crate::consistency::hook::{Hook, Taken};
use crate::plan::{DeleteReason, Plan, Skip};

/// Writes in flight at once: enough to keep up the paced rate at real API latencies.
pub const CONCURRENCY: usize = 4;

/// How fast writes go out, and until when. EC2 refills an account's mutating-request bucket at about
/// five tokens a second after a burst; a backlog of thousands of expired snapshots (pruning turned
/// on after a long gap) sent as fast as the SDK allows would be throttled, and would throttle the
/// operator's own tools. So the first `burst` writes go at once (a normal day's handful), and each
/// later one has a slot `1 / per_second` after the previous; writes whose slot falls after the
/// deadline are left for the next run (they are still expired then).
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub per_second: u32,
    pub burst: usize,
    pub deadline: Instant,
}

/// Well inside EC2's mutating-request bucket, which other tools share.
pub const BURST: usize = 20;

impl Pacing {
    fn slot(&self, start: Instant, index: usize) -> Option<Instant> {
        let paced = index.saturating_sub(self.burst);
        let at = start + Duration::from_secs_f64(paced as f64 / f64::from(self.per_second.max(1)));
        (at < self.deadline).then_some(at)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub created: Vec<Created>,
    pub deleted: Vec<Deleted>,
    /// Deletes AWS refused for a reason that is not a failure (an AMI uses the snapshot).
    pub skipped: Vec<Skip>,
    pub failed: Vec<Failure>,
    /// Expired snapshots not deleted this run: their turn came after the deadline.
    pub deferred: Vec<String>,
    /// How each created snapshot was taken (app- or crash-consistent, and why).
    pub consistency: Vec<Taken>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    pub volume_id: String,
    pub snapshot_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deleted {
    pub snapshot_id: String,
    pub volume_id: String,
    pub reason: DeleteReason,
    /// Someone else deleted it first.
    pub already_gone: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub action: &'static str,
    pub id: String,
    /// The EC2 call, AWS's error code and message.
    pub error: error::Failure,
}

/// How each of the plan's creates is to be taken ([`crate::consistency::decide`], in the plan's
/// order), and the hook that freezes the data volume for the app-consistent ones.
pub struct Creates<'a> {
    pub hook: &'a Hook,
    pub choices: &'a [Choice],
    /// Ties each freeze on the instance to its thaw: the invocation's request id.
    pub token: &'a str,
}

/// `how` is `None` for a plan that only prunes (the DR region's): a create in it fails, named.
pub async fn apply(ec2: &Ec2, plan: &Plan, pacing: Pacing, how: Option<Creates<'_>>) -> Outcome {
    let mut outcome = Outcome::default();
    let start = Instant::now();

    // Creates take the first slots: today's snapshots matter more than old ones going.
    let creates = match &how {
        Some(how) => {
            stream::iter(plan.create.iter().zip(how.choices).enumerate())
                .map(|(i, (source, choice))| async move {
                    let Some(slot) = pacing.slot(start, i) else { return (source, None) };
                    tokio::time::sleep_until(slot).await;
                    let token = format!("{}-{}", how.token, source.volume_id);
                    (source, Some(how.hook.snapshot(ec2, source, plan.date, choice, &token).await))
                })
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<_>>()
                .await
        }
        None => {
            outcome.failed.extend(plan.create.iter().map(|source| Failure {
                action: "create",
                id: source.volume_id.clone(),
                error: error::Failure::call(
                    "ec2:CreateSnapshot",
                    "not attempted: a prune-only plan cannot create snapshots",
                ),
            }));
            Vec::new()
        }
    };
    for (source, result) in creates {
        let result = result.map(|(created, taken)| {
            outcome.consistency.push(taken);
            created
        });
        match result {
            Some(Ok(snapshot_id)) => outcome.created.push(Created { volume_id: source.volume_id.clone(), snapshot_id }),
            Some(Err(error)) => outcome.failed.push(Failure { action: "create", id: source.volume_id.clone(), error }),
            None => outcome.failed.push(Failure {
                action: "create",
                id: source.volume_id.clone(),
                error: error::Failure::call("ec2:CreateSnapshot", "not attempted: the run reached its deadline"),
            }),
        }
    }

    let first_delete = plan.create.len();
    let deletes = stream::iter(plan.delete.iter().enumerate())
        .map(|(i, deletion)| async move {
            let Some(slot) = pacing.slot(start, first_delete + i) else { return (deletion, None) };
            tokio::time::sleep_until(slot).await;
            (deletion, Some(ec2.delete_snapshot(&deletion.snapshot_id).await))
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for (deletion, result) in deletes {
        let Some(result) = result else {
            outcome.deferred.push(deletion.snapshot_id.clone());
            continue;
        };
        let deleted = |already_gone| Deleted {
            snapshot_id: deletion.snapshot_id.clone(),
            volume_id: deletion.volume_id.clone(),
            reason: deletion.reason,
            already_gone,
        };
        match result {
            Ok(DeleteOutcome::Deleted) => outcome.deleted.push(deleted(false)),
            Ok(DeleteOutcome::AlreadyGone) => outcome.deleted.push(deleted(true)),
            Ok(DeleteOutcome::InUse(why)) => {
                outcome.skipped.push(Skip { id: deletion.snapshot_id.clone(), reason: format!("in use: {why}") })
            }
            Err(error) => outcome.failed.push(Failure { action: "delete", id: deletion.snapshot_id.clone(), error }),
        }
    }

    outcome.created.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
    outcome.deleted.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
    outcome.skipped.sort_by(|a, b| a.id.cmp(&b.id));
    outcome.failed.sort_by(|a, b| (a.action, &a.id).cmp(&(b.action, &b.id)));
    outcome.deferred.sort();
    outcome.consistency.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
    outcome
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::operation::delete_snapshot::DeleteSnapshotOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use openclaw_ops_shared::snapshot::SnapshotKind;

    use super::*;
    use crate::plan::{DeleteReason, Deletion};

    fn plan(deletes: usize) -> Plan {
        let date = "2026-11-25".parse().unwrap();
        Plan {
            date,
            create: vec![],
            present: vec![],
            delete: (0..deletes)
                .map(|i| Deletion {
                    snapshot_id: format!("snap-{i:03}"),
                    volume_id: "vol-a".into(),
                    kind: SnapshotKind::Daily,
                    date,
                    reason: DeleteReason::Expired,
                })
                .collect(),
            keep_by_floor: vec![],
            skip: vec![],
            disagree: vec![],
            held: vec![],
            breaker: None,
        }
    }

    /// An SSM client for a plan without creates: never called.
    fn unused_ssm() -> aws_sdk_ssm::Client {
        let config = aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new("us-east-1"))
            .build();
        aws_sdk_ssm::Client::from_conf(config)
    }

    /// With time paused, every request is stamped with the (virtual) time it went out at.
    #[tokio::test(start_paused = true)]
    async fn writes_go_out_at_the_paced_rate_and_what_misses_the_deadline_waits_for_the_next_run() {
        let start = Instant::now();
        let sent: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let log = sent.clone();
        let delete = mock!(Client::delete_snapshot).then_output(move || {
            log.lock().unwrap().push(Instant::now() - start);
            DeleteSnapshotOutput::builder().build()
        });
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&delete]));

        let pacing = Pacing { per_second: 4, burst: 2, deadline: start + Duration::from_millis(2_100) };
        let hook = Hook::new(unused_ssm(), crate::consistency::tests::settings(crate::consistency::Consistency::App));
        let outcome = apply(&ec2, &plan(14), pacing, Some(Creates { hook: &hook, choices: &[], token: "t" })).await;

        assert_eq!(outcome.deleted.len(), 11, "2 at once, then slots at 0, 0.25 … 2.0 s before the deadline");
        assert_eq!(outcome.deferred, ["snap-011", "snap-012", "snap-013"]);
        assert!(outcome.failed.is_empty());
        let mut times = sent.lock().unwrap().clone();
        times.sort();
        assert_eq!(times[..3], [Duration::ZERO; 3], "the burst, and the first paced slot, at once");
        for (i, at) in times.iter().enumerate().skip(2) {
            let slot = Duration::from_millis(250 * (i as u64 - 2));
            assert!(*at >= slot, "request {i} went out early, at {at:?}");
        }
        // After the burst, never more than `per_second` requests in any one-second window.
        for (i, at) in times.iter().enumerate().skip(2) {
            let window = times[i..].iter().filter(|t| **t < *at + Duration::from_secs(1)).count();
            assert!(window <= 4, "{window} requests within a second of {at:?}");
        }
    }
}
