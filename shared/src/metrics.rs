//! CloudWatch Embedded Metric Format: metrics as one JSON line on stdout, which Lambda's log
//! pipeline turns into metrics without an API call (and without the cost or latency of one).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "OpenClawOps";

/// A set of counters for one invocation, dimensioned by function.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: String,
    /// An extra dimension beside `Function` (e.g. a cost line), when set.
    dimension: Option<(String, String)>,
    values: Vec<(String, f64, &'static str)>,
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

    /// A value in a unit other than a count (`"None"` for dollars: CloudWatch has no currency unit).
    pub fn value(mut self, name: &str, value: f64, unit: &'static str) -> Self {
        self.values.push((name.to_owned(), value, unit));
        self
    }

    pub fn count(mut self, name: &str, value: usize) -> Self {
        self.values.push((name.to_owned(), value as f64, "Count"));
        self
    }

    /// The EMF document (one JSON object).
    pub fn to_emf(&self, at: DateTime<Utc>) -> Value {
        let definitions: Vec<Value> =
            self.values.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect();
        let mut dimensions = vec!["Function".to_owned()];
        let mut doc = Map::new();
        if let Some((key, value)) = &self.dimension {
            dimensions.push(key.clone());
            doc.insert(key.clone(), Value::String(value.clone()));
        }
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": at.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dimensions],
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
    fn a_second_dimension_is_declared_and_set() {
        let at = DateTime::from_timestamp(0, 0).unwrap();
        let doc = Metrics::new("cost-check")
            .with_dimension("Line", "NAT Gateway")
            .value("CostOverrun", 12.6, "None")
            .to_emf(at);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Function", "Line"]]));
        assert_eq!(doc["Line"], "NAT Gateway");
        assert_eq!(doc["CostOverrun"], 12.6);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "None");
    }

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
