//! Where backups live (docs/ARCHITECTURE.md, "S3 layout contract").
//!
//! ```text
//! PREFIX daily/<gateway-id>/YYYY/MM/DD/<name>-<YYYYMMDDTHHMMSSZ>.tar.gz
//! PREFIX daily/<gateway-id>/YYYY/MM/DD/<name>-<YYYYMMDDTHHMMSSZ>.manifest.json
//! PREFIX daily/<gateway-id>/YYYY/MM/DD/<name>-<YYYYMMDDTHHMMSSZ>.verified-<trigger>.json
//! PREFIX monthly/<gateway-id>/YYYY/MM/<name>-<YYYYMMDDTHHMMSSZ>.{tar.gz,manifest.json,verified-monthly.json}
//! ```
//!
//! `<gateway-id>` is the gateway's data volume id (it follows the gateway across replaced instances;
//! the instance id where there is no data volume), so two gateways never share a folder whatever
//! their Name tags; `<name>` is the Name tag made path-safe, for people. The `verified-*` record is
//! written by a function after it read the backup back, and only the function writes it: the instance
//! uploads through pre-signed URLs for exactly the archive and the manifest of its run. Lifecycle
//! rules match the `daily/` and `monthly/` prefixes, records included.

use chrono::{DateTime, Utc};

/// The archive's key and its manifest's key beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupKeys {
    pub archive: String,
    pub manifest: String,
}

const ARCHIVE: &str = ".tar.gz";
const MANIFEST: &str = ".manifest.json";
const RECORD: &str = ".verified-";
const STAMP: &str = "%Y%m%dT%H%M%SZ";

/// What a verified record says of its backup by its name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The daily schedule's backup.
    Schedule,
    /// Asked for by a person.
    Manual,
    /// spot-recovery's last-minute backup.
    SpotWarning,
    /// The month's first, copied under `monthly/`.
    Monthly,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Schedule => "schedule",
            Kind::Manual => "manual",
            Kind::SpotWarning => "spot-warning",
            Kind::Monthly => "monthly",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        [Kind::Schedule, Kind::Manual, Kind::SpotWarning, Kind::Monthly].into_iter().find(|k| k.as_str() == text)
    }
}

/// `PREFIX daily/<gateway-id>/YYYY/MM/DD/<name>-<stamp>.{tar.gz,manifest.json}`
pub fn daily(prefix: &str, gateway_id: &str, name: &str, at: DateTime<Utc>) -> BackupKeys {
    let dir = format!("{}{}", daily_root(prefix, gateway_id), at.format("%Y/%m/%d"));
    keys(&format!("{dir}/{}-{}", path_safe(name), at.format(STAMP)))
}

/// Where the month's copy of a daily backup goes: same file name, under `monthly/<gateway-id>/YYYY/MM/`.
pub fn monthly_copy(prefix: &str, gateway_id: &str, daily: &BackupKeys) -> Option<BackupKeys> {
    let stem = daily.manifest.strip_suffix(MANIFEST)?;
    let file = stem.rsplit('/').next()?;
    let at = made_at(&daily.manifest)?;
    Some(keys(&format!("{}{}/{file}", monthly_root(prefix, gateway_id), at.format("%Y/%m"))))
}

fn keys(stem: &str) -> BackupKeys {
    BackupKeys { archive: format!("{stem}{ARCHIVE}"), manifest: format!("{stem}{MANIFEST}") }
}

/// `PREFIX daily/<gateway-id>/`: a gateway's daily history (backups and their records).
pub fn daily_root(prefix: &str, gateway_id: &str) -> String {
    format!("{prefix}daily/{}/", path_safe(gateway_id))
}

/// `PREFIX monthly/<gateway-id>/`.
pub fn monthly_root(prefix: &str, gateway_id: &str) -> String {
    format!("{prefix}monthly/{}/", path_safe(gateway_id))
}

/// The record a function writes beside a manifest it verified.
pub fn record_for(manifest_key: &str, kind: Kind) -> Option<String> {
    manifest_key.strip_suffix(MANIFEST).map(|stem| format!("{stem}{RECORD}{}.json", kind.as_str()))
}

/// A record's manifest and kind; `None` for any key that is not a record.
pub fn parse_record(key: &str) -> Option<(String, Kind)> {
    let (stem, rest) = key.rsplit_once(RECORD)?;
    let kind = Kind::parse(rest.strip_suffix(".json")?)?;
    Some((format!("{stem}{MANIFEST}"), kind))
}

/// The archive beside a manifest. A monthly copy's manifest still names the daily archive it was
/// copied from (which expires first), so the archive is always found beside the manifest instead.
pub fn archive_for(manifest_key: &str) -> Option<String> {
    manifest_key.strip_suffix(MANIFEST).map(|stem| format!("{stem}{ARCHIVE}"))
}

/// The manifest of a backup's archive, manifest or record key.
pub fn manifest_for(key: &str) -> Option<String> {
    if key.ends_with(MANIFEST) {
        return Some(key.to_owned());
    }
    if let Some((manifest, _)) = parse_record(key) {
        return Some(manifest);
    }
    key.strip_suffix(ARCHIVE).map(|stem| format!("{stem}{MANIFEST}"))
}

/// When a backup was made, from the stamp that ends its file's stem (`…-<YYYYMMDDTHHMMSSZ>`). For a
/// record this is the time the function planned the backup: records are written by the function only.
pub fn made_at(key: &str) -> Option<DateTime<Utc>> {
    let manifest = manifest_for(key)?;
    let stem = manifest.strip_suffix(MANIFEST)?;
    let stamp = stem.get(stem.len().checked_sub(16)?..)?;
    if stem.len() > 16 && !stem[..stem.len() - 16].ends_with('-') {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(stamp, STAMP).ok().map(|t| t.and_utc())
}

/// A Name tag may hold anything; keys get letters, digits and `-_.` only.
pub fn path_safe(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' }).collect();
    let trimmed = cleaned.trim_matches(|c| c == '-' || c == '.');
    if trimmed.is_empty() { "gateway".to_owned() } else { trimmed.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-11-25T02:30:07Z".parse().unwrap()
    }

    #[test]
    fn daily_keys_follow_the_documented_layout() {
        let keys = daily("openclaw/", "vol-0123", "openclaw-gateway", at());
        assert_eq!(keys.archive, "openclaw/daily/vol-0123/2026/11/25/openclaw-gateway-20261125T023007Z.tar.gz");
        assert_eq!(keys.manifest, "openclaw/daily/vol-0123/2026/11/25/openclaw-gateway-20261125T023007Z.manifest.json");
        let monthly = monthly_copy("openclaw/", "vol-0123", &keys).unwrap();
        assert_eq!(monthly.archive, "openclaw/monthly/vol-0123/2026/11/openclaw-gateway-20261125T023007Z.tar.gz");
        assert_eq!(daily_root("openclaw/", "vol-0123"), "openclaw/daily/vol-0123/");
        assert_eq!(monthly_root("openclaw/", "vol-0123"), "openclaw/monthly/vol-0123/");
    }

    #[test]
    fn names_that_collide_when_made_safe_stay_apart_by_their_id() {
        let a = daily("p/", "vol-a", "my gw", at());
        let b = daily("p/", "vol-b", "my/gw", at());
        let c = daily("p/", "vol-c", "my-gw", at());
        assert_ne!(a.archive, b.archive);
        assert_ne!(b.archive, c.archive);
        assert!(a.archive.ends_with("/my-gw-20261125T023007Z.tar.gz"));
    }

    #[test]
    fn archives_manifests_and_records_sit_side_by_side() {
        let keys = daily("p/", "vol-1", "gw", at());
        assert_eq!(archive_for(&keys.manifest).unwrap(), keys.archive);
        assert_eq!(manifest_for(&keys.archive).unwrap(), keys.manifest);
        assert_eq!(manifest_for(&keys.manifest).unwrap(), keys.manifest);
        assert_eq!(archive_for(&keys.archive), None);
        assert_eq!(manifest_for("p/daily/vol-1/notes.txt"), None);
        let record = record_for(&keys.manifest, Kind::Schedule).unwrap();
        assert_eq!(record, "p/daily/vol-1/2026/11/25/gw-20261125T023007Z.verified-schedule.json");
        assert_eq!(parse_record(&record), Some((keys.manifest.clone(), Kind::Schedule)));
        assert_eq!(manifest_for(&record).unwrap(), keys.manifest);
        assert_eq!(parse_record("p/daily/vol-1/2026/11/25/gw-20261125T023007Z.verified-forged.json"), None);
        assert_eq!(parse_record(&keys.manifest), None);
        for kind in [Kind::Schedule, Kind::Manual, Kind::SpotWarning, Kind::Monthly] {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn the_time_comes_from_the_stamp_at_the_end_of_the_name() {
        let keys = daily("p/", "vol-1", "gw-2026", at());
        assert_eq!(made_at(&keys.archive), Some(at()));
        assert_eq!(made_at(&record_for(&keys.manifest, Kind::Manual).unwrap()), Some(at()));
        assert_eq!(made_at("p/daily/vol-1/2026/11/25/other.tar.gz"), None);
        assert_eq!(made_at("p/daily/vol-1/2026/11/25/gw20261125T023007Z.tar.gz"), None);
    }

    #[test]
    fn gateway_names_are_made_safe_for_keys() {
        assert_eq!(path_safe("my gateway/../x"), "my-gateway-..-x");
        assert_eq!(path_safe("///"), "gateway");
        assert_eq!(path_safe("i-0123456789abcdef0"), "i-0123456789abcdef0");
    }
}
