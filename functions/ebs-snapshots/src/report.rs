//! What a run tells: the JSON response, the log line, the metrics and, when a human should know,
//! the notification.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use openclaw_ops_shared::metrics::Metrics;
use openclaw_ops_shared::notification::{Notification, Severity, Table};
use openclaw_ops_shared::run::RunReport;
use openclaw_ops_shared::snapshot::SnapshotSource;
use serde::Serialize;

use crate::FUNCTION;
use crate::apply::{Created, Deleted, Failure, Outcome};
use crate::consistency::hook::Taken;
use crate::consistency::{Choice, Consistency};
use crate::plan::{Breaker, Deletion, Kept, Plan, Present, Skip};

/// Rows of held deletions a notification lists; the JSON response has them all.
const HELD_ROWS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub function: &'static str,
    pub trigger: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub date: NaiveDate,
    pub dry_run: bool,
    /// Volumes selected by the snapshot tag.
    pub volumes: Vec<String>,
    pub created: Vec<Created>,
    pub already_present: Vec<Present>,
    pub deleted: Vec<Deleted>,
    pub kept_by_floor: Vec<Kept>,
    pub skipped: Vec<Skip>,
    /// Snapshots with the ownership tag whose tags EC2's own fields contradict: never deleted.
    pub tags_disagree: Vec<Skip>,
    /// Set when the circuit breaker held this run's deletions back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<Breaker>,
    /// The deletions held back: what a confirmed `prune` would delete.
    pub held_by_breaker: Vec<Deletion>,
    pub failed: Vec<Failure>,
    /// Expired snapshots left for the next run: deleting them all would have outrun the write rate
    /// within this run's time.
    pub deferred: usize,
    /// Dry run only: what a real run would do.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_create: Vec<SnapshotSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_delete: Vec<Deletion>,
    /// The DR region's copies, when they are on (`crate::copy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dr: Option<crate::copy::DrReport>,
    /// How each created snapshot was taken: app- or crash-consistent, and why.
    pub consistency: Vec<Taken>,
    /// Dry run only: how each snapshot would be taken.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_take: Vec<Intended>,
}

/// A snapshot a dry run would create, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Intended {
    pub volume_id: String,
    #[serde(flatten)]
    pub choice: Choice,
}

impl Report {
    pub fn new(
        trigger: &'static str,
        event_id: Option<String>,
        volumes: Vec<String>,
        plan: Plan,
        outcome: Option<Outcome>,
    ) -> Self {
        let dry_run = outcome.is_none();
        let outcome = outcome.unwrap_or_default();
        let mut skipped = plan.skip;
        skipped.extend(outcome.skipped);
        Report {
            function: FUNCTION,
            trigger,
            event_id,
            date: plan.date,
            dry_run,
            volumes,
            created: outcome.created,
            already_present: plan.present,
            deleted: outcome.deleted,
            kept_by_floor: plan.keep_by_floor,
            skipped,
            tags_disagree: plan.disagree,
            circuit_breaker: plan.breaker,
            held_by_breaker: plan.held,
            failed: outcome.failed,
            deferred: outcome.deferred.len(),
            would_create: if dry_run { plan.create } else { Vec::new() },
            would_delete: if dry_run { plan.delete } else { Vec::new() },
            dr: None,
            consistency: outcome.consistency,
            would_take: Vec::new(),
        }
    }

    /// How the plan's creates were to be taken (kept for a dry run, which takes none).
    pub fn with_consistency_plan(mut self, intended: Vec<(String, Choice)>) -> Self {
        if self.dry_run {
            self.would_take = intended.into_iter().map(|(volume_id, choice)| Intended { volume_id, choice }).collect();
        }
        self
    }

    /// Hook failures and thaws that went wrong: the gateway should have had better.
    fn consistency_warnings(&self) -> impl Iterator<Item = &Taken> {
        self.consistency.iter().filter(|t| t.warn)
    }

    pub fn metrics(&self) -> Metrics {
        Metrics::new(FUNCTION)
            .count("SnapshotsCreated", self.created.len())
            .count("SnapshotsDeleted", self.deleted.len())
            .count("SnapshotFailures", self.failed.len())
            .count("SnapshotsKeptByFloor", self.kept_by_floor.len())
            .count("SnapshotsHeldByBreaker", self.held_by_breaker.len())
            .count("SnapshotTagsDisagree", self.tags_disagree.len())
            .count("SnapshotsCopied", self.dr.as_ref().map_or(0, |dr| dr.copied.len()))
            .count(
                "SnapshotsAppConsistent",
                self.consistency.iter().filter(|t| t.consistency == Consistency::App).count(),
            )
            .count(
                "SnapshotsCrashConsistent",
                self.consistency.iter().filter(|t| t.consistency == Consistency::Crash).count(),
            )
            .count("ConsistencyHookWarnings", self.consistency_warnings().count())
    }

    /// A notification when something failed, the circuit breaker held deletions, tags disagreed
    /// with EC2, or the floor held back expired snapshots.
    pub fn notification(&self) -> Option<Notification> {
        if self.failed.is_empty()
            && self.kept_by_floor.is_empty()
            && self.circuit_breaker.is_none()
            && self.tags_disagree.is_empty()
            && self.consistency_warnings().next().is_none()
        {
            return None;
        }
        let live: BTreeSet<&str> = self.volumes.iter().map(String::as_str).collect();
        let floor_on_live_volume = self.kept_by_floor.iter().any(|k| live.contains(k.volume_id.as_str()));
        let (severity, title) = if !self.failed.is_empty() {
            (Severity::Critical, format!("EBS snapshots: {} operation(s) failed on {}", self.failed.len(), self.date))
        } else if let Some(breaker) = &self.circuit_breaker {
            (
                Severity::Critical,
                format!(
                    "EBS snapshots: circuit breaker held {} deletion(s), over the limit of {}, on {}",
                    breaker.would_delete, breaker.limit, self.date
                ),
            )
        } else if !self.tags_disagree.is_empty() {
            (
                Severity::Warning,
                format!("EBS snapshots: {} snapshot(s) whose tags disagree with EC2", self.tags_disagree.len()),
            )
        } else if let Some(first) = self.consistency_warnings().next() {
            (
                Severity::Warning,
                format!(
                    "EBS snapshots: the data volume's snapshot is {}-consistent: {}",
                    first.consistency.as_str(),
                    first.reason.as_deref().unwrap_or("the hook failed")
                ),
            )
        } else if floor_on_live_volume {
            (
                Severity::Warning,
                format!("EBS snapshots: retention floor kept {} expired snapshot(s)", self.kept_by_floor.len()),
            )
        } else {
            (
                Severity::Info,
                format!("EBS snapshots: kept the last {} snapshot(s) of removed volumes", self.kept_by_floor.len()),
            )
        };

        let mut text = Vec::new();
        if !self.failed.is_empty() {
            text.push(
                "Some snapshot operations failed; the function will report an error so Lambda retries it.".to_owned(),
            );
        }
        if let Some(breaker) = &self.circuit_breaker {
            text.push(format!(
                "This run would delete {n} snapshots, more than MAX_DELETES ({limit}): it deleted none (today's \
                 snapshots were still made). If the plan below is what you expect, carry it out with\n\
                 aws lambda invoke --function-name <EbsSnapshotsFunctionName> --cli-binary-format raw-in-base64-out \
                 --payload '{{\"action\":\"prune\",\"confirm_deletes\":{n}}}' out.json\n\
                 The count must be the plan's when the prune runs, or nothing is deleted: once today's snapshots \
                 complete, the floor may release older ones, so check it first with {{\"dry_run\": true}} \
                 (its circuit_breaker.would_delete).",
                n = breaker.would_delete,
                limit = breaker.limit
            ));
        }
        if !self.tags_disagree.is_empty() {
            text.push(
                "Some snapshots carry the suite's tags but EC2's own VolumeId or StartTime says otherwise: someone \
                 re-tagged them. They are never deleted; look at who tagged them (CloudTrail CreateTags)."
                    .to_owned(),
            );
        }
        if self.consistency_warnings().next().is_some() {
            text.push(
                "The freeze around the gateway's data volume snapshot did not go as it should (see the table): the \
                 snapshot is tagged openclaw:consistency with how it was taken. A crash-consistent one is still a \
                 usable snapshot (SQLite in WAL mode recovers), but transactions not yet flushed may be missing."
                    .to_owned(),
            );
        }
        if floor_on_live_volume {
            text.push(
                "A volume has fewer recent snapshots than the retention window expects: new snapshots are not being \
                 made. Expired snapshots are kept so the history is not lost."
                    .to_owned(),
            );
        } else if !self.kept_by_floor.is_empty() {
            text.push(
                "These snapshots belong to volumes that are no longer selected; their last ones are kept by the floor. \
                 Delete them by hand when they are no longer needed."
                    .to_owned(),
            );
        }
        let mut rows: Vec<Vec<String>> = self
            .failed
            .iter()
            .map(|f| vec![f.id.clone(), format!("{} failed", f.action), f.error.to_string()])
            .collect();
        rows.extend(self.held_by_breaker.iter().take(HELD_ROWS).map(|d| {
            vec![
                d.snapshot_id.clone(),
                format!("held: would delete ({:?})", d.reason),
                format!("{} {}", d.volume_id, d.date),
            ]
        }));
        if self.held_by_breaker.len() > HELD_ROWS {
            let more = self.held_by_breaker.len() - HELD_ROWS;
            rows.push(vec!["…".into(), format!("held: {more} more"), "all in the run's JSON response".into()]);
        }
        rows.extend(
            self.tags_disagree.iter().map(|s| vec![s.id.clone(), "tags disagree with EC2".into(), s.reason.clone()]),
        );
        rows.extend(self.consistency_warnings().map(|t| {
            vec![
                t.volume_id.clone(),
                format!("{}-consistent", t.consistency.as_str()),
                t.reason.clone().unwrap_or_default(),
            ]
        }));
        rows.extend(
            self.kept_by_floor
                .iter()
                .map(|k| vec![k.volume_id.clone(), "kept by floor".into(), format!("{} {}", k.snapshot_id, k.date)]),
        );

        let (id_suffix, title) = if self.dry_run { (":dry-run", format!("{title} (dry run)")) } else { ("", title) };
        Some(
            Notification::new(FUNCTION, format!("{FUNCTION}:{}{id_suffix}", self.date), severity, title)
                .text(text.join("\n"))
                .field("date", self.date.to_string())
                .field("created", self.created.len().to_string())
                .field("deleted", self.deleted.len().to_string())
                .field("kept by floor", self.kept_by_floor.len().to_string())
                .field("held by breaker", self.held_by_breaker.len().to_string())
                .field("tags disagree", self.tags_disagree.len().to_string())
                .field("failed", self.failed.len().to_string())
                .table(Table { columns: vec!["id".into(), "what".into(), "detail".into()], rows }),
        )
    }
}

impl RunReport for Report {
    fn summary(&self) -> String {
        if self.failed.is_empty() {
            format!("ebs-snapshots run for {}", self.date)
        } else {
            format!("ebs-snapshots run for {} had failures", self.date)
        }
    }

    fn metrics(&self) -> Vec<Metrics> {
        vec![Report::metrics(self)]
    }

    /// One line for the invocation's error when anything failed.
    fn failure(&self) -> Option<String> {
        let first = self.failed.first()?;
        Some(format!(
            "{} snapshot operation(s) failed on {} (first: {} {}: {}); the others completed",
            self.failed.len(),
            self.date,
            first.action,
            first.id,
            first.error
        ))
    }

    fn notifications(&self) -> Vec<Notification> {
        self.notification().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use openclaw_ops_shared::notification::Severity;

    use super::*;
    use crate::plan::DeleteReason;

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
    }

    fn empty_plan() -> Plan {
        Plan {
            date: date(),
            create: vec![],
            present: vec![],
            delete: vec![],
            keep_by_floor: vec![],
            skip: vec![],
            disagree: vec![],
            held: vec![],
            breaker: None,
        }
    }

    fn kept(volume: &str) -> Kept {
        Kept { snapshot_id: "snap-1".into(), volume_id: volume.into(), date: date() }
    }

    #[test]
    fn a_quiet_run_notifies_nobody() {
        let r = Report::new("schedule", None, vec!["vol-a".into()], empty_plan(), Some(Outcome::default()));
        assert!(r.notification().is_none());
        assert!(r.failure().is_none());
    }

    #[test]
    fn failures_are_critical_and_summarised() {
        let outcome = Outcome {
            failed: vec![Failure { action: "create", id: "vol-a".into(), error: "UnauthorizedOperation: no".into() }],
            ..Outcome::default()
        };
        let r = Report::new("schedule", None, vec!["vol-a".into()], empty_plan(), Some(outcome));
        let n = r.notification().unwrap();
        assert_eq!(n.severity, Severity::Critical);
        assert_eq!(n.id, "ebs-snapshots:2026-11-25");
        assert!(n.table.unwrap().rows[0].contains(&"UnauthorizedOperation: no".to_owned()));
        assert!(r.failure().unwrap().contains("create vol-a: UnauthorizedOperation"));
    }

    #[test]
    fn the_floor_on_a_live_volume_warns_and_on_a_removed_one_informs() {
        let mut plan = empty_plan();
        plan.keep_by_floor = vec![kept("vol-a")];
        let live = Report::new("schedule", None, vec!["vol-a".into()], plan.clone(), Some(Outcome::default()));
        assert_eq!(live.notification().unwrap().severity, Severity::Warning);
        let gone = Report::new("schedule", None, vec!["vol-b".into()], plan, Some(Outcome::default()));
        assert_eq!(gone.notification().unwrap().severity, Severity::Info);
    }

    fn deletion(id: &str) -> Deletion {
        Deletion {
            snapshot_id: id.into(),
            volume_id: "vol-a".into(),
            kind: openclaw_ops_shared::snapshot::SnapshotKind::Daily,
            date: date(),
            reason: DeleteReason::Expired,
        }
    }

    #[test]
    fn a_held_plan_is_critical_and_says_how_to_confirm_it() {
        let mut plan = empty_plan();
        plan.held = (0..60).map(|i| deletion(&format!("snap-{i:02}"))).collect();
        plan.breaker = Some(Breaker { limit: 20, would_delete: 60 });
        let r = Report::new("schedule", None, vec!["vol-a".into()], plan, Some(Outcome::default()));
        let n = r.notification().unwrap();
        assert_eq!(n.severity, Severity::Critical);
        assert!(n.title.contains("circuit breaker held 60 deletion(s), over the limit of 20"), "{}", n.title);
        assert!(n.text.contains(r#"{"action":"prune","confirm_deletes":60}"#));
        let rows = n.table.unwrap().rows;
        assert_eq!(rows.len(), 51, "50 held rows and a line for the rest");
        assert_eq!(rows[50][1], "held: 10 more");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["circuit_breaker"], serde_json::json!({"limit": 20, "would_delete": 60}));
        assert_eq!(json["held_by_breaker"].as_array().unwrap().len(), 60);
        assert_eq!(r.metrics().to_emf(chrono::Utc::now())["SnapshotsHeldByBreaker"], 60.0);
    }

    #[test]
    fn disagreeing_tags_warn_by_id() {
        let mut plan = empty_plan();
        plan.disagree = vec![Skip { id: "snap-x".into(), reason: "tags disagree with EC2: why".into() }];
        let r = Report::new("schedule", None, vec!["vol-a".into()], plan, Some(Outcome::default()));
        let n = r.notification().unwrap();
        assert_eq!(n.severity, Severity::Warning);
        assert_eq!(n.table.unwrap().rows[0], ["snap-x", "tags disagree with EC2", "tags disagree with EC2: why"]);
    }

    #[test]
    fn a_failed_hook_warns_with_its_reason_and_counts_by_consistency() {
        let taken = |volume: &str, consistency, reason: Option<&str>, warn| Taken {
            volume_id: volume.into(),
            consistency,
            reason: reason.map(str::to_owned),
            warn,
            frozen: None,
            thawed: None,
            frozen_ms: None,
        };
        let quiet = Outcome {
            consistency: vec![
                taken("vol-data", Consistency::App, None, false),
                taken("vol-root", Consistency::Crash, Some("not the gateway's data volume"), false),
            ],
            ..Outcome::default()
        };
        let r = Report::new("schedule", None, vec!["vol-a".into()], empty_plan(), Some(quiet));
        assert!(r.notification().is_none(), "the root volume's crash-consistency is the plan, not news");
        let emf = r.metrics().to_emf(chrono::Utc::now());
        assert_eq!(
            (emf["SnapshotsAppConsistent"].clone(), emf["SnapshotsCrashConsistent"].clone()),
            (1.0.into(), 1.0.into())
        );

        let failed = Outcome {
            consistency: vec![taken("vol-data", Consistency::Crash, Some("the freeze failed: exit 4"), true)],
            ..Outcome::default()
        };
        let r = Report::new("schedule", None, vec!["vol-a".into()], empty_plan(), Some(failed));
        let n = r.notification().unwrap();
        assert_eq!(n.severity, Severity::Warning);
        assert!(n.title.contains("crash-consistent: the freeze failed: exit 4"), "{}", n.title);
        assert_eq!(n.table.unwrap().rows[0], ["vol-data", "crash-consistent", "the freeze failed: exit 4"]);
        assert_eq!(r.metrics().to_emf(chrono::Utc::now())["ConsistencyHookWarnings"], 1.0);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["consistency"][0]["consistency"], "crash");
        assert_eq!(json["consistency"][0]["reason"], "the freeze failed: exit 4");
    }

    #[test]
    fn dry_run_reports_intent_and_counts_nothing_done() {
        let mut plan = empty_plan();
        plan.create = vec![SnapshotSource { volume_id: "vol-a".into(), name: None, instance_id: None, device: None }];
        plan.delete = vec![Deletion {
            snapshot_id: "snap-old".into(),
            volume_id: "vol-a".into(),
            kind: openclaw_ops_shared::snapshot::SnapshotKind::Daily,
            date: date(),
            reason: DeleteReason::Expired,
        }];
        plan.keep_by_floor = vec![kept("vol-a")];
        let r = Report::new("manual", None, vec!["vol-a".into()], plan, None);
        assert!(r.dry_run);
        let n = r.notification().unwrap();
        assert!(n.title.ends_with("(dry run)"), "{}", n.title);
        assert_eq!(n.id, "ebs-snapshots:2026-11-25:dry-run");
        assert_eq!(r.would_create.len(), 1);
        assert_eq!(r.would_delete.len(), 1);
        let emf = r.metrics().to_emf(chrono::Utc::now());
        assert_eq!(emf["SnapshotsCreated"], 0.0);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["would_delete"][0]["reason"], "expired");
    }
}
