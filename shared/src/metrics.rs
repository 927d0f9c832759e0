//! CloudWatch Embedded Metric Format: one JSON line on stdout per run, which Lambda's log pipeline
//! turns into metrics without an API call (and without the cost or latency of one).
//!
//! Every value is a field of the line (Logs Insights can chart any of them, free), but only the
//! ones declared with [`Metrics::metric`] become CloudWatch metrics: each is a custom metric billed
//! $0.30 a month, which would make the suite's own bill its biggest line. Declare what an alarm
//! watches; log the rest with [`Metrics::count`] and [`Metrics::value`].

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "OpenClawOps";

/// A set of counters for one invocation, dimensioned by function.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: String,
    /// An extra dimension beside `Function` (e.g. a cost line), when set.
    dimension: Option<(String, String)>,
    /// Name, value, unit, and whether it is declared as a CloudWatch metric.
    values: Vec<(String, f64, &'static str, bool)>,
}

impl Metrics {
    pub fn new(function: impl Into<String>) -> Self {
        Metrics { function: function.into(), dimension: None, values: Vec::new() }
    }

    /// Metrics dimensioned by `Function` and one more key.
    pub fn with_dimension(mut self, key: &str, value: impl Into<String>) -> Self {
        self.dimension = Some((key.to_owned(), value.into()));
        self
    }

    /// A value in the line only, in a unit other than a count (`"None"` for dollars: CloudWatch
    /// has no currency unit).
    pub fn value(mut self, name: &str, value: f64, unit: &'static str) -> Self {
        self.values.push((name.to_owned(), value, unit, false));
        self
    }

    /// A count in the line only.
    pub fn count(mut self, name: &str, value: usize) -> Self {
        self.values.push((name.to_owned(), value as f64, "Count", false));
        self
    }

    /// A value that is also a CloudWatch metric (billed): for what an alarm watches.
    pub fn metric(mut self, name: &str, value: f64, unit: &'static str) -> Self {
        self.values.push((name.to_owned(), value, unit, true));
        self
    }

    /// The EMF document (one JSON object).
    pub fn to_emf(&self, at: DateTime<Utc>) -> Value {
        let definitions: Vec<Value> = self
            .values
            .iter()
            .filter(|(_, _, _, declared)| *declared)
            .map(|(name, _, unit, _)| json!({"Name": name, "Unit": unit}))
            .collect();
        let mut dimensions = vec!["Function".to_owned()];
        let mut doc = Map::new();
        if let Some((key, value)) = &self.dimension {
            dimensions.push(key.clone());
            doc.insert(key.clone(), Value::String(value.clone()));
        }
        let directives = if definitions.is_empty() {
            vec![]
        } else {
            vec![json!({"Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": definitions})]
        };
        doc.insert("_aws".into(), json!({"Timestamp": at.timestamp_millis(), "CloudWatchMetrics": directives}));
        doc.insert("Function".into(), Value::String(self.function.clone()));
        for (name, value, _, _) in &self.values {
            doc.insert(name.clone(), json!(value));
        }
        Value::Object(doc)
    }

    /// Writes the EMF line to stdout, where the Lambda log pipeline picks it up.
    pub fn emit(&self, at: DateTime<Utc>) {
        println!("{}", self.to_emf(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_dimension_is_declared_and_set() {
        let at = DateTime::from_timestamp(0, 0).unwrap();
        let doc = Metrics::new("cost-check")
            .with_dimension("Line", "NAT Gateway")
            .metric("CostOverrun", 12.6, "None")
            .to_emf(at);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Function", "Line"]]));
        assert_eq!(doc["Line"], "NAT Gateway");
        assert_eq!(doc["CostOverrun"], 12.6);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "None");
    }

    #[test]
    fn only_declared_metrics_become_cloudwatch_metrics_and_every_value_is_in_the_line() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let doc = Metrics::new("s3-backup")
            .count("BackupsMade", 2)
            .metric("BackupAgeHours", 0.5, "None")
            .value("BackupBytes", 10.0, "Bytes")
            .to_emf(at);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "OpenClawOps");
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Function"]]));
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"], json!([{"Name": "BackupAgeHours", "Unit": "None"}]));
        assert_eq!(doc["Function"], "s3-backup");
        assert_eq!((doc["BackupsMade"].as_f64(), doc["BackupBytes"].as_f64()), (Some(2.0), Some(10.0)));
    }

    #[test]
    fn a_line_without_declared_metrics_declares_none() {
        let doc = Metrics::new("ebs-snapshots").count("SnapshotsCreated", 2).to_emf(DateTime::UNIX_EPOCH);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"], json!([]));
        assert_eq!(doc["SnapshotsCreated"], 2.0);
    }
}
