//! ebs-snapshots end to end: its real bootstrap, against the emulator, as an IAM user holding exactly
//! the template's policy for it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use integration_tests::account::{OpenClawAccount, tag_value};
use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::runtime::Function;
use integration_tests::schedule::{day, scheduled_at, scheduled_event};
use integration_tests::stack::Stack;
use serde_json::{Value, json};

const LOGICAL_ID: &str = "EbsSnapshotsFunction";

struct Bed {
    emulator: Emulator,
    account: OpenClawAccount,
    principal: Principal,
    function: Function,
}

impl Bed {
    async fn start(extra_env: &[(&str, &str)]) -> Bed {
        let emulator = Emulator::start().await.unwrap();
        let account = OpenClawAccount::seed(&emulator).await.unwrap();
        let stack = Stack::new(&emulator).await.unwrap().topic("OpsTopic", &account.topic_arn);
        let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
        let mut env = emulator.function_env(&principal.keys);
        env.push(("NOTIFY_TOPIC_ARN".into(), account.topic_arn.clone()));
        env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // The function's clock and the emulator's both start at day 1's schedule: the function
        // refuses scheduled events its own clock says no genuine delivery carries.
        emulator.set_clock(scheduled_at(1)).await.unwrap();
        let function = Function::start_at("ebs-snapshots", &env, scheduled_at(1)).await.unwrap();
        Bed { emulator, account, principal, function }
    }

    /// Sets the function's and the emulator's clocks.
    async fn set_clock(&self, now: DateTime<Utc>) {
        self.emulator.set_clock(now).await.unwrap();
        self.function.set_clock(now).unwrap();
    }

    /// Runs the schedule of day `n`, with the clocks at that day.
    async fn run_day(&self, n: u32) -> integration_tests::runtime::Outcome {
        self.set_clock(scheduled_at(n) + TimeDelta::seconds(2)).await;
        self.function.invoke(&scheduled_event(n)).await.unwrap()
    }

    /// The mutating calls the function made so far.
    async fn writes(&self) -> Vec<String> {
        let calls = self.actions_used().await.into_iter().map(|(action, _)| action);
        calls.filter(|a| !a.starts_with("ec2:Describe")).collect()
    }

    /// The suite's snapshots per source volume, as their scheduled dates.
    async fn owned_dates(&self) -> BTreeMap<String, Vec<NaiveDate>> {
        let mut out: BTreeMap<String, Vec<NaiveDate>> = BTreeMap::new();
        for s in self.account.snapshots().await.unwrap() {
            if tag_value(&s, "openclaw:managed-by") == Some("openclaw-ops") {
                let date = tag_value(&s, "openclaw:date").unwrap().parse().unwrap();
                out.entry(tag_value(&s, "openclaw:volume-id").unwrap().to_owned()).or_default().push(date);
            }
        }
        out.values_mut().for_each(|v| v.sort());
        out
    }

    async fn foreign_snapshots(&self) -> BTreeSet<String> {
        let all = self.account.snapshots().await.unwrap();
        all.iter()
            .filter(|s| tag_value(s, "openclaw:managed-by").is_none())
            .map(|s| s.snapshot_id().unwrap().to_owned())
            .collect()
    }

    async fn actions_used(&self) -> Vec<(String, bool)> {
        let calls = self.emulator.calls_by(&self.principal.keys).await.unwrap();
        calls.into_iter().map(|c| (c.action, c.allowed)).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_days_leave_exactly_seven_per_tagged_volume_and_nothing_else_touched() {
    let bed = Bed::start(&[]).await;
    let foreign_before = bed.foreign_snapshots().await;
    assert!(foreign_before.len() > 1000, "the emulator's own snapshots are part of the test: {}", foreign_before.len());

    for n in 1..=10 {
        let report = bed.run_day(n).await.response();
        assert_eq!(report["date"], day(n).to_string());
        assert_eq!(report["created"].as_array().unwrap().len(), 2, "day {n}: {report}");
        let expected_deletes = if n > 7 { 2 } else { 0 };
        assert_eq!(report["deleted"].as_array().unwrap().len(), expected_deletes, "day {n}: {report}");
        assert_eq!(report["failed"], json!([]));
    }

    let dates = bed.owned_dates().await;
    let window: Vec<NaiveDate> = (4..=10).map(day).collect();
    assert_eq!(dates.get(&bed.account.data_volume), Some(&window));
    assert_eq!(dates.get(&bed.account.root_volume), Some(&window));
    assert!(!dates.contains_key(&bed.account.untagged_volume));
    assert_eq!(dates.len(), 2);
    assert_eq!(bed.foreign_snapshots().await, foreign_before, "the emulator's own snapshots are untouched");

    // Tags written at creation, from the volume and its attachment.
    let snapshots = bed.account.snapshots().await.unwrap();
    let data = snapshots
        .iter()
        .find(|s| tag_value(s, "openclaw:volume-id") == Some(bed.account.data_volume.as_str()))
        .unwrap();
    assert_eq!(tag_value(data, "openclaw:kind"), Some("daily"));
    assert_eq!(tag_value(data, "openclaw:instance-id"), Some(bed.account.instance_id.as_str()));
    assert_eq!(tag_value(data, "openclaw:device"), Some("/dev/sdf"));
    assert_eq!(tag_value(data, "Name"), Some("openclaw-data"));

    // EventBridge delivers at least once: the same event again changes nothing.
    let again = bed.function.invoke(&scheduled_event(10)).await.unwrap().response();
    assert_eq!(again["created"], json!([]));
    assert_eq!(again["already_present"].as_array().unwrap().len(), 2);
    assert_eq!(bed.owned_dates().await, dates);

    // Nothing failed and the floor never held: nobody was notified.
    assert_eq!(bed.account.notifications().await.unwrap(), Vec::<Value>::new());

    // The run reports through its log line and EMF metrics on stdout.
    let output = bed.function.settled_output().await;
    let emf: Vec<Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 11);
    assert_eq!(emf[0]["SnapshotsCreated"], 2.0);
    assert_eq!(emf[9]["SnapshotsDeleted"], 2.0);
    assert_eq!(emf[0]["_aws"]["CloudWatchMetrics"], json!([]), "values in the line, no billed custom metric");
    let log_lines = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["report"]["date"].is_string() && v["level"] == "INFO")
        .count();
    assert_eq!(log_lines, 11, "one structured log line per run, the report an object in it:\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_days_of_failing_snapshots_leave_the_floor_of_three() {
    let bed = Bed::start(&[]).await;
    for n in 1..=7 {
        bed.run_day(n).await.response();
    }
    bed.principal.deny(&bed.emulator, &["ec2:CreateSnapshot"]).await.unwrap();
    for n in 8..=17 {
        let (error_type, message) = bed.run_day(n).await.error();
        assert_eq!(error_type, "IncompleteRun");
        assert!(message.contains("create"), "{message}");
    }
    let dates = bed.owned_dates().await;
    let floor: Vec<NaiveDate> = (5..=7).map(day).collect();
    assert_eq!(dates.get(&bed.account.data_volume), Some(&floor));
    assert_eq!(dates.get(&bed.account.root_volume), Some(&floor));

    let notes = bed.account.notifications().await.unwrap();
    assert_eq!(notes.len(), 10, "one notification per failing day");
    let last = notes.last().unwrap();
    assert_eq!(last["schema"], "openclaw-ops/notification@1");
    assert_eq!(last["source"], "ebs-snapshots");
    assert_eq!(last["severity"], "critical");
    assert_eq!(last["id"], format!("ebs-snapshots:{}", day(17)));
    assert_eq!(last["fields"]["kept by floor"], "6");

    // Snapshots work again: each new completed snapshot releases one held by the floor.
    bed.principal.restore(&bed.emulator).await.unwrap();
    for (n, held) in [(18, 6), (19, 4), (20, 2), (21, 0)] {
        let report = bed.run_day(n).await.response();
        assert_eq!(report["created"].as_array().unwrap().len(), 2, "day {n}");
        assert_eq!(report["kept_by_floor"].as_array().unwrap().len(), held, "day {n}");
    }
    let dates = bed.owned_dates().await;
    assert_eq!(dates.get(&bed.account.data_volume), Some(&(18..=21).map(day).collect::<Vec<_>>()));
}

/// The template grants exactly what the function uses: every call it made was allowed, and every
/// grant it never exercised is one AWS evaluates on its behalf (not a call of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_policy_is_exactly_what_the_function_uses() {
    let bed = Bed::start(&[]).await;
    let ec2 = aws_sdk_ec2::Client::new(&bed.account.admin);
    // A second tagged volume that goes away after two days: its snapshots age out down to the
    // floor, which notifies, so every path (describe, create, delete, publish) is exercised.
    let short_lived =
        OpenClawAccount::volume(&ec2, &[("Name", "short-lived"), ("openclaw:snapshot", "daily")]).await.unwrap();
    for n in 1..=2 {
        bed.run_day(n).await.response();
    }
    ec2.delete_volume().volume_id(&short_lived).send().await.unwrap();
    for n in 3..=12 {
        bed.run_day(n).await.response();
    }
    let notes = bed.account.notifications().await.unwrap();
    assert!(!notes.is_empty(), "the floor on a removed volume notifies");
    assert_eq!(notes.last().unwrap()["severity"], "info");

    let calls = bed.actions_used().await;
    let denied: Vec<_> = calls.iter().filter(|(_, allowed)| !allowed).collect();
    assert!(denied.is_empty(), "calls the template does not allow: {denied:?}");
    let used: BTreeSet<String> = calls.into_iter().map(|(action, _)| action).collect();
    let implicit: BTreeSet<String> = [
        "ec2:CreateTags",      // authorized as part of CreateSnapshot's TagSpecifications
        "kms:GenerateDataKey", // SNS encrypts with the topic's key on the publisher's behalf
        "kms:Decrypt",
        // The freeze around the data volume's snapshot: this bed's instance has no SSM agent, so
        // only DescribeInstanceInformation is used here; ebs_snapshots_consistency.rs uses these.
        "ssm:SendCommand",
        "ssm:GetCommandInvocation",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let expected: BTreeSet<String> = bed.principal.granted.difference(&implicit).cloned().collect();
    assert_eq!(used, expected, "granted: {:?}", bed.principal.granted);
    assert!(implicit.is_subset(&bed.principal.granted));
    assert!(used.contains("ssm:DescribeInstanceInformation"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_clear_error_and_no_aws_call() {
    let bed = Bed::start(&[]).await;
    let cases: [(&[u8], &str); 4] = [
        (br#"{"dry_run": tru"#, "failed to deserialize"),
        (br#"{"dry_run": false, "retention_days": 1}"#, "unknown field `retention_days`"),
        (br#"{"Records": [{"EventSource": "aws:sns"}]}"#, "Records"),
        (
            br#"{"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}"#,
            "unsupported EventBridge event",
        ),
    ];
    for (payload, needle) in cases {
        let (_, message) = bed.function.invoke_raw(payload.to_vec()).await.unwrap().error();
        assert!(message.contains(needle), "{}: {message}", String::from_utf8_lossy(payload));
    }
    assert_eq!(bed.actions_used().await, vec![], "bad input makes no AWS call at all");
    let total = bed.account.snapshots().await.unwrap();
    assert!(total.iter().all(|s| tag_value(s, "openclaw:managed-by").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_without_changing_anything() {
    let bed = Bed::start(&[]).await;
    let report = bed.function.invoke(&json!({"dry_run": true})).await.unwrap().response();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["would_create"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["created"], json!([]));
    // Reads only: the volumes, the snapshots, and whether the gateway has an SSM agent to freeze with.
    let mutating: Vec<_> = bed
        .actions_used()
        .await
        .into_iter()
        .filter(|(a, _)| !a.starts_with("ec2:Describe") && a != "ssm:DescribeInstanceInformation")
        .collect();
    assert_eq!(mutating, vec![]);
    assert_eq!(report["would_take"].as_array().unwrap().len(), 2, "{report}");

    // A manual run for real, then a second one the same day: it says the snapshot is there.
    let first = bed.function.invoke(&json!({})).await.unwrap().response();
    assert_eq!(first["created"].as_array().unwrap().len(), 2);
    let second = bed.function.invoke(&json!({})).await.unwrap().response();
    assert_eq!(second["created"], json!([]));
    assert_eq!(second["already_present"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_from_the_environment_applies_to_scheduled_runs() {
    let bed = Bed::start(&[("DRY_RUN", "true")]).await;
    let report = bed.run_day(1).await.response();
    assert_eq!(report["dry_run"], true);
    assert!(bed.owned_dates().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_configuration_fails_the_init_phase_by_name() {
    let emulator = Emulator::start().await.unwrap();
    let stack = Stack::new(&emulator).await.unwrap().topic("OpsTopic", "arn:aws:sns:us-east-1:123456789012:ops");
    let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
    let function = Function::start("ebs-snapshots", &emulator.function_env(&principal.keys)).await.unwrap();
    let failure = function.init_failure().await.unwrap();
    assert!(failure.contains("NOTIFY_TOPIC_ARN is required"), "{failure}");
}

/// A scheduled event's `time` moves the run's "today": one from the future would expire every
/// snapshot, a replayed old one would act for a past day. Both are refused before any AWS call; a
/// genuine late delivery (EventBridge's and Lambda's retries, up to 12 hours) still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_scheduled_times_are_refused_before_any_aws_call() {
    let bed = Bed::start(&[]).await;
    bed.set_clock(scheduled_at(5) + TimeDelta::seconds(2)).await;
    let mut future = scheduled_event(5);
    future["time"] = json!("2035-01-01T00:00:00Z");
    let (error_type, message) = bed.function.invoke(&future).await.unwrap().error();
    assert!(
        message.contains("is in the future") && message.contains("refused, nothing done"),
        "{error_type}: {message}"
    );
    let (_, message) = bed.function.invoke(&scheduled_event(6)).await.unwrap().error();
    assert!(message.contains("is in the future"), "{message}");
    let (_, message) = bed.function.invoke(&scheduled_event(4)).await.unwrap().error();
    assert!(message.contains("older than any genuine retry can be (43200 s"), "{message}");
    assert_eq!(bed.actions_used().await, vec![], "refused before any AWS call");

    // The last retry Lambda can make of day 5's event, 12 hours on, is genuine.
    bed.set_clock(scheduled_at(5) + TimeDelta::hours(12)).await;
    let report = bed.function.invoke(&scheduled_event(5)).await.unwrap().response();
    assert_eq!(report["date"], day(5).to_string());
    assert_eq!(report["created"].as_array().unwrap().len(), 2, "{report}");
}

/// Tags anyone with ec2:CreateTags can set are checked against EC2's own VolumeId and StartTime: a
/// foreign snapshot tagged as the gateway's, a snapshot of another volume tagged with the gateway's
/// volume id, and an old snapshot re-tagged as a later day are never deleted, never stand in for a
/// day's snapshot, and are reported by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_whose_tags_disagree_with_ec2_are_never_deleted_and_are_reported() {
    let bed = Bed::start(&[]).await;
    let ec2 = aws_sdk_ec2::Client::new(&bed.account.admin);
    for n in 1..=3 {
        bed.run_day(n).await.response();
    }
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    let forge = |id: String, tags: Vec<aws_sdk_ec2::types::Tag>| {
        let ec2 = ec2.clone();
        async move {
            ec2.create_tags().resources(&id).set_tags(Some(tags)).send().await.unwrap();
            id
        }
    };
    let ours = |volume: &str, kind: &str, date: NaiveDate| {
        vec![
            tag("openclaw:managed-by", "openclaw-ops"),
            tag("openclaw:kind", kind),
            tag("openclaw:volume-id", volume),
            tag("openclaw:date", &date.to_string()),
        ]
    };
    // One of the emulator's own snapshots, tagged as a manual snapshot of the data volume.
    let moto_own = bed.foreign_snapshots().await.into_iter().next().unwrap();
    let foreign = forge(moto_own, ours(&bed.account.data_volume, "manual", day(1))).await;
    // A snapshot of the untagged volume, tagged as the data volume's daily of day 3.
    let other = ec2.create_snapshot().volume_id(&bed.account.untagged_volume).send().await.unwrap();
    let wrong_volume = forge(other.snapshot_id.unwrap(), ours(&bed.account.data_volume, "daily", day(3))).await;
    // The root volume's real snapshot of day 1, re-dated to day 10: believed, it would be day 10's
    // snapshot, and the run of day 10 would make none.
    let snapshots = bed.account.snapshots().await.unwrap();
    let root_day_1 = snapshots
        .iter()
        .find(|s| {
            tag_value(s, "openclaw:volume-id") == Some(bed.account.root_volume.as_str())
                && tag_value(s, "openclaw:date") == Some(&day(1).to_string())
        })
        .unwrap();
    let redated =
        forge(root_day_1.snapshot_id().unwrap().to_owned(), vec![tag("openclaw:date", &day(10).to_string())]).await;
    let forged: BTreeSet<String> = [foreign.clone(), wrong_volume.clone(), redated.clone()].into();

    let mut last = Value::Null;
    for n in 4..=10 {
        last = bed.run_day(n).await.response();
        assert_eq!(last["created"].as_array().unwrap().len(), 2, "day {n}: {last}");
        assert_eq!(last["failed"], json!([]));
        let deleted: BTreeSet<String> =
            last["deleted"].as_array().unwrap().iter().map(|d| d["snapshot_id"].as_str().unwrap().to_owned()).collect();
        assert!(deleted.is_disjoint(&forged), "day {n} deleted a forged snapshot: {deleted:?}");
    }
    let reported: BTreeMap<String, String> = last["tags_disagree"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["reason"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(reported.keys().cloned().collect::<BTreeSet<_>>(), forged, "{last}");
    assert!(reported.values().all(|r| r.starts_with("tags disagree with EC2: ")), "{reported:?}");
    assert!(reported[&wrong_volume].contains(&format!("EC2's VolumeId is {}", bed.account.untagged_volume)));
    assert!(reported[&redated].contains(&format!("openclaw:date {} but EC2's StartTime is {}", day(10), day(1))));

    // All three are still there, and the real history is exactly the window.
    let after = bed.account.snapshots().await.unwrap();
    let ids: BTreeSet<String> = after.iter().map(|s| s.snapshot_id().unwrap().to_owned()).collect();
    assert!(forged.is_subset(&ids));
    let real_dates = |volume: &str| {
        let mut dates: Vec<NaiveDate> = after
            .iter()
            .filter(|s| !forged.contains(s.snapshot_id().unwrap()))
            .filter(|s| tag_value(s, "openclaw:volume-id") == Some(volume))
            .map(|s| tag_value(s, "openclaw:date").unwrap().parse().unwrap())
            .collect();
        dates.sort();
        dates
    };
    let window: Vec<NaiveDate> = (4..=10).map(day).collect();
    assert_eq!(real_dates(&bed.account.data_volume), window);
    assert_eq!(real_dates(&bed.account.root_volume), window);

    let last_note = bed.account.notifications().await.unwrap().pop().unwrap();
    assert_eq!(last_note["severity"], "warning");
    assert_eq!(last_note["fields"]["tags disagree"], "3");
}

/// A run that would delete more than MAX_DELETES deletes nothing, still makes today's snapshots and
/// sends the plan; a manual prune naming the plan's count carries it out, another count nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_over_the_limit_deletes_nothing_until_a_prune_confirms_its_count() {
    let bed = Bed::start(&[("MAX_DELETES", "3")]).await;
    for n in 1..=7 {
        bed.run_day(n).await.response();
    }
    // The schedule was off for four days; day 12 finds days 1..=5 expired on both volumes.
    let before: BTreeSet<String> =
        bed.account.snapshots().await.unwrap().iter().map(|s| s.snapshot_id().unwrap().to_owned()).collect();
    let report = bed.run_day(12).await.response();
    assert_eq!(report["created"].as_array().unwrap().len(), 2, "today's snapshots are still made: {report}");
    assert_eq!(report["deleted"], json!([]));
    let would = report["circuit_breaker"]["would_delete"].as_u64().unwrap();
    assert_eq!(report["circuit_breaker"]["limit"], 3);
    assert_eq!(report["held_by_breaker"].as_array().unwrap().len() as u64, would);
    assert!(would > 3, "{report}");
    let after: BTreeSet<String> =
        bed.account.snapshots().await.unwrap().iter().map(|s| s.snapshot_id().unwrap().to_owned()).collect();
    assert!(before.is_subset(&after), "nothing deleted");
    let note = bed.account.notifications().await.unwrap().pop().unwrap();
    assert_eq!(note["severity"], "critical");
    assert!(note["title"].as_str().unwrap().contains("circuit breaker held"), "{note}");
    assert!(note["text"].as_str().unwrap().contains(r#""action":"prune""#), "{note}");

    // Later that day, with today's snapshots complete: a dry run shows the count to confirm.
    bed.set_clock(scheduled_at(12) + TimeDelta::hours(1)).await;
    let dry = bed.function.invoke(&json!({"dry_run": true})).await.unwrap().response();
    let count = dry["circuit_breaker"]["would_delete"].as_u64().unwrap();
    assert_eq!(count, 10, "days 1..=5 of two volumes, the floor met by days 6, 7 and 12: {dry}");
    let writes_before = bed.writes().await;
    let (_, message) =
        bed.function.invoke(&json!({"action": "prune", "confirm_deletes": count - 1})).await.unwrap().error();
    assert!(
        message.contains(&format!("confirm_deletes is {} but the plan now deletes {count}", count - 1)),
        "{message}"
    );
    assert_eq!(bed.writes().await, writes_before, "a count that is not the plan's deletes nothing");

    let pruned = bed.function.invoke(&json!({"action": "prune", "confirm_deletes": count})).await.unwrap().response();
    assert_eq!(pruned["trigger"], "prune");
    assert_eq!(pruned["deleted"].as_array().unwrap().len() as u64, count, "{pruned}");
    let dates = bed.owned_dates().await;
    let kept: Vec<NaiveDate> = [6, 7, 12].into_iter().map(day).collect();
    assert_eq!(dates.get(&bed.account.data_volume), Some(&kept));
    assert_eq!(dates.get(&bed.account.root_volume), Some(&kept));
}

/// ebs-snapshots' work does not fit in its time: 32 volumes to snapshot at one write a second
/// (`EC2_WRITE_RATE=1`) after the first 20, and the run's `Timeout` (900 s in template.yaml, here on
/// a time scale of 25: 36 s, of which it keeps 30 to report) leaves about 6 s of writes. The run
/// starts no write it cannot finish, ends as `IncompleteRun` before the deadline (not Lambda's
/// `Sandbox.Timedout`), tells the owner which volumes missed the day, and Lambda's retry of the same
/// event snapshots exactly those: one snapshot per volume for the day, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_past_the_deadline_are_reported_and_the_retry_snapshots_only_them() {
    let emulator = Emulator::start().await.unwrap();
    let account = OpenClawAccount::seed(&emulator).await.unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&emulator.admin().await);
    for n in 0..30 {
        let name = format!("openclaw-extra-{n:02}");
        OpenClawAccount::volume(&ec2, &[("Name", &name), ("openclaw:snapshot", "daily")]).await.unwrap();
    }
    let stack = Stack::new(&emulator).await.unwrap().topic("OpsTopic", &account.topic_arn);
    let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
    let mut env = emulator.function_env(&principal.keys);
    env.push(("NOTIFY_TOPIC_ARN".into(), account.topic_arn.clone()));
    env.push(("EC2_WRITE_RATE".into(), "1".into()));
    // On day 1's clock: the function refuses a scheduled event its own clock says is stale.
    let function =
        Function::start_scaled_at("ebs-snapshots", &env, 25.0, scheduled_at(1) + TimeDelta::seconds(2)).await.unwrap();
    assert_eq!(function.timeout(), std::time::Duration::from_secs(900), "template.yaml's Timeout");
    emulator.set_clock(scheduled_at(1) + TimeDelta::seconds(2)).await.unwrap();

    let started = std::time::Instant::now();
    let (error_type, message) = function.invoke(&scheduled_event(1)).await.unwrap().error();
    assert!(started.elapsed() < function.deadline(), "{:?}", started.elapsed());
    assert_eq!(error_type, "IncompleteRun", "ended by the function, not by Lambda's timeout: {message}");
    assert!(message.contains("not attempted: the run reached its deadline"), "{message}");
    let snapshotted = |snapshots: &[aws_sdk_ec2::types::Snapshot]| -> Vec<String> {
        let mut volumes: Vec<String> = snapshots
            .iter()
            .filter(|s| tag_value(s, "openclaw:managed-by") == Some("openclaw-ops"))
            .filter(|s| tag_value(s, "openclaw:date") == Some(day(1).to_string().as_str()))
            .map(|s| tag_value(s, "openclaw:volume-id").unwrap().to_owned())
            .collect();
        volumes.sort();
        volumes
    };
    let first = snapshotted(&account.snapshots().await.unwrap());
    assert!((20..32).contains(&first.len()), "the burst and a few paced writes, not all 32: {}", first.len());
    let notes = account.notifications().await.unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["severity"], "critical");
    assert!(notes[0]["title"].as_str().unwrap().contains(&format!("{} operation(s) failed", 32 - first.len())));

    let retry = function.invoke(&scheduled_event(1)).await.unwrap().response();
    assert_eq!(retry["already_present"].as_array().unwrap().len(), first.len(), "{retry}");
    assert_eq!(retry["created"].as_array().unwrap().len(), 32 - first.len(), "{retry}");
    let all = snapshotted(&account.snapshots().await.unwrap());
    assert_eq!(all.len(), 32);
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 32, "one snapshot per volume, none twice");
}

/// Issue 15, point 3: a standby spot-recovery started early (tagged `openclaw:role=standby` over the
/// launch template's `gateway`, its root volume tagged as the stack's template tags one), with an
/// online SSM agent, is not snapshotted or frozen as the gateway: the day's snapshots are the
/// gateway's two tagged volumes', and no command is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_is_never_snapshotted_or_frozen_as_the_gateway() {
    let bed = Bed::start(&[("SNAPSHOT_CONSISTENCY", "app")]).await;
    let standby = integration_tests::account::launch_standby(
        &bed.account.admin,
        &bed.account.instance_id,
        integration_tests::account::AZ,
    )
    .await
    .unwrap();
    let mut env = serde_json::Map::new();
    for (k, v) in bed.emulator.function_env(&bed.emulator.admin_keys()) {
        env.insert(k, json!(v));
    }
    bed.emulator.register_instance(&standby.instance_id, env).await.unwrap();

    let report = bed.run_day(1).await.response();
    assert_eq!(report["failed"], json!([]), "{report}");
    assert_eq!(report["created"].as_array().unwrap().len(), 2, "{report}");
    let dates = bed.owned_dates().await;
    let sources: BTreeSet<&str> = dates.keys().map(String::as_str).collect();
    assert_eq!(sources, BTreeSet::from([bed.account.root_volume.as_str(), bed.account.data_volume.as_str()]));
    assert!(!sources.contains(standby.root_volume.as_str()));
    for s in bed.account.snapshots().await.unwrap() {
        assert_ne!(tag_value(&s, "openclaw:instance-id"), Some(standby.instance_id.as_str()));
    }
    let calls = bed.actions_used().await;
    assert!(!calls.iter().any(|(a, _)| a == "ssm:SendCommand"), "nothing frozen: {calls:?}");
    assert!(calls.iter().all(|(_, allowed)| *allowed), "{calls:?}");
}
