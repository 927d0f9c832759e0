//! What a run answers (a backup run's report or a restore's), its log line, its metrics and the
//! notifications a human should get.

use chrono::{DateTime, Utc};
use openclaw_ops_shared::backup::restore as script_restore;
use openclaw_ops_shared::error::Failure;
use openclaw_ops_shared::metrics::Metrics;
use openclaw_ops_shared::notification::{Notification, Severity};
use openclaw_ops_shared::run::RunReport;
use serde::Serialize;

use crate::plan::Plan;
use crate::{FUNCTION, drift};

#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub gateway: String,
    pub archive_key: String,
    pub size: u64,
    pub sha256: String,
    pub files: usize,
    /// The versions verified and recorded (and locked, with Object Lock on).
    pub record: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_copy: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub gateway: String,
    pub error: Failure,
    /// The end of the command's stderr, where the script says what went wrong.
    pub stderr_tail: String,
}

/// What an invocation answers: a backup run's report or a restore's.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Response {
    Backup(Report),
    Restore(RestoreReport),
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub manifest_key: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub function: &'static str,
    pub action: &'static str,
    pub dry_run: bool,
    pub gateway: String,
    pub instance_id: String,
    /// The manifest of the backup restored (or, in a dry run, that would be).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_time: Option<String>,
    /// Newer recorded backups that no longer verify, and why.
    pub rejected: Vec<Rejected>,
    /// Objects in the searched folders that no record vouches for: never restored.
    pub unverified: Vec<String>,
    pub target_dir: String,
    pub switch_over: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<script_restore::RestoreResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub function: &'static str,
    /// The backup bucket the run read and wrote.
    pub bucket: String,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub plan: Plan,
    pub backed_up: Vec<Done>,
    pub failed: Vec<Failed>,
    /// Where the bucket no longer is what the template made it.
    pub drift: Vec<drift::Drift>,
    /// Hours since the newest verified backup of the gateway whose newest is oldest (freshness),
    /// from the records' times; none when a gateway has no verified backup at all.
    pub newest_age_hours: Option<f64>,
}

impl RunReport for Report {
    fn summary(&self) -> String {
        "s3-backup run".to_owned()
    }

    fn metrics(&self) -> Vec<Metrics> {
        let mut metrics = Metrics::new(FUNCTION)
            .count("BackupsMade", self.backed_up.len())
            .count("BackupFailures", self.failed.len())
            .value("BackupBytes", self.backed_up.iter().map(|d| d.size as f64).sum(), "Bytes");
        // Left out when unknown: the freshness alarm treats missing data as no fresh backup.
        if let Some(age) = self.newest_age_hours {
            metrics = metrics.metric("BackupAgeHours", age, "None");
        }
        vec![metrics.count("BucketDrift", self.drift.len()).count("UnverifiedObjects", self.plan.unverified.len())]
    }

    fn notifications(&self) -> Vec<Notification> {
        let mut notes = Vec::new();
        if !self.drift.is_empty() {
            notes.push(self.drift_note());
        }
        if !self.plan.unverified.is_empty() {
            notes.push(self.unverified_note());
        }
        if !self.failed.is_empty() {
            notes.push(self.failure_note());
        }
        notes
    }

    fn failure(&self) -> Option<String> {
        let first = self.failed.first()?;
        Some(format!("{} backup(s) failed (first: {}: {})", self.failed.len(), first.gateway, first.error))
    }
}

impl Report {
    /// Once a day per kind of run while it lasts (the id repeats, so a retried publish is recognised).
    fn drift_note(&self) -> Notification {
        let mut note = Notification::new(
            FUNCTION,
            format!("{FUNCTION}:drift:{}:{}", self.plan.trigger.as_str(), self.plan.date),
            Severity::Warning,
            format!("Backup bucket {} differs from the template", self.bucket),
        )
        .text(
            "Someone changed the backup bucket by hand. Backups still run, but retention or recovery no longer \
             works as designed. Put it back with the stack (sam deploy) or fix the settings below.",
        );
        for (i, d) in self.drift.iter().enumerate() {
            note = note.field(format!("{} {}", d.setting, i + 1), d.finding.clone());
        }
        note
    }

    /// Objects no record vouches for: a backup that never verified, or something someone else wrote.
    /// They are ignored; a person should know (once a day per kind of run: the id repeats).
    fn unverified_note(&self) -> Notification {
        const SHOWN: usize = 20;
        let unverified = &self.plan.unverified;
        let mut note = Notification::new(
            FUNCTION,
            format!("{FUNCTION}:unverified:{}:{}", self.plan.trigger.as_str(), self.plan.date),
            Severity::Warning,
            format!("Unverified object found: {} in the backup bucket", unverified.len()),
        )
        .text(
            "These objects sit among the backups but no function verified them: a backup whose read-back failed, \
             or an object written by someone else. They are never used as a backup or restored. Look at who \
             wrote them in the bucket's access logs.",
        );
        for (i, u) in unverified.iter().take(SHOWN).enumerate() {
            note = note.field(format!("{} {}", u.gateway, i + 1), u.key.clone());
        }
        if unverified.len() > SHOWN {
            note = note.field("more", format!("{} more in the run's report", unverified.len() - SHOWN));
        }
        note
    }

    fn failure_note(&self) -> Notification {
        let mut note = Notification::new(
            FUNCTION,
            format!("{FUNCTION}:{}:{}", self.plan.trigger.as_str(), self.plan.date),
            Severity::Critical,
            format!("Backup failed for {} gateway(s)", self.failed.len()),
        )
        .text("OpenClaw's config and sessions were not backed up. The command's last output is below.");
        for f in &self.failed {
            note = note
                .field(format!("{} error", f.gateway), f.error.to_string())
                .field(format!("{} stderr", f.gateway), f.stderr_tail.clone());
        }
        note
    }
}

impl RunReport for RestoreReport {
    fn summary(&self) -> String {
        format!("s3-backup restore on {}", self.gateway)
    }

    fn metrics(&self) -> Vec<Metrics> {
        vec![
            Metrics::new(FUNCTION)
                .count("Restores", usize::from(self.restored.is_some()))
                .count("RestoreFailures", usize::from(self.error.is_some())),
        ]
    }

    /// A dry run that found a backup to restore is its own answer; anything else a person hears.
    fn notifications(&self) -> Vec<Notification> {
        if self.dry_run && self.error.is_none() {
            return Vec::new();
        }
        let id = format!("{FUNCTION}:restore:{}:{}", self.instance_id, self.target_dir);
        let mut note = match (&self.restored, &self.error) {
            (Some(r), _) => Notification::new(
                FUNCTION,
                id,
                Severity::Info,
                format!("Backup restored beside the live state on {}", self.gateway),
            )
            .text(format!(
                "{} files ({} bytes) are in {}. The gateway still runs on its live state: switch over by hand.",
                r.files, r.bytes, r.target_dir
            )),
            (None, error) => {
                Notification::new(FUNCTION, id, Severity::Critical, format!("Restore failed on {}", self.gateway))
                    .text(error.as_ref().map(ToString::to_string).unwrap_or_default())
            }
        };
        note = note.field("instance", self.instance_id.clone());
        if let Some(backup) = &self.backup {
            note = note.field("backup", backup.clone());
        }
        for r in &self.rejected {
            note = note.field(format!("did not verify: {}", r.manifest_key), r.why.clone());
        }
        for key in self.unverified.iter().take(20) {
            note = note.field("unverified object found (ignored)", key.clone());
        }
        if let Some(stderr) = &self.stderr_tail {
            note = note.field("stderr", stderr.clone());
        }
        if self.restored.is_some() {
            note = note.field("switch over", self.switch_over.join("\n"));
        }
        vec![note]
    }

    fn failure(&self) -> Option<String> {
        self.error.as_ref().map(|error| format!("restore of {}: {error}", self.gateway))
    }
}
