//! What may invoke the function: the three EC2 events its EventBridge rules forward. Anything else
//! is refused before any AWS call.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use openclaw_ops_shared::Error;
use openclaw_ops_shared::invocation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const WARNING: &str = "EC2 Spot Instance Interruption Warning";
pub const REBALANCE: &str = "EC2 Instance Rebalance Recommendation";
pub const STATE_CHANGE: &str = "EC2 Instance State-change Notification";

/// What EC2 will do to an interrupted Spot instance (the warning's `instance-action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceAction {
    Terminate,
    Stop,
    Hibernate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    /// Two minutes before EC2 reclaims the instance.
    Warning { id: String, time: DateTime<Utc>, instance_id: String, action: InstanceAction },
    /// The instance is at elevated risk of interruption; no deadline yet.
    Rebalance { id: String, time: DateTime<Utc>, instance_id: String },
    /// The instance's state changed (the rule forwards `stopped`, `terminated` and `running`).
    StateChange { id: String, time: DateTime<Utc>, instance_id: String, state: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct WarningDetail {
    instance_id: String,
    instance_action: InstanceAction,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct InstanceDetail {
    instance_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct StateDetail {
    instance_id: String,
    state: String,
}

impl Event {
    pub fn parse(payload: Value) -> Result<Self, Error> {
        if !payload.is_object() {
            return Err(Error::Input("expected an EventBridge event (a JSON object)".into()));
        }
        invocation::refuse_records(
            &payload,
            "spot-recovery",
            "EC2's Spot interruption warning, rebalance recommendation and state-change events",
        )?;
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(payload).map_err(|e| Error::Input(format!("EventBridge event: {e}")))?;
        if event.source != "aws.ec2" {
            return Err(Error::Input(format!(
                "unsupported event source {:?} ({:?}); spot-recovery takes aws.ec2 events only",
                event.source, event.detail_type
            )));
        }
        let id = event.id.unwrap_or_default();
        let time = event.time.ok_or_else(|| Error::Input(format!("{} without a `time`", event.detail_type)))?;
        let detail = event.detail;
        let bad = |e: serde_json::Error| Error::Input(format!("{}: detail: {e}", event.detail_type));
        let parsed = match event.detail_type.as_str() {
            WARNING => {
                let d: WarningDetail = serde_json::from_value(detail).map_err(bad)?;
                Event::Warning { id, time, instance_id: d.instance_id, action: d.instance_action }
            }
            REBALANCE => {
                let d: InstanceDetail = serde_json::from_value(detail).map_err(bad)?;
                Event::Rebalance { id, time, instance_id: d.instance_id }
            }
            STATE_CHANGE => {
                let d: StateDetail = serde_json::from_value(detail).map_err(bad)?;
                Event::StateChange { id, time, instance_id: d.instance_id, state: d.state }
            }
            other => {
                return Err(Error::Input(format!(
                    "unsupported EC2 event {other:?}; spot-recovery takes {WARNING:?}, {REBALANCE:?} and {STATE_CHANGE:?}"
                )));
            }
        };
        check_instance_id(parsed.instance_id())?;
        Ok(parsed)
    }

    pub fn instance_id(&self) -> &str {
        match self {
            Event::Warning { instance_id, .. }
            | Event::Rebalance { instance_id, .. }
            | Event::StateChange { instance_id, .. } => instance_id,
        }
    }

    pub fn time(&self) -> DateTime<Utc> {
        match self {
            Event::Warning { time, .. } | Event::Rebalance { time, .. } | Event::StateChange { time, .. } => *time,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Event::Warning { .. } => "spot-warning",
            Event::Rebalance { .. } => "rebalance",
            Event::StateChange { .. } => "state-change",
        }
    }
}

/// `i-` and 8 or 17 hexadecimal digits: anything else would be passed on to EC2 filters unchecked.
fn check_instance_id(id: &str) -> Result<(), Error> {
    let ok = id
        .strip_prefix("i-")
        .is_some_and(|hex| matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok { Ok(()) } else { Err(Error::Input(format!("{id:?} is not an EC2 instance id"))) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(detail_type: &str, detail: Value) -> Value {
        json!({
            "version": "0", "id": "7e0f6e2a-0000-4000-8000-000000000001", "detail-type": detail_type,
            "source": "aws.ec2", "account": "123456789012", "time": "2026-11-25T10:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:ec2:us-east-1a:instance/i-0123456789abcdef0"], "detail": detail
        })
    }

    #[test]
    fn the_three_events() {
        let time: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let w = Event::parse(event(WARNING, json!({"instance-id": "i-0123456789abcdef0", "instance-action": "stop"})));
        assert_eq!(
            w.unwrap(),
            Event::Warning {
                id: "7e0f6e2a-0000-4000-8000-000000000001".into(),
                time,
                instance_id: "i-0123456789abcdef0".into(),
                action: InstanceAction::Stop
            }
        );
        let r = Event::parse(event(REBALANCE, json!({"instance-id": "i-0123456789abcdef0"}))).unwrap();
        assert_eq!((r.name(), r.instance_id(), r.time()), ("rebalance", "i-0123456789abcdef0", time));
        let s = Event::parse(event(STATE_CHANGE, json!({"instance-id": "i-01234567", "state": "terminated"})));
        assert!(matches!(s.unwrap(), Event::StateChange { state, .. } if state == "terminated"));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        let mut no_time = event(REBALANCE, json!({"instance-id": "i-0123456789abcdef0"}));
        no_time.as_object_mut().unwrap().remove("time");
        let mut scheduled = event("Scheduled Event", json!({}));
        scheduled["source"] = json!("aws.events");
        let cases = [
            (json!([]), "JSON object"),
            (json!({"Records": []}), "Records"),
            (json!({"dry_run": true}), "EventBridge event"),
            (scheduled, "aws.events"),
            (event("EC2 Fleet Instance Change", json!({})), "unsupported EC2 event"),
            (event(WARNING, json!({"instance-id": "i-0123456789abcdef0", "instance-action": "reboot"})), "detail"),
            (event(WARNING, json!({"instance-id": "i-0123456789abcdef0"})), "instance-action"),
            (event(STATE_CHANGE, json!({"instance-id": "i-0123456789abcdef0"})), "state"),
            (event(REBALANCE, json!({"instance-id": "vol-0123456789abcdef0"})), "not an EC2 instance id"),
            (event(REBALANCE, json!({"instance-id": "i-xyz"})), "not an EC2 instance id"),
            (no_time, "without a `time`"),
        ];
        for (payload, needle) in cases {
            let err = Event::parse(payload.clone()).unwrap_err();
            assert!(matches!(err, Error::Input(_)), "{payload}");
            assert!(err.to_string().contains(needle), "{payload}: {err}");
        }
    }

    /// Every sample under events/spot-recovery is accepted, or refused when its name starts with
    /// `bad-`, read as the handler reads it: a follow-up check's event, or EC2's.
    #[test]
    fn sample_events_are_accepted_or_refused_as_named() {
        use crate::follow_up::FollowUp;
        let samples = openclaw_ops_shared::samples::samples(env!("CARGO_MANIFEST_DIR"), "spot-recovery");
        assert!(samples.len() >= 5);
        for sample in samples {
            let parsed = serde_json::from_str::<Value>(&sample.text).map_err(|e| e.to_string()).and_then(|v| {
                if FollowUp::claims(&v) {
                    FollowUp::parse(v).map(|_| ()).map_err(|e| e.to_string())
                } else {
                    Event::parse(v).map(|_| ()).map_err(|e| e.to_string())
                }
            });
            assert_eq!(parsed.is_err(), sample.refused, "{}: {parsed:?}", sample.name);
        }
    }
}
