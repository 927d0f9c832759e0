//! CloudWatch Embedded Metric Format: metrics as one JSON line on stdout, which Lambda's log
//! pipeline turns into metrics without an API call (and without the cost or latency of one).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "OpenClawOps";

/// A set of counters for one invocation, dimensioned by function.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: String,
    values: Vec<(String, f64, &'static str)>,
}

impl Metrics {
    pub fn new(function: impl Into<String>) -> Self {
        Metrics { function: function.into(), values: Vec::new() }
    }

    pub fn count(mut self, name: &str, value: usize) -> Self {
        self.values.push((name.to_owned(), value as f64, "Count"));
        self
    }

    /// The EMF document (one JSON object).
    pub fn to_emf(&self, at: DateTime<Utc>) -> Value {
        let definitions: Vec<Value> =
            self.values.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": at.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": definitions,
                }],
            }),
        );
        doc.insert("Function".into(), Value::String(self.function.clone()));
        for (name, value, _) in &self.values {
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
    fn emf_document_declares_every_metric_and_its_value() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let doc = Metrics::new("ebs-snapshots").count("SnapshotsCreated", 2).count("SnapshotFailures", 0).to_emf(at);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "OpenClawOps");
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Function"]]));
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"], "SnapshotFailures");
        assert_eq!(doc["Function"], "ebs-snapshots");
        assert_eq!(doc["SnapshotsCreated"], 2.0);
        assert_eq!(doc["SnapshotFailures"], 0.0);
    }
}
