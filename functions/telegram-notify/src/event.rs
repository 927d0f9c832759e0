//! Everything that may invoke telegram-notify, turned into messages to deliver:
//! SNS records from `ops`, SQS records (the paced route `ops` → SQS → here, and our own dead-letter
//! envelopes moved back by an operator), a Lambda alarm action, an EventBridge alarm state change.

use chrono::{DateTime, Utc};
use openclaw_ops_shared::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alarm::Alarm;
use crate::message::Message;
use crate::telegram::Chat;

/// Where a message came from, kept so an undelivered remainder can be written down and replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// An SNS message: its subject and body.
    Sns { subject: Option<String>, body: String },
    /// A whole event (Lambda alarm action, EventBridge).
    Event(Value),
}

/// One message to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Stable across redeliveries of the same message (SNS MessageId, EventBridge id, alarm ARN and
    /// state time): what duplicate detection keys on.
    pub id: String,
    pub message: Message,
    pub origin: Origin,
    /// A replayed remainder goes only to the chats that did not get it.
    pub only_chats: Option<Vec<Chat>>,
    /// The SQS record it came in, for partial batch failures.
    pub sqs_message_id: Option<String>,
}

/// What an undelivered remainder looks like in the dead-letter queue (and, moved back to the `ops`
/// queue by an operator, how it is replayed to exactly those chats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Undelivered {
    pub id: String,
    pub chats: Vec<Chat>,
    pub errors: Vec<String>,
    pub origin: Origin,
}

#[derive(Debug, Serialize, Deserialize)]
struct UndeliveredEnvelope {
    openclaw_ops_undelivered: Undelivered,
}

impl Undelivered {
    pub fn to_json(&self) -> String {
        serde_json::to_string(&UndeliveredEnvelope { openclaw_ops_undelivered: self.clone() }).expect("serialisable")
    }
}

pub fn parse(payload: Value) -> Result<Vec<Event>, Error> {
    if let Some(records) = payload.get("Records") {
        let records = records.as_array().ok_or_else(|| Error::Input("`Records` is not a list".into()))?;
        return records.iter().map(parse_record).collect();
    }
    parse_event(&payload).map(|i| vec![i])
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn parse_record(record: &Value) -> Result<Event, Error> {
    if str_field(record, "EventSource") == Some("aws:sns") {
        let sns = record.get("Sns").ok_or_else(|| Error::Input("SNS record without `Sns`".into()))?;
        return Ok(from_sns(sns, None));
    }
    if str_field(record, "eventSource") == Some("aws:sqs") {
        let message_id = str_field(record, "messageId").unwrap_or_default().to_owned();
        let body = str_field(record, "body").ok_or_else(|| Error::Input("SQS record without `body`".into()))?;
        return Ok(from_sqs_body(body, message_id));
    }
    Err(Error::Input("a record that is neither SNS nor SQS".into()))
}

fn from_sns(sns: &Value, sqs_message_id: Option<String>) -> Event {
    let subject = str_field(sns, "Subject").map(str::to_owned);
    let body = str_field(sns, "Message").unwrap_or_default().to_owned();
    let id = str_field(sns, "MessageId").map(str::to_owned).or_else(|| sqs_message_id.clone()).unwrap_or_default();
    Event {
        id,
        message: Message::classify(subject.as_deref(), &body),
        origin: Origin::Sns { subject, body },
        only_chats: None,
        sqs_message_id,
    }
}

/// An SQS body: the SNS envelope (the subscription keeps it, for the subject and message id), an
/// undelivered remainder being replayed, or a raw message.
fn from_sqs_body(body: &str, message_id: String) -> Event {
    let json = serde_json::from_str::<Value>(body).ok();
    if let Some(json) = &json {
        if str_field(json, "Type") == Some("Notification") && json.get("Message").is_some() {
            return from_sns(json, Some(message_id));
        }
        if let Ok(envelope) = serde_json::from_value::<UndeliveredEnvelope>(json.clone()) {
            let u = envelope.openclaw_ops_undelivered;
            let message = match &u.origin {
                Origin::Sns { subject, body } => Message::classify(subject.as_deref(), body),
                Origin::Event(event) => parse_event(event).map(|i| i.message).unwrap_or_else(|e| Message::Plain {
                    subject: Some("Undelivered event".into()),
                    text: format!("{e}: {event}"),
                }),
            };
            return Event {
                id: u.id,
                message,
                origin: u.origin,
                only_chats: Some(u.chats),
                sqs_message_id: Some(message_id),
            };
        }
    }
    Event {
        id: message_id.clone(),
        message: Message::classify(None, body),
        origin: Origin::Sns { subject: None, body: body.to_owned() },
        only_chats: None,
        sqs_message_id: Some(message_id),
    }
}

fn parse_event(event: &Value) -> Result<Event, Error> {
    let Value::Object(_) = event else {
        return Err(Error::Input("expected a JSON object".into()));
    };
    let time = |v: Option<&str>| v.and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc));
    let (alarm, id) = if event.get("alarmData").is_some() {
        // Lambda alarm action (metric or composite alarm).
        let arn = str_field(event, "alarmArn").map(str::to_owned);
        let alarm = Alarm::from_alarm_data(
            &event["alarmData"],
            str_field(event, "region").map(str::to_owned),
            str_field(event, "accountId").map(str::to_owned),
            arn.clone(),
            time(str_field(event, "time")),
        );
        let state_time = event["alarmData"]["state"]["timestamp"].as_str().unwrap_or_default();
        (alarm, format!("{}@{state_time}", arn.unwrap_or_default()))
    } else if str_field(event, "detail-type") == Some("CloudWatch Alarm State Change") {
        let arn = event.get("resources").and_then(|r| r.get(0)).and_then(Value::as_str).map(str::to_owned);
        let alarm = Alarm::from_alarm_data(
            &event["detail"],
            str_field(event, "region").map(str::to_owned),
            str_field(event, "account").map(str::to_owned),
            arn,
            time(str_field(event, "time")),
        );
        (alarm, str_field(event, "id").unwrap_or_default().to_owned())
    } else if let Some(kind) = str_field(event, "detail-type") {
        return Err(Error::Input(format!("unsupported EventBridge event {kind:?}")));
    } else {
        return Err(Error::Input("not an SNS/SQS event, a CloudWatch alarm action or an alarm state change".into()));
    };
    let alarm = alarm.ok_or_else(|| Error::Input("alarm event without an alarm name or state".into()))?;
    Ok(Event {
        id,
        message: Message::Alarm(alarm),
        origin: Origin::Event(event.clone()),
        only_chats: None,
        sqs_message_id: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sqs_body_with_the_sns_envelope_keeps_subject_and_message_id() {
        let envelope = json!({"Type": "Notification", "MessageId": "sns-1", "Subject": "hi", "Message": "plain words"});
        let payload =
            json!({"Records": [{"eventSource": "aws:sqs", "messageId": "sqs-1", "body": envelope.to_string()}]});
        let got = parse(payload).unwrap();
        assert_eq!(got[0].id, "sns-1");
        assert_eq!(got[0].sqs_message_id.as_deref(), Some("sqs-1"));
        assert_eq!(got[0].message, Message::Plain { subject: Some("hi".into()), text: "plain words".into() });
    }

    #[test]
    fn an_undelivered_remainder_replays_to_its_chats_only() {
        let u = Undelivered {
            id: "sns-9".into(),
            chats: vec![Chat { id: "2".into(), thread: None }],
            errors: vec!["500".into()],
            origin: Origin::Sns { subject: None, body: "text".into() },
        };
        let payload = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "sqs-2", "body": u.to_json()}]});
        let got = parse(payload).unwrap();
        assert_eq!(got[0].id, "sns-9");
        assert_eq!(got[0].only_chats, Some(vec![Chat { id: "2".into(), thread: None }]));
    }

    #[test]
    fn raw_sqs_bodies_are_delivered_too() {
        let payload = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "sqs-3", "body": "just text"}]});
        assert_eq!(parse(payload).unwrap()[0].message, Message::Plain { subject: None, text: "just text".into() });
    }

    #[test]
    fn refuses_what_is_not_for_it() {
        for bad in [
            json!([]),
            json!({}),
            json!({"Records": {}}),
            json!({"Records": [{"eventSource": "aws:s3"}]}),
            json!({"detail-type": "Scheduled Event", "source": "aws.events"}),
        ] {
            assert!(matches!(parse(bad.clone()), Err(Error::Input(_))), "{bad}");
        }
    }
}
