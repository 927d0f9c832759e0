//! cost-check end to end: the real bootstrap against the fake Cost Explorer (testbed/fake_ce.py: the
//! account's bill filtered and grouped by each request, validated and paged as AWS does), as the
//! template's IAM policy, publishing to the `ops` topic. Each case's response, notification and the
//! Cost Explorer requests the function sent are compared with a golden file
//! (tests/golden/cost-check/<case>.json; UPDATE_GOLDEN=1 rewrites them), and each case also checks
//! its own lines and advice.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use integration_tests::account::ops_topic_with_capture;
use integration_tests::costs::{
    BUDGET_MONTH, FULL_ON_BUDGET, FULL_STACK_NORMAL, FakeCe, Line, SUITE_NORMAL, items, tagged,
};
use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::runtime::Function;
use integration_tests::stack::Stack;
use integration_tests::workspace_root;
use serde_json::{Value, json};

const LOGICAL_ID: &str = "CostCheckFunction";

const BUDGET_MONTH_TO_DATE: &[Line] = &[
    ("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.micro", "4.10"),
    ("EC2 - Other", "EUC1-EBS:VolumeUsage.gp3", "0.80"),
    ("Amazon Virtual Private Cloud", "EUC1-PublicIPv4:InUseAddress", "1.83"),
    ("AWS Secrets Manager", "EUC1-AWSSecretsManager-Secrets", "0.60"),
    ("AWS WAF", "EUC1-WebACL", "2.50"),
];

#[derive(Default)]
struct Case {
    name: &'static str,
    tier: &'static str,
    event: Value,
    /// The bill's items (`costs::items`, `costs::tagged`).
    bill: Vec<Value>,
    /// The fake Cost Explorer's account settings.
    account: Option<Value>,
    /// The emulator's "today" (a forecast cannot start before it).
    today: Option<&'static str>,
    forecast: Option<Value>,
    failure: Option<Value>,
    env: Vec<(&'static str, &'static str)>,
}

fn lines(parts: &[&[Line]]) -> Vec<Value> {
    parts.iter().flat_map(|p| items(p)).collect()
}

async fn run(case: Case) -> Value {
    let emulator = Emulator::start().await.unwrap();
    let ce = FakeCe::new(&emulator);
    let admin = emulator.admin().await;
    let (topic_arn, queue_url) = ops_topic_with_capture(&admin).await.unwrap();
    if let Some(today) = case.today {
        emulator.set_clock(DateTime::parse_from_rfc3339(today).unwrap().with_timezone(&Utc)).await.unwrap();
    }
    ce.bill(case.bill).await.unwrap();
    if let Some(account) = case.account {
        ce.account(account).await.unwrap();
    }
    if let Some(forecast) = case.forecast {
        ce.forecasts(vec![forecast]).await.unwrap();
    }
    if let Some(failure) = case.failure {
        ce.failures(vec![failure]).await.unwrap();
    }
    let stack = Stack::new(&emulator).await.unwrap().topic("OpsTopic", &topic_arn);
    let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
    let mut env = emulator.function_env(&principal.keys);
    env.extend([("NOTIFY_TOPIC_ARN".to_owned(), topic_arn), ("COST_TIER".to_owned(), case.tier.to_owned())]);
    env.extend(case.env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let function = Function::start("cost-check", &env).await.unwrap();
    let response = function.invoke(&case.event).await.unwrap().response();

    // The request budget: counted by the function, and by the emulator.
    let calls = emulator.calls_by(&principal.keys).await.unwrap();
    assert!(calls.iter().all(|c| c.allowed), "{calls:?}");
    let ce_calls = calls.iter().filter(|c| c.action.starts_with("ce:")).count();
    assert_eq!(response["requests"], ce_calls, "{}: the count the function logs is the count it made", case.name);
    assert!(ce_calls <= 3);
    let requests: Vec<Value> = ce
        .requests()
        .await
        .unwrap()
        .into_iter()
        .inspect(|r| assert_eq!(r["access_key_id"], principal.keys.access_key_id))
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("access_key_id");
            r
        })
        .collect();
    assert_eq!(requests.len(), ce_calls, "every call reached Cost Explorer");
    let output = function.settled_output().await;
    assert!(output.contains(&format!("\"requests\":{ce_calls}")), "the log line carries the request count");
    let emf: Vec<Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf[0]["CostExplorerRequests"], json!(ce_calls as f64));
    if response["comparison"].is_object() {
        assert_eq!(
            emf[0]["CostEstimate"].as_f64(),
            response["comparison"]["total"]["estimate"].as_str().unwrap().parse().ok()
        );
        let lines = response["comparison"]["lines"].as_array().unwrap().len();
        assert_eq!(
            emf.iter().filter(|d| d.get("Line").is_some() && d.get("CostOverrun").is_some()).count(),
            lines,
            "one overrun metric per line"
        );
    }

    let notes = integration_tests::account::drain(&admin, &queue_url).await.unwrap();
    let got = json!({
        "response": response,
        "notifications": notes,
        "calls": calls.iter().map(|c| c.action.clone()).collect::<Vec<_>>(),
        "ce_requests": requests,
    });
    let golden = workspace_root().join("tests/golden/cost-check").join(format!("{}.json", case.name));
    let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &text).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| panic!("no golden file {}", golden.display()));
    // Compared as JSON values: key order depends on serde_json features unified across the workspace.
    let want: Value = serde_json::from_str(&want).unwrap();
    assert_eq!(got, want, "{} differs from {}", case.name, golden.display());
    got
}

fn monthly() -> Value {
    json!({"check": "monthly", "as_of": "2026-11-02"})
}

fn text(got: &Value) -> &str {
    got["notifications"][0]["text"].as_str().unwrap()
}

/// The drivers' names, largest overrun first.
fn drivers(got: &Value) -> Vec<&str> {
    got["response"]["comparison"]["drivers"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect()
}

/// The options offered for one driver.
fn options<'a>(got: &'a Value, driver: &str) -> Vec<&'a str> {
    let d = got["response"]["comparison"]["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == driver)
        .unwrap_or_else(|| panic!("no driver {driver}"));
    d["savings"].as_array().unwrap().iter().map(|s| s["option"].as_str().unwrap()).collect()
}

/// The one `GetCostAndUsage` request a monthly check sends for October 2026.
fn october_request(filter: Option<Value>) -> Value {
    let mut request = json!({
        "TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"},
        "Granularity": "MONTHLY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "DIMENSION", "Key": "USAGE_TYPE"}],
    });
    if let Some(filter) = filter {
        request["Filter"] = filter;
    }
    request
}

const STACK_DEPLOYED: (&str, &str) = ("COST_GATEWAY_STACK", "deployed");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_tier_on_budget() {
    let got = run(Case {
        name: "full-on-budget",
        tier: "full",
        event: monthly(),
        bill: lines(&[FULL_ON_BUDGET, SUITE_NORMAL]),
        ..Case::default()
    })
    .await;
    let c = &got["response"]["comparison"];
    assert_eq!(c["total"]["status"], "ok");
    assert_eq!(c["drivers"], json!([]));
    assert_eq!(got["notifications"][0]["severity"], "info", "the monthly report is always sent");
    assert_eq!(got["response"]["requests"], 1);
    assert_eq!(got["ce_requests"][0]["request"], october_request(None), "one request, as documented");
    assert!(text(&got).contains("the gateway stack adds — (not deployed by this stack), the ops suite $4.29"));
}

/// The month: the NAT Gateway's hours as estimated and $31.75 of data processing on top.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_tier_nat_data_overrun_is_the_nats_own_data_and_the_saving_is_vpc_endpoints() {
    let mut bill = lines(&[FULL_ON_BUDGET, SUITE_NORMAL, FULL_STACK_NORMAL]);
    bill.extend(items(&[("EC2 - Other", "EUC1-NatGateway-Bytes", "31.75")]));
    let got = run(Case {
        name: "full-nat-data-overrun",
        tier: "full",
        event: monthly(),
        bill,
        env: vec![STACK_DEPLOYED],
        ..Case::default()
    })
    .await;
    let note = &got["notifications"][0];
    assert_eq!(
        note["severity"], "critical",
        "$31.75 on $94.09 expected is 33 % over; the part is above its own $15 alert"
    );
    let c = &got["response"]["comparison"];
    assert_eq!(c["not_in_estimate"], json!([]), "the NAT's data is part of its line, not something unknown");
    assert!(
        text(&got).contains("NAT Gateway: hours $32.40 as estimated, data processing $31.75 — the seed's '+ data'.")
    );
    assert_eq!(drivers(&got), ["NAT Gateway data processing (the seed's '+ data')"]);
    let opts = options(&got, "NAT Gateway data processing (the seed's '+ data')");
    assert!(opts[0].starts_with("An S3 gateway endpoint on the private route table (free)"), "{opts:?}");
    assert!(opts[1].starts_with("Interface endpoints"), "{opts:?}");
    assert!(opts[2].starts_with("Remove the NAT Gateway"), "{opts:?}");
    assert!(text(&got).contains("traffic to Anthropic, Telegram and package registries stays on the NAT"));
    assert!(!opts.iter().any(|o| o.contains("Spot") || o.contains("Reserved")), "nothing for EC2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alb_lcu_spike_is_the_albs_own_part_with_advice_that_limits_lcus() {
    let mut bill = lines(&[FULL_ON_BUDGET, SUITE_NORMAL, FULL_STACK_NORMAL]);
    bill.extend(items(&[("Amazon Elastic Load Balancing", "EUC1-LCUUsage", "23.36")]));
    let got = run(Case {
        name: "full-alb-lcu-spike",
        tier: "full",
        event: monthly(),
        bill,
        env: vec![STACK_DEPLOYED],
        ..Case::default()
    })
    .await;
    assert!(text(&got).contains("ALB: hours $16.20 as estimated, LCUs $23.36 — the seed's '+ LCU'."));
    assert_eq!(drivers(&got), ["ALB LCUs (the seed's '+ LCU')"]);
    let opts = options(&got, "ALB LCUs (the seed's '+ LCU')");
    assert!(opts[0].contains("WAF rate limit"), "{opts:?}");
    assert!(opts[1].starts_with("The budget tier"), "{opts:?}");
    assert!(!opts.iter().any(|o| o.contains("NAT") || o.contains("endpoint")));
    assert!(text(&got).contains("2920 LCU-hours"), "23.36 / $0.008");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_tier_month_with_an_idle_second_address() {
    let mut month = BUDGET_MONTH.to_vec();
    month[2].2 = "7.30";
    let got = run(Case {
        name: "budget-month",
        tier: "budget",
        event: monthly(),
        bill: items(&month),
        env: vec![STACK_DEPLOYED],
        ..Case::default()
    })
    .await;
    let c = &got["response"]["comparison"];
    let names: Vec<&str> = c["lines"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "EC2 t3.micro",
            "EBS 20 GB gp3",
            "Elastic IP",
            "Secrets Manager (3 secrets)",
            "S3",
            "CloudWatch",
            "WAF",
            "KMS"
        ]
    );
    assert_eq!(c["seed"], "22.54");
    assert_eq!(c["stack"]["expected"], "3.12", "root volume, trail bucket, Flow Logs, the gateway's key");
    assert_eq!(drivers(&got), ["Elastic IP"]);
    let opts = options(&got, "Elastic IP");
    assert_eq!(opts.len(), 1);
    assert!(opts[0].contains("the budget tier needs exactly one"), "{opts:?}");
    assert!(
        text(&got).contains(
            "EC2 t3.micro: hours $7.59 as estimated, data transfer out $0.90 — the seed's '+ data transfer'."
        )
    );
    assert!(!text(&got).contains("NAT"), "no NAT advice in a tier without one");
}

/// A forgotten 500 GB volume tagged for snapshots: the suite's own cost grows. Measured by the
/// suite's cost-allocation tag (one more request, filtered by it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suites_own_snapshots_grew() {
    let mut suite = SUITE_NORMAL.to_vec();
    suite[4].2 = "26.00";
    let mut bill = items(FULL_ON_BUDGET);
    bill.extend(tagged(&suite, "openclaw:cost", "ops-suite"));
    let got = run(Case {
        name: "suite-snapshots-grew",
        tier: "full",
        event: monthly(),
        bill,
        account: Some(json!({"active_tags": ["openclaw:cost"]})),
        env: vec![("COST_SUITE_TAG", "openclaw:cost=ops-suite")],
        ..Case::default()
    })
    .await;
    assert_eq!(got["response"]["requests"], 2);
    assert_eq!(got["ce_requests"][0]["request"], october_request(None));
    assert_eq!(
        got["ce_requests"][1]["request"],
        october_request(Some(json!({"Tags": {"Key": "openclaw:cost", "Values": ["ops-suite"]}}))),
        "the suite's costs, by its tag"
    );
    let suite = &got["response"]["comparison"]["suite"];
    assert_eq!((suite["measured"].as_str(), suite["expected"].as_str()), (Some("28.79"), Some("4.29")));
    assert_eq!(drivers(&got), ["suite: EBS snapshots of the data volume"]);
    let opts = options(&got, "suite: EBS snapshots of the data volume");
    assert!(opts[0].starts_with("Untag a volume that should not be snapshotted"), "{opts:?}");
    assert!(text(&got).contains("The ops suite itself costs $4.29 expected; measured by tag openclaw:cost=ops-suite (counted from the tag's activation on): $28.79"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_stacks_extra_resources_are_their_own_block() {
    let mut stack = FULL_STACK_NORMAL.to_vec();
    stack[4].2 = "9.40";
    let got = run(Case {
        name: "gateway-stack-extras",
        tier: "full",
        event: monthly(),
        bill: lines(&[FULL_ON_BUDGET, SUITE_NORMAL, &stack]),
        env: vec![STACK_DEPLOYED],
        ..Case::default()
    })
    .await;
    let block = &got["response"]["comparison"]["stack"];
    assert_eq!(block["expected"], "19.07");
    let names: Vec<&str> = block["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "root volume (20 GB gp3)",
            "CloudTrail log bucket",
            "public IPv4 addresses (the NAT Gateway's Elastic IP, the ALB's two)",
            "WAF web ACL and its rate-limit rule",
            "VPC Flow Logs and WAF logs (vended log ingestion)"
        ]
    );
    assert_eq!(drivers(&got), ["stack: VPC Flow Logs and WAF logs (vended log ingestion)"]);
    assert!(
        options(&got, "stack: VPC Flow Logs and WAF logs (vended log ingestion)")[0]
            .starts_with("Flow Logs of rejected traffic only")
    );
    assert!(text(&got).contains("The gateway stack adds $19.07 expected; measured by usage type: $26.35 of $17.45 expected; inside the seed's lines, not separable by usage type: root volume (20 GB gp3) $1.60 in EBS 20 GB gp3, CloudTrail log bucket $0.02 in S3."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_tier_unexpected_service_is_named_without_advice() {
    let mut bill = lines(&[FULL_ON_BUDGET, SUITE_NORMAL]);
    bill.extend(items(&[("Amazon SageMaker", "EUC1-Notebk:ml.t3.medium", "38.16")]));
    let got =
        run(Case { name: "full-unexpected-service", tier: "full", event: monthly(), bill, ..Case::default() }).await;
    assert_eq!(got["notifications"][0]["severity"], "critical");
    assert_eq!(got["response"]["comparison"]["not_in_estimate"][0]["service"], "Amazon SageMaker");
    assert_eq!(got["response"]["comparison"]["drivers"][0]["savings"], json!([]));
}

/// `COST_TAG`: the request carries the tag filter, and only the tagged resources count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_tag_filters_the_request_and_counts_only_tagged_resources() {
    let mut bill = tagged(FULL_ON_BUDGET, "app", "openclaw");
    bill.extend(items(&[("Amazon SageMaker", "EUC1-Notebk:ml.t3.medium", "38.16")]));
    let got = run(Case {
        name: "full-cost-tag",
        tier: "full",
        event: monthly(),
        bill,
        account: Some(json!({"active_tags": ["app"]})),
        env: vec![("COST_TAG", "app=openclaw")],
        ..Case::default()
    })
    .await;
    assert_eq!(
        got["ce_requests"][0]["request"],
        october_request(Some(json!({"Tags": {"Key": "app", "Values": ["openclaw"]}})))
    );
    assert_eq!(
        got["response"]["comparison"]["not_in_estimate"],
        json!([]),
        "the untagged SageMaker is not the gateway's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_tier_first_week_without_a_forecast() {
    let got = run(Case {
        name: "budget-first-of-month-no-forecast",
        tier: "budget",
        event: json!({"check": "weekly", "as_of": "2026-11-02"}),
        bill: items(&[("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.micro", "0.25")]),
        today: Some("2026-11-02T06:00:00Z"),
        ..Case::default()
    })
    .await;
    assert!(got["response"]["no_forecast"].as_str().unwrap().contains("DataUnavailableException"));
    assert_eq!(got["notifications"], json!([]), "a weekly check below the thresholds says nothing");
    assert_eq!(got["response"]["requests"], 2);
    let forecast = &got["ce_requests"][1];
    assert_eq!(forecast["operation"], "GetCostForecast");
    assert_eq!(forecast["request"]["TimePeriod"], json!({"Start": "2026-11-02", "End": "2026-12-01"}));
    assert_eq!(forecast["error"], "DataUnavailableException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_tier_forecast_over_the_estimate() {
    let got = run(Case {
        name: "budget-forecast-over",
        tier: "budget",
        event: json!({"check": "weekly", "as_of": "2026-11-16"}),
        bill: items(BUDGET_MONTH_TO_DATE),
        today: Some("2026-11-16T06:00:00Z"),
        forecast: Some(json!({"result": {
            "Total": {"Amount": "19.9172", "Unit": "USD"},
            "ForecastResultsByTime": [{"TimePeriod": {"Start": "2026-11-16", "End": "2026-12-01"}, "MeanValue": "19.9172",
                                       "PredictionIntervalLowerBound": "14.10", "PredictionIntervalUpperBound": "19.70"}]
        }})),
        ..Case::default()
    })
    .await;
    let note = &got["notifications"][0];
    assert_eq!(note["severity"], "warning");
    assert_eq!(note["title"], "AWS cost forecast for November 2026: $29.75 of $26.33 expected (+12.99 %)");
    let requests = &got["ce_requests"];
    assert_eq!(
        requests[0]["request"]["TimePeriod"],
        json!({"Start": "2026-11-01", "End": "2026-11-16"}),
        "end exclusive"
    );
    assert_eq!(
        requests[1]["request"],
        json!({"TimePeriod": {"Start": "2026-11-16", "End": "2026-12-01"}, "Granularity": "MONTHLY",
               "Metric": "UNBLENDED_COST", "PredictionIntervalLevel": 80})
    );
}

/// What AWS answers an account that never enabled Cost Explorer: the operator is told to enable it,
/// with the steps, not to fix the role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_explorer_never_enabled_says_how_to_enable_it() {
    let got = run(Case {
        name: "ce-not-enabled",
        tier: "full",
        event: monthly(),
        account: Some(json!({"enabled": false})),
        ..Case::default()
    })
    .await;
    assert_eq!(got["ce_requests"][0]["error"], "AccessDeniedException");
    assert_eq!(got["response"]["unavailable"]["kind"], "not_enabled");
    let note = &got["notifications"][0];
    assert_eq!(note["title"], "Cost check: Cost Explorer is not enabled in this account");
    assert!(text(&got).contains("\"Launch Cost Explorer\""));
    assert!(!text(&got).contains("fix the role"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_says_to_fix_the_role() {
    let got = run(Case {
        name: "ce-access-denied",
        tier: "full",
        event: monthly(),
        failure: Some(json!({"code": "AccessDeniedException",
            "message": "User: arn:aws:iam::123456789012:user/cost-check is not authorized to perform: ce:GetCostAndUsage with an explicit deny in a service control policy"})),
        ..Case::default()
    })
    .await;
    assert_eq!(got["response"]["unavailable"]["kind"], "access_denied");
    assert!(text(&got).contains("fix the role"));
    assert!(!text(&got).contains("Launch Cost Explorer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_yet_is_one_clear_notification_not_a_failure() {
    let got = run(Case {
        name: "ce-no-data-yet",
        tier: "full",
        event: monthly(),
        account: Some(json!({"data_available": false})),
        ..Case::default()
    })
    .await;
    assert_eq!(got["response"]["unavailable"]["kind"], "no_data");
    assert_eq!(got["notifications"][0]["title"], "Cost check: no cost data yet");
}

/// Pages are read with the token Cost Explorer gave, the same request otherwise, and within the
/// budget: the forecast's request is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_followed_within_the_request_budget() {
    let got = run(Case {
        name: "paged",
        tier: "full",
        event: json!({"check": "weekly", "as_of": "2026-11-16"}),
        bill: lines(&[FULL_ON_BUDGET, SUITE_NORMAL]),
        account: Some(json!({"page_size": 8})),
        today: Some("2026-11-16T06:00:00Z"),
        forecast: Some(json!({"result": {"Total": {"Amount": "40", "Unit": "USD"}, "ForecastResultsByTime": []}})),
        ..Case::default()
    })
    .await;
    let requests = got["ce_requests"].as_array().unwrap();
    assert_eq!(requests.len(), 3);
    let token = requests[0]["request"].get("NextPageToken");
    assert!(token.is_none());
    let mut second = requests[1]["request"].clone();
    assert!(second["NextPageToken"].as_str().is_some_and(|t| !t.is_empty()));
    second.as_object_mut().unwrap().remove("NextPageToken");
    assert_eq!(second, requests[0]["request"], "the next page asks the same question");
    assert_eq!(requests[2]["operation"], "GetCostForecast");
    assert_eq!(got["response"]["comparison"]["total"]["actual"], "74.92", "both pages counted");

    // Three pages and a forecast do not fit in three requests: the check says so and stops.
    let emulator = Emulator::start().await.unwrap();
    let ce = FakeCe::new(&emulator);
    emulator
        .set_clock(DateTime::parse_from_rfc3339("2026-11-16T06:00:00Z").unwrap().with_timezone(&Utc))
        .await
        .unwrap();
    ce.bill(lines(&[FULL_ON_BUDGET, SUITE_NORMAL])).await.unwrap();
    ce.account(json!({"page_size": 4})).await.unwrap();
    let admin = emulator.admin().await;
    let (topic_arn, _) = ops_topic_with_capture(&admin).await.unwrap();
    let stack = Stack::new(&emulator).await.unwrap().topic("OpsTopic", &topic_arn);
    let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
    let mut env = emulator.function_env(&principal.keys);
    env.push(("NOTIFY_TOPIC_ARN".to_owned(), topic_arn));
    let function = Function::start("cost-check", &env).await.unwrap();
    let report = function.invoke(&json!({"check": "weekly", "as_of": "2026-11-16"})).await.unwrap().response();
    assert_eq!(report["unavailable"]["kind"], "too_many_pages");
    assert_eq!(ce.requests().await.unwrap().len(), 2, "two pages read, the third request kept for the forecast");
}

/// cost-check's work does not fit in its time: Cost Explorer answers, but slower than the run's
/// `Timeout` (60 s in template.yaml, here on a time scale of 6: 10 s, of which it keeps 5 to
/// report). The run stops waiting in time, tells the owner, and fails as `IncompleteRun` (not
/// Lambda's `Sandbox.Timedout`, which would kill it before any notification) so that Lambda retries
/// it; the retry, with Cost Explorer answering again, reports the month.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_explorer_slower_than_the_deadline_is_reported_and_the_retry_completes() {
    let emulator = Emulator::start().await.unwrap();
    let ce = FakeCe::new(&emulator);
    let admin = emulator.admin().await;
    let (topic_arn, queue_url) = ops_topic_with_capture(&admin).await.unwrap();
    ce.bill(items(FULL_ON_BUDGET)).await.unwrap();
    ce.account(json!({"latency_s": 8})).await.unwrap();
    let stack = Stack::new(&emulator).await.unwrap().topic("OpsTopic", &topic_arn);
    let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
    let mut env = emulator.function_env(&principal.keys);
    env.push(("NOTIFY_TOPIC_ARN".to_owned(), topic_arn));
    let function = Function::start_scaled("cost-check", &env, 6.0).await.unwrap();
    assert_eq!(function.timeout(), std::time::Duration::from_secs(60), "template.yaml's Timeout");

    let started = std::time::Instant::now();
    let (error_type, message) = function.invoke(&monthly()).await.unwrap().error();
    let took = started.elapsed();
    assert_eq!(error_type, "IncompleteRun", "ended by the function, not by Lambda's timeout: {message}");
    assert!(message.contains("GetCostAndUsage had not answered"), "{message}");
    assert!(took < function.deadline() && took >= std::time::Duration::from_secs(4), "{took:?}");
    let notes = integration_tests::account::drain(&admin, &queue_url).await.unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["title"], "Cost check: Cost Explorer did not answer in time");

    ce.account(json!({"latency_s": 0})).await.unwrap();
    let report = function.invoke(&monthly()).await.unwrap().response();
    assert!(report["comparison"]["total"]["actual"].is_string(), "{report}");
    assert_eq!(report["notified"], true, "the month's report, on the retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_is_what_the_function_uses_and_bad_input_changes_nothing() {
    let emulator = Emulator::start().await.unwrap();
    let ce = FakeCe::new(&emulator);
    let admin = emulator.admin().await;
    let (topic_arn, _) = ops_topic_with_capture(&admin).await.unwrap();
    emulator
        .set_clock(DateTime::parse_from_rfc3339("2026-11-16T06:00:00Z").unwrap().with_timezone(&Utc))
        .await
        .unwrap();
    ce.bill(items(FULL_ON_BUDGET)).await.unwrap();
    ce.forecasts(vec![json!({"result": {"Total": {"Amount": "90", "Unit": "USD"}, "ForecastResultsByTime": []}})])
        .await
        .unwrap();
    let stack = Stack::new(&emulator).await.unwrap().topic("OpsTopic", &topic_arn);
    let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
    let mut env = emulator.function_env(&principal.keys);
    env.push(("NOTIFY_TOPIC_ARN".to_owned(), topic_arn));
    let function = Function::start("cost-check", &env).await.unwrap();

    for bad in [json!({"check": "daily"}), json!({"check": "weekly", "dry_run": true}), json!([])] {
        let (error_type, _) = function.invoke(&bad).await.unwrap().error();
        assert_eq!(error_type, "InputError");
    }
    assert!(emulator.calls_by(&principal.keys).await.unwrap().is_empty());
    assert!(ce.requests().await.unwrap().is_empty());

    let report = function.invoke(&json!({"check": "weekly", "as_of": "2026-11-16"})).await.unwrap().response();
    assert_eq!(report["notified"], true);
    let used: BTreeSet<String> =
        emulator.calls_by(&principal.keys).await.unwrap().into_iter().map(|c| c.action).collect();
    let implicit = BTreeSet::from(["kms:GenerateDataKey".to_owned(), "kms:Decrypt".to_owned()]);
    assert_eq!(used, principal.granted.difference(&implicit).cloned().collect::<BTreeSet<_>>());
}

/// The fake Cost Explorer refuses what AWS refuses, with AWS's error codes, so a function sending a
/// bad request fails here as it would there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_beds_cost_explorer_validates_requests_as_aws_does() {
    use aws_sdk_costexplorer::error::ProvideErrorMetadata;
    use aws_sdk_costexplorer::types::{
        DateInterval, DimensionValues, Expression, Granularity, GroupDefinition, GroupDefinitionType, Metric,
    };

    let emulator = Emulator::start().await.unwrap();
    let ce = FakeCe::new(&emulator);
    emulator
        .set_clock(DateTime::parse_from_rfc3339("2026-11-16T06:00:00Z").unwrap().with_timezone(&Utc))
        .await
        .unwrap();
    ce.bill(items(FULL_ON_BUDGET)).await.unwrap();
    ce.account(json!({"page_size": 5})).await.unwrap();
    let client = aws_sdk_costexplorer::Client::new(&emulator.admin().await);
    let period = |start: &str, end: &str| DateInterval::builder().start(start).end(end).build().unwrap();
    let dimension = |key: &str| GroupDefinition::builder().r#type(GroupDefinitionType::Dimension).key(key).build();
    let usage = || {
        client
            .get_cost_and_usage()
            .time_period(period("2026-10-01", "2026-11-01"))
            .granularity(Granularity::Monthly)
            .metrics("UnblendedCost")
    };
    fn code<T, E: ProvideErrorMetadata>(r: Result<T, E>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(e) => e.code().unwrap_or("none").to_owned(),
        }
    }

    // A good request pages: 8 groups, 5 a page.
    let first = usage().group_by(dimension("SERVICE")).group_by(dimension("USAGE_TYPE")).send().await.unwrap();
    assert_eq!(first.results_by_time()[0].groups().len(), 5);
    let token = first.next_page_token().unwrap().to_owned();
    let second = usage()
        .group_by(dimension("SERVICE"))
        .group_by(dimension("USAGE_TYPE"))
        .next_page_token(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.results_by_time()[0].groups().len(), 3);
    assert!(second.next_page_token().is_none());

    let mut refused = Vec::new();
    refused.push(("start after end", code(usage().time_period(period("2026-11-01", "2026-10-01")).send().await)));
    refused.push((
        "start equals end (end is exclusive)",
        code(usage().time_period(period("2026-10-01", "2026-10-01")).send().await),
    ));
    refused.push(("not YYYY-MM-DD", code(usage().time_period(period("2026/10/01", "2026-11-01")).send().await)));
    refused.push(("end past next month", code(usage().time_period(period("2026-10-01", "2027-01-01")).send().await)));
    refused.push(("start in the future", code(usage().time_period(period("2026-11-20", "2026-12-01")).send().await)));
    refused.push(("older than 13 months", code(usage().time_period(period("2025-09-01", "2025-10-01")).send().await)));
    refused.push(("unknown group key", code(usage().group_by(dimension("COLOUR")).send().await)));
    refused.push((
        "three groups",
        code(
            usage()
                .group_by(dimension("SERVICE"))
                .group_by(dimension("USAGE_TYPE"))
                .group_by(dimension("REGION"))
                .send()
                .await,
        ),
    ));
    refused.push((
        "a key grouped twice",
        code(usage().group_by(dimension("SERVICE")).group_by(dimension("SERVICE")).send().await),
    ));
    refused.push((
        "an And of one",
        code(usage().filter(Expression::builder().and(Expression::builder().build()).build()).send().await),
    ));
    refused.push(("an empty filter", code(usage().filter(Expression::builder().build()).send().await)));
    refused.push((
        "an unknown filter dimension",
        code(
            usage()
                .filter(
                    Expression::builder()
                        .dimensions(DimensionValues::builder().key("COLOUR".into()).values("red").build())
                        .build(),
                )
                .send()
                .await,
        ),
    ));
    refused.push(("weekly granularity", code(usage().granularity(Granularity::from("WEEKLY")).send().await)));
    refused.push(("an unknown metric", code(usage().metrics("Profit").send().await)));
    refused.push((
        "a forecast from the past",
        code(
            client
                .get_cost_forecast()
                .time_period(period("2026-11-01", "2026-12-01"))
                .granularity(Granularity::Monthly)
                .metric(Metric::UnblendedCost)
                .send()
                .await,
        ),
    ));
    for (case, code) in &refused {
        assert_eq!(code, "ValidationException", "{case}");
    }
    assert_eq!(code(usage().next_page_token("forged").send().await), "InvalidNextTokenException");
    assert_eq!(
        code(usage().group_by(dimension("SERVICE")).next_page_token(&token).send().await),
        "RequestChangedException",
        "a token belongs to its request"
    );
    ce.account(json!({"enabled": false})).await.unwrap();
    let never = usage().send().await.unwrap_err();
    assert_eq!(ProvideErrorMetadata::code(&never), Some("AccessDeniedException"));
    assert_eq!(ProvideErrorMetadata::message(&never), Some("User not enabled for cost explorer access"));
    // Every request was recorded, refused or not.
    assert_eq!(ce.requests().await.unwrap().len(), 2 + refused.len() + 3);
}
