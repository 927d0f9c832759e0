//! What an invocation answers and logs: each message's fate per chat, and for an SQS batch the
//! records to deliver again.

use aws_lambda_events::sqs::SqsBatchResponse;
use openclaw_ops_shared::metrics::Metrics;
use openclaw_ops_shared::notification::Notification;
use openclaw_ops_shared::run::RunReport;
use serde::Serialize;

use crate::FUNCTION;
use crate::telegram::Chat;

/// One message that reached one chat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sent {
    pub id: String,
    pub chat: String,
    /// Telegram's id of the message in the chat.
    pub message_id: i64,
    /// Sent again as plain text after Telegram refused its formatting.
    pub plain_text: bool,
    /// How many 429 answers were waited out.
    pub waited_429: u32,
}

/// One message and one chat, with why it was not sent there (now).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForChat {
    pub id: String,
    pub chat: String,
    /// Who had it already: this container (absent) or another one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ForChat {
    pub fn new(id: &str, chat: &Chat) -> Self {
        ForChat { id: id.to_owned(), chat: chat.label(), seen_by: None, reason: None, error: None }
    }
}

/// A message not sent at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub id: String,
    pub reason: &'static str,
}

/// The chats a message could not reach, written to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLettered {
    pub id: String,
    pub chats: Vec<Chat>,
    pub errors: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub sent: Vec<Sent>,
    pub duplicates: Vec<ForChat>,
    /// Another container was sending it and had not finished: retried later (batch item failure
    /// on SQS, a failed invocation otherwise), never dropped.
    pub in_flight_elsewhere: Vec<ForChat>,
    /// Sent without a claim: the delivery records could not be read or written (the error says
    /// why); another container may send these too.
    pub unclaimed: Vec<ForChat>,
    /// Chats a replayed message named that are not in `TELEGRAM_CHATS`: nothing was sent there.
    pub refused: Vec<ForChat>,
    pub skipped: Vec<Skipped>,
    pub dead_lettered: Vec<DeadLettered>,
}

/// The invocation's answer: the report, and for an SQS batch Lambda's partial batch response (the
/// event source mapping has `ReportBatchItemFailures`).
#[derive(Debug, Serialize)]
pub struct Response {
    #[serde(flatten)]
    pub report: Report,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub batch: Option<SqsBatchResponse>,
}

impl RunReport for Response {
    fn metrics(&self) -> Vec<Metrics> {
        let r = &self.report;
        vec![
            Metrics::new(FUNCTION)
                .count("MessagesSent", r.sent.len())
                .count("MessagesDuplicate", r.duplicates.len())
                .count("MessagesInFlightElsewhere", r.in_flight_elsewhere.len())
                .count("MessagesUnclaimed", r.unclaimed.len())
                .count("ChatsRefused", r.refused.len())
                .count("MessagesUndelivered", r.dead_lettered.len()),
        ]
    }

    /// This function is where the suite's notifications end up: it sends none of its own.
    fn notifications(&self) -> Vec<Notification> {
        Vec::new()
    }

    /// A message that could not be delivered or written down fails its record or the invocation
    /// before the report is made.
    fn failure(&self) -> Option<String> {
        None
    }

    fn summary(&self) -> String {
        format!("telegram-notify delivered {} message(s)", self.report.sent.len())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_sqs_batch_answers_its_failures_beside_the_report_and_a_direct_call_does_not() {
        let mut batch = SqsBatchResponse::default();
        batch.add_failure("m-2");
        let mut report = Report::default();
        report.duplicates.push(ForChat {
            seen_by: Some("another container"),
            ..ForChat::new("sns-1", &Chat { id: "111".into(), thread: None })
        });
        let v = serde_json::to_value(Response { report, batch: Some(batch) }).unwrap();
        assert_eq!(v["batchItemFailures"], json!([{"itemIdentifier": "m-2"}]));
        assert_eq!(v["duplicates"], json!([{"id": "sns-1", "chat": "111", "seen_by": "another container"}]));
        let v = serde_json::to_value(Response { report: Report::default(), batch: None }).unwrap();
        assert!(v.get("batchItemFailures").is_none(), "{v}");
        assert_eq!(v["sent"], json!([]));
    }
}
