//! spot-recovery's configuration (docs/ARCHITECTURE.md, "Configuration").

use std::time::Duration;

use openclaw_ops_shared::Error;
use openclaw_ops_shared::config::{self, Env};
use openclaw_ops_shared::tags::TagFilter;
use serde::Serialize;

/// What follows the gateway to its replacement: the budget tier's Elastic IP or the full tier's ALB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Address {
    ElasticIp { allocation_id: String },
    TargetGroup { arn: String },
    None,
}

/// Where the last-minute backup goes (the same bucket, layout and records as s3-backup).
pub use openclaw_ops_shared::backup::settings::Settings as BackupTarget;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub topic_arn: String,
    pub gateway_tag: TagFilter,
    /// Given to a volume restored from a snapshot, so ebs-snapshots keeps protecting it.
    pub snapshot_tag: TagFilter,
    pub launch_template_id: Option<String>,
    pub launch_template_version: String,
    pub subnet_ids: Vec<String>,
    pub address: Address,
    pub replace_on_stop: bool,
    pub early_replace: bool,
    /// Where the data volume is attached when no attachment or snapshot says otherwise.
    pub data_device: String,
    /// The gateway's CloudWatch alarms are those whose names start with this; none when unset.
    pub alarm_name_prefix: Option<String>,
    pub backup: Option<BackupTarget>,
    /// How long the replacement's target may take to become healthy before the run reports it.
    pub health_timeout: Duration,
    /// The follow-up check after a takeover; `None` without `FOLLOW_UP_SCHEDULE_GROUP`.
    pub follow_up: Option<FollowUpSettings>,
    pub dry_run: bool,
}

/// Where and how often the follow-up check runs (EventBridge Scheduler one-shot schedules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpSettings {
    pub schedule_group: String,
    /// The role Scheduler assumes to invoke the function.
    pub role_arn: String,
    pub interval: Duration,
    /// Counted from the takeover: a replacement not seen serving by then is escalated.
    pub give_up_after: Duration,
}

impl FollowUpSettings {
    fn from_env(env: &impl Env) -> Result<Option<Self>, Error> {
        let (group, role) =
            (config::optional(env, "FOLLOW_UP_SCHEDULE_GROUP"), config::optional(env, "FOLLOW_UP_ROLE_ARN"));
        let (schedule_group, role_arn) = match (group, role) {
            (None, None) => return Ok(None),
            (Some(g), Some(r)) => (g, r),
            _ => {
                return Err(Error::Config(
                    "FOLLOW_UP_SCHEDULE_GROUP and FOLLOW_UP_ROLE_ARN go together: the schedule needs a role to invoke \
                     the function"
                        .into(),
                ));
            }
        };
        if !role_arn.starts_with("arn:") || !role_arn.contains(":role/") {
            return Err(Error::Config(format!("FOLLOW_UP_ROLE_ARN={role_arn:?}: expected an IAM role ARN")));
        }
        let interval = Duration::from_secs(config::parsed(env, "FOLLOW_UP_INTERVAL_SECONDS", 300)?);
        let give_up_after = Duration::from_secs(config::parsed(env, "FOLLOW_UP_GIVE_UP_SECONDS", 1800)?);
        // Scheduler runs a one-shot schedule within about a minute of its time: a shorter interval
        // would only pile schedules up.
        if interval < Duration::from_secs(60) {
            return Err(Error::Config("FOLLOW_UP_INTERVAL_SECONDS: at least 60".into()));
        }
        if give_up_after < interval {
            return Err(Error::Config(
                "FOLLOW_UP_GIVE_UP_SECONDS is shorter than FOLLOW_UP_INTERVAL_SECONDS: there would be no check".into(),
            ));
        }
        Ok(Some(FollowUpSettings { schedule_group, role_arn, interval, give_up_after }))
    }
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, Error> {
        let address =
            match (config::optional(env, "ELASTIC_IP_ALLOCATION_ID"), config::optional(env, "TARGET_GROUP_ARN")) {
                (Some(_), Some(_)) => {
                    return Err(Error::Config(
                        "ELASTIC_IP_ALLOCATION_ID and TARGET_GROUP_ARN are both set; the gateway has one address: the \
                     Elastic IP (budget tier) or the load balancer's target group (full tier)"
                            .into(),
                    ));
                }
                (Some(allocation_id), None) => {
                    if !allocation_id.starts_with("eipalloc-") {
                        return Err(Error::Config(format!(
                            "ELASTIC_IP_ALLOCATION_ID={allocation_id:?}: expected an allocation id (eipalloc-...)"
                        )));
                    }
                    Address::ElasticIp { allocation_id }
                }
                (None, Some(arn)) => {
                    if !arn.starts_with("arn:") || !arn.contains(":targetgroup/") {
                        return Err(Error::Config(format!("TARGET_GROUP_ARN={arn:?}: expected a target group ARN")));
                    }
                    Address::TargetGroup { arn }
                }
                (None, None) => Address::None,
            };
        let subnet_ids: Vec<String> = config::optional(env, "SUBNET_IDS")
            .map(|raw| raw.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        if let Some(bad) = subnet_ids.iter().find(|s| !s.starts_with("subnet-")) {
            return Err(Error::Config(format!("SUBNET_IDS: {bad:?} is not a subnet id")));
        }
        let backup = BackupTarget::from_env(env)?;
        let data_device = config::optional(env, "DATA_DEVICE").unwrap_or_else(|| "/dev/sdf".into());
        if !data_device.starts_with("/dev/") && !data_device.starts_with("xvd") {
            return Err(Error::Config(format!("DATA_DEVICE={data_device:?}: expected a device name like /dev/sdf")));
        }
        Ok(Config {
            topic_arn: config::required(env, "NOTIFY_TOPIC_ARN")?,
            gateway_tag: config::tag_filter(env, "GATEWAY_TAG", "openclaw:role=gateway")?,
            snapshot_tag: config::tag_filter(env, "SNAPSHOT_TAG", "openclaw:snapshot=daily")?,
            launch_template_id: config::optional(env, "LAUNCH_TEMPLATE_ID"),
            launch_template_version: config::optional(env, "LAUNCH_TEMPLATE_VERSION")
                .unwrap_or_else(|| "$Default".into()),
            subnet_ids,
            address,
            replace_on_stop: config::flag(env, "REPLACE_ON_STOP", false)?,
            early_replace: config::flag(env, "EARLY_REPLACE", false)?,
            data_device,
            alarm_name_prefix: config::optional(env, "ALARM_NAME_PREFIX"),
            backup,
            health_timeout: Duration::from_secs(config::parsed(env, "HEALTH_TIMEOUT_SECONDS", 90)?),
            follow_up: FollowUpSettings::from_env(env)?,
            dry_run: config::flag(env, "DRY_RUN", false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use openclaw_ops_shared::config::MapEnv;

    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, Error> {
        let mut all = vec![("NOTIFY_TOPIC_ARN", "arn:aws:sns:us-east-1:1:ops")];
        all.extend_from_slice(pairs);
        Config::from_env(&MapEnv::new(&all))
    }

    #[test]
    fn defaults_follow_the_architecture() {
        let c = with(&[]).unwrap();
        assert_eq!(c.gateway_tag.to_string(), "openclaw:role=gateway");
        assert_eq!(c.launch_template_version, "$Default");
        assert_eq!(c.launch_template_id, None);
        assert_eq!(c.address, Address::None);
        assert!(!c.replace_on_stop && !c.early_replace && !c.dry_run);
        assert_eq!(c.data_device, "/dev/sdf");
        assert_eq!(c.backup, None);
        assert!(c.subnet_ids.is_empty());
        assert_eq!(c.follow_up, None);
    }

    #[test]
    fn the_follow_up_needs_its_group_and_role_together() {
        let c = with(&[
            ("FOLLOW_UP_SCHEDULE_GROUP", "openclaw-ops-spot"),
            ("FOLLOW_UP_ROLE_ARN", "arn:aws:iam::1:role/sched"),
        ])
        .unwrap();
        let f = c.follow_up.unwrap();
        assert_eq!((f.interval.as_secs(), f.give_up_after.as_secs()), (300, 1800));
        for pairs in [
            &[("FOLLOW_UP_SCHEDULE_GROUP", "g")][..],
            &[("FOLLOW_UP_ROLE_ARN", "arn:aws:iam::1:role/sched")][..],
            &[("FOLLOW_UP_SCHEDULE_GROUP", "g"), ("FOLLOW_UP_ROLE_ARN", "sched")][..],
            &[
                ("FOLLOW_UP_SCHEDULE_GROUP", "g"),
                ("FOLLOW_UP_ROLE_ARN", "arn:aws:iam::1:role/s"),
                ("FOLLOW_UP_INTERVAL_SECONDS", "10"),
            ][..],
            &[
                ("FOLLOW_UP_SCHEDULE_GROUP", "g"),
                ("FOLLOW_UP_ROLE_ARN", "arn:aws:iam::1:role/s"),
                ("FOLLOW_UP_GIVE_UP_SECONDS", "120"),
            ][..],
        ] {
            assert!(matches!(with(pairs), Err(Error::Config(_))), "{pairs:?}");
        }
    }

    #[test]
    fn values_are_read() {
        let c = with(&[
            ("LAUNCH_TEMPLATE_ID", "lt-1"),
            ("LAUNCH_TEMPLATE_VERSION", "3"),
            ("SUBNET_IDS", "subnet-a, subnet-b,"),
            ("TARGET_GROUP_ARN", "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/gw/abc"),
            ("REPLACE_ON_STOP", "true"),
            ("EARLY_REPLACE", "yes"),
            ("BACKUP_BUCKET", "b"),
            ("BACKUP_PREFIX", "p"),
            ("ALARM_NAME_PREFIX", "stack-gateway-"),
        ])
        .unwrap();
        assert_eq!(c.subnet_ids, ["subnet-a", "subnet-b"]);
        assert!(matches!(c.address, Address::TargetGroup { .. }));
        assert!(c.replace_on_stop && c.early_replace);
        assert_eq!(c.backup.unwrap().prefix, "p/");
        assert_eq!(c.alarm_name_prefix.as_deref(), Some("stack-gateway-"));
        let eip = with(&[("ELASTIC_IP_ALLOCATION_ID", "eipalloc-1")]).unwrap();
        assert_eq!(eip.address, Address::ElasticIp { allocation_id: "eipalloc-1".into() });
    }

    #[test]
    fn bad_values_are_named() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("ELASTIC_IP_ALLOCATION_ID", "eipalloc-1"), ("TARGET_GROUP_ARN", "arn:x:targetgroup/a")], "both set"),
            (&[("ELASTIC_IP_ALLOCATION_ID", "1.2.3.4")], "ELASTIC_IP_ALLOCATION_ID"),
            (&[("TARGET_GROUP_ARN", "gw")], "TARGET_GROUP_ARN"),
            (&[("SUBNET_IDS", "subnet-a,vpc-1")], "vpc-1"),
            (&[("REPLACE_ON_STOP", "sometimes")], "REPLACE_ON_STOP"),
            (&[("DATA_DEVICE", "sdf; reboot")], "DATA_DEVICE"),
        ];
        for (pairs, needle) in cases {
            let err = with(pairs).unwrap_err();
            assert!(matches!(err, Error::Config(_)));
            assert!(err.to_string().contains(needle), "{pairs:?}: {err}");
        }
        assert!(Config::from_env(&MapEnv::new(&[])).unwrap_err().to_string().contains("NOTIFY_TOPIC_ARN"));
    }
}
