//! s3-backup's configuration (docs/ARCHITECTURE.md, "Configuration").

use std::time::Duration;

use openclaw_ops_shared::Error;
use openclaw_ops_shared::config::{self, Env};
use openclaw_ops_shared::tags::TagFilter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub topic_arn: String,
    pub gateway_tag: TagFilter,
    pub bucket: String,
    /// Ends with `/` (or is empty).
    pub prefix: String,
    pub state_dir: String,
    pub kms_key_id: Option<String>,
    /// The template's lifecycle for `daily/` (stack parameter), what the drift check expects.
    pub daily_retention_days: i32,
    pub command_timeout: Duration,
    pub dry_run: bool,
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, Error> {
        let mut prefix = config::optional(env, "BACKUP_PREFIX").unwrap_or_else(|| "openclaw/".into());
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Config {
            topic_arn: config::required(env, "NOTIFY_TOPIC_ARN")?,
            gateway_tag: config::tag_filter(env, "GATEWAY_TAG", "openclaw:role=gateway")?,
            bucket: config::required(env, "BACKUP_BUCKET")?,
            prefix,
            state_dir: config::optional(env, "STATE_DIR").unwrap_or_else(|| "/home/openclaw/data/openclaw".into()),
            kms_key_id: config::optional(env, "BACKUP_KMS_KEY_ID"),
            daily_retention_days: config::parsed(env, "BACKUP_DAILY_RETENTION_DAYS", 30)?,
            command_timeout: Duration::from_secs(config::parsed(env, "BACKUP_COMMAND_TIMEOUT", 600)?),
            dry_run: config::flag(env, "DRY_RUN", false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use openclaw_ops_shared::config::MapEnv;

    use super::*;

    #[test]
    fn defaults_and_required_values() {
        let c = Config::from_env(&MapEnv::new(&[
            ("NOTIFY_TOPIC_ARN", "t"),
            ("BACKUP_BUCKET", "b"),
            ("BACKUP_PREFIX", "x"),
        ]))
        .unwrap();
        assert_eq!(c.prefix, "x/");
        assert_eq!(c.gateway_tag.to_string(), "openclaw:role=gateway");
        assert_eq!(c.state_dir, "/home/openclaw/data/openclaw");
        assert_eq!(c.daily_retention_days, 30);
        assert!(
            Config::from_env(&MapEnv::new(&[("NOTIFY_TOPIC_ARN", "t")]))
                .unwrap_err()
                .to_string()
                .contains("BACKUP_BUCKET")
        );
    }
}
