//! Where backups live (ARCHITECTURE.md, "Backup objects"): lifecycle rules match the `daily/` and
//! `monthly/` prefixes, and `<gateway>` is the instance's Name tag so history survives a replacement.

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
    fn gateway_names_are_made_safe_for_keys() {
        assert_eq!(path_safe("my gateway/../x"), "my-gateway-..-x");
        assert_eq!(path_safe("///"), "gateway");
        assert_eq!(path_safe("i-0123456789abcdef0"), "i-0123456789abcdef0");
    }
}
