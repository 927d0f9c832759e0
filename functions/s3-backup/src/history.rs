//! A gateway's backups as the bucket lists them, read through the verified records only (pure).
//!
//! "Latest", "already backed up today", the month's copy and the freshness metric come from the
//! records a function wrote after reading a backup back (`layout::record_for`); the time of each is
//! the stamp the function put in the key. Anything else under the gateway's prefixes (a backup that
//! never verified, or an object someone planted) is ignored and named in the report.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use openclaw_ops_shared::backup::layout::{self, Kind};
use serde::Serialize;

/// One verified backup, by its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub record_key: String,
    pub manifest_key: String,
    pub kind: Kind,
    pub made_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct History {
    /// Newest first; a daily backup before its monthly copy.
    pub verified: Vec<Verified>,
    /// Keys under the gateway's prefixes that no record vouches for.
    pub unverified: Vec<String>,
}

impl History {
    /// From every key listed under the gateway's `daily/<id>/` and `monthly/<id>/`.
    pub fn from_keys(keys: &[String]) -> History {
        let mut verified: Vec<Verified> = keys
            .iter()
            .filter_map(|key| {
                let (manifest_key, kind) = layout::parse_record(key)?;
                let made_at = layout::made_at(key)?;
                // A record vouches only for a backup that is still there.
                keys.contains(&manifest_key).then(|| Verified { record_key: key.clone(), manifest_key, kind, made_at })
            })
            .collect();
        verified.sort_by(|a, b| {
            b.made_at
                .cmp(&a.made_at)
                .then((a.kind == Kind::Monthly).cmp(&(b.kind == Kind::Monthly)))
                .then(a.record_key.cmp(&b.record_key))
        });
        let vouched: BTreeSet<&str> = verified.iter().map(|v| v.manifest_key.as_str()).collect();
        let records: BTreeSet<&str> = verified.iter().map(|v| v.record_key.as_str()).collect();
        let mut unverified: Vec<String> = keys
            .iter()
            .filter(|key| !records.contains(key.as_str()))
            .filter(|key| layout::manifest_for(key).is_none_or(|m| !vouched.contains(m.as_str())))
            .cloned()
            .collect();
        unverified.sort();
        History { verified, unverified }
    }

    /// The scheduled backup of this date, if one verified.
    pub fn scheduled_on(&self, day: NaiveDate) -> Option<&Verified> {
        self.verified.iter().find(|v| v.kind == Kind::Schedule && v.made_at.date_naive() == day)
    }

    /// Whether this month already has its verified monthly copy.
    pub fn has_monthly_for(&self, day: NaiveDate) -> bool {
        let month = day.format("%Y-%m").to_string();
        self.verified.iter().any(|v| v.kind == Kind::Monthly && v.made_at.format("%Y-%m").to_string() == month)
    }

    /// The newest verified backup.
    pub fn newest(&self) -> Option<&Verified> {
        self.verified.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// A backup's archive and manifest, and its record when `kind` is given.
    fn backup(day: &str, time: &str, kind: Option<Kind>) -> Vec<String> {
        let keys = layout::daily("p/", "vol-1", "gw", at(&format!("{day}T{time}Z")));
        let mut out = vec![keys.archive, keys.manifest.clone()];
        out.extend(kind.and_then(|k| layout::record_for(&keys.manifest, k)));
        out
    }

    #[test]
    fn only_recorded_backups_count_and_the_rest_is_named() {
        let mut keys = backup("2026-11-24", "02:30:00", Some(Kind::Schedule));
        keys.extend(backup("2026-11-25", "02:30:00", None));
        keys.extend(backup("2099-01-01", "00:00:00", None));
        keys.push("p/daily/vol-1/2026/11/25/notes.txt".into());
        let h = History::from_keys(&keys);
        assert_eq!(h.verified.len(), 1);
        assert_eq!(h.newest().unwrap().made_at, at("2026-11-24T02:30:00Z"));
        assert_eq!(h.unverified.len(), 5, "{:?}", h.unverified);
        assert!(h.unverified.iter().any(|k| k.contains("2099")));
        assert!(h.scheduled_on(at("2026-11-25T00:00:00Z").date_naive()).is_none());
        assert!(h.scheduled_on(at("2026-11-24T00:00:00Z").date_naive()).is_some());
    }

    #[test]
    fn a_record_without_its_backup_vouches_for_nothing() {
        let keys = backup("2026-11-24", "02:30:00", Some(Kind::Schedule));
        let h = History::from_keys(&[keys[2].clone()]);
        assert!(h.verified.is_empty());
        assert_eq!(h.unverified, [keys[2].clone()]);
    }

    #[test]
    fn a_manual_backup_is_not_the_days_scheduled_one_and_newest_comes_first() {
        let mut keys = backup("2026-11-25", "09:00:00", Some(Kind::Manual));
        keys.extend(backup("2026-11-25", "02:30:00", Some(Kind::Schedule)));
        let daily = layout::daily("p/", "vol-1", "gw", at("2026-11-25T02:30:00Z"));
        let monthly = layout::monthly_copy("p/", "vol-1", &daily).unwrap();
        keys.extend([
            monthly.archive,
            monthly.manifest.clone(),
            layout::record_for(&monthly.manifest, Kind::Monthly).unwrap(),
        ]);
        let h = History::from_keys(&keys);
        let kinds: Vec<Kind> = h.verified.iter().map(|v| v.kind).collect();
        assert_eq!(kinds, [Kind::Manual, Kind::Schedule, Kind::Monthly]);
        let day = at("2026-11-25T00:00:00Z").date_naive();
        assert_eq!(h.scheduled_on(day).unwrap().made_at, at("2026-11-25T02:30:00Z"));
        assert!(h.has_monthly_for(day));
        assert!(!h.has_monthly_for(at("2026-12-01T00:00:00Z").date_naive()));
        assert!(h.unverified.is_empty());
    }
}
