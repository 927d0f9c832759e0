//! The follow-up check after a takeover: a replacement whose launch, volume, address and alarms
//! were moved over but that was not yet seen serving is "replaced, not yet seen serving", never
//! "recovered". A one-shot EventBridge Scheduler schedule invokes the function again with a
//! [`FollowUp`] event; [`plan`] decides, from what that invocation observed, whether the gateway
//! now serves, needs another look, or must be escalated.
//!
//! This module holds the pure part (the event, the schedule's name and time, the plan); the
//! Scheduler client and the handler's wiring come on top of it.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use openclaw_ops_shared::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `kind` a follow-up event carries; EC2's events never have a top-level `kind`.
pub const KIND: &str = "spot-recovery-follow-up";

/// Scheduler's limit on a schedule name.
const NAME_MAX: usize = 64;

/// The event a follow-up schedule delivers (its `Input`). Parsed strictly: an unknown field or a
/// missing one is refused, so a hand-written or stale event changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FollowUp {
    pub kind: String,
    /// The interrupted instance the replacement took over from.
    pub instance_id: String,
    pub replacement_id: String,
    /// 1 for the first check after the takeover.
    pub attempt: u32,
    /// When the takeover ended; the give-up time is counted from it.
    pub taken_over: DateTime<Utc>,
    /// Past this, a replacement still not serving is escalated instead of looked at again.
    pub give_up: DateTime<Utc>,
}

impl FollowUp {
    /// The first follow-up after a takeover at `now`.
    pub fn first(instance_id: &str, replacement_id: &str, now: DateTime<Utc>, give_up_after: Duration) -> Self {
        FollowUp {
            kind: KIND.into(),
            instance_id: instance_id.into(),
            replacement_id: replacement_id.into(),
            attempt: 1,
            taken_over: now,
            give_up: now + give_up_after,
        }
    }

    /// Whether a payload is meant as a follow-up (then [`FollowUp::parse`] decides if it is one).
    pub fn claims(payload: &Value) -> bool {
        payload.get("kind").and_then(Value::as_str) == Some(KIND)
    }

    pub fn parse(payload: Value) -> Result<Self, Error> {
        let f: FollowUp = serde_json::from_value(payload).map_err(|e| Error::Input(format!("follow-up event: {e}")))?;
        if f.kind != KIND {
            return Err(Error::Input(format!("follow-up event: kind {:?}, expected {KIND:?}", f.kind)));
        }
        for (field, id) in [("instance-id", &f.instance_id), ("replacement-id", &f.replacement_id)] {
            if !is_instance_id(id) {
                return Err(Error::Input(format!("follow-up event: {field} {id:?} is not an EC2 instance id")));
            }
        }
        if f.instance_id == f.replacement_id {
            return Err(Error::Input("follow-up event: the replacement is the interrupted instance itself".into()));
        }
        if f.attempt == 0 {
            return Err(Error::Input("follow-up event: attempt counts from 1".into()));
        }
        if f.give_up <= f.taken_over {
            return Err(Error::Input("follow-up event: give-up is not after the takeover".into()));
        }
        Ok(f)
    }

    /// The schedule's name: deterministic in replacement and attempt, so a duplicate delivery of
    /// the event that asks for it meets Scheduler's ConflictException ("already scheduled")
    /// instead of starting a second chain of checks.
    pub fn schedule_name(&self) -> String {
        let name = format!("spot-follow-up-{}-{}", self.replacement_id, self.attempt);
        debug_assert!(name.len() <= NAME_MAX);
        name
    }

    /// The next attempt's event, the same chain one step further.
    pub fn next(&self) -> Self {
        FollowUp { attempt: self.attempt + 1, ..self.clone() }
    }
}

fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Scheduler's one-shot expression, `at(yyyy-mm-ddThh:mm:ss)` in the schedule's time zone (UTC
/// here), rounded up to the next whole second so the check never runs before it is due.
pub fn at_expression(when: DateTime<Utc>) -> String {
    let whole = if when.timestamp_subsec_nanos() > 0 {
        DateTime::from_timestamp(when.timestamp() + 1, 0).unwrap_or(when)
    } else {
        when
    };
    format!("at({})", whole.to_rfc3339_opts(SecondsFormat::Secs, true).trim_end_matches('Z'))
}

/// What the follow-up invocation saw of the replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The instance is not there, or shutting down, stopped or terminated (its state).
    Gone(String),
    /// Running (or pending) with this serving evidence.
    Up(Serving),
}

/// The serving evidence: the target's health in the ALB tier, the gateway's `/healthz` through
/// SSM in the budget tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    Yes,
    /// Not serving (yet): what was seen, e.g. "target initial" or "/healthz: connection refused".
    No(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpPlan {
    /// Seen serving: the only outcome that says the gateway recovered.
    Serving { event: FollowUp },
    /// Not yet, and the give-up time is still ahead: look again at `at`.
    Again { event: FollowUp, observed: String, next: FollowUp, at: DateTime<Utc> },
    /// Gone, or still not serving at the give-up time: a critical notification, no more schedules.
    Escalate { event: FollowUp, observed: String },
}

/// Pure: what to do about a follow-up event at `now`, given what was seen and the interval
/// between checks.
pub fn plan(event: &FollowUp, seen: &Seen, now: DateTime<Utc>, interval: Duration) -> FollowUpPlan {
    let event = event.clone();
    match seen {
        Seen::Up(Serving::Yes) => FollowUpPlan::Serving { event },
        Seen::Gone(state) => {
            FollowUpPlan::Escalate { observed: format!("replacement {} is {state}", event.replacement_id), event }
        }
        Seen::Up(Serving::No(what)) => {
            if now >= event.give_up {
                FollowUpPlan::Escalate {
                    observed: format!(
                        "replacement {} not seen serving by {} (attempt {}): {what}",
                        event.replacement_id,
                        event.give_up.to_rfc3339_opts(SecondsFormat::Secs, true),
                        event.attempt
                    ),
                    event,
                }
            } else {
                // The last look lands on the give-up time, not past it.
                let at = (now + interval).min(event.give_up);
                FollowUpPlan::Again { next: event.next(), observed: what.clone(), at, event }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn event() -> FollowUp {
        FollowUp::first("i-0123456789abcdef0", "i-0fedcba9876543210", t("2026-12-04T12:00:00Z"), Duration::minutes(30))
    }

    fn payload() -> Value {
        serde_json::to_value(event()).unwrap()
    }

    #[test]
    fn first_event_round_trips_through_its_json() {
        let e = event();
        assert_eq!(e.attempt, 1);
        assert_eq!(e.give_up, t("2026-12-04T12:30:00Z"));
        let v = payload();
        assert_eq!(v["kind"], KIND);
        assert_eq!(v["replacement-id"], "i-0fedcba9876543210");
        assert!(FollowUp::claims(&v));
        assert_eq!(FollowUp::parse(v).unwrap(), e);
    }

    #[test]
    fn ec2_events_are_not_claimed() {
        assert!(!FollowUp::claims(&json!({"source": "aws.ec2", "detail-type": "x", "detail": {}})));
        assert!(!FollowUp::claims(&json!({"kind": "warning"})));
    }

    #[test]
    fn strict_parse_refuses_bad_input() {
        let bad = |f: &dyn Fn(&mut Value)| {
            let mut v = payload();
            f(&mut v);
            match FollowUp::parse(v) {
                Err(Error::Input(m)) => m,
                other => panic!("expected bad input, got {other:?}"),
            }
        };
        assert!(bad(&|v| v["extra"] = json!(1)).contains("unknown field"));
        assert!(bad(&|v| drop(v.as_object_mut().unwrap().remove("give-up"))).contains("give-up"));
        assert!(bad(&|v| v["kind"] = json!("other")).contains("kind"));
        assert!(bad(&|v| v["replacement-id"] = json!("vol-0123456789abcdef0")).contains("replacement-id"));
        assert!(bad(&|v| v["instance-id"] = json!("i-xyz")).contains("instance-id"));
        assert!(bad(&|v| v["replacement-id"] = v["instance-id"].clone()).contains("itself"));
        assert!(bad(&|v| v["attempt"] = json!(0)).contains("attempt"));
        assert!(bad(&|v| v["attempt"] = json!(-1)).contains("follow-up event"));
        assert!(bad(&|v| v["give-up"] = v["taken-over"].clone()).contains("give-up"));
        assert!(matches!(FollowUp::parse(json!([])), Err(Error::Input(_))));
    }

    #[test]
    fn schedule_name_is_deterministic_per_replacement_and_attempt() {
        let e = event();
        assert_eq!(e.schedule_name(), "spot-follow-up-i-0fedcba9876543210-1");
        assert_eq!(e.schedule_name(), event().schedule_name());
        assert_eq!(e.next().schedule_name(), "spot-follow-up-i-0fedcba9876543210-2");
        assert!(e.next().next().schedule_name().len() <= NAME_MAX);
        assert_eq!(e.next().give_up, e.give_up);
        assert_eq!(e.next().taken_over, e.taken_over);
    }

    #[test]
    fn at_expression_is_whole_seconds_rounded_up_without_zone() {
        assert_eq!(at_expression(t("2026-12-04T12:05:00Z")), "at(2026-12-04T12:05:00)");
        assert_eq!(at_expression(t("2026-12-04T12:05:00.001Z")), "at(2026-12-04T12:05:01)");
        assert_eq!(at_expression(t("2026-12-31T23:59:59.5Z")), "at(2027-01-01T00:00:00)");
    }

    #[test]
    fn serving_is_the_only_recovered_outcome() {
        let p = plan(&event(), &Seen::Up(Serving::Yes), t("2026-12-04T12:05:00Z"), Duration::minutes(5));
        assert_eq!(p, FollowUpPlan::Serving { event: event() });
        // Serving is believed even past the give-up time: the evidence is what counts.
        let p = plan(&event(), &Seen::Up(Serving::Yes), t("2026-12-04T13:00:00Z"), Duration::minutes(5));
        assert!(matches!(p, FollowUpPlan::Serving { .. }));
    }

    #[test]
    fn not_yet_before_give_up_schedules_the_next_attempt() {
        let seen = Seen::Up(Serving::No("target initial".into()));
        let p = plan(&event(), &seen, t("2026-12-04T12:05:00Z"), Duration::minutes(5));
        let FollowUpPlan::Again { next, at, observed, .. } = p else { panic!("{p:?}") };
        assert_eq!(next.attempt, 2);
        assert_eq!(at, t("2026-12-04T12:10:00Z"));
        assert_eq!(observed, "target initial");
    }

    #[test]
    fn the_last_look_lands_on_the_give_up_time() {
        let seen = Seen::Up(Serving::No("/healthz: connection refused".into()));
        let p = plan(&event(), &seen, t("2026-12-04T12:28:00Z"), Duration::minutes(5));
        let FollowUpPlan::Again { at, .. } = p else { panic!("{p:?}") };
        assert_eq!(at, t("2026-12-04T12:30:00Z"));
    }

    #[test]
    fn not_serving_at_or_past_give_up_escalates() {
        let seen = Seen::Up(Serving::No("target unhealthy".into()));
        for now in ["2026-12-04T12:30:00Z", "2026-12-04T12:30:01Z", "2026-12-04T14:00:00Z"] {
            let p = plan(&event(), &seen, t(now), Duration::minutes(5));
            let FollowUpPlan::Escalate { observed, .. } = p else { panic!("{now}: {p:?}") };
            assert!(observed.contains("i-0fedcba9876543210"), "{observed}");
            assert!(observed.contains("target unhealthy"), "{observed}");
        }
    }

    #[test]
    fn a_gone_replacement_escalates_at_once() {
        for state in ["not found", "terminated", "stopped", "shutting-down"] {
            let p = plan(&event(), &Seen::Gone(state.into()), t("2026-12-04T12:05:00Z"), Duration::minutes(5));
            let FollowUpPlan::Escalate { observed, .. } = p else { panic!("{state}: {p:?}") };
            assert_eq!(observed, format!("replacement i-0fedcba9876543210 is {state}"));
        }
    }
}
