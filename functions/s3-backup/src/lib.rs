//! s3-backup: application-consistent backups of OpenClaw's state directory to S3, made on the
//! instance by an SSM Run Command whose script this crate writes, then read back and verified.
//!
//! observe (gateways by tag; each one's verified records) → plan ([`plan::plan`], pure) → apply
//! (pre-signed URLs for exactly this run's objects, the script, read-back verification, Object Lock
//! retention and the record, the month's first copied to `monthly/`) → report. A restore (by hand)
//! finds the newest recorded backup that still verifies and unpacks it beside the live state.

pub mod aws;
pub mod config;
pub mod drift;
pub mod event;
pub mod history;
pub mod plan;
pub mod restore;

pub use openclaw_ops_shared::backup::restore as script_restore;
pub use openclaw_ops_shared::backup::{layout, script, store};

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::Error;
use openclaw_ops_shared::metrics::Metrics;
use openclaw_ops_shared::notification::{Notification, Publisher, Severity};
use serde::Serialize;
use serde_json::Value;

use openclaw_ops_shared::backup::layout::Kind;
use openclaw_ops_shared::backup::store::Owner;

use crate::aws::Clients;
pub use crate::config::Config;
use crate::event::{Request, Which};
use crate::history::History;
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
        let settings = &self.config.backup;
        let (gateways, bucket_settings) = tokio::join!(
            self.clients.gateways(&self.config.gateway_tag),
            self.clients.bucket_settings(&settings.bucket)
        );
        let gateways = gateways?;
        let mut histories = HashMap::new();
        for gateway in &gateways {
            histories.insert(gateway.id.clone(), self.history(&gateway.id).await?);
        }
        // plan
        let plan = plan::plan(&gateways, &histories, trigger, &settings.prefix, now);
        // apply
        let mut backed_up = Vec::new();
        let mut failed = Vec::new();
        if !dry_run {
            for job in &plan.backups {
                match self.back_up(job, trigger, now, deadline).await {
                    Ok(done) => backed_up.push(done),
                    Err(f) => failed.push(f),
                }
            }
        }
        // report
        let newest_age = newest_backup_age(&gateways, &histories, &backed_up, Utc::now());
        let expected = drift::Expected {
            prefix: settings.prefix.clone(),
            daily_days: settings.daily_retention_days as i32,
            kms_key: settings.kms_key_id.clone(),
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

    /// A gateway's daily and monthly folders, read through their records.
    async fn history(&self, gateway_id: &str) -> Result<History, Error> {
        let prefix = &self.config.backup.prefix;
        let mut keys = self.clients.list(&layout::daily_root(prefix, gateway_id)).await?;
        keys.extend(self.clients.list(&layout::monthly_root(prefix, gateway_id)).await?);
        Ok(History::from_keys(&keys))
    }

    /// The script on the instance, with pre-signed URLs for exactly this job's two objects; the
    /// command's stderr when it succeeded, else what went wrong and the stderr.
    async fn run_script(
        &self,
        job: &Job,
        trigger: Trigger,
        deadline: tokio::time::Instant,
    ) -> Result<String, (String, String)> {
        let store = &self.clients.store;
        let lifetime = self.config.url_lifetime();
        let plain = |e: Error| (e.to_string(), String::new());
        let archive_upload = store.upload_url(&job.archive_key, "application/gzip", lifetime).await.map_err(plain)?;
        let manifest_upload = store.upload_url(&job.manifest_key, "application/json", lifetime).await.map_err(plain)?;
        let script = script::Backup {
            state_dir: self.config.backup.state_dir.clone(),
            archive_key: job.archive_key.clone(),
            manifest_key: job.manifest_key.clone(),
            archive_upload,
            manifest_upload,
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
            .map_err(|e| (e, String::new()))?;
        if outcome.status != "Success" {
            return Err((
                format!(
                    "the backup command {} ended {} (exit {})",
                    outcome.command_id, outcome.status, outcome.exit_code
                ),
                outcome.stderr,
            ));
        }
        Ok(outcome.stderr)
    }

    async fn back_up(
        &self,
        job: &Job,
        trigger: Trigger,
        made_at: DateTime<Utc>,
        deadline: tokio::time::Instant,
    ) -> Result<Done, Failed> {
        let fail = |error: String, stderr: &str| Failed {
            gateway: job.gateway.name.clone(),
            error,
            stderr_tail: tail(stderr, 1500),
        };
        let store = &self.clients.store;
        let stderr = if job.landed {
            String::new()
        } else {
            self.run_script(job, trigger, deadline).await.map_err(|(e, stderr)| fail(e, &stderr))?
        };
        let verified = store
            .verify(&job.manifest_key, None)
            .await
            .map_err(|e| fail(format!("the backup does not verify: {e}"), &stderr))?;
        let owner =
            Owner { gateway_id: &job.gateway.id, gateway: &job.gateway.name, instance_id: &job.gateway.instance_id };
        let kind = match trigger {
            Trigger::Schedule => Kind::Schedule,
            Trigger::Manual => Kind::Manual,
        };
        let record = store
            .keep(&verified, kind, &owner, made_at, Utc::now())
            .await
            .map_err(|e| fail(format!("the backup verified but was not recorded: {e}"), ""))?;

        // The month's first verified backup is also kept under monthly/ (a longer lifecycle and lock).
        let monthly_copy = match &job.monthly_archive_key {
            Some(archive_to) => {
                let manifest_to = layout::manifest_for(archive_to).expect("the plan gives an archive key");
                store.copy(&verified.archive_version, archive_to).await.map_err(|e| fail(e.to_string(), ""))?;
                store.copy(&verified.manifest_version, &manifest_to).await.map_err(|e| fail(e.to_string(), ""))?;
                let copy = store
                    .verify(&manifest_to, None)
                    .await
                    .map_err(|e| fail(format!("the monthly copy does not verify: {e}"), ""))?;
                store
                    .keep(&copy, Kind::Monthly, &owner, made_at, Utc::now())
                    .await
                    .map_err(|e| fail(format!("the monthly copy verified but was not recorded: {e}"), ""))?;
                Some(archive_to.clone())
            }
            None => None,
        };
        Ok(Done {
            gateway: job.gateway.name.clone(),
            archive_key: job.archive_key.clone(),
            size: verified.manifest.archive.size,
            sha256: verified.manifest.archive.sha256,
            files: verified.manifest.files.len(),
            record: layout::record_for(&job.manifest_key, kind).unwrap_or_default(),
            retain_until: record.retain_until,
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
        let settings = &self.config.backup;
        let store = &self.clients.store;
        let gateways = self.clients.gateways(&self.config.gateway_tag).await?;
        let gateway = restore::pick_gateway(&gateways, wanted)?;
        let mut listed = Vec::new();
        for prefix in restore::search_prefixes(&settings.prefix, &gateway, which)? {
            listed.extend(self.clients.list(&prefix).await?);
        }
        let history = History::from_keys(&listed);
        let candidates = restore::candidates(which, &history)?;
        let mut rejected = Vec::new();
        let mut chosen = None;
        for candidate in candidates {
            let checked = match store.record(&candidate.record_key).await {
                Ok(record) if record.manifest.key != candidate.manifest_key => {
                    Err(format!("its record {} names another manifest, {}", candidate.record_key, record.manifest.key))
                }
                Ok(record) => {
                    store.verify(&record.manifest.key, Some((&record.manifest, &record.archive))).await.map(|_| record)
                }
                Err(e) => Err(e.to_string()),
            };
            match checked {
                Ok(record) => {
                    chosen = Some(record);
                    break;
                }
                Err(why) => rejected.push(Rejected { manifest_key: candidate.manifest_key, why }),
            }
        }
        let target = restore::target(&settings.state_dir, Utc::now());
        let mut report = RestoreReport {
            function: FUNCTION,
            action: "restore",
            dry_run,
            gateway: gateway.name.clone(),
            instance_id: gateway.instance_id.clone(),
            backup: chosen.as_ref().map(|r| r.manifest.key.clone()),
            backup_time: chosen.as_ref().map(|r| r.made_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            rejected,
            unverified: history.unverified.clone(),
            switch_over: script_restore::switch_over_steps(&settings.state_dir, &target.dir, &target.stamp),
            target_dir: target.dir,
            restored: None,
            error: None,
            stderr_tail: None,
        };
        match &chosen {
            None => {
                report.error = Some(format!(
                    "no verified backup of {} ({}) is left to restore ({} recorded one(s) no longer verify)",
                    gateway.name,
                    gateway.id,
                    report.rejected.len()
                ));
            }
            Some(_) if dry_run => {}
            Some(record) => {
                let lifetime = self.config.url_lifetime();
                let script = script_restore::Restore {
                    state_dir: settings.state_dir.clone(),
                    archive_url: store.download_url(&record.archive, lifetime).await?,
                    manifest_url: store.download_url(&record.manifest, lifetime).await?,
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

/// Freshness: for each gateway, its newest verified backup is the one just made (age 0) or its
/// newest record (the time the function planned it); the answer is the oldest of those, `None` if a
/// gateway has neither.
fn newest_backup_age(
    gateways: &[plan::Gateway],
    histories: &HashMap<String, History>,
    backed_up: &[Done],
    now: DateTime<Utc>,
) -> Option<f64> {
    let mut worst: Option<f64> = None;
    for gateway in gateways {
        let age = if backed_up.iter().any(|d| d.gateway == gateway.name && d.archive_key.contains(&gateway.id)) {
            0.0
        } else {
            let made = histories.get(&gateway.id)?.newest()?.made_at;
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
        plan::Gateway { instance_id: format!("i-{name}"), name: name.into(), id: format!("vol-{name}") }
    }

    fn history(name: &str, at: &str) -> (String, History) {
        let keys = layout::daily("p/", &format!("vol-{name}"), name, at.parse().unwrap());
        let record = layout::record_for(&keys.manifest, Kind::Schedule).unwrap();
        (format!("vol-{name}"), History::from_keys(&[keys.archive, keys.manifest, record]))
    }

    fn done(name: &str) -> Done {
        Done {
            gateway: name.into(),
            archive_key: format!("p/daily/vol-{name}/k"),
            size: 1,
            sha256: "s".into(),
            files: 1,
            record: "r".into(),
            retain_until: None,
            monthly_copy: None,
        }
    }

    #[test]
    fn freshness_is_the_oldest_newest_backup() {
        let now = "2026-11-25T08:30:00Z".parse().unwrap();
        let histories = HashMap::from([history("b", "2026-11-25T02:30:00Z")]);
        assert_eq!(newest_backup_age(&[gw("a")], &histories, &[done("a")], now), Some(0.0));
        assert_eq!(newest_backup_age(&[gw("a"), gw("b")], &histories, &[done("a")], now), Some(6.0));
        assert_eq!(newest_backup_age(&[gw("a"), gw("c")], &histories, &[done("a")], now), None, "c has none: unknown");
        assert_eq!(newest_backup_age(&[], &histories, &[], now), None);
    }
}
