//! The end of every run, written once: the report's log line, its EMF metrics, the notifications a
//! human should get, then the invocation's answer — the report, or `Error::Incomplete` when a step
//! failed (so Lambda retries the event and the Errors alarm sees it).

use chrono::Utc;
use serde::Serialize;

use crate::Error;
use crate::metrics::Metrics;
use crate::notification::{Notification, Publisher};

/// What a function's report tells each audience. Each function writes its own log fields,
/// metrics and notifications; [`finish`] delivers them in the same order everywhere.
pub trait RunReport: Serialize {
    /// The run's one structured log line (use [`to_json`] for the report itself).
    fn log(&self);
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
    report.log();
    let now = Utc::now();
    for metrics in report.metrics() {
        metrics.emit(now);
    }
}

/// A report as the JSON of its log line. Reports are plain data (strings, numbers, maps with
/// string keys), so serialising cannot fail.
pub fn to_json(report: &impl Serialize) -> String {
    serde_json::to_string(report).expect("a report always serialises")
}
