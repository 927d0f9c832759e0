//! The backup flow: observe (the gateways, each one's verified records, the bucket's settings) →
//! plan ([`crate::plan::plan`], pure) → apply (pre-signed URLs for exactly this run's objects, the
//! script on the instance, read-back verification, Object Lock retention and the record, the
//! month's first copied to `monthly/`) → report ([`crate::report`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use openclaw_ops_shared::Error;
use openclaw_ops_shared::backup::layout::{self, Kind};
use openclaw_ops_shared::backup::script;
use openclaw_ops_shared::backup::store::Owner;
use openclaw_ops_shared::error::Failure;

use crate::history::History;
use crate::plan::{self, Job, Trigger};
use crate::report::{Done, Failed, Report};
use crate::{FUNCTION, Handler, drift};
use openclaw_ops_shared::invocation::tail;
use openclaw_ops_shared::run;

impl Handler {
    pub(crate) async fn back_up_all(
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
            bucket: settings.bucket.clone(),
            dry_run,
            reason,
            plan,
            backed_up,
            failed,
            drift,
            newest_age_hours: newest_age,
        };
        run::finish(report, &self.clients.publisher).await
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
    ) -> Result<String, (Failure, String)> {
        let store = &self.clients.store;
        let lifetime = self.config.url_lifetime();
        let plain = |e: Error| (Failure::from(e), String::new());
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
                Failure::from(format!(
                    "the backup command {} ended {} (exit {})",
                    outcome.command_id, outcome.status, outcome.exit_code
                )),
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
        let fail = |error: Failure, stderr: &str| Failed {
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
            .map_err(|e| fail(format!("the backup does not verify: {e}").into(), &stderr))?;
        let owner =
            Owner { gateway_id: &job.gateway.id, gateway: &job.gateway.name, instance_id: &job.gateway.instance_id };
        let kind = match trigger {
            Trigger::Schedule => Kind::Schedule,
            Trigger::Manual => Kind::Manual,
        };
        let record = store
            .keep(&verified, kind, &owner, made_at, Utc::now())
            .await
            .map_err(|e| fail(Failure::from(e).context("the backup verified but was not recorded"), ""))?;

        // The month's first verified backup is also kept under monthly/ (a longer lifecycle and lock).
        let monthly_copy = match &job.monthly_archive_key {
            Some(archive_to) => {
                let manifest_to = layout::manifest_for(archive_to).expect("the plan gives an archive key");
                store.copy(&verified.archive_version, archive_to).await.map_err(|e| fail(e.into(), ""))?;
                store.copy(&verified.manifest_version, &manifest_to).await.map_err(|e| fail(e.into(), ""))?;
                let copy = store
                    .verify(&manifest_to, None)
                    .await
                    .map_err(|e| fail(format!("the monthly copy does not verify: {e}").into(), ""))?;
                store.keep(&copy, Kind::Monthly, &owner, made_at, Utc::now()).await.map_err(|e| {
                    fail(Failure::from(e).context("the monthly copy verified but was not recorded"), "")
                })?;
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
