//! Cost Explorer answers for cost-check, as the emulator serves them: a month of the seed's full
//! tier, line by line (service, usage type, USD).

use serde_json::{Value, json};

/// A `GetCostAndUsage` result for October 2026 grouped by service and usage type.
pub fn groups(lines: &[(&str, &str, &str)]) -> Value {
    let groups: Vec<Value> = lines
        .iter()
        .map(|(service, usage, amount)| {
            json!({"Keys": [service, usage], "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}})
        })
        .collect();
    json!({"ResultsByTime": [{"TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"}, "Total": {}, "Groups": groups, "Estimated": false}]})
}

/// The seed's full tier as its estimate prices it (Frankfurt usage types).
pub const FULL_ON_BUDGET: &[(&str, &str, &str)] = &[
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
pub fn full_with_nat_overrun() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut lines = FULL_ON_BUDGET.to_vec();
    lines[2].2 = "45.00";
    lines.push(("EC2 - Other", "EUC1-NatGateway-Bytes", "6.75"));
    lines
}
