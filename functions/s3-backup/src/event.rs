//! The daily schedule, or a person asking for a backup (`{"action": "backup", "reason": "..."}`),
//! e.g. before updating OpenClaw.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use openclaw_ops_shared::Error;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Schedule { time: DateTime<Utc> },
    Backup { reason: Option<String>, dry_run: bool },
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
}

impl Request {
    pub fn parse(payload: Value) -> Result<Self, Error> {
        if !payload.is_object() {
            return Err(Error::Input("expected a JSON object".into()));
        }
        if payload.get("detail-type").is_some() {
            let event: EventBridgeEvent<Value> =
                serde_json::from_value(payload).map_err(|e| Error::Input(format!("EventBridge event: {e}")))?;
            if event.source != "aws.events" || event.detail_type != "Scheduled Event" {
                return Err(Error::Input(format!("unsupported event {:?} from {:?}", event.detail_type, event.source)));
            }
            let time = event.time.ok_or_else(|| Error::Input("scheduled event without a `time`".into()))?;
            return Ok(Request::Schedule { time });
        }
        match serde_json::from_value::<Manual>(payload) {
            Ok(Manual::Backup { reason, dry_run }) => Ok(Request::Backup { reason, dry_run }),
            Err(e) => Err(Error::Input(format!("{e}; expected {{\"action\": \"backup\", \"reason\"?: \"...\"}}"))),
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
        assert!(matches!(Request::parse(s).unwrap(), Request::Schedule { .. }));
        let m = Request::parse(json!({"action": "backup", "reason": "before upgrade"})).unwrap();
        assert_eq!(m, Request::Backup { reason: Some("before upgrade".into()), dry_run: false });
        for bad in [json!({}), json!({"action": "destroy"}), json!({"action": "backup", "force": true}), json!(1)] {
            assert!(matches!(Request::parse(bad.clone()), Err(Error::Input(_))), "{bad}");
        }
    }

    #[test]
    fn sample_events_are_accepted_or_refused_as_named() {
        let samples = openclaw_ops_shared::samples::samples(env!("CARGO_MANIFEST_DIR"), "s3-backup");
        assert!(samples.len() >= 3);
        for sample in samples {
            let value: Value = serde_json::from_str(&sample.text).unwrap();
            assert_eq!(Request::parse(value).is_err(), sample.refused, "{}", sample.name);
        }
    }
}
