//! ebs-snapshots' off-region copy end to end: the emulator's second region is the DR region; the
//! function runs as an IAM user holding exactly the template's policy with `SnapshotCopyRegion` set.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Snapshot;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use integration_tests::account::{OpenClawAccount, tag_value};
use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::runtime::Function;
use integration_tests::schedule::{day, scheduled_at, scheduled_event};
use integration_tests::stack::Stack;
use serde_json::{Value, json};

const LOGICAL_ID: &str = "EbsSnapshotsFunction";
const DR: &str = "us-west-2";

struct Bed {
    emulator: Emulator,
    account: OpenClawAccount,
    principal: Principal,
    env: Vec<(String, String)>,
    function: Function,
    dr: aws_sdk_ec2::Client,
    key_arn: String,
}

impl Bed {
    async fn start() -> Bed {
        let emulator = Emulator::start().await.unwrap();
        let account = OpenClawAccount::seed(&emulator).await.unwrap();
        let dr_admin = emulator.admin_in(DR).await;
        let key = aws_sdk_kms::Client::new(&dr_admin).create_key().description("DR (test)").send().await.unwrap();
        let key_arn = key.key_metadata.unwrap().arn.unwrap();
        let stack = Stack::new(&emulator)
            .await
            .unwrap()
            .topic("OpsTopic", &account.topic_arn)
            .param("SnapshotCopyRegion", DR)
            .param("SnapshotCopyKmsKeyId", &key_arn);
        let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
        let mut env = emulator.function_env(&principal.keys);
        env.push(("NOTIFY_TOPIC_ARN".into(), account.topic_arn.clone()));
        env.push(("SNAPSHOT_COPY_REGION".into(), DR.into()));
        env.push(("SNAPSHOT_COPY_KMS_KEY_ID".into(), key_arn.clone()));
        emulator.set_clock(scheduled_at(1)).await.unwrap();
        let function = Function::start_at("ebs-snapshots", &env, scheduled_at(1)).await.unwrap();
        let dr = aws_sdk_ec2::Client::new(&dr_admin);
        Bed { emulator, account, principal, env, function, dr, key_arn }
    }

    async fn set_clock(&self, now: DateTime<Utc>, functions: &[&Function]) {
        self.emulator.set_clock(now).await.unwrap();
        for f in functions {
            f.set_clock(now).unwrap();
        }
    }

    async fn run_day(&self, n: u32) -> Value {
        self.set_clock(scheduled_at(n) + TimeDelta::seconds(2), &[&self.function]).await;
        self.function.invoke(&scheduled_event(n)).await.unwrap().response()
    }

    /// A manual run `hours` after day `n`'s schedule: today's snapshots have completed since.
    async fn run_later(&self, n: u32, hours: i64) -> Value {
        self.set_clock(scheduled_at(n) + TimeDelta::hours(hours), &[&self.function]).await;
        self.function.invoke(&json!({})).await.unwrap().response()
    }

    async fn dr_snapshots(&self) -> Vec<Snapshot> {
        let mut pages = self.dr.describe_snapshots().owner_ids("self").into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page.unwrap().snapshots().iter().cloned());
        }
        out
    }

    /// The DR region's copies per source volume, as their dates.
    async fn copy_dates(&self) -> BTreeMap<String, Vec<NaiveDate>> {
        let mut out: BTreeMap<String, Vec<NaiveDate>> = BTreeMap::new();
        for s in self.dr_snapshots().await {
            if tag_value(&s, "openclaw:managed-by") == Some("openclaw-ops") {
                let date = tag_value(&s, "openclaw:date").unwrap().parse().unwrap();
                out.entry(tag_value(&s, "openclaw:volume-id").unwrap().to_owned()).or_default().push(date);
            }
        }
        out.values_mut().for_each(|v| v.sort());
        out
    }

    async fn foreign_dr_snapshots(&self) -> BTreeSet<String> {
        let all = self.dr_snapshots().await;
        let foreign = all.iter().filter(|s| tag_value(s, "openclaw:managed-by").is_none());
        foreign.map(|s| s.snapshot_id().unwrap().to_owned()).collect()
    }

    /// The principal's allowed calls of `action`, by the region of their first resource.
    async fn calls(&self, action: &str) -> Vec<String> {
        let calls = self.emulator.calls_by(&self.principal.keys).await.unwrap();
        let mut out = Vec::new();
        for c in calls.into_iter().filter(|c| c.action == action) {
            assert!(c.allowed, "{action} was denied: {c:?}");
            let resource = c.authorizations.first().map(|a| a.resource.clone()).unwrap_or_default();
            out.push(resource.split(':').nth(3).unwrap_or_default().to_owned());
        }
        out
    }
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|v| v["source_snapshot_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_days_leave_exactly_seven_copies_in_the_dr_region() {
    let bed = Bed::start().await;
    let foreign_before = bed.foreign_dr_snapshots().await;
    assert!(!foreign_before.is_empty(), "the emulator's own snapshots in {DR} are part of the test");

    for n in 1..=10 {
        let report = bed.run_day(n).await;
        assert_eq!(report["failed"], json!([]), "day {n}: {report}");
        let dr = &report["dr"];
        assert_eq!(dr["region"], DR);
        // Each run copies what completed before it: the day before's snapshots.
        assert_eq!(dr["copied"].as_array().unwrap().len(), if n > 1 { 2 } else { 0 }, "day {n}: {dr}");
        assert_eq!(dr["deleted"].as_array().unwrap().len(), if n > 7 { 2 } else { 0 }, "day {n}: {dr}");
    }
    // Day 10's snapshots, completed since the morning, are copied by the next run.
    let later = bed.run_later(10, 6).await;
    assert_eq!(later["dr"]["copied"].as_array().unwrap().len(), 2, "{later}");

    let window: Vec<NaiveDate> = (4..=10).map(day).collect();
    let dates = bed.copy_dates().await;
    assert_eq!(dates.get(&bed.account.data_volume), Some(&window));
    assert_eq!(dates.get(&bed.account.root_volume), Some(&window));
    assert_eq!(dates.len(), 2);
    assert_eq!(bed.foreign_dr_snapshots().await, foreign_before, "nothing else in {DR} touched");

    // Each copy links to its source here, EC2 reports a copy's VolumeId, and it is encrypted with
    // the DR key.
    let home: BTreeMap<String, Snapshot> =
        bed.account.snapshots().await.unwrap().into_iter().map(|s| (s.snapshot_id().unwrap().to_owned(), s)).collect();
    for copy in bed.dr_snapshots().await.iter().filter(|s| tag_value(s, "openclaw:managed-by").is_some()) {
        let source = &home[tag_value(copy, "openclaw:source-snapshot-id").unwrap()];
        assert_eq!(tag_value(copy, "openclaw:source-region"), Some("us-east-1"));
        assert_eq!(tag_value(copy, "openclaw:kind"), Some("daily"));
        assert_eq!(tag_value(copy, "openclaw:date"), tag_value(source, "openclaw:date"));
        assert_eq!(tag_value(copy, "openclaw:volume-id"), source.volume_id());
        assert_eq!(copy.volume_id(), Some("vol-ffffffff"));
        assert_eq!(copy.encrypted(), Some(true));
        assert_eq!(copy.kms_key_id(), Some(bed.key_arn.as_str()));
    }

    // Sent to the DR region, authorized on the source here and the copy there; deletes there.
    let copies = bed.calls("ec2:CopySnapshot").await;
    assert_eq!(copies.len(), 20);
    assert!(copies.iter().all(|r| r == DR), "{copies:?}");
    let deletes = bed.calls("ec2:DeleteSnapshot").await;
    assert_eq!(deletes.iter().filter(|r| *r == DR).count(), 6);
    assert_eq!(bed.account.notifications().await.unwrap(), Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_snapshot_is_copied_by_the_next_run() {
    let bed = Bed::start().await;
    bed.run_day(1).await;
    let pending = bed
        .account
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .find(|s| tag_value(s, "openclaw:volume-id") == Some(bed.account.data_volume.as_str()))
        .unwrap();
    let pending_id = pending.snapshot_id().unwrap().to_owned();
    bed.emulator.set_snapshot_state("us-east-1", &pending_id, "pending").await.unwrap();

    let day2 = bed.run_day(2).await;
    let dr = &day2["dr"];
    assert_eq!(dr["copied"].as_array().unwrap().len(), 1, "{dr}");
    assert_ne!(ids(&dr["copied"])[0], pending_id);
    assert_eq!(dr["waiting"][0]["id"], pending_id.as_str(), "{dr}");

    bed.emulator.set_snapshot_state("us-east-1", &pending_id, "completed").await.unwrap();
    let day3 = bed.run_day(3).await;
    let copied = ids(&day3["dr"]["copied"]);
    assert!(copied.contains(&pending_id), "{day3}");
    assert_eq!(copied.len(), 3, "day 1's late one and day 2's two: {day3}");
    assert_eq!(day3["tags_disagree"], json!([]), "a copy made two days late is still its day's");
    let dates = bed.copy_dates().await;
    assert_eq!(dates[&bed.account.data_volume], [day(1), day(2)]);
}

/// Two runs at once (a manual run while a retry of the schedule runs, say), both seeing no copy:
/// the bed holds their CopySnapshot requests until both arrived, so both copy; each source keeps
/// exactly one copy, and the run whose copy came second deleted its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_runs_leave_one_copy_per_source() {
    let bed = Bed::start().await;
    bed.run_day(1).await;
    let second = Function::start_at("ebs-snapshots", &bed.env, scheduled_at(1)).await.unwrap();
    let later = scheduled_at(1) + TimeDelta::hours(2);
    bed.set_clock(later, &[&bed.function, &second]).await;
    bed.emulator.copy_barrier(2, 2).await.unwrap();

    let manual = json!({});
    let (a, b) = tokio::join!(bed.function.invoke(&manual), second.invoke(&manual));
    let (a, b) = (a.unwrap().response(), b.unwrap().response());
    for r in [&a, &b] {
        assert_eq!(r["failed"], json!([]), "{r}");
    }
    let copied = ids(&a["dr"]["copied"]).len() + ids(&b["dr"]["copied"]).len();
    let lost: Vec<&Value> =
        a["dr"]["lost_race"].as_array().unwrap().iter().chain(b["dr"]["lost_race"].as_array().unwrap()).collect();
    assert_eq!((copied, lost.len()), (2, 2), "both copied both sources, one copy each survived:\n{a}\n{b}");
    assert_eq!(bed.calls("ec2:CopySnapshot").await.len(), 4);

    let copies: Vec<Snapshot> =
        bed.dr_snapshots().await.into_iter().filter(|s| tag_value(s, "openclaw:managed-by").is_some()).collect();
    assert_eq!(copies.len(), 2);
    let survivors: BTreeSet<&str> = copies.iter().map(|s| s.snapshot_id().unwrap()).collect();
    for race in &lost {
        assert!(survivors.contains(race["kept"].as_str().unwrap()), "{race}");
        assert!(!survivors.contains(race["deleted"].as_str().unwrap()), "{race}");
    }

    // The next run finds one copy per source: nothing to copy, nothing to delete.
    let day2 = bed.run_day(2).await;
    assert_eq!(day2["dr"]["copied"], json!([]), "day 1's are not copied again: {day2}");
    assert_eq!(day2["dr"]["deleted"], json!([]));
    assert_eq!(bed.calls("ec2:CopySnapshot").await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_tag_on_a_foreign_dr_snapshot_does_not_get_it_deleted() {
    let bed = Bed::start().await;
    // Someone's own snapshot in the DR region, tagged as an expired copy of the gateway's volume.
    let volume =
        bed.dr.create_volume().availability_zone(format!("{DR}a")).size(8).send().await.unwrap().volume_id.unwrap();
    let foreign = bed.dr.create_snapshot().volume_id(&volume).send().await.unwrap().snapshot_id.unwrap();
    let forged = [
        ("openclaw:managed-by", "openclaw-ops"),
        ("openclaw:kind", "daily"),
        ("openclaw:date", "2026-11-01"),
        ("openclaw:volume-id", bed.account.data_volume.as_str()),
    ];
    let mut tagging = bed.dr.create_tags().resources(&foreign);
    for (k, v) in forged {
        tagging = tagging.tags(aws_sdk_ec2::types::Tag::builder().key(k).value(v).build());
    }
    tagging.send().await.unwrap();

    for n in 1..=10 {
        let report = bed.run_day(n).await;
        let deleted: Vec<&str> =
            report["dr"]["deleted"].as_array().unwrap().iter().map(|d| d["snapshot_id"].as_str().unwrap()).collect();
        assert!(!deleted.contains(&foreign.as_str()), "day {n}: {report}");
        assert_eq!(report["tags_disagree"][0]["id"], foreign.as_str(), "day {n}: {report}");
    }
    let still = bed.dr.describe_snapshots().snapshot_ids(&foreign).send().await.unwrap();
    assert_eq!(still.snapshots().len(), 1);
    let note = bed.account.notifications().await.unwrap();
    assert!(
        note.iter().any(|n| n["title"].as_str().unwrap_or_default().contains("tags disagree")),
        "the operator is told: {note:?}"
    );
}
