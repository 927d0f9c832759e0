//! What every function does alike with its invocation: the time it may take, the daily schedule's
//! event, the inputs no function here takes, and the end of a command's output kept for a report.

use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::Error;

/// When the run must stop working to leave `reserve` for its report: the invocation's deadline
/// (Lambda's context) less the reserve; at once when less than the reserve is left.
pub fn deadline(context: &lambda_runtime::Context, reserve: Duration) -> tokio::time::Instant {
    let remaining = context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
    tokio::time::Instant::now() + remaining.saturating_sub(reserve)
}

/// An EventBridge schedule's event: its id (the same in every delivery of one firing) and the
/// time it fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub id: String,
    pub time: DateTime<Utc>,
}

/// Reads an EventBridge event that must be a schedule's (`Scheduled Event` from `aws.events`, with
/// its `time`); any other event is refused with what it was.
pub fn scheduled(payload: Value) -> Result<Scheduled, Error> {
    let event: EventBridgeEvent<Value> =
        serde_json::from_value(payload).map_err(|e| Error::Input(format!("EventBridge event: {e}")))?;
    if event.source != "aws.events" || event.detail_type != "Scheduled Event" {
        return Err(Error::Input(format!(
            "unsupported EventBridge event {:?} from {:?}: only the function's own schedule starts it",
            event.detail_type, event.source
        )));
    }
    let time = event.time.ok_or_else(|| Error::Input("scheduled event without a `time`".into()))?;
    Ok(Scheduled { id: event.id.unwrap_or_default(), time })
}

/// Refuses an SNS, SQS or S3 notification (a `Records` list): no function here but telegram-notify
/// takes one, and a subscription pointed at the wrong function should fail loudly, not be read as
/// a manual request. `takes` says what the function does take.
pub fn refuse_records(payload: &Value, function: &str, takes: &str) -> Result<(), Error> {
    if payload.get("Records").is_some() {
        return Err(Error::Input(format!(
            "an SNS/SQS/S3 `Records` event is not an input of {function}; it takes {takes}"
        )));
    }
    Ok(())
}

/// The last `chars` characters of a command's output, where a script says what went wrong.
pub fn tail(text: &str, chars: usize) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(chars)).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_schedule_is_read_and_anything_else_refused() {
        let fired = json!({"id": "e-1", "detail-type": "Scheduled Event", "source": "aws.events",
            "time": "2026-11-25T02:30:00Z", "detail": {}});
        let s = scheduled(fired.clone()).unwrap();
        assert_eq!((s.id.as_str(), s.time.to_rfc3339()), ("e-1", "2026-11-25T02:30:00+00:00".to_owned()));
        let mut other = fired.clone();
        other["source"] = json!("aws.ec2");
        assert!(scheduled(other).unwrap_err().to_string().contains("unsupported EventBridge event"));
        let mut no_time = fired;
        no_time.as_object_mut().unwrap().remove("time");
        assert!(scheduled(no_time).unwrap_err().to_string().contains("without a `time`"));
        assert!(matches!(scheduled(json!({"detail-type": 1})), Err(Error::Input(_))));
    }

    #[test]
    fn records_are_refused_with_what_the_function_takes() {
        let err = refuse_records(&json!({"Records": []}), "s3-backup", "its schedule").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad input: an SNS/SQS/S3 `Records` event is not an input of s3-backup; it takes its schedule"
        );
        assert!(refuse_records(&json!({"action": "backup"}), "s3-backup", "").is_ok());
    }

    #[test]
    fn the_tail_counts_characters_not_bytes() {
        assert_eq!(tail("abcdé", 2), "dé");
        assert_eq!(tail("ab", 10), "ab");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn the_deadline_keeps_the_reserve_and_never_lies_in_the_past_of_now() {
        let mut context = lambda_runtime::Context::default();
        let in_ten = std::time::SystemTime::now() + Duration::from_secs(10);
        context.deadline = in_ten.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let before = tokio::time::Instant::now();
        let d = deadline(&context, Duration::from_secs(3));
        assert!(d >= before + Duration::from_secs(6) && d <= tokio::time::Instant::now() + Duration::from_secs(7));
        let d = deadline(&context, Duration::from_secs(30));
        assert!(d <= tokio::time::Instant::now(), "less left than the reserve: stop at once");
    }
}
