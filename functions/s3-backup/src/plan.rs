//! Which gateways to back up now, as a pure function of what was observed.
//!
//! A scheduled run makes one backup per gateway per date: when a *verified* scheduled backup of
//! that date is recorded, it does nothing (EventBridge delivers at least once); an object without a
//! record does not count (whoever wrote it) and is named in the report. A manual run always makes a
//! new one. The month's first verified backup is also copied under `monthly/`.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::history::History;
use openclaw_ops_shared::backup::layout::{self, BackupKeys};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gateway {
    pub instance_id: String,
    /// The Name tag, else the instance id: for people (it is in the file names).
    pub name: String,
    /// What the backups are filed under: the data volume's id, else the instance id.
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    Schedule,
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub gateway: Gateway,
    pub archive_key: String,
    pub manifest_key: String,
    /// Where the month's copy goes once this backup verified; none when the month has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_archive_key: Option<String>,
    /// The objects are there already, unrecorded: an earlier attempt at this same event (Lambda's
    /// retry after a run that had to stop) uploaded them. They are read back and recorded if they
    /// verify, and nothing is sent to the instance again (its URLs could not write them twice).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub landed: bool,
}

/// An object under a gateway's prefixes that no verified record vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unverified {
    pub gateway: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlreadyDone {
    pub gateway: String,
    pub archive_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub date: NaiveDate,
    pub trigger: Trigger,
    pub backups: Vec<Job>,
    pub already_done: Vec<AlreadyDone>,
    pub unverified: Vec<Unverified>,
}

/// `histories`: each gateway's backups by its id (a gateway missing there has none).
pub fn plan(
    gateways: &[Gateway],
    histories: &HashMap<String, History>,
    trigger: Trigger,
    prefix: &str,
    now: DateTime<Utc>,
) -> Plan {
    let date = now.date_naive();
    let mut out = Plan { date, trigger, backups: Vec::new(), already_done: Vec::new(), unverified: Vec::new() };
    let mut gateways: Vec<&Gateway> = gateways.iter().collect();
    gateways.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let none = History::default();
    for gateway in gateways {
        let history = histories.get(&gateway.id).unwrap_or(&none);
        out.unverified.extend(
            history.unverified.iter().map(|key| Unverified { gateway: gateway.name.clone(), key: key.clone() }),
        );
        if trigger == Trigger::Schedule
            && let Some(done) = history.scheduled_on(date)
        {
            let archive_key = layout::archive_for(&done.manifest_key).unwrap_or_default();
            out.already_done.push(AlreadyDone { gateway: gateway.name.clone(), archive_key });
            continue;
        }
        let keys = layout::daily(prefix, &gateway.id, &gateway.name, now);
        let monthly_archive_key = if history.has_monthly_for(date) {
            None
        } else {
            layout::monthly_copy(prefix, &gateway.id, &keys).map(|m| m.archive)
        };
        let landed = history.unverified.contains(&keys.manifest);
        let BackupKeys { archive, manifest } = keys;
        out.backups.push(Job {
            gateway: gateway.clone(),
            archive_key: archive,
            manifest_key: manifest,
            monthly_archive_key,
            landed,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use openclaw_ops_shared::backup::layout::Kind;

    use super::*;

    fn gw(id: &str, name: &str) -> Gateway {
        Gateway { instance_id: format!("i-{id}"), name: name.into(), id: format!("vol-{id}") }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-25T02:30:00Z".parse().unwrap()
    }

    fn recorded(id: &str, at: &str, kind: Kind) -> Vec<String> {
        let keys = layout::daily("openclaw/", id, "x", at.parse().unwrap());
        let record = layout::record_for(&keys.manifest, kind).unwrap();
        vec![keys.archive, keys.manifest, record]
    }

    #[test]
    fn a_scheduled_run_backs_up_each_gateway_without_a_verified_backup_today() {
        let histories = HashMap::from([
            ("vol-2".to_owned(), History::from_keys(&recorded("vol-2", "2026-11-25T02:30:00Z", Kind::Schedule))),
            ("vol-1".to_owned(), History::from_keys(&recorded("vol-1", "2026-11-25T01:00:00Z", Kind::Manual))),
        ]);
        let p = plan(&[gw("2", "b"), gw("1", "a")], &histories, Trigger::Schedule, "openclaw/", now());
        assert_eq!(p.backups.len(), 1);
        assert_eq!(p.backups[0].gateway.name, "a", "a manual backup is not the day's scheduled one");
        assert_eq!(p.backups[0].archive_key, "openclaw/daily/vol-1/2026/11/25/a-20261125T023000Z.tar.gz");
        assert_eq!(
            p.backups[0].monthly_archive_key.as_deref(),
            Some("openclaw/monthly/vol-1/2026/11/a-20261125T023000Z.tar.gz")
        );
        assert_eq!(
            p.already_done,
            [AlreadyDone {
                gateway: "b".into(),
                archive_key: "openclaw/daily/vol-2/2026/11/25/x-20261125T023000Z.tar.gz".into()
            }]
        );
    }

    #[test]
    fn gateways_with_one_name_get_their_own_keys() {
        let p = plan(&[gw("1", "my gw"), gw("2", "my/gw")], &HashMap::new(), Trigger::Manual, "openclaw/", now());
        assert_eq!(p.backups.len(), 2);
        assert_ne!(p.backups[0].archive_key, p.backups[1].archive_key);
    }

    #[test]
    fn planted_objects_are_ignored_and_named() {
        let planted = layout::daily("openclaw/", "vol-1", "a", now());
        let mut keys = vec![planted.archive.clone(), planted.manifest.clone()];
        let monthly = layout::monthly_copy("openclaw/", "vol-1", &planted).unwrap();
        keys.push(monthly.archive.clone());
        let histories = HashMap::from([("vol-1".to_owned(), History::from_keys(&keys))]);
        let p = plan(&[gw("1", "a")], &histories, Trigger::Schedule, "openclaw/", now());
        assert_eq!(p.backups.len(), 1, "an unrecorded backup of today does not count");
        assert!(p.backups[0].monthly_archive_key.is_some(), "nor does an unrecorded monthly copy");
        assert!(p.backups[0].landed, "the run's own keys are there: an earlier attempt's upload, to verify");
        assert_eq!(p.unverified.len(), 3);
        assert!(p.unverified.iter().all(|u| u.gateway == "a"));
    }

    #[test]
    fn a_month_with_its_copy_gets_no_other() {
        let daily = layout::daily("openclaw/", "vol-1", "a", "2026-11-02T02:30:00Z".parse().unwrap());
        let monthly = layout::monthly_copy("openclaw/", "vol-1", &daily).unwrap();
        let keys = vec![
            monthly.archive,
            monthly.manifest.clone(),
            layout::record_for(&monthly.manifest, Kind::Monthly).unwrap(),
        ];
        let histories = HashMap::from([("vol-1".to_owned(), History::from_keys(&keys))]);
        let p = plan(&[gw("1", "a")], &histories, Trigger::Manual, "openclaw/", now());
        assert_eq!(p.backups[0].monthly_archive_key, None);
    }

    #[test]
    fn no_gateway_no_backup() {
        let p = plan(&[], &HashMap::new(), Trigger::Schedule, "openclaw/", now());
        assert!(p.backups.is_empty() && p.already_done.is_empty());
    }
}
