//! What may invoke the function: its EventBridge schedule, or a person with `{}` / `{"dry_run": true}`
//! / `{"action": "prune", "confirm_deletes": N}`. Anything else is refused before any AWS call, and so
//! is a scheduled event whose `time` no genuine delivery can carry ([`Freshness`]).

use chrono::{DateTime, TimeDelta, Utc};
use openclaw_ops_shared::Error;
use openclaw_ops_shared::invocation;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
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
    /// `prune`: carry out deletions the circuit breaker held back, naming how many are confirmed.
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub confirm_deletes: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Prune,
}

/// How far a scheduled event's `time` may lie from the function's clock and still be a genuine
/// delivery (docs/ARCHITECTURE.md, "Forged time").
///
/// EventBridge retries a failed delivery for up to its rule's `MaximumEventAgeInSeconds`; the
/// delivered event then waits in Lambda's asynchronous queue, retries included, for up to the
/// function's own `MaximumEventAgeInSeconds`. The two add up to `max_age` (`MAX_EVENT_AGE_SECONDS`,
/// checked against template.yaml by tests/tests/template.rs). `skew` allows for clocks that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub max_age: TimeDelta,
    pub skew: TimeDelta,
}

/// NTP-synchronised clocks (Lambda's and EventBridge's) differ by far less.
pub const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

impl Event {
    pub fn parse(payload: Value) -> Result<Self, Error> {
        let Value::Object(fields) = &payload else {
            return Err(Error::Input(format!("expected a JSON object, got {}", kind_of(&payload))));
        };
        invocation::refuse_records(&payload, "ebs-snapshots", "its daily schedule or a manual {\"dry_run\": bool}")?;
        if fields.contains_key("detail-type") || fields.contains_key("source") {
            return Self::parse_eventbridge(payload);
        }
        let request: ManualRequest = serde_json::from_value(payload).map_err(|e| {
            Error::Input(format!(
                "manual invocation: {e}; accepted: {{\"dry_run\": bool}}, {{\"action\": \"prune\", \"confirm_deletes\": N}}"
            ))
        })?;
        match (request.action, request.confirm_deletes) {
            (Some(Action::Prune), None) => Err(Error::Input(
                "manual invocation: \"action\": \"prune\" needs \"confirm_deletes\": the number of deletions the \
                 plan holds (see the circuit breaker's notification, or a dry run's `would_delete`)"
                    .into(),
            )),
            (None, Some(_)) => Err(Error::Input(
                "manual invocation: \"confirm_deletes\" is only accepted with \"action\": \"prune\"".into(),
            )),
            _ => Ok(Event::Manual(request)),
        }
    }

    fn parse_eventbridge(payload: Value) -> Result<Self, Error> {
        let event = invocation::scheduled(payload)?;
        Ok(Event::Schedule { event_id: event.id, time: event.time })
    }

    /// Refuses a scheduled event whose `time` is in the future or older than any genuine retry;
    /// manual runs act on `now` and always pass.
    pub fn check_time(&self, now: DateTime<Utc>, freshness: Freshness) -> Result<(), Error> {
        let Event::Schedule { time, .. } = self else { return Ok(()) };
        if *time > now + freshness.skew {
            return Err(Error::Input(format!(
                "scheduled event time {time} is in the future (the function's clock says {now}, {} s of skew \
                 allowed): no schedule delivers that; refused, nothing done",
                freshness.skew.num_seconds()
            )));
        }
        if *time + freshness.max_age + freshness.skew < now {
            return Err(Error::Input(format!(
                "scheduled event time {time} is older than any genuine retry can be ({} s: EventBridge's and \
                 Lambda's maximum event ages; the function's clock says {now}); refused, nothing done",
                freshness.max_age.num_seconds()
            )));
        }
        Ok(())
    }

    pub fn dry_run(&self) -> bool {
        matches!(self, Event::Manual(ManualRequest { dry_run: true, .. }))
    }

    /// The deletion count a manual `prune` confirms.
    pub fn confirmed_deletes(&self) -> Option<usize> {
        match self {
            Event::Manual(ManualRequest { action: Some(Action::Prune), confirm_deletes, .. }) => *confirm_deletes,
            _ => None,
        }
    }

    /// The time the run acts for: the scheduled time, or now for a manual run.
    pub fn time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Event::Schedule { time, .. } => *time,
            Event::Manual(_) => now,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Event::Schedule { .. } => "schedule",
            Event::Manual(ManualRequest { action: Some(Action::Prune), .. }) => "prune",
            Event::Manual(_) => "manual",
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
        let t = Event::parse(scheduled()).unwrap();
        let expected: DateTime<Utc> = "2026-11-25T03:00:00Z".parse().unwrap();
        assert_eq!(t.time(Utc::now()), expected);
        assert!(!t.dry_run());
        assert_eq!(t.name(), "schedule");
    }

    #[test]
    fn manual_invocations() {
        assert_eq!(Event::parse(json!({})).unwrap(), Event::Manual(ManualRequest::default()));
        assert!(Event::parse(json!({"dry_run": true})).unwrap().dry_run());
        let now = Utc::now();
        assert_eq!(Event::parse(json!({})).unwrap().time(now), now);
    }

    const FRESHNESS: Freshness = Freshness { max_age: TimeDelta::hours(12), skew: CLOCK_SKEW };

    #[test]
    fn scheduled_times_a_genuine_delivery_cannot_carry_are_refused() {
        let t = Event::parse(scheduled()).unwrap();
        let scheduled: DateTime<Utc> = "2026-11-25T03:00:00Z".parse().unwrap();
        let ok = [scheduled - CLOCK_SKEW, scheduled, scheduled + TimeDelta::hours(12) + CLOCK_SKEW];
        for now in ok {
            assert!(t.check_time(now, FRESHNESS).is_ok(), "{now}");
        }
        let future = t.check_time(scheduled - CLOCK_SKEW - TimeDelta::seconds(1), FRESHNESS).unwrap_err();
        assert!(matches!(future, Error::Input(_)) && future.to_string().contains("in the future"), "{future}");
        let stale = t.check_time(scheduled + TimeDelta::hours(12) + CLOCK_SKEW + TimeDelta::seconds(1), FRESHNESS);
        let stale = stale.unwrap_err();
        assert!(stale.to_string().contains("older than any genuine retry"), "{stale}");
        let manual = Event::parse(json!({})).unwrap();
        assert!(manual.check_time(scheduled + TimeDelta::days(3650), FRESHNESS).is_ok());
    }

    #[test]
    fn prune_names_the_count_it_confirms() {
        let t = Event::parse(json!({"action": "prune", "confirm_deletes": 37})).unwrap();
        assert_eq!(t.confirmed_deletes(), Some(37));
        assert_eq!(t.name(), "prune");
        assert_eq!(Event::parse(json!({"dry_run": true})).unwrap().confirmed_deletes(), None);
        let cases = [
            (json!({"action": "prune"}), "needs \"confirm_deletes\""),
            (json!({"confirm_deletes": 3}), "only accepted with"),
            (json!({"action": "purge", "confirm_deletes": 3}), "unknown variant `purge`"),
            (json!({"action": "prune", "confirm_deletes": -1}), "manual invocation"),
        ];
        for (payload, needle) in cases {
            let err = Event::parse(payload.clone()).unwrap_err();
            assert!(err.to_string().contains(needle), "{payload}: {err}");
        }
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
            let err = Event::parse(payload.clone()).unwrap_err();
            assert!(matches!(err, Error::Input(_)), "{payload}");
            assert!(err.to_string().contains(needle), "{payload}: {err}");
        }
        let mut no_time = scheduled();
        no_time.as_object_mut().unwrap().remove("time");
        assert!(Event::parse(no_time).unwrap_err().to_string().contains("without a `time`"));
    }

    /// Every sample under events/ebs-snapshots is accepted, or refused when its name starts with `bad-`.
    #[test]
    fn sample_events_are_accepted_or_refused_as_named() {
        let samples = openclaw_ops_shared::samples::samples(env!("CARGO_MANIFEST_DIR"), "ebs-snapshots");
        assert!(samples.len() >= 3);
        for sample in samples {
            let parsed = serde_json::from_str::<Value>(&sample.text)
                .map_err(|e| e.to_string())
                .and_then(|v| Event::parse(v).map_err(|e| e.to_string()));
            assert_eq!(parsed.is_err(), sample.refused, "{}: {parsed:?}", sample.name);
        }
    }
}
