//! What a message on the `ops` topic is: a CloudWatch alarm, one of the suite's notifications, or
//! anything else (sent as plain text with its subject: nothing on the topic is dropped).

use openclaw_ops_shared::notification::{Notification, SCHEMA};
use serde_json::Value;

use crate::alarm::Alarm;

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Alarm(Alarm),
    Notification(Notification),
    Plain { subject: Option<String>, text: String },
}

impl Message {
    /// Classifies an SNS message body (and its subject).
    pub fn classify(subject: Option<&str>, body: &str) -> Message {
        let subject = subject.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let plain = || Message::Plain { subject: subject.clone(), text: body.to_owned() };
        let Ok(json) = serde_json::from_str::<Value>(body) else { return plain() };
        if Alarm::is_sns_alarm(&json) {
            return Alarm::from_sns(&json).map(Message::Alarm).unwrap_or_else(plain);
        }
        if json.get("schema").and_then(Value::as_str) == Some(SCHEMA) {
            return serde_json::from_value(json).map(Message::Notification).unwrap_or_else(|_| plain());
        }
        plain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_alarms_notifications_and_the_rest() {
        let alarm = r#"{"AlarmName": "a", "NewStateValue": "OK"}"#;
        assert!(matches!(Message::classify(None, alarm), Message::Alarm(_)));
        let note = r#"{"schema": "openclaw-ops/notification@1", "id": "i", "source": "s", "severity": "info", "title": "t", "text": ""}"#;
        assert!(matches!(Message::classify(None, note), Message::Notification(_)));
        let broken_note = r#"{"schema": "openclaw-ops/notification@1", "severity": "loud"}"#;
        assert!(matches!(Message::classify(Some("s"), broken_note), Message::Plain { .. }));
        assert_eq!(
            Message::classify(Some(" hello "), "not json"),
            Message::Plain { subject: Some("hello".into()), text: "not json".into() }
        );
        assert!(matches!(Message::classify(None, r#"{"AlarmName": 3}"#), Message::Plain { .. }));
    }
}
