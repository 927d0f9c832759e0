//! The end of every run, written once: the report's log line, its EMF metrics, the notifications a
//! human should get, then the invocation's answer — the report, or `Error::Incomplete` when a step
//! failed (so Lambda retries the event and the Errors alarm sees it).
//!
//! The log line carries the report as a JSON object, not as a string inside the line: CloudWatch
//! Logs Insights then filters on its fields (`fields.report.failed.0.error.code`). `tracing` can
//! only record a nested value through `valuable`, which needs every crate built with
//! `--cfg tracing_unstable`; so this one line is written here, in the shape of the runtime's JSON
//! log lines (`timestamp`, `level`, `fields.message`, `target`), at the level `tracing` allows.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use tracing::Level;

use crate::Error;
use crate::metrics::Metrics;
use crate::notification::{Notification, Publisher};

/// What a function's report tells each audience. Each function writes its own summary, metrics and
/// notifications; [`finish`] delivers them in the same order everywhere.
pub trait RunReport: Serialize {
    /// The run's log line in words (the report goes beside it, whole).
    fn summary(&self) -> String;
    /// Its EMF metrics: one set per dimension set (most reports have one).
    fn metrics(&self) -> Vec<Metrics>;
    /// What a human should hear about this run, in order; often nothing.
    fn notifications(&self) -> Vec<Notification>;
    /// Why the run counts as failed, when it does.
    fn failure(&self) -> Option<String>;
}

/// Logs, measures and notifies, then answers the report or its failure. A notification that
/// cannot be published fails the run (Lambda retries it; the ids let the topic's readers drop a
/// repeat).
pub async fn finish<R: RunReport>(report: R, publisher: &Publisher) -> Result<R, Error> {
    record(&report);
    for notification in report.notifications() {
        publisher.publish(&notification).await?;
    }
    match report.failure() {
        Some(summary) => Err(Error::Incomplete(summary)),
        None => Ok(report),
    }
}

/// The log line and the metrics alone: for telegram-notify, which is where notifications go.
pub fn record<R: RunReport>(report: &R) {
    let now = Utc::now();
    // A run with a failure is an ERROR line: the log's own filters find it without the metrics.
    let level = if report.failure().is_some() { Level::ERROR } else { Level::INFO };
    let enabled = match level {
        Level::ERROR => tracing::enabled!(Level::ERROR),
        _ => tracing::enabled!(Level::INFO),
    };
    if enabled {
        println!("{}", log_line(report, level, now));
    }
    for metrics in report.metrics() {
        metrics.emit(now);
    }
}

/// The report's one log line: the runtime's JSON log shape, with the report as an object.
pub fn log_line<R: RunReport>(report: &R, level: Level, now: DateTime<Utc>) -> String {
    json!({
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Micros, true),
        "level": level.as_str(),
        "fields": {"message": report.summary(), "report": report},
        "target": "openclaw_ops::run",
    })
    .to_string()
}

/// A report as JSON text (for a test's or a notification's use). Reports are plain data
/// (strings, numbers, maps with string keys), so serialising cannot fail.
pub fn to_json(report: &impl Serialize) -> String {
    serde_json::to_string(report).expect("a report always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample {
        failed: Vec<crate::error::Failure>,
    }

    impl RunReport for Sample {
        fn summary(&self) -> String {
            format!("sample run, {} failed", self.failed.len())
        }
        fn metrics(&self) -> Vec<Metrics> {
            Vec::new()
        }
        fn notifications(&self) -> Vec<Notification> {
            Vec::new()
        }
        fn failure(&self) -> Option<String> {
            self.failed.first().map(ToString::to_string)
        }
    }

    #[test]
    fn the_log_line_carries_the_report_as_an_object_not_as_text() {
        let report = Sample { failed: vec![crate::error::Failure::call("ec2:CreateSnapshot", "not attempted")] };
        let now = DateTime::parse_from_rfc3339("2026-12-04T03:00:00Z").unwrap().with_timezone(&Utc);
        let line: serde_json::Value = serde_json::from_str(&log_line(&report, Level::ERROR, now)).unwrap();
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["timestamp"], "2026-12-04T03:00:00.000000Z");
        assert_eq!(line["fields"]["message"], "sample run, 1 failed");
        assert_eq!(line["fields"]["report"]["failed"][0]["operation"], "ec2:CreateSnapshot");
        assert_eq!(line["fields"]["report"]["failed"][0]["message"], "not attempted");
    }
}
