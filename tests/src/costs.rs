//! Cost Explorer for cost-check's tests: the account's bill as the fake Cost Explorer
//! (testbed/fake_ce.py) serves it — filtered and grouped by each request, paged, with the account's
//! state (never enabled, no data yet, active cost-allocation tags) — and the requests it received.
//! Months of the seed's tiers, line by line (service, usage type, USD; Frankfurt usage types).

use anyhow::bail;
use serde_json::{Value, json};

use crate::emulator::Emulator;

/// A `GetCostAndUsage` result for October 2026 grouped by service and usage type (moto's own queue,
/// which the fake serves when no bill is set).
pub fn groups(lines: &[(&str, &str, &str)]) -> Value {
    let groups: Vec<Value> = lines
        .iter()
        .map(|(service, usage, amount)| {
            json!({"Keys": [service, usage], "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}})
        })
        .collect();
    json!({"ResultsByTime": [{"TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"}, "Total": {}, "Groups": groups, "Estimated": false}]})
}

pub type Line = (&'static str, &'static str, &'static str);

/// The seed's full tier as its estimate prices it.
pub const FULL_ON_BUDGET: &[Line] = &[
    ("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.small", "15.3312"),
    ("EC2 - Other", "EUC1-EBS:VolumeUsage.gp3", "1.6"),
    ("EC2 - Other", "EUC1-NatGateway-Hours", "32.4"),
    ("Amazon Elastic Load Balancing", "EUC1-LoadBalancerUsage", "16.2"),
    ("AWS Secrets Manager", "EUC1-AWSSecretsManager-Secrets", "1.2"),
    ("Amazon Simple Storage Service", "EUC1-TimedStorage-ByteHrs", "0.4987"),
    ("AmazonCloudWatch", "EUC1-CW:AlarmMonitorUsage", "2.9"),
    ("AWS Key Management Service", "EUC1-KMS-Keys", "1"),
];

/// The full tier with the NAT Gateway running over: more hours, and data processed on top.
pub fn full_with_nat_overrun() -> Vec<Line> {
    let mut lines = FULL_ON_BUDGET.to_vec();
    lines[2].2 = "45.00";
    lines.push(("EC2 - Other", "EUC1-NatGateway-Bytes", "6.75"));
    lines
}

/// What the suite itself costs in a normal month (the README's figure, $4.29): its Telegram secret,
/// alarms and metrics, key, snapshots, Lambda and Cost Explorer requests. The backups are the seed's
/// S3 line.
pub const SUITE_NORMAL: &[Line] = &[
    ("AWS Secrets Manager", "EUC1-AWSSecretsManager-Secrets", "0.40"),
    ("AmazonCloudWatch", "EUC1-CW:AlarmMonitorUsage", "0.90"),
    ("AmazonCloudWatch", "EUC1-CW:MetricMonitorUsage", "0.39"),
    ("AWS Key Management Service", "EUC1-KMS-Keys", "1.00"),
    ("EC2 - Other", "EUC1-EBS:SnapshotUsage", "1.00"),
    ("AWS Lambda", "EUC1-Lambda-GB-Second-ARM", "0.00"),
    ("AWS Cost Explorer", "USE1-APIRequest", "0.10"),
];

/// What the full tier's gateway stack adds as the price table expects it: the root volume, three
/// public IPv4 addresses, the WAF web ACL and rule, Flow Logs and WAF logs, the trail's bucket.
pub const FULL_STACK_NORMAL: &[Line] = &[
    ("EC2 - Other", "EUC1-EBS:VolumeUsage.gp3", "1.60"),
    ("Amazon Virtual Private Cloud", "EUC1-PublicIPv4:InUseAddress", "10.95"),
    ("AWS WAF", "EUC1-WebACL", "5.00"),
    ("AWS WAF", "EUC1-Rule", "1.00"),
    ("AmazonCloudWatch", "EUC1-VendedLog-Bytes", "0.50"),
    ("Amazon Simple Storage Service", "EUC1-TimedStorage-ByteHrs", "0.02"),
];

/// The seed's budget tier as estimated, with what its gateway stack and the suite add.
pub const BUDGET_MONTH: &[Line] = &[
    ("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.micro", "7.59"),
    ("EC2 - Other", "EUC1-EBS:VolumeUsage.gp3", "3.20"),
    ("Amazon Virtual Private Cloud", "EUC1-PublicIPv4:InUseAddress", "3.65"),
    ("AWS Secrets Manager", "EUC1-AWSSecretsManager-Secrets", "1.60"),
    ("Amazon Simple Storage Service", "EUC1-TimedStorage-ByteHrs", "0.52"),
    ("AmazonCloudWatch", "EUC1-CW:AlarmMonitorUsage", "4.29"),
    ("AWS WAF", "EUC1-WebACL", "0"),
    ("AWS Key Management Service", "EUC1-KMS-Keys", "2.00"),
    ("AmazonCloudWatch", "EUC1-VendedLog-Bytes", "0.31"),
    ("EC2 - Other", "EUC1-DataTransfer-Out-Bytes", "0.90"),
    ("EC2 - Other", "EUC1-EBS:SnapshotUsage", "1.00"),
    ("AWS Cost Explorer", "USE1-APIRequest", "0.10"),
];

/// Bill items (no tags) for `POST /_testbed/ce/bill`.
pub fn items(lines: &[Line]) -> Vec<Value> {
    lines
        .iter()
        .map(|(service, usage, amount)| json!({"service": service, "usage_type": usage, "amount": amount}))
        .collect()
}

/// The same items carrying one tag.
pub fn tagged(lines: &[Line], key: &str, value: &str) -> Vec<Value> {
    items(lines)
        .into_iter()
        .map(|mut item| {
            item["tags"] = json!({ key: value });
            item
        })
        .collect()
}

/// The fake Cost Explorer's own API (testbed/fake_ce.py).
pub struct FakeCe {
    url: String,
    http: reqwest::Client,
}

impl FakeCe {
    pub fn new(emulator: &Emulator) -> Self {
        FakeCe { url: emulator.url.clone(), http: reqwest::Client::new() }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method.clone(), format!("{}/_testbed/ce/{path}", self.url));
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} /_testbed/ce/{path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// The account's costs: every request is answered from these, filtered and grouped as it asks.
    pub async fn bill(&self, items: Vec<Value>) -> anyhow::Result<()> {
        self.send(reqwest::Method::POST, "bill", Some(json!({ "items": items }))).await.map(drop)
    }

    /// `{"enabled", "data_available", "active_tags", "page_size", "latency_s"}`, any of them.
    pub async fn account(&self, settings: Value) -> anyhow::Result<()> {
        self.send(reqwest::Method::POST, "account", Some(settings)).await.map(drop)
    }

    pub async fn forecasts(&self, forecasts: Vec<Value>) -> anyhow::Result<()> {
        self.send(reqwest::Method::POST, "forecasts", Some(json!({ "forecasts": forecasts }))).await.map(drop)
    }

    pub async fn failures(&self, failures: Vec<Value>) -> anyhow::Result<()> {
        self.send(reqwest::Method::POST, "failures", Some(json!({ "failures": failures }))).await.map(drop)
    }

    /// Every request received, in order: `{"operation", "access_key_id", "request", "error"}`.
    pub async fn requests(&self) -> anyhow::Result<Vec<Value>> {
        let v = self.send(reqwest::Method::GET, "requests", None).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }
}
