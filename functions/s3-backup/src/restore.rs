//! Restoring: the flow (observe the gateway and its backups, verify them newest first, run the
//! restore script beside the live state, report with the switch-over) and its choices — which
//! gateway, which backups to try, where the copy goes — pure functions of what was asked and what
//! was listed. Only backups a function verified and recorded are candidates; the flow reads each
//! again (the recorded versions) and restores the first that still verifies.

use chrono::{DateTime, Utc};
use openclaw_ops_shared::Error;
use openclaw_ops_shared::error::Failure;
use serde::Serialize;

use openclaw_ops_shared::backup::layout;
use openclaw_ops_shared::backup::restore as script_restore;

use crate::event::Which;
use crate::history::{History, Verified};
use crate::plan::Gateway;
use crate::report::{Rejected, RestoreReport};
use crate::{FUNCTION, Handler};
use openclaw_ops_shared::invocation::tail;
use openclaw_ops_shared::run;

impl Handler {
    /// Observe (the gateway, its backups newest first, verified in turn) → plan (the target beside
    /// the live state) → apply (the restore script on the instance) → report (with the switch-over).
    pub(crate) async fn restore(
        &self,
        wanted: &str,
        which: &Which,
        dry_run: bool,
        deadline: tokio::time::Instant,
    ) -> Result<RestoreReport, Error> {
        let settings = &self.config.backup;
        let store = &self.clients.store;
        let gateways = self.clients.gateways(&self.config.gateway_tag).await?;
        let gateway = pick_gateway(&gateways, wanted)?;
        let mut listed = Vec::new();
        for prefix in search_prefixes(&settings.prefix, &gateway, which)? {
            listed.extend(self.clients.list(&prefix).await?);
        }
        let history = History::from_keys(&listed);
        let candidates = candidates(which, &history)?;
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
        let target = target(&settings.state_dir, Utc::now());
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
                report.error = Some(Failure::from(format!(
                    "no verified backup of {} ({}) is left to restore ({} recorded one(s) no longer verify)",
                    gateway.name,
                    gateway.id,
                    report.rejected.len()
                )));
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
                        report.error = Some(Failure::from(format!(
                            "the restore command {} ended {} (exit {})",
                            o.command_id, o.status, o.exit_code
                        )));
                        report.stderr_tail = Some(tail(&o.stderr, 1500));
                    }
                    Ok(o) => match script_restore::parse_result(&o.stdout) {
                        Some(result) => report.restored = Some(result),
                        None => {
                            report.error =
                                Some(Failure::from(format!("the restore command {} printed no result", o.command_id)));
                            report.stderr_tail = Some(tail(&o.stderr, 1500));
                        }
                    },
                }
            }
        }
        run::finish(report, &self.clients.publisher).await
    }
}

/// The gateway named by its Name tag or instance id, among the running ones.
pub fn pick_gateway(gateways: &[Gateway], wanted: &str) -> Result<Gateway, Error> {
    if let Some(by_id) = gateways.iter().find(|g| g.instance_id == wanted) {
        return Ok(by_id.clone());
    }
    let named: Vec<&Gateway> = gateways.iter().filter(|g| g.name == wanted).collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let known: Vec<String> = gateways.iter().map(|g| format!("{} ({})", g.name, g.instance_id)).collect();
            Err(Error::Input(format!(
                "no running gateway is named or has the id {wanted:?}; running gateways: [{}]",
                known.join(", ")
            )))
        }
        many => {
            let ids: Vec<&str> = many.iter().map(|g| g.instance_id.as_str()).collect();
            Err(Error::Input(format!(
                "{} running gateways are named {wanted:?} ({}); name one by its instance id",
                many.len(),
                ids.join(", ")
            )))
        }
    }
}

/// Where to look for `which`: the gateway's daily and monthly history for "latest" (by its id, so
/// another gateway of the same Name is never searched), else the folder of the named key (which may
/// be another gateway's: a replacement's data volume has a new id). A key outside `BACKUP_PREFIX`,
/// or one that is not a backup's, is refused.
pub fn search_prefixes(prefix: &str, gateway: &Gateway, which: &Which) -> Result<Vec<String>, Error> {
    match which {
        Which::Latest => Ok(vec![layout::daily_root(prefix, &gateway.id), layout::monthly_root(prefix, &gateway.id)]),
        Which::Key(key) => {
            if !key.starts_with(prefix) || key.split('/').any(|part| part == ".." || part == ".") {
                return Err(Error::Input(format!("the backup {key:?} is not under the backup prefix {prefix:?}")));
            }
            let manifest = layout::manifest_for(key).ok_or_else(|| {
                Error::Input(format!("{key:?} is not a backup: expected a key ending in .tar.gz or .manifest.json"))
            })?;
            let folder = manifest.rsplit_once('/').map(|(dir, _)| format!("{dir}/")).unwrap_or_default();
            Ok(vec![folder])
        }
    }
}

/// The verified backups to try, newest first (a daily backup before its monthly copy). For a named
/// key, exactly that backup, and an error when no record vouches for it.
pub fn candidates(which: &Which, history: &History) -> Result<Vec<Verified>, Error> {
    match which {
        Which::Latest => Ok(history.verified.clone()),
        Which::Key(key) => {
            let manifest = layout::manifest_for(key).unwrap_or_default();
            let found: Vec<Verified> =
                history.verified.iter().filter(|v| v.manifest_key == manifest).cloned().collect();
            if found.is_empty() {
                return Err(Error::Input(format!(
                    "{key:?} is not a verified backup: no record of a function's read-back vouches for it (unverified objects are never restored)"
                )));
            }
            Ok(found)
        }
    }
}

/// A new directory beside the live one, named for the time of the restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub dir: String,
    pub stamp: String,
}

pub fn target(state_dir: &str, now: DateTime<Utc>) -> Target {
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    Target { dir: format!("{}.restored-{stamp}", state_dir.trim_end_matches('/')), stamp }
}

#[cfg(test)]
mod tests {
    use openclaw_ops_shared::backup::layout::Kind;

    use super::*;

    fn gw(id: &str, name: &str) -> Gateway {
        Gateway { instance_id: id.into(), name: name.into(), id: format!("vol-{id}") }
    }

    #[test]
    fn a_gateway_is_named_by_id_or_name_and_never_guessed() {
        let gateways = [gw("i-1", "openclaw-gateway"), gw("i-2", "staging"), gw("i-3", "staging")];
        assert_eq!(pick_gateway(&gateways, "i-2").unwrap(), gw("i-2", "staging"));
        assert_eq!(pick_gateway(&gateways, "openclaw-gateway").unwrap(), gw("i-1", "openclaw-gateway"));
        let ambiguous = pick_gateway(&gateways, "staging").unwrap_err().to_string();
        assert!(ambiguous.contains("i-2, i-3"), "{ambiguous}");
        let unknown = pick_gateway(&gateways, "prod").unwrap_err();
        assert!(matches!(unknown, Error::Input(_)));
        assert!(unknown.to_string().contains("openclaw-gateway (i-1)"));
        assert!(pick_gateway(&[], "i-1").is_err());
    }

    #[test]
    fn latest_searches_the_gateways_own_history_by_its_id() {
        let p = search_prefixes("openclaw/", &gw("i-1", "my gw"), &Which::Latest).unwrap();
        assert_eq!(p, ["openclaw/daily/vol-i-1/", "openclaw/monthly/vol-i-1/"]);
    }

    #[test]
    fn a_named_key_must_be_a_backup_under_the_prefix() {
        let g = gw("i-1", "gw");
        let key = |k: &str| search_prefixes("openclaw/", &g, &Which::Key(k.into()));
        assert_eq!(
            key("openclaw/daily/vol-old/2026/11/20/gw-20261120T023000Z.tar.gz").unwrap(),
            ["openclaw/daily/vol-old/2026/11/20/"]
        );
        for bad in ["other/daily/x.tar.gz", "openclaw/../secrets/x.tar.gz", "openclaw/daily/notes.txt"] {
            assert!(matches!(key(bad), Err(Error::Input(_))), "{bad}");
        }
    }

    fn keys(day: &str, kind: Option<Kind>) -> Vec<String> {
        let k = layout::daily("p/", "vol-1", "gw", day.parse().unwrap());
        let mut out = vec![k.archive, k.manifest.clone()];
        out.extend(kind.and_then(|kind| layout::record_for(&k.manifest, kind)));
        out
    }

    #[test]
    fn only_recorded_backups_are_candidates_newest_first() {
        let mut listed = keys("2026-11-24T02:30:00Z", Some(Kind::Schedule));
        listed.extend(keys("2026-11-25T02:30:00Z", Some(Kind::Manual)));
        listed.extend(keys("2099-01-01T00:00:00Z", None));
        let history = History::from_keys(&listed);
        let found: Vec<String> =
            candidates(&Which::Latest, &history).unwrap().into_iter().map(|v| v.manifest_key).collect();
        assert_eq!(found, [listed[4].clone(), listed[1].clone()]);
        assert!(candidates(&Which::Latest, &History::default()).unwrap().is_empty());
    }

    #[test]
    fn a_named_key_without_a_record_is_refused() {
        let mut listed = keys("2026-11-24T02:30:00Z", Some(Kind::Schedule));
        listed.extend(keys("2026-11-25T02:30:00Z", None));
        let history = History::from_keys(&listed);
        assert_eq!(candidates(&Which::Key(listed[0].clone()), &history).unwrap()[0].manifest_key, listed[1]);
        assert!(matches!(candidates(&Which::Key(listed[3].clone()), &history), Err(Error::Input(_))));
    }

    #[test]
    fn the_target_is_a_new_sibling_of_the_live_state() {
        let t = target("/home/openclaw/data/openclaw/", "2026-11-25T09:30:00Z".parse().unwrap());
        assert_eq!(t.dir, "/home/openclaw/data/openclaw.restored-20261125T093000Z");
        assert_eq!(t.stamp, "20261125T093000Z");
    }
}
