//! Carries out a plan. Each write stands alone: a failure is recorded and the rest go on.

use futures::stream::{self, StreamExt};
use openclaw_ops_shared::snapshot::SnapshotKind;
use serde::Serialize;

use crate::ec2::{DeleteOutcome, Ec2};
use crate::plan::{DeleteReason, Plan, Skip};

/// Writes in flight at once: enough to finish thousands of deletes within the function's timeout,
/// few enough to stay inside EC2's per-account request rate (the SDK backs off on throttling).
pub const CONCURRENCY: usize = 4;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub created: Vec<Created>,
    pub deleted: Vec<Deleted>,
    /// Deletes AWS refused for a reason that is not a failure (an AMI uses the snapshot).
    pub skipped: Vec<Skip>,
    pub failed: Vec<Failure>,
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
    pub error: String,
}

pub async fn apply(ec2: &Ec2, plan: &Plan) -> Outcome {
    let mut outcome = Outcome::default();

    let creates = stream::iter(&plan.create)
        .map(|source| async move { (source, ec2.create_snapshot(source, SnapshotKind::Daily, plan.date).await) })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for (source, result) in creates {
        match result {
            Ok(snapshot_id) => outcome.created.push(Created { volume_id: source.volume_id.clone(), snapshot_id }),
            Err(error) => outcome.failed.push(Failure { action: "create", id: source.volume_id.clone(), error }),
        }
    }

    let deletes = stream::iter(&plan.delete)
        .map(|deletion| async move { (deletion, ec2.delete_snapshot(&deletion.snapshot_id).await) })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for (deletion, result) in deletes {
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
    outcome
}
