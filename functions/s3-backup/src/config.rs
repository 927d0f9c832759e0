//! s3-backup's configuration (docs/ARCHITECTURE.md, "Configuration").

use std::time::Duration;

use openclaw_ops_shared::Error;
use openclaw_ops_shared::backup::settings::Settings;
use openclaw_ops_shared::config::{self, Env};
use openclaw_ops_shared::tags::TagFilter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub topic_arn: String,
    pub gateway_tag: TagFilter,
    /// The bucket, prefix, key, Object Lock mode and retention, state directory.
    pub backup: Settings,
    pub command_timeout: Duration,
    pub dry_run: bool,
}

/// How long SSM may take to hand a command to the instance's agent.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, Error> {
        let backup = Settings::from_env(env)?.ok_or_else(|| Error::Config("BACKUP_BUCKET is required".into()))?;
        Ok(Config {
            topic_arn: config::required(env, "NOTIFY_TOPIC_ARN")?,
            gateway_tag: config::tag_filter(env, "GATEWAY_TAG", "openclaw:role=gateway")?,
            backup,
            command_timeout: Duration::from_secs(config::parsed(env, "BACKUP_COMMAND_TIMEOUT", 600)?),
            dry_run: config::flag(env, "DRY_RUN", false)?,
        })
    }

    /// What a pre-signed URL handed to the instance must cover: the command's delivery and
    /// execution, and no more.
    pub fn url_lifetime(&self) -> Duration {
        DELIVERY_TIMEOUT + self.command_timeout
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
        assert_eq!(c.backup.prefix, "x/");
        assert_eq!(c.gateway_tag.to_string(), "openclaw:role=gateway");
        assert_eq!(c.url_lifetime(), Duration::from_secs(660));
        assert_eq!(c.backup.state_dir, "/home/openclaw/data/openclaw");
        assert!(
            Config::from_env(&MapEnv::new(&[("NOTIFY_TOPIC_ARN", "t")]))
                .unwrap_err()
                .to_string()
                .contains("BACKUP_BUCKET")
        );
        let blank =
            Config::from_env(&MapEnv::new(&[("NOTIFY_TOPIC_ARN", "t"), ("BACKUP_BUCKET", "b"), ("BACKUP_PREFIX", "")]));
        assert!(blank.unwrap_err().to_string().contains("BACKUP_PREFIX is blank"));
    }
}
