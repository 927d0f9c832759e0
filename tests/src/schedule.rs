//! Simulated days for the scheduled functions: day 1 is 2026-03-01, each run at 03:00 UTC.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};

pub fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + TimeDelta::days(i64::from(n) - 1)
}

pub fn scheduled_at(n: u32) -> DateTime<Utc> {
    day(n).and_hms_opt(3, 0, 0).unwrap().and_utc()
}

/// The EventBridge event a schedule delivers on day `n`.
pub fn scheduled_event(n: u32) -> Value {
    json!({
        "version": "0", "id": format!("event-day-{n}"), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": scheduled_at(n).to_rfc3339(), "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/daily"], "detail": {}
    })
}
