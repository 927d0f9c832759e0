//! The suite's notification (schema `openclaw-ops/notification@1`) and its publisher.
//! telegram-notify renders these; e-mail subscribers read the JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::error::sdk;

pub const SCHEMA: &str = "openclaw-ops/notification@1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// A table rendered monospaced by telegram-notify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub schema: String,
    /// Stable for the same event, so a retried publish can be recognised downstream.
    pub id: String,
    pub source: String,
    pub severity: Severity,
    pub title: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Table>,
}

impl Notification {
    pub fn new(source: &str, id: impl Into<String>, severity: Severity, title: impl Into<String>) -> Self {
        Notification {
            schema: SCHEMA.to_owned(),
            id: id.into(),
            source: source.to_owned(),
            severity,
            title: title.into(),
            text: String::new(),
            fields: BTreeMap::new(),
            table: None,
        }
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    pub fn field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    pub fn table(mut self, table: Table) -> Self {
        self.table = Some(table);
        self
    }

    /// The SNS subject: printable ASCII, under 100 characters, as SNS requires.
    pub fn subject(&self) -> String {
        let clean: String = self
            .title
            .chars()
            .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { ' ' })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let subject = if clean.is_empty() { format!("openclaw-ops {}", self.source) } else { clean };
        subject.chars().take(99).collect()
    }
}

/// Publishes notifications to the suite's `ops` topic.
#[derive(Clone, Debug)]
pub struct Publisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl Publisher {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Publisher { client, topic_arn: topic_arn.into() }
    }

    /// Publishes and returns the SNS message id. A failure is an error: a notification nobody
    /// receives must not pass silently.
    #[tracing::instrument(skip_all)]
    pub async fn publish(&self, notification: &Notification) -> Result<String, Error> {
        let message = serde_json::to_string(notification).expect("a notification always serialises");
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(notification.subject())
            .message(message)
            .send()
            .await
            .map_err(sdk("sns:Publish"))?;
        Ok(out.message_id.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_to_the_documented_schema() {
        let n = Notification::new("ebs-snapshots", "ebs-snapshots/2026-11-25", Severity::Warning, "Floor kept 3")
            .text("details")
            .field("volume", "vol-1")
            .table(Table { columns: vec!["a".into()], rows: vec![vec!["1".into()]] });
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["schema"], "openclaw-ops/notification@1");
        assert_eq!(v["severity"], "warning");
        assert_eq!(v["fields"]["volume"], "vol-1");
        assert_eq!(v["table"]["rows"][0][0], "1");
        let back: Notification = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn optional_parts_are_left_out() {
        let v = serde_json::to_value(Notification::new("x", "id", Severity::Info, "t")).unwrap();
        assert!(v.get("table").is_none() && v.get("fields").is_none());
    }

    #[test]
    fn subject_is_short_printable_ascii() {
        let n = Notification::new(
            "ebs-snapshots",
            "id",
            Severity::Info,
            format!("⚠️ Snapshot\nfailed {}", "x".repeat(200)),
        );
        let s = n.subject();
        assert!(s.len() < 100);
        assert!(s.starts_with("Snapshot failed x"), "{s}");
        assert!(s.chars().all(|c| c.is_ascii_graphic() || c == ' '));
        assert_eq!(
            Notification::new("ebs-snapshots", "id", Severity::Info, "🔥").subject(),
            "openclaw-ops ebs-snapshots"
        );
    }
}
