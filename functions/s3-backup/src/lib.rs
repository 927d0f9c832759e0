//! s3-backup: application-consistent backups of OpenClaw's state directory to S3, made on the
//! instance by an SSM Run Command whose script this crate writes, then read back and verified.
//!
//! observe (gateways by tag; today's scheduled backups, verified) → plan ([`plan::plan`], pure) →
//! apply (run the script, verify what landed, copy the month's first to `monthly/`) → report.
//! A restore (by hand) finds the newest backup that verifies and unpacks it beside the live state.

pub mod aws;
pub mod config;
pub mod drift;
pub mod event;
pub mod plan;
pub mod restore;

pub use openclaw_ops_shared::backup::restore as script_restore;
pub use openclaw_ops_shared::backup::{layout, script};

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::Error;
use openclaw_ops_shared::metrics::Metrics;
use openclaw_ops_shared::notification::{Notification, Publisher, Severity};
use serde::Serialize;
use serde_json::Value;

use crate::aws::Clients;
pub use crate::config::Config;
use crate::event::{Request, Which};
use crate::plan::{Job, Plan, Trigger};

pub const FUNCTION: &str = "s3-backup";
/// Kept back from the invocation's deadline to verify and report.
const RESERVE: Duration = Duration::from_secs(20);

pub struct Handler {
    config: Config,
    clients: Clients,
    publisher: Publisher,
}

#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub gateway: String,
    pub archive_key: String,
    pub size: u64,
    pub sha256: String,
    pub files: usize,
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
    /// Newer backups that did not verify, and why.
    pub rejected: Vec<Rejected>,
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
    /// Hours since the newest verified backup of the gateway whose newest is oldest (freshness);
    /// none when a gateway has no verified backup from this run or today.
    pub newest_age_hours: Option<f64>,
}

fn tail(text: &str, chars: usize) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(chars)).collect()
}

impl Handler {
    pub fn new(config: Config, clients: Clients, sns: aws_sdk_sns::Client) -> Self {
        let publisher = Publisher::new(sns, &config.topic_arn);
        Handler { config, clients, publisher }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Response, Error> {
        let request = Request::parse(event.payload)?;
        let remaining = event.context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + remaining.saturating_sub(RESERVE);
        match request {
            Request::Schedule { time } => self
                .back_up_all(Trigger::Schedule, time, None, self.config.dry_run, deadline)
                .await
                .map(Response::Backup),
            Request::Backup { reason, dry_run } => self
                .back_up_all(Trigger::Manual, Utc::now(), reason, self.config.dry_run || dry_run, deadline)
                .await
                .map(Response::Backup),
            Request::Restore { gateway, backup, dry_run } => {
                self.restore(&gateway, &backup, self.config.dry_run || dry_run, deadline).await.map(Response::Restore)
            }
        }
    }

    async fn back_up_all(
        &self,
        trigger: Trigger,
        now: chrono::DateTime<Utc>,
        reason: Option<String>,
        dry_run: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Report, Error> {
        // observe (the gateways and the bucket's settings at once: a run's time is mostly round trips)
        let (gateways, bucket_settings) = tokio::join!(
            self.clients.gateways(&self.config.gateway_tag),
            self.clients.bucket_settings(&self.config.bucket)
        );
        let gateways = gateways?;
        let mut verified_today = std::collections::HashMap::new();
        if trigger == Trigger::Schedule {
            for gateway in &gateways {
                if let Some(manifest) = self.verified_scheduled(&gateway.name, now).await? {
                    verified_today.insert(gateway.name.clone(), manifest);
                }
            }
        }
        // plan
        let plan = plan::plan(
            &gateways,
            &|name| verified_today.get(name).map(|m| m.archive.key.clone()),
            trigger,
            &self.config.prefix,
            now,
        );
        // apply
        let mut backed_up = Vec::new();
        let mut failed = Vec::new();
        if !dry_run {
            for job in &plan.backups {
                match self.back_up(job, trigger, plan.date, deadline).await {
                    Ok(done) => backed_up.push(done),
                    Err(f) => failed.push(f),
                }
            }
        }
        // report
        let newest_age = newest_backup_age(&gateways, &verified_today, &backed_up, Utc::now());
        let expected = drift::Expected {
            prefix: self.config.prefix.clone(),
            daily_days: self.config.daily_retention_days,
            kms_key: self.config.kms_key_id.clone(),
        };
        let drift = drift::check(&bucket_settings, &expected);
        let report = Report {
            function: FUNCTION,
            dry_run,
            reason,
            plan,
            backed_up,
            failed,
            drift,
            newest_age_hours: newest_age,
        };
        self.report(&report).await?;
        match report.failed.first() {
            Some(first) => Err(Error::Incomplete(format!(
                "{} backup(s) failed (first: {}: {})",
                report.failed.len(),
                first.gateway,
                first.error
            ))),
            None => Ok(report),
        }
    }

    /// A verified scheduled backup of this date, if any.
    async fn verified_scheduled(
        &self,
        gateway: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<Option<aws::Manifest>, Error> {
        let day = format!("{}daily/{}/{}/", self.config.prefix, layout::path_safe(gateway), now.format("%Y/%m/%d"));
        for key in self.clients.list(&self.config.bucket, &day).await? {
            if !key.ends_with(".manifest.json") {
                continue;
            }
            match self.clients.verify(&self.config.bucket, &key).await {
                Ok(m) if m.trigger == "schedule" => return Ok(Some(m)),
                Ok(_) => {}
                Err(why) => tracing::warn!(%key, %why, "a backup of today does not verify; it will be replaced"),
            }
        }
        Ok(None)
    }

    async fn back_up(
        &self,
        job: &Job,
        trigger: Trigger,
        date: NaiveDate,
        deadline: tokio::time::Instant,
    ) -> Result<Done, Failed> {
        let fail = |error: String, stderr: &str| Failed {
            gateway: job.gateway.name.clone(),
            error,
            stderr_tail: tail(stderr, 1500),
        };
        let script = script::Backup {
            state_dir: self.config.state_dir.clone(),
            bucket: self.config.bucket.clone(),
            archive_key: job.archive_key.clone(),
            manifest_key: job.manifest_key.clone(),
            kms_key_id: self.config.kms_key_id.clone(),
            trigger: trigger.as_str().to_owned(),
            instance_id: job.gateway.instance_id.clone(),
            gateway: job.gateway.name.clone(),
            include_logs_and_media: false,
        }
        .script();
        let outcome = self
            .clients
            .run(&job.gateway.instance_id, "openclaw-ops s3-backup", script, self.config.command_timeout, deadline)
            .await
            .map_err(|e| fail(e, ""))?;
        if outcome.status != "Success" {
            return Err(fail(
                format!(
                    "the backup command {} ended {} (exit {})",
                    outcome.command_id, outcome.status, outcome.exit_code
                ),
                &outcome.stderr,
            ));
        }
        let manifest = self
            .clients
            .verify(&self.config.bucket, &job.manifest_key)
            .await
            .map_err(|e| fail(format!("the backup does not verify: {e}"), &outcome.stderr))?;

        // The month's first verified backup is also kept under monthly/ (a longer lifecycle).
        let month =
            format!("{}monthly/{}/{}/", self.config.prefix, layout::path_safe(&job.gateway.name), date.format("%Y/%m"));
        let monthly_copy =
            if self.clients.list(&self.config.bucket, &month).await.map_err(|e| fail(e.to_string(), ""))?.is_empty() {
                let file = |key: &str| key.rsplit('/').next().unwrap_or(key).to_owned();
                let archive_to = format!("{month}{}", file(&job.archive_key));
                let kms = self.config.kms_key_id.as_deref();
                self.clients
                    .copy(&self.config.bucket, &job.archive_key, &archive_to, kms)
                    .await
                    .map_err(|e| fail(e, ""))?;
                self.clients
                    .copy(&self.config.bucket, &job.manifest_key, &format!("{month}{}", file(&job.manifest_key)), kms)
                    .await
                    .map_err(|e| fail(e, ""))?;
                Some(archive_to)
            } else {
                None
            };
        Ok(Done {
            gateway: job.gateway.name.clone(),
            archive_key: job.archive_key.clone(),
            size: manifest.archive.size,
            sha256: manifest.archive.sha256,
            files: manifest.files.len(),
            monthly_copy,
        })
    }

    /// Observe (the gateway, its backups newest first, verified in turn) → plan (the target beside
    /// the live state) → apply (the restore script on the instance) → report (with the switch-over).
    async fn restore(
        &self,
        wanted: &str,
        which: &Which,
        dry_run: bool,
        deadline: tokio::time::Instant,
    ) -> Result<RestoreReport, Error> {
        let gateways = self.clients.gateways(&self.config.gateway_tag).await?;
        let gateway = restore::pick_gateway(&gateways, wanted)?;
        let mut listed = Vec::new();
        for prefix in restore::search_prefixes(&self.config.prefix, &gateway, which)? {
            listed.extend(self.clients.list(&self.config.bucket, &prefix).await?);
        }
        let candidates = restore::candidates(which, &listed)?;
        let mut rejected = Vec::new();
        let mut chosen = None;
        for manifest_key in candidates {
            match self.clients.verify(&self.config.bucket, &manifest_key).await {
                Ok(manifest) => {
                    chosen = Some((manifest_key, manifest));
                    break;
                }
                Err(why) => rejected.push(Rejected { manifest_key, why }),
            }
        }
        let target = restore::target(&self.config.state_dir, Utc::now());
        let mut report = RestoreReport {
            function: FUNCTION,
            action: "restore",
            dry_run,
            gateway: gateway.name.clone(),
            instance_id: gateway.instance_id.clone(),
            backup: chosen.as_ref().map(|(k, _)| k.clone()),
            backup_time: chosen.as_ref().and_then(|(_, m)| m.time.clone()),
            rejected,
            switch_over: script_restore::switch_over_steps(&self.config.state_dir, &target.dir, &target.stamp),
            target_dir: target.dir,
            restored: None,
            error: None,
            stderr_tail: None,
        };
        match &chosen {
            None => {
                report.error =
                    Some(format!("no backup of {} verifies ({} tried)", gateway.name, report.rejected.len()));
            }
            Some(_) if dry_run => {}
            Some((manifest_key, _)) => {
                let script = script_restore::Restore {
                    state_dir: self.config.state_dir.clone(),
                    bucket: self.config.bucket.clone(),
                    archive_key: layout::archive_for(manifest_key).expect("candidates are manifests"),
                    manifest_key: manifest_key.clone(),
                    target_dir: report.target_dir.clone(),
                    switch_over: report.switch_over.clone(),
                }
                .script();
                let outcome = self
                    .clients
                    .run(
                        &gateway.instance_id,
                        "openclaw-ops s3-backup restore",
                        script,
                        self.config.command_timeout,
                        deadline,
                    )
                    .await;
                match outcome {
                    Err(e) => report.error = Some(e),
                    Ok(o) if o.status != "Success" => {
                        report.error = Some(format!(
                            "the restore command {} ended {} (exit {})",
                            o.command_id, o.status, o.exit_code
                        ));
                        report.stderr_tail = Some(tail(&o.stderr, 1500));
                    }
                    Ok(o) => match script_restore::parse_result(&o.stdout) {
                        Some(result) => report.restored = Some(result),
                        None => {
                            report.error = Some(format!("the restore command {} printed no result", o.command_id));
                            report.stderr_tail = Some(tail(&o.stderr, 1500));
                        }
                    },
                }
            }
        }
        self.report_restore(&report).await?;
        match &report.error {
            Some(error) => Err(Error::Incomplete(format!("restore of {}: {error}", report.gateway))),
            None => Ok(report),
        }
    }

    async fn report_restore(&self, report: &RestoreReport) -> Result<(), Error> {
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
            format!("Backup bucket {} differs from the template", self.config.bucket),
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

    async fn report(&self, report: &Report) -> Result<(), Error> {
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
        metrics = metrics.count("BucketDrift", report.drift.len());
        metrics.emit(Utc::now());
        if !report.drift.is_empty() {
            self.report_drift(report).await?;
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

/// Freshness: for each gateway, its newest verified backup is the one just made (age 0) or today's
/// verified scheduled one; the answer is the oldest of those, `None` if a gateway has neither.
fn newest_backup_age(
    gateways: &[plan::Gateway],
    verified_today: &std::collections::HashMap<String, aws::Manifest>,
    backed_up: &[Done],
    now: chrono::DateTime<Utc>,
) -> Option<f64> {
    let mut worst: Option<f64> = None;
    for gateway in gateways {
        let age = if backed_up.iter().any(|d| d.gateway == gateway.name) {
            0.0
        } else {
            let time = verified_today.get(&gateway.name)?.time.as_deref()?;
            let made = chrono::DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
            ((now - made).num_seconds().max(0) as f64 / 3600.0 * 100.0).round() / 100.0
        };
        worst = Some(worst.map_or(age, |w: f64| w.max(age)));
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(name: &str) -> plan::Gateway {
        plan::Gateway { instance_id: format!("i-{name}"), name: name.into() }
    }

    fn manifest(time: &str) -> aws::Manifest {
        aws::Manifest {
            archive: aws::ArchiveInfo { key: "k".into(), size: 1, sha256: "s".into() },
            trigger: "schedule".into(),
            time: Some(time.into()),
            files: vec![],
        }
    }

    fn done(name: &str) -> Done {
        Done {
            gateway: name.into(),
            archive_key: "k".into(),
            size: 1,
            sha256: "s".into(),
            files: 1,
            monthly_copy: None,
        }
    }

    #[test]
    fn freshness_is_the_oldest_newest_backup() {
        let now = "2026-11-25T08:30:00Z".parse().unwrap();
        let today = std::collections::HashMap::from([("b".to_owned(), manifest("2026-11-25T02:30:00Z"))]);
        assert_eq!(newest_backup_age(&[gw("a")], &today, &[done("a")], now), Some(0.0));
        assert_eq!(newest_backup_age(&[gw("a"), gw("b")], &today, &[done("a")], now), Some(6.0));
        assert_eq!(newest_backup_age(&[gw("a"), gw("c")], &today, &[done("a")], now), None, "c has none: unknown");
        assert_eq!(newest_backup_age(&[], &today, &[], now), None);
    }
}
