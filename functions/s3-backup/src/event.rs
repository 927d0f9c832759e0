//! The daily schedule; a person asking for a backup (`{"action": "backup", "reason": "..."}`), e.g.
//! before updating OpenClaw; or a person asking for a restore
//! (`{"action": "restore", "gateway": "<Name tag or instance id>", "backup": "latest" | "<key>"}`).

use chrono::{DateTime, Utc};
use openclaw_ops_shared::Error;
use openclaw_ops_shared::invocation;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Schedule { time: DateTime<Utc> },
    Backup { reason: Option<String>, dry_run: bool },
    Restore { gateway: String, backup: Which, dry_run: bool },
}

/// Which backup to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// The newest one that verifies.
    Latest,
    /// This one (archive or manifest key).
    Key(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "action", rename_all = "lowercase")]
enum Manual {
    Backup {
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        dry_run: bool,
    },
    Restore {
        gateway: String,
        backup: String,
        #[serde(default)]
        dry_run: bool,
    },
}

const EXPECTED: &str = r#"expected {"action": "backup", "reason"?: "..."} or {"action": "restore", "gateway": "<Name tag or instance id>", "backup": "latest" | "<key>"}"#;

impl Event {
    pub fn parse(payload: Value) -> Result<Self, Error> {
        if !payload.is_object() {
            return Err(Error::Input("expected a JSON object".into()));
        }
        if payload.get("detail-type").is_some() {
            return Ok(Event::Schedule { time: invocation::scheduled(payload)?.time });
        }
        match serde_json::from_value::<Manual>(payload) {
            Ok(Manual::Backup { reason, dry_run }) => Ok(Event::Backup { reason, dry_run }),
            Ok(Manual::Restore { gateway, backup, dry_run }) => {
                let gateway = gateway.trim().to_owned();
                if gateway.is_empty() {
                    return Err(Error::Input(format!("`gateway` is empty; {EXPECTED}")));
                }
                let backup = match backup.trim() {
                    "" => return Err(Error::Input(format!("`backup` is empty; {EXPECTED}"))),
                    "latest" => Which::Latest,
                    key => Which::Key(key.to_owned()),
                };
                Ok(Event::Restore { gateway, backup, dry_run })
            }
            Err(e) => Err(Error::Input(format!("{e}; {EXPECTED}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn schedule_and_manual_requests() {
        let s = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-25T02:30:00Z", "detail": {}});
        assert!(matches!(Event::parse(s).unwrap(), Event::Schedule { .. }));
        let m = Event::parse(json!({"action": "backup", "reason": "before upgrade"})).unwrap();
        assert_eq!(m, Event::Backup { reason: Some("before upgrade".into()), dry_run: false });
        let r = Event::parse(json!({"action": "restore", "gateway": "openclaw-gateway", "backup": "latest"})).unwrap();
        assert_eq!(r, Event::Restore { gateway: "openclaw-gateway".into(), backup: Which::Latest, dry_run: false });
        let k = Event::parse(
            json!({"action": "restore", "gateway": "i-1", "backup": "openclaw/x.tar.gz", "dry_run": true}),
        );
        assert_eq!(
            k.unwrap(),
            Event::Restore { gateway: "i-1".into(), backup: Which::Key("openclaw/x.tar.gz".into()), dry_run: true }
        );
        for bad in [
            json!({}),
            json!({"action": "destroy"}),
            json!({"action": "backup", "force": true}),
            json!(1),
            json!({"action": "restore", "gateway": "gw"}),
            json!({"action": "restore", "backup": "latest"}),
            json!({"action": "restore", "gateway": " ", "backup": "latest"}),
            json!({"action": "restore", "gateway": "gw", "backup": ""}),
            json!({"action": "restore", "gateway": "gw", "backup": "latest", "into": "/"}),
        ] {
            assert!(matches!(Event::parse(bad.clone()), Err(Error::Input(_))), "{bad}");
        }
    }

    #[test]
    fn sample_events_are_accepted_or_refused_as_named() {
        let samples = openclaw_ops_shared::samples::samples(env!("CARGO_MANIFEST_DIR"), "s3-backup");
        assert!(samples.len() >= 3);
        for sample in samples {
            let value: Value = serde_json::from_str(&sample.text).unwrap();
            assert_eq!(Event::parse(value).is_err(), sample.refused, "{}", sample.name);
        }
    }
}
