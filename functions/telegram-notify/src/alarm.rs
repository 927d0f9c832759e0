//! One CloudWatch alarm state change, whichever way it arrived: the classic SNS alarm action, a
//! Lambda alarm action (metric or composite), or an EventBridge "CloudWatch Alarm State Change".
//! Real payloads leave things out (description, single metric, threshold), so every part but the
//! name and the new state is optional.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Alarm,
    Ok,
    InsufficientData,
    Other(String),
}

impl State {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "ALARM" => State::Alarm,
            "OK" => State::Ok,
            "INSUFFICIENT_DATA" => State::InsufficientData,
            other => State::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            State::Alarm => "ALARM",
            State::Ok => "OK",
            State::InsufficientData => "INSUFFICIENT_DATA",
            State::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub namespace: Option<String>,
    pub name: String,
    pub dimensions: Vec<(String, String)>,
    pub statistic: Option<String>,
    pub period: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub name: String,
    pub description: Option<String>,
    pub state: State,
    pub previous: Option<State>,
    pub reason: Option<String>,
    pub time: Option<DateTime<Utc>>,
    /// The region code (`eu-central-1`), from the ARN when the payload gives only a display name.
    pub region: Option<String>,
    pub account: Option<String>,
    pub arn: Option<String>,
    pub metrics: Vec<Metric>,
    /// Metric-math expressions, for alarms on an expression rather than a single metric.
    pub expressions: Vec<String>,
    pub comparison: Option<String>,
    pub threshold: Option<f64>,
    /// Anomaly-detection alarms compare with a band metric instead of a number.
    pub threshold_metric_id: Option<String>,
    /// Composite alarms: the rule over other alarms.
    pub rule: Option<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// CloudWatch writes `2026-11-25T03:00:00.000+0000` in SNS messages and RFC 3339 elsewhere.
fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    let raw = v.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(raw)
        .or_else(|_| DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc()))
}

/// The partitions the suite can run in, with the console's host suffix and the prefix their regions
/// carry (`aws` takes every region the other two do not).
const PARTITIONS: [(&str, &str, &str); 3] = [
    ("aws-cn", "console.amazonaws.cn", "cn-"),
    ("aws-us-gov", "console.amazonaws-us-gov.com", "us-gov-"),
    ("aws", "console.aws.amazon.com", ""),
];

/// The partition a region belongs to (its first entry in `PARTITIONS` whose prefix it carries).
fn partition_of(region: &str) -> (&'static str, &'static str) {
    PARTITIONS
        .iter()
        .find(|(_, _, prefix)| region.starts_with(prefix))
        .map(|(name, host, _)| (*name, *host))
        .expect("the last partition takes every region")
}

/// A region code as AWS spells them (`eu-central-1`, `us-gov-west-1`): two lowercase letters, one or
/// more lowercase words, a number. Anything else in an alarm (which anyone allowed to publish on
/// `ops` can write) must not end up in a link's host name.
pub fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let [country, words @ .., number] = parts.as_slice() else { return false };
    parts.len() >= 3
        && country.len() == 2
        && country.bytes().all(|b| b.is_ascii_lowercase())
        && words.iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// An account id: twelve digits.
pub fn valid_account(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

/// The region and account of `arn:PARTITION:cloudwatch:REGION:ACCOUNT:alarm:NAME`, only when the
/// whole prefix is valid and the region belongs to the partition: a forged ARN gives neither.
fn arn_place(arn: Option<&str>) -> (Option<String>, Option<String>) {
    let parts: Vec<&str> = arn.map(|a| a.splitn(7, ':').collect()).unwrap_or_default();
    match parts.as_slice() {
        ["arn", partition, "cloudwatch", region, account, "alarm", name]
            if !name.is_empty()
                && valid_region(region)
                && partition_of(region).0 == *partition
                && valid_account(account) =>
        {
            (Some((*region).to_owned()), Some((*account).to_owned()))
        }
        _ => (None, None),
    }
}

/// A region or account given beside the alarm (the event's envelope), kept only when valid.
fn checked(value: Option<String>, valid: fn(&str) -> bool) -> Option<String> {
    value.filter(|v| valid(v))
}

fn dimensions(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        // SNS: [{"name": "InstanceId", "value": "i-1"}]
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|d| {
                let name = text(d, "name").or_else(|| text(d, "Name"))?;
                let value = text(d, "value").or_else(|| text(d, "Value")).unwrap_or_default();
                Some((name, value))
            })
            .collect(),
        // Lambda / EventBridge: {"InstanceId": "i-1"}
        Some(Value::Object(map)) => {
            let mut out: Vec<_> =
                map.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect();
            out.sort();
            out
        }
        _ => Vec::new(),
    }
}

/// The same metric queries are spelled in PascalCase in SNS alarm messages and in camelCase (with
/// `name` for the metric name) in Lambda alarm actions and EventBridge events.
struct QueryKeys {
    expression: &'static str,
    metric_stat: &'static str,
    metric: &'static str,
    namespace: &'static str,
    name: &'static str,
    dimensions: &'static str,
    stat: &'static str,
    period: &'static str,
}

const SNS_KEYS: QueryKeys = QueryKeys {
    expression: "Expression",
    metric_stat: "MetricStat",
    metric: "Metric",
    namespace: "Namespace",
    name: "MetricName",
    dimensions: "Dimensions",
    stat: "Stat",
    period: "Period",
};

const ALARM_DATA_KEYS: QueryKeys = QueryKeys {
    expression: "expression",
    metric_stat: "metricStat",
    metric: "metric",
    namespace: "namespace",
    name: "name",
    dimensions: "dimensions",
    stat: "stat",
    period: "period",
};

/// A metric-math alarm's queries: metrics, and expressions over them.
fn metric_queries(queries: Option<&Value>, k: &QueryKeys, metrics: &mut Vec<Metric>, expressions: &mut Vec<String>) {
    for query in queries.and_then(Value::as_array).into_iter().flatten() {
        if let Some(expr) = text(query, k.expression) {
            expressions.push(expr);
        } else if let Some(stat) = query.get(k.metric_stat) {
            let metric = stat.get(k.metric).unwrap_or(&Value::Null);
            metrics.push(Metric {
                namespace: text(metric, k.namespace),
                name: text(metric, k.name).unwrap_or_default(),
                dimensions: dimensions(metric.get(k.dimensions)),
                statistic: text(stat, k.stat),
                period: stat.get(k.period).and_then(Value::as_u64),
            });
        }
    }
}

impl Alarm {
    /// Is this JSON a CloudWatch alarm as the SNS alarm action publishes it?
    pub fn is_sns_alarm(v: &Value) -> bool {
        v.get("AlarmName").is_some_and(Value::is_string) && v.get("NewStateValue").is_some_and(Value::is_string)
    }

    /// The classic SNS alarm action's message.
    pub fn from_sns(v: &Value) -> Option<Self> {
        let arn = text(v, "AlarmArn");
        let (arn_region, arn_account) = arn_place(arn.as_deref());
        let trigger = v.get("Trigger").filter(|t| t.is_object());
        let mut metrics = Vec::new();
        let mut expressions = Vec::new();
        if let Some(t) = trigger {
            if let Some(name) = text(t, "MetricName") {
                metrics.push(Metric {
                    namespace: text(t, "Namespace"),
                    name,
                    dimensions: dimensions(t.get("Dimensions")),
                    statistic: text(t, "Statistic").or_else(|| text(t, "ExtendedStatistic")),
                    period: t.get("Period").and_then(Value::as_u64),
                });
            }
            metric_queries(t.get("Metrics"), &SNS_KEYS, &mut metrics, &mut expressions);
        }
        Some(Alarm {
            name: text(v, "AlarmName")?,
            description: text(v, "AlarmDescription"),
            state: State::parse(&text(v, "NewStateValue")?),
            previous: text(v, "OldStateValue").map(|s| State::parse(&s)),
            reason: text(v, "NewStateReason"),
            time: time(v, "StateChangeTime"),
            region: arn_region,
            account: checked(text(v, "AWSAccountId"), valid_account).or(arn_account),
            metrics,
            expressions,
            comparison: trigger.and_then(|t| text(t, "ComparisonOperator")),
            threshold: trigger.and_then(|t| t.get("Threshold")).and_then(Value::as_f64),
            threshold_metric_id: trigger.and_then(|t| text(t, "ThresholdMetricId")),
            rule: text(v, "AlarmRule"),
            arn,
        })
    }

    /// The `alarmData` of a Lambda alarm action, or the `detail` of an EventBridge alarm event
    /// (the same shape); `envelope` holds the region, account, ARN and time around it.
    pub fn from_alarm_data(
        data: &Value,
        region: Option<String>,
        account: Option<String>,
        arn: Option<String>,
        at: Option<DateTime<Utc>>,
    ) -> Option<Self> {
        let state = data.get("state").unwrap_or(&Value::Null);
        let previous = data.get("previousState");
        let config = data.get("configuration").unwrap_or(&Value::Null);
        let (arn_region, arn_account) = arn_place(arn.as_deref());
        let mut metrics = Vec::new();
        let mut expressions = Vec::new();
        metric_queries(config.get("metrics"), &ALARM_DATA_KEYS, &mut metrics, &mut expressions);
        Some(Alarm {
            name: text(data, "alarmName")?,
            description: text(config, "description"),
            state: State::parse(&text(state, "value")?),
            previous: previous.and_then(|p| text(p, "value")).map(|s| State::parse(&s)),
            reason: text(state, "reason"),
            time: time(state, "timestamp").or(at),
            region: checked(region, valid_region).or(arn_region),
            account: checked(account, valid_account).or(arn_account),
            metrics,
            expressions,
            comparison: text(config, "comparisonOperator"),
            threshold: config.get("threshold").and_then(Value::as_f64),
            threshold_metric_id: text(config, "thresholdMetricId"),
            rule: text(config, "alarmRule"),
            arn,
        })
    }

    /// A link to the alarm in its partition's CloudWatch console, when the region is known and
    /// valid (checked again here: the fields are public).
    pub fn console_url(&self) -> Option<String> {
        let region = self.region.as_deref().filter(|r| valid_region(r))?;
        let (_, host) = partition_of(region);
        let name: String = self
            .name
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        Some(format!("https://{region}.{host}/cloudwatch/home?region={region}#alarmsV2:alarm/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sns_alarm_with_a_single_metric() {
        let v = json!({
            "AlarmName": "gateway-cpu-high", "AlarmDescription": null, "AWSAccountId": "123456789012",
            "NewStateValue": "ALARM", "NewStateReason": "Threshold Crossed", "StateChangeTime": "2026-11-25T03:00:00.000+0000",
            "Region": "EU (Frankfurt)", "AlarmArn": "arn:aws:cloudwatch:eu-central-1:123456789012:alarm:gateway-cpu-high",
            "OldStateValue": "OK",
            "Trigger": {"MetricName": "CPUUtilization", "Namespace": "AWS/EC2", "Statistic": "AVERAGE",
                        "Dimensions": [{"value": "i-1", "name": "InstanceId"}], "Period": 300,
                        "ComparisonOperator": "GreaterThanThreshold", "Threshold": 80.0}
        });
        assert!(Alarm::is_sns_alarm(&v));
        let a = Alarm::from_sns(&v).unwrap();
        assert_eq!(a.description, None);
        assert_eq!(a.state, State::Alarm);
        assert_eq!(a.previous, Some(State::Ok));
        assert_eq!(a.region.as_deref(), Some("eu-central-1"));
        assert_eq!(a.metrics[0].dimensions, [("InstanceId".to_owned(), "i-1".to_owned())]);
        assert_eq!(a.threshold, Some(80.0));
        assert_eq!(a.time.unwrap().to_rfc3339(), "2026-11-25T03:00:00+00:00");
        assert_eq!(
            a.console_url().unwrap(),
            "https://eu-central-1.console.aws.amazon.com/cloudwatch/home?region=eu-central-1#alarmsV2:alarm/gateway-cpu-high"
        );
    }

    #[test]
    fn composite_alarm_has_a_rule_and_no_metric() {
        let data = json!({"alarmName": "gateway down", "state": {"value": "ALARM", "reason": "r", "timestamp": "2026-11-25T03:00:00.000+0000"},
                          "configuration": {"alarmRule": "ALARM(a) OR ALARM(b)"}});
        let a = Alarm::from_alarm_data(&data, Some("us-east-1".into()), None, None, None).unwrap();
        assert_eq!(a.rule.as_deref(), Some("ALARM(a) OR ALARM(b)"));
        assert!(a.metrics.is_empty());
        assert_eq!(
            a.console_url().unwrap(),
            "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#alarmsV2:alarm/gateway%20down"
        );
    }

    #[test]
    fn names_and_states_are_required_everything_else_is_not() {
        assert!(Alarm::from_sns(&json!({"AlarmName": "x"})).is_none());
        let a = Alarm::from_sns(&json!({"AlarmName": "x", "NewStateValue": "WEIRD"})).unwrap();
        assert_eq!(a.state, State::Other("WEIRD".into()));
        assert!(a.console_url().is_none());
        assert!(Alarm::from_alarm_data(&json!({"alarmName": "x"}), None, None, None, None).is_none());
    }

    #[test]
    fn a_forged_region_or_account_gives_no_place_and_no_link() {
        for arn in [
            "arn:aws:cloudwatch:evil.example/#:1:alarm:x",
            "arn:aws:cloudwatch:evil.example/#:123456789012:alarm:x",
            "arn:aws:cloudwatch:eu-central-1.evil.example:123456789012:alarm:x",
            "arn:aws:cloudwatch:eu-central-1:12345678901x:alarm:x",
            "arn:evil:cloudwatch:eu-central-1:123456789012:alarm:x",
            "arn:aws-cn:cloudwatch:eu-central-1:123456789012:alarm:x",
            "arn:aws:sns:eu-central-1:123456789012:alarm:x",
            "arn:aws:cloudwatch:EU-central-1:123456789012:alarm:x",
        ] {
            let a = Alarm::from_sns(&json!({"AlarmName": "x", "NewStateValue": "ALARM", "AlarmArn": arn,
                                            "AWSAccountId": "evil"}))
            .unwrap();
            assert_eq!((a.region.as_deref(), a.account.as_deref(), a.console_url()), (None, None, None), "{arn}");
        }
        let forged = Alarm::from_alarm_data(
            &json!({"alarmName": "x", "state": {"value": "ALARM"}}),
            Some("evil.example/#".into()),
            Some("1".into()),
            Some("arn:aws:cloudwatch:evil.example/#:1:alarm:x".into()),
            None,
        )
        .unwrap();
        assert_eq!((forged.region, forged.account), (None, None));
        let mut a = Alarm::from_sns(&json!({"AlarmName": "x", "NewStateValue": "ALARM"})).unwrap();
        a.region = Some("evil.example/#".into());
        assert_eq!(a.console_url(), None, "the link checks the region again");
    }

    #[test]
    fn every_partition_links_to_its_own_console() {
        for (arn, url) in [
            (
                "arn:aws-us-gov:cloudwatch:us-gov-west-1:123456789012:alarm:a",
                "https://us-gov-west-1.console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-west-1#alarmsV2:alarm/a",
            ),
            (
                "arn:aws-cn:cloudwatch:cn-north-1:123456789012:alarm:a",
                "https://cn-north-1.console.amazonaws.cn/cloudwatch/home?region=cn-north-1#alarmsV2:alarm/a",
            ),
            (
                "arn:aws:cloudwatch:ap-southeast-2:123456789012:alarm:a:with:colons",
                "https://ap-southeast-2.console.aws.amazon.com/cloudwatch/home?region=ap-southeast-2#alarmsV2:alarm/a",
            ),
        ] {
            let a = Alarm::from_sns(&json!({"AlarmName": "a", "NewStateValue": "OK", "AlarmArn": arn})).unwrap();
            assert_eq!(a.account.as_deref(), Some("123456789012"));
            assert_eq!(a.console_url().as_deref(), Some(url), "{arn}");
        }
        assert!(valid_region("il-central-1") && valid_region("us-isob-east-1"));
        for bad in ["", "eu", "eu-1", "eu--1", "e-central-1", "eu-central-", "eu-central-123", "eu-central-1 "] {
            assert!(!valid_region(bad), "{bad:?}");
        }
    }
}
