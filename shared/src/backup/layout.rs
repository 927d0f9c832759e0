//! Where backups live (docs/ARCHITECTURE.md, "S3 layout contract"): lifecycle rules match the
//! `daily/` and `monthly/` prefixes, and `<gateway>` is the instance's Name tag so history survives a
//! replacement.

use chrono::{DateTime, Utc};

/// The archive's key and its manifest's key beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupKeys {
    pub archive: String,
    pub manifest: String,
}

/// `BACKUP_PREFIX daily/<gateway>/YYYY/MM/DD/openclaw-<YYYYMMDDTHHMMSSZ>.tar.gz`
pub fn daily(prefix: &str, gateway: &str, at: DateTime<Utc>) -> BackupKeys {
    let dir = format!("{prefix}daily/{}/{}", path_safe(gateway), at.format("%Y/%m/%d"));
    let stem = format!("openclaw-{}", at.format("%Y%m%dT%H%M%SZ"));
    BackupKeys { archive: format!("{dir}/{stem}.tar.gz"), manifest: format!("{dir}/{stem}.manifest.json") }
}

/// Where a gateway's daily and monthly backups are: the prefixes a restore searches.
pub fn history(prefix: &str, gateway: &str) -> [String; 2] {
    let gateway = path_safe(gateway);
    [format!("{prefix}daily/{gateway}/"), format!("{prefix}monthly/{gateway}/")]
}

const ARCHIVE: &str = ".tar.gz";
const MANIFEST: &str = ".manifest.json";

/// The archive beside a manifest. A monthly copy's manifest still names the daily archive it was
/// copied from (which expires first), so the archive is always found beside the manifest instead.
pub fn archive_for(manifest_key: &str) -> Option<String> {
    manifest_key.strip_suffix(MANIFEST).map(|stem| format!("{stem}{ARCHIVE}"))
}

/// The manifest beside an archive, or the manifest itself.
pub fn manifest_for(key: &str) -> Option<String> {
    if key.ends_with(MANIFEST) {
        return Some(key.to_owned());
    }
    key.strip_suffix(ARCHIVE).map(|stem| format!("{stem}{MANIFEST}"))
}

/// When a backup was made, from its key (`openclaw-<YYYYMMDDTHHMMSSZ>`): sorts newest-first.
pub fn made_at(key: &str) -> Option<DateTime<Utc>> {
    let file = key.rsplit('/').next()?;
    let stamp = file.strip_prefix("openclaw-")?.get(..16)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok().map(|t| t.and_utc())
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

    #[test]
    fn daily_keys_follow_the_documented_layout() {
        let at = "2026-11-25T02:30:07Z".parse().unwrap();
        let keys = daily("openclaw/", "openclaw-gateway", at);
        assert_eq!(keys.archive, "openclaw/daily/openclaw-gateway/2026/11/25/openclaw-20261125T023007Z.tar.gz");
        assert_eq!(keys.manifest, "openclaw/daily/openclaw-gateway/2026/11/25/openclaw-20261125T023007Z.manifest.json");
    }

    #[test]
    fn archives_and_manifests_sit_side_by_side() {
        let keys = daily("p/", "gw", "2026-11-25T02:30:07Z".parse().unwrap());
        assert_eq!(archive_for(&keys.manifest).unwrap(), keys.archive);
        assert_eq!(manifest_for(&keys.archive).unwrap(), keys.manifest);
        assert_eq!(manifest_for(&keys.manifest).unwrap(), keys.manifest);
        assert_eq!(archive_for(&keys.archive), None);
        assert_eq!(manifest_for("p/daily/gw/notes.txt"), None);
        assert_eq!(made_at(&keys.archive), Some("2026-11-25T02:30:07Z".parse().unwrap()));
        assert_eq!(made_at("p/daily/gw/2026/11/25/other.tar.gz"), None);
        assert_eq!(history("p/", "my gw"), ["p/daily/my-gw/".to_owned(), "p/monthly/my-gw/".to_owned()]);
    }

    #[test]
    fn gateway_names_are_made_safe_for_keys() {
        assert_eq!(path_safe("my gateway/../x"), "my-gateway-..-x");
        assert_eq!(path_safe("///"), "gateway");
        assert_eq!(path_safe("i-0123456789abcdef0"), "i-0123456789abcdef0");
    }
}
