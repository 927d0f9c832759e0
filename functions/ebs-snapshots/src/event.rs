//! What may invoke the function: its EventBridge schedule, or a person with `{}` / `{"dry_run": true}`.
//! Anything else is refused before any AWS call.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use openclaw_ops_shared::Error;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The daily schedule; `time` is the scheduled time, so a late retry still acts for its own day.
    Schedule {
        event_id: String,
        time: DateTime<Utc>,
    },
    Manual(ManualRequest),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualRequest {
    #[serde(default)]
    pub dry_run: bool,
}

impl Trigger {
    pub fn parse(payload: Value) -> Result<Self, Error> {
        let Value::Object(fields) = &payload else {
            return Err(Error::Input(format!("expected a JSON object, got {}", kind_of(&payload))));
        };
        if fields.contains_key("Records") {
            return Err(Error::Input(
                "an SNS/SQS/S3 `Records` event is not an input of ebs-snapshots; it takes its daily schedule \
                 or a manual {\"dry_run\": bool}"
                    .into(),
            ));
        }
        if fields.contains_key("detail-type") || fields.contains_key("source") {
            return Self::parse_eventbridge(payload);
        }
        let request: ManualRequest = serde_json::from_value(payload)
            .map_err(|e| Error::Input(format!("manual invocation: {e}; accepted: {{\"dry_run\": bool}}")))?;
        Ok(Trigger::Manual(request))
    }

    fn parse_eventbridge(payload: Value) -> Result<Self, Error> {
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(payload).map_err(|e| Error::Input(format!("EventBridge event: {e}")))?;
        if event.source != "aws.events" || event.detail_type != "Scheduled Event" {
            return Err(Error::Input(format!(
                "unsupported EventBridge event {:?} from {:?}; ebs-snapshots runs on its schedule only",
                event.detail_type, event.source
            )));
        }
        let time = event.time.ok_or_else(|| Error::Input("scheduled event without a `time`".into()))?;
        Ok(Trigger::Schedule { event_id: event.id.unwrap_or_default(), time })
    }

    pub fn dry_run(&self) -> bool {
        matches!(self, Trigger::Manual(ManualRequest { dry_run: true }))
    }

    /// The time the run acts for: the scheduled time, or now for a manual run.
    pub fn time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Trigger::Schedule { time, .. } => *time,
            Trigger::Manual(_) => now,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Schedule { .. } => "schedule",
            Trigger::Manual(_) => "manual",
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scheduled() -> Value {
        json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": "2026-11-25T03:00:00Z",
            "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/daily"], "detail": {}
        })
    }

    #[test]
    fn scheduled_event_acts_for_its_scheduled_time() {
        let t = Trigger::parse(scheduled()).unwrap();
        let expected: DateTime<Utc> = "2026-11-25T03:00:00Z".parse().unwrap();
        assert_eq!(t.time(Utc::now()), expected);
        assert!(!t.dry_run());
        assert_eq!(t.name(), "schedule");
    }

    #[test]
    fn manual_invocations() {
        assert_eq!(Trigger::parse(json!({})).unwrap(), Trigger::Manual(ManualRequest { dry_run: false }));
        assert!(Trigger::parse(json!({"dry_run": true})).unwrap().dry_run());
        let now = Utc::now();
        assert_eq!(Trigger::parse(json!({})).unwrap().time(now), now);
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        let cases = [
            (json!({"dry_run": true, "force": true}), "unknown field `force`"),
            (json!({"dry_run": "yes"}), "manual invocation"),
            (json!([1]), "expected a JSON object, got an array"),
            (json!(null), "got null"),
            (json!({"Records": []}), "Records"),
            (
                json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}),
                "unsupported EventBridge event",
            ),
        ];
        for (payload, needle) in cases {
            let err = Trigger::parse(payload.clone()).unwrap_err();
            assert!(matches!(err, Error::Input(_)), "{payload}");
            assert!(err.to_string().contains(needle), "{payload}: {err}");
        }
        let mut no_time = scheduled();
        no_time.as_object_mut().unwrap().remove("time");
        assert!(Trigger::parse(no_time).unwrap_err().to_string().contains("without a `time`"));
    }

    /// Every sample under events/ebs-snapshots is accepted, or refused when its name starts with `bad-`.
    #[test]
    fn sample_events_are_accepted_or_refused_as_named() {
        let samples = openclaw_ops_shared::samples::samples(env!("CARGO_MANIFEST_DIR"), "ebs-snapshots");
        assert!(samples.len() >= 3);
        for sample in samples {
            let parsed = serde_json::from_str::<Value>(&sample.text)
                .map_err(|e| e.to_string())
                .and_then(|v| Trigger::parse(v).map_err(|e| e.to_string()));
            assert_eq!(parsed.is_err(), sample.refused, "{}: {parsed:?}", sample.name);
        }
    }
}
