//! Where backups go, read once from the environment by every function that makes or reads one
//! (docs/ARCHITECTURE.md, "Configuration").

use crate::config::{self, Env};
use crate::error::Error;

/// A monthly copy is kept a year (the template's `monthly/` lifecycle rule).
pub const MONTHLY_RETENTION_DAYS: u32 = 365;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub bucket: String,
    /// Never empty, ends with `/`: the lifecycle rules match `<prefix>daily/` and `<prefix>monthly/`.
    pub prefix: String,
    pub kms_key_id: Option<String>,
    /// `BACKUP_OBJECT_LOCK`: `governance` (default), `compliance`, or `off`.
    pub lock_mode: Option<LockMode>,
    pub daily_retention_days: u32,
    pub state_dir: String,
}

/// Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Nobody without `s3:BypassGovernanceRetention` (no role of the stack) deletes or overwrites
    /// a locked version before its date; an administrator holding it can.
    Governance,
    /// Nobody, the account's root included, until the date.
    Compliance,
}

impl LockMode {
    /// `governance`, `compliance` or `off` (`None`).
    pub fn parse(text: &str) -> Result<Option<LockMode>, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "governance" => Ok(Some(LockMode::Governance)),
            "compliance" => Ok(Some(LockMode::Compliance)),
            "off" => Ok(None),
            other => Err(format!("{other:?} is not governance, compliance or off")),
        }
    }
}

/// The state directory on the gateway's instance: one level below the data volume's mount point,
/// so a restore lands beside it on the same filesystem.
pub const DEFAULT_STATE_DIR: &str = "/home/openclaw/data/openclaw";

impl Settings {
    /// `None` when `BACKUP_BUCKET` is unset (spot-recovery without backups).
    pub fn from_env(env: &impl Env) -> Result<Option<Settings>, Error> {
        let Some(bucket) = config::optional(env, "BACKUP_BUCKET") else { return Ok(None) };
        Ok(Some(Settings {
            bucket,
            prefix: prefix(env)?,
            kms_key_id: config::optional(env, "BACKUP_KMS_KEY_ID"),
            lock_mode: LockMode::parse(&config::optional(env, "BACKUP_OBJECT_LOCK").unwrap_or("governance".into()))
                .map_err(|e| Error::Config(format!("BACKUP_OBJECT_LOCK: {e}")))?,
            daily_retention_days: config::parsed(env, "BACKUP_DAILY_RETENTION_DAYS", 30)?,
            state_dir: config::optional(env, "STATE_DIR").unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
        }))
    }
}

/// `BACKUP_PREFIX`: `openclaw/` when unset; a prefix given without its `/` gets one. Set but blank
/// is refused, as the template's pattern refuses it: the lifecycle rules and the grants are written
/// for `<prefix>daily/` and `<prefix>monthly/`, and a blank one would quietly mean another prefix here.
fn prefix(env: &impl Env) -> Result<String, Error> {
    if env.get("BACKUP_PREFIX").is_some_and(|v| v.trim().is_empty()) {
        return Err(Error::Config(
            "BACKUP_PREFIX is blank; leave it unset for openclaw/, or give a prefix like openclaw/".into(),
        ));
    }
    let mut prefix = config::optional(env, "BACKUP_PREFIX").unwrap_or_else(|| "openclaw/".into());
    if prefix.starts_with('/') || prefix.split('/').any(|part| part == ".." || part == ".") {
        return Err(Error::Config(format!("BACKUP_PREFIX: {prefix:?} is not a key prefix like openclaw/")));
    }
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    #[test]
    fn defaults() {
        let s = Settings::from_env(&MapEnv::new(&[("BACKUP_BUCKET", "b")])).unwrap().unwrap();
        assert_eq!(s.prefix, "openclaw/");
        assert_eq!(s.lock_mode, Some(LockMode::Governance));
        assert_eq!(s.daily_retention_days, 30);
        assert_eq!(s.state_dir, DEFAULT_STATE_DIR);
        assert_eq!(Settings::from_env(&MapEnv::new(&[])).unwrap(), None);
    }

    #[test]
    fn prefixes_and_lock_modes() {
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![("BACKUP_BUCKET", "b")];
            all.extend_from_slice(pairs);
            Settings::from_env(&MapEnv::new(&all))
        };
        assert_eq!(with(&[("BACKUP_PREFIX", "x")]).unwrap().unwrap().prefix, "x/");
        for bad in ["", " ", "/abs/", "a/../b/"] {
            assert!(with(&[("BACKUP_PREFIX", bad)]).unwrap_err().to_string().contains("BACKUP_PREFIX"), "{bad}");
        }
        assert_eq!(
            with(&[("BACKUP_OBJECT_LOCK", "COMPLIANCE")]).unwrap().unwrap().lock_mode,
            Some(LockMode::Compliance)
        );
        assert_eq!(with(&[("BACKUP_OBJECT_LOCK", "off")]).unwrap().unwrap().lock_mode, None);
        assert!(with(&[("BACKUP_OBJECT_LOCK", "forever")]).unwrap_err().to_string().contains("BACKUP_OBJECT_LOCK"));
    }
}
