//! Which gateways to back up now, as a pure function of what was observed.
//!
//! A scheduled run makes one backup per gateway per date: when a *verified* scheduled backup of
//! that date exists, it does nothing (EventBridge delivers at least once); a present but unverified
//! or corrupt one does not count and is replaced. A manual run always makes a new one.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::layout::{self, BackupKeys};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gateway {
    pub instance_id: String,
    /// The Name tag, else the instance id: what the backups are filed under.
    pub name: String,
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
}

/// `verified_today`: for each gateway name, the archive key of a verified scheduled backup of `now`'s
/// date, if there is one.
pub fn plan(
    gateways: &[Gateway],
    verified_today: &dyn Fn(&str) -> Option<String>,
    trigger: Trigger,
    prefix: &str,
    now: DateTime<Utc>,
) -> Plan {
    let mut out = Plan { date: now.date_naive(), trigger, backups: Vec::new(), already_done: Vec::new() };
    let mut gateways: Vec<&Gateway> = gateways.iter().collect();
    gateways.sort_by(|a, b| a.name.cmp(&b.name));
    for gateway in gateways {
        if trigger == Trigger::Schedule
            && let Some(archive_key) = verified_today(&gateway.name)
        {
            out.already_done.push(AlreadyDone { gateway: gateway.name.clone(), archive_key });
            continue;
        }
        let BackupKeys { archive, manifest } = layout::daily(prefix, &gateway.name, now);
        out.backups.push(Job { gateway: gateway.clone(), archive_key: archive, manifest_key: manifest });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(id: &str, name: &str) -> Gateway {
        Gateway { instance_id: id.into(), name: name.into() }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-25T02:30:00Z".parse().unwrap()
    }

    #[test]
    fn a_scheduled_run_backs_up_each_gateway_without_a_verified_backup_today() {
        let done = |name: &str| (name == "b").then(|| "openclaw/daily/b/2026/11/25/x.tar.gz".to_owned());
        let p = plan(&[gw("i-2", "b"), gw("i-1", "a")], &done, Trigger::Schedule, "openclaw/", now());
        assert_eq!(p.backups.len(), 1);
        assert_eq!(p.backups[0].gateway.name, "a");
        assert_eq!(p.backups[0].archive_key, "openclaw/daily/a/2026/11/25/openclaw-20261125T023000Z.tar.gz");
        assert_eq!(
            p.already_done,
            [AlreadyDone { gateway: "b".into(), archive_key: "openclaw/daily/b/2026/11/25/x.tar.gz".into() }]
        );
    }

    #[test]
    fn a_manual_run_always_makes_a_new_backup() {
        let done = |_: &str| Some("k".to_owned());
        let p = plan(&[gw("i-1", "a")], &done, Trigger::Manual, "openclaw/", now());
        assert_eq!(p.backups.len(), 1);
        assert!(p.already_done.is_empty());
    }

    #[test]
    fn no_gateway_no_backup() {
        let p = plan(&[], &|_| None, Trigger::Schedule, "openclaw/", now());
        assert!(p.backups.is_empty() && p.already_done.is_empty());
    }
}
