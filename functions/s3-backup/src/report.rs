//! What a run answers (a backup run's report or a restore's), its log line, its metrics and the
//! notifications a human should get.

use chrono::{DateTime, Utc};
use openclaw_ops_shared::Error;
use openclaw_ops_shared::backup::restore as script_restore;
use openclaw_ops_shared::metrics::Metrics;
use openclaw_ops_shared::notification::{Notification, Severity};
use serde::Serialize;

use crate::plan::Plan;
use crate::{FUNCTION, Handler, drift};

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
    pub error: String,
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
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub function: &'static str,
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

impl Handler {
    pub(crate) async fn report_restore(&self, report: &RestoreReport) -> Result<(), Error> {
        let json = serde_json::to_string(report).expect("a report always serialises");
        tracing::info!(gateway = %report.gateway, restored = report.restored.is_some(), dry_run = report.dry_run, report = %json, "s3-backup restore");
        Metrics::new(FUNCTION)
            .count("Restores", usize::from(report.restored.is_some()))
            .count("RestoreFailures", usize::from(report.error.is_some()))
            .emit(Utc::now());
        if report.dry_run && report.error.is_none() {
            return Ok(());
        }
        let id = format!("{FUNCTION}:restore:{}:{}", report.instance_id, report.target_dir);
        let mut note = match (&report.restored, &report.error) {
            (Some(r), _) => Notification::new(
                FUNCTION,
                id,
                Severity::Info,
                format!("Backup restored beside the live state on {}", report.gateway),
            )
            .text(format!(
                "{} files ({} bytes) are in {}. The gateway still runs on its live state: switch over by hand.",
                r.files, r.bytes, r.target_dir
            )),
            (None, error) => {
                Notification::new(FUNCTION, id, Severity::Critical, format!("Restore failed on {}", report.gateway))
                    .text(error.clone().unwrap_or_default())
            }
        };
        note = note.field("instance", report.instance_id.clone());
        if let Some(backup) = &report.backup {
            note = note.field("backup", backup.clone());
        }
        for r in &report.rejected {
            note = note.field(format!("did not verify: {}", r.manifest_key), r.why.clone());
        }
        for key in report.unverified.iter().take(20) {
            note = note.field("unverified object found (ignored)", key.clone());
        }
        if let Some(stderr) = &report.stderr_tail {
            note = note.field("stderr", stderr.clone());
        }
        if report.restored.is_some() {
            note = note.field("switch over", report.switch_over.join("\n"));
        }
        self.publisher.publish(&note).await.map(|_| ())
    }

    /// Once a day per kind of run while it lasts (the id repeats, so a retried publish is recognised).
    async fn report_drift(&self, report: &Report) -> Result<(), Error> {
        let mut note = Notification::new(
            FUNCTION,
            format!("{FUNCTION}:drift:{}:{}", report.plan.trigger.as_str(), report.plan.date),
            Severity::Warning,
            format!("Backup bucket {} differs from the template", self.config.backup.bucket),
        )
        .text(
            "Someone changed the backup bucket by hand. Backups still run, but retention or recovery no longer \
             works as designed. Put it back with the stack (sam deploy) or fix the settings below.",
        );
        for (i, d) in report.drift.iter().enumerate() {
            note = note.field(format!("{} {}", d.setting, i + 1), d.finding.clone());
        }
        self.publisher.publish(&note).await.map(|_| ())
    }

    /// Objects no record vouches for: a backup that never verified, or something someone else wrote.
    /// They are ignored; a person should know (once a day per kind of run: the id repeats).
    async fn report_unverified(&self, report: &Report) -> Result<(), Error> {
        const SHOWN: usize = 20;
        let unverified = &report.plan.unverified;
        let mut note = Notification::new(
            FUNCTION,
            format!("{FUNCTION}:unverified:{}:{}", report.plan.trigger.as_str(), report.plan.date),
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
        self.publisher.publish(&note).await.map(|_| ())
    }

    pub(crate) async fn report(&self, report: &Report) -> Result<(), Error> {
        let json = serde_json::to_string(report).expect("a report always serialises");
        tracing::info!(backed_up = report.backed_up.len(), failed = report.failed.len(), dry_run = report.dry_run, report = %json, "s3-backup run");
        let mut metrics = Metrics::new(FUNCTION)
            .count("BackupsMade", report.backed_up.len())
            .count("BackupFailures", report.failed.len())
            .value("BackupBytes", report.backed_up.iter().map(|d| d.size as f64).sum(), "Bytes");
        // Left out when unknown: the freshness alarm treats missing data as no fresh backup.
        if let Some(age) = report.newest_age_hours {
            metrics = metrics.metric("BackupAgeHours", age, "None");
        }
        metrics =
            metrics.count("BucketDrift", report.drift.len()).count("UnverifiedObjects", report.plan.unverified.len());
        metrics.emit(Utc::now());
        if !report.drift.is_empty() {
            self.report_drift(report).await?;
        }
        if !report.plan.unverified.is_empty() {
            self.report_unverified(report).await?;
        }
        if report.failed.is_empty() {
            return Ok(());
        }
        let mut note = Notification::new(
            FUNCTION,
            format!("{FUNCTION}:{}:{}", report.plan.trigger.as_str(), report.plan.date),
            Severity::Critical,
            format!("Backup failed for {} gateway(s)", report.failed.len()),
        )
        .text("OpenClaw's config and sessions were not backed up. The command's last output is below.");
        for f in &report.failed {
            note = note
                .field(format!("{} error", f.gateway), f.error.clone())
                .field(format!("{} stderr", f.gateway), f.stderr_tail.clone());
        }
        self.publisher.publish(&note).await.map(|_| ())
    }
}
