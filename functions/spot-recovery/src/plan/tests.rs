use chrono::{DateTime, Utc};
use openclaw_ops_shared::config::MapEnv;

use super::*;
use crate::config::BackupTarget;

const OLD: &str = "i-0000000000000000a";
const NEW: &str = "i-0000000000000000b";

fn config(extra: &[(&str, &str)]) -> Config {
    let mut env = vec![("NOTIFY_TOPIC_ARN", "t"), ("LAUNCH_TEMPLATE_ID", "lt-1"), ("SUBNET_IDS", "subnet-a,subnet-b")];
    env.extend_from_slice(extra);
    Config::from_env(&MapEnv::new(&env)).unwrap()
}

fn tagmap(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn gateway(state: &str) -> Instance {
    Instance {
        id: OLD.into(),
        state: state.into(),
        spot: true,
        state_reason: None,
        az: Some("us-east-1b".into()),
        subnet_id: Some("subnet-old".into()),
        tags: tagmap(&[
            ("Name", "openclaw-gateway"),
            ("openclaw:role", "gateway"),
            ("aws:ec2launchtemplate:id", "lt-1"),
            ("team", "ops"),
        ]),
    }
}

fn reclaimed(state: &str) -> Instance {
    let mut i = gateway(state);
    i.state_reason =
        Some(if state == "stopped" { "Server.SpotInstanceShutdown" } else { "Server.SpotInstanceTermination" }.into());
    i
}

fn data_volume(attached_to: Option<&str>) -> Volume {
    Volume {
        id: "vol-data".into(),
        az: "us-east-1b".into(),
        state: if attached_to.is_some() { "in-use" } else { "available" }.into(),
        attachment: attached_to.map(|i| Attachment {
            instance_id: i.into(),
            device: "/dev/sdg".into(),
            state: "attached".into(),
        }),
        tags: tagmap(&[("Name", "openclaw-data"), ("openclaw:role", "gateway")]),
    }
}

fn subnets() -> Vec<Subnet> {
    vec![
        Subnet { id: "subnet-a".into(), az: "us-east-1a".into() },
        Subnet { id: "subnet-b".into(), az: "us-east-1b".into() },
    ]
}

fn observed(instance: Instance, volumes: Vec<Volume>) -> Observed {
    Observed { instance: Some(instance), replacements: vec![], volumes, snapshots: vec![], subnets: subnets() }
}

fn time() -> DateTime<Utc> {
    "2026-11-25T10:00:00Z".parse().unwrap()
}

fn warning(action: InstanceAction) -> Event {
    Event::Warning { id: "e1".into(), time: time(), instance_id: OLD.into(), action }
}

fn rebalance() -> Event {
    Event::Rebalance { id: "e2".into(), time: time(), instance_id: OLD.into() }
}

fn state_change(state: &str) -> Event {
    Event::StateChange { id: "e3".into(), time: time(), instance_id: OLD.into(), state: state.into() }
}

fn snapshot(
    id: &str,
    volume: &str,
    instance: &str,
    device: &str,
    start: &str,
    state: SnapshotState,
) -> ObservedSnapshot {
    ObservedSnapshot {
        snapshot_id: id.into(),
        volume_id: volume.into(),
        state,
        start_time: start.parse().unwrap(),
        tags: tagmap(&[
            ("openclaw:managed-by", "openclaw-ops"),
            ("openclaw:kind", "daily"),
            ("openclaw:volume-id", volume),
            ("openclaw:instance-id", instance),
            ("openclaw:device", device),
            ("Name", "openclaw-data"),
        ]),
    }
}

fn replace(plan: Plan) -> Replace {
    match plan {
        Plan::Replace(r) => r,
        other => panic!("expected a replacement, got {other:?}"),
    }
}

fn prepared(plan: Plan) -> Prepare {
    match plan {
        Plan::Prepare(p) => p,
        other => panic!("expected a preparation, got {other:?}"),
    }
}

fn ignored(plan: Plan) -> (String, bool) {
    match plan {
        Plan::Ignore { reason, notify, .. } => (reason, notify),
        other => panic!("expected nothing to be done, got {other:?}"),
    }
}

// --- whose events ----------------------------------------------------------------------------

#[test]
fn a_foreign_instances_events_change_nothing() {
    let mut foreign = reclaimed("terminated");
    foreign.tags.remove("openclaw:role");
    for event in [warning(InstanceAction::Terminate), rebalance(), state_change("terminated")] {
        let (reason, notify) = ignored(plan(&event, &observed(foreign.clone(), vec![]), &config(&[])));
        assert!(reason.contains("not the gateway"), "{reason}");
        assert!(!notify);
    }
    let mut other_value = reclaimed("terminated");
    other_value.tags.insert("openclaw:role".into(), "worker".into());
    assert!(
        ignored(plan(&state_change("terminated"), &observed(other_value, vec![]), &config(&[])))
            .0
            .contains("not the gateway")
    );
}

#[test]
fn a_retired_gateway_is_not_replaced_again() {
    let mut i = reclaimed("terminated");
    i.tags.insert("openclaw:role".into(), "replaced".into());
    i.tags.insert(REPLACED_BY.into(), NEW.into());
    for event in [warning(InstanceAction::Terminate), state_change("terminated")] {
        let (reason, notify) = ignored(plan(&event, &observed(i.clone(), vec![]), &config(&[])));
        assert_eq!(reason, format!("already replaced by {NEW}"));
        assert!(!notify);
    }
    // Retired by hand without a replacement: simply not the gateway.
    i.tags.remove(REPLACED_BY);
    assert!(
        ignored(plan(&state_change("terminated"), &observed(i, vec![]), &config(&[]))).0.contains("not the gateway")
    );
}

#[test]
fn an_unknown_instance_changes_nothing() {
    let none = Observed { instance: None, ..Observed::default() };
    let (reason, notify) = ignored(plan(&state_change("terminated"), &none, &config(&[])));
    assert!(reason.contains("does not know"));
    assert!(!notify);
}

#[test]
fn the_gateway_tag_is_configurable() {
    let mut i = reclaimed("terminated");
    i.tags.insert("app".into(), "openclaw".into());
    let c = config(&[("GATEWAY_TAG", "app=openclaw")]);
    assert!(matches!(plan(&state_change("terminated"), &observed(i, vec![]), &c), Plan::Replace(_)));
    let c = config(&[("GATEWAY_TAG", "app=other")]);
    assert!(matches!(
        plan(&state_change("terminated"), &observed(reclaimed("terminated"), vec![]), &c),
        Plan::Ignore { .. }
    ));
}

// --- on purpose or by a Spot interruption ---------------------------------------------------

#[test]
fn the_operator_stopping_or_terminating_the_gateway_is_never_replaced() {
    for state in ["terminated", "stopped"] {
        let mut by_hand = gateway(state);
        by_hand.state_reason = Some("Client.UserInitiatedShutdown".into());
        let c = config(&[("REPLACE_ON_STOP", "true")]);
        let (reason, notify) = ignored(plan(&state_change(state), &observed(by_hand, vec![data_volume(None)]), &c));
        assert!(reason.contains("on purpose") && reason.contains("Client.UserInitiatedShutdown"), "{reason}");
        assert!(!notify);
    }
}

#[test]
fn an_on_demand_gateway_is_never_replaced_even_with_a_spot_looking_reason() {
    let mut on_demand = reclaimed("terminated");
    on_demand.spot = false;
    on_demand.tags.insert(SPOT_WARNING.into(), "2026-11-25T09:58:00Z".into());
    let (reason, _) = ignored(plan(&state_change("terminated"), &observed(on_demand, vec![]), &config(&[])));
    assert!(reason.contains("On-Demand"), "{reason}");
}

#[test]
fn a_spot_state_reason_or_a_recorded_warning_is_evidence() {
    let r = replace(plan(&state_change("terminated"), &observed(reclaimed("terminated"), vec![]), &config(&[])));
    assert_eq!(r.evidence, "state reason Server.SpotInstanceTermination");
    assert_eq!(r.warned_at, None);

    let mut warned = gateway("terminated");
    warned.tags.insert(SPOT_WARNING.into(), "2026-11-25T09:58:00Z".into());
    let r = replace(plan(&state_change("terminated"), &observed(warned, vec![]), &config(&[])));
    assert_eq!(r.evidence, "Spot interruption warning at 2026-11-25T09:58:00Z");
    assert_eq!(r.warned_at.as_deref(), Some("2026-11-25T09:58:00Z"));
}

/// Issue 15, point 5: a warning recorded at an earlier interruption (stop or hibernate, then a
/// restart) does not turn the operator's deliberate terminate into a Spot interruption.
#[test]
fn a_recorded_warning_counts_only_without_another_reason_and_only_when_recent() {
    let mut i = gateway("terminated");
    i.tags.insert(SPOT_WARNING.into(), "2026-11-25T09:58:00Z".into());
    i.state_reason = Some("Client.UserInitiatedShutdown".into());
    let (reason, _) = ignored(plan(&state_change("terminated"), &observed(i.clone(), vec![]), &config(&[])));
    assert!(reason.contains("on purpose") && reason.contains("Client.UserInitiatedShutdown"), "{reason}");

    i.state_reason = None;
    for stale in ["2026-11-24T10:00:00Z", "2026-11-25T09:44:59Z", "2026-11-25T10:05:00Z", "yesterday"] {
        i.tags.insert(SPOT_WARNING.into(), stale.into());
        let (reason, _) = ignored(plan(&state_change("terminated"), &observed(i.clone(), vec![]), &config(&[])));
        assert!(reason.contains("on purpose"), "{stale}: {reason}");
    }
    i.tags.insert(SPOT_WARNING.into(), "2026-11-25T09:45:00Z".into());
    assert!(matches!(plan(&state_change("terminated"), &observed(i, vec![]), &config(&[])), Plan::Replace(_)));
}

#[test]
fn a_rebalance_recommendation_alone_is_no_evidence() {
    let mut i = gateway("terminated");
    i.tags.insert(REBALANCE.into(), "2026-11-25T09:40:00Z".into());
    assert!(ignored(plan(&state_change("terminated"), &observed(i, vec![]), &config(&[]))).0.contains("on purpose"));
}

#[test]
fn maintenance_is_never_replaced_and_says_so() {
    let mut i = reclaimed("terminated");
    i.tags.insert(MAINTENANCE.into(), "TRUE".into());
    let (reason, notify) = ignored(plan(&state_change("terminated"), &observed(i.clone(), vec![]), &config(&[])));
    assert!(reason.contains("openclaw:maintenance=true"), "{reason}");
    assert!(notify);
    i.tags.insert(MAINTENANCE.into(), "false".into());
    assert!(matches!(plan(&state_change("terminated"), &observed(i, vec![]), &config(&[])), Plan::Replace(_)));
}

#[test]
fn a_spot_stop_is_replaced_only_when_configured() {
    let o = observed(reclaimed("stopped"), vec![data_volume(Some(OLD))]);
    let (reason, notify) = ignored(plan(&state_change("stopped"), &o, &config(&[])));
    assert!(reason.contains("REPLACE_ON_STOP"), "{reason}");
    assert!(notify);
    let r = replace(plan(&state_change("stopped"), &o, &config(&[("REPLACE_ON_STOP", "true")])));
    assert_eq!(r.old_state, "stopped");
    // A stopped instance keeps its volumes: the function detaches the data volume itself.
    assert_eq!(
        r.volume,
        VolumeStep::Move { volume_id: "vol-data".into(), device: "/dev/sdg".into(), detach_from: Some(OLD.into()) }
    );
}

// --- order of events --------------------------------------------------------------------------

#[test]
fn a_state_change_that_is_out_of_date_changes_nothing() {
    for state in ["running", "pending"] {
        let (reason, _) = ignored(plan(&state_change("stopped"), &observed(reclaimed(state), vec![]), &config(&[])));
        assert!(reason.contains("out of date"), "{reason}");
    }
}

#[test]
fn an_api_lagging_behind_the_event_counts_as_the_events_state() {
    let mut i = gateway("shutting-down");
    i.tags.insert(SPOT_WARNING.into(), "2026-11-25T09:58:00Z".into());
    let r = replace(plan(&state_change("terminated"), &observed(i, vec![data_volume(Some(OLD))]), &config(&[])));
    assert_eq!(r.old_state, "terminated");
    assert!(matches!(r.volume, VolumeStep::Move { detach_from: None, .. }));
}

#[test]
fn a_warning_arriving_after_the_termination_replaces_as_the_termination_would() {
    let mut i = gateway("terminated");
    i.state_reason = Some("Client.UserInitiatedShutdown".into());
    let r = replace(plan(&warning(InstanceAction::Terminate), &observed(i, vec![data_volume(None)]), &config(&[])));
    assert_eq!(r.evidence, "Spot interruption warning at 2026-11-25T10:00:00Z");
}

#[test]
fn a_replacement_found_by_its_tag_is_never_launched_twice() {
    let mut o = observed(reclaimed("terminated"), vec![data_volume(None)]);
    let mut existing = gateway("running");
    existing.id = NEW.into();
    existing.tags.insert(REPLACES.into(), OLD.into());
    existing.tags.insert("openclaw:managed-by".into(), "openclaw-ops".into());
    o.replacements = vec![existing.clone()];
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert_eq!(r.replacement, Replacement::Existing { instance_id: NEW.into(), tags: vec![] });
    assert!(matches!(r.volume, VolumeStep::Move { .. }), "the earlier run may not have attached it yet");

    // A later delivery after everything was done: the volume is on the replacement already.
    o.volumes = vec![data_volume(Some(NEW))];
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert_eq!(r.replacement, Replacement::Existing { instance_id: NEW.into(), tags: vec![] });
    assert_eq!(r.volume, VolumeStep::Attached { volume_id: "vol-data".into(), device: "/dev/sdg".into() });

    // A replacement that is itself gone does not count, and its client token is not reused: EC2
    // would answer it with the dead instance.
    existing.state = "terminated".into();
    o.replacements = vec![existing];
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    let Replacement::Launch(launch) = r.replacement else { panic!("{:?}", r.replacement) };
    assert_eq!(launch.client_token, format!("openclaw-ops-replace-{OLD}-1"));
}

// --- the launch -------------------------------------------------------------------------------

#[test]
fn the_replacement_launches_from_the_template_in_the_volumes_zone_with_the_gateways_tags() {
    let mut o = observed(reclaimed("terminated"), vec![data_volume(Some(OLD))]);
    o.instance.as_mut().unwrap().tags.insert(SPOT_WARNING.into(), "2026-11-25T09:58:00Z".into());
    let r = replace(plan(&state_change("terminated"), &o, &config(&[("LAUNCH_TEMPLATE_VERSION", "7")])));
    let Replacement::Launch(launch) = r.replacement else { panic!("{:?}", r.replacement) };
    assert_eq!(launch.template_id, "lt-1");
    assert_eq!(launch.template_version, "7");
    assert_eq!(launch.az, "us-east-1b");
    assert_eq!(launch.subnet_id.as_deref(), Some("subnet-b"), "the configured subnet in the volume's zone");
    assert_eq!(launch.client_token, format!("openclaw-ops-replace-{OLD}"));
    let tags: BTreeMap<_, _> = launch.tags.into_iter().collect();
    assert_eq!(
        tags,
        tagmap(&[
            ("Name", "openclaw-gateway"),
            ("openclaw:role", "gateway"),
            ("team", "ops"),
            ("openclaw:replaces", OLD),
            ("openclaw:managed-by", "openclaw-ops"),
        ]),
        "no aws:* keys, no history of the old instance"
    );
    assert_eq!(
        r.volume,
        VolumeStep::Move { volume_id: "vol-data".into(), device: "/dev/sdg".into(), detach_from: None }
    );
    assert_eq!(r.gateway, "openclaw-gateway");
}

#[test]
fn the_subnet_falls_back_to_the_old_instances_then_to_none() {
    let mut v = data_volume(None);
    v.az = "us-east-1c".into();
    let mut i = reclaimed("terminated");
    i.az = Some("us-east-1c".into());
    let r = replace(plan(&state_change("terminated"), &observed(i.clone(), vec![v.clone()]), &config(&[])));
    let Replacement::Launch(l) = r.replacement else { panic!() };
    assert_eq!((l.az.as_str(), l.subnet_id.as_deref()), ("us-east-1c", Some("subnet-old")));

    // The old instance's subnet is in another zone than the volume: none, the zone alone decides.
    i.az = Some("us-east-1a".into());
    let r = replace(plan(&state_change("terminated"), &observed(i, vec![v]), &config(&[])));
    let Replacement::Launch(l) = r.replacement else { panic!() };
    assert_eq!((l.az.as_str(), l.subnet_id), ("us-east-1c", None));
}

#[test]
fn without_a_launch_template_the_replacement_is_impossible_and_said_so() {
    let c = Config { launch_template_id: None, ..config(&[]) };
    let r = replace(plan(&state_change("terminated"), &observed(reclaimed("terminated"), vec![]), &c));
    assert_eq!(r.replacement, Replacement::Impossible { reason: "LAUNCH_TEMPLATE_ID is not set".into() });
}

#[test]
fn the_address_and_alarms_follow_the_configuration() {
    let c = config(&[("ELASTIC_IP_ALLOCATION_ID", "eipalloc-1"), ("ALARM_NAME_PREFIX", "ops-gateway-")]);
    let r = replace(plan(&state_change("terminated"), &observed(reclaimed("terminated"), vec![]), &c));
    assert_eq!(r.address, Address::ElasticIp { allocation_id: "eipalloc-1".into() });
    assert_eq!(r.alarm_name_prefix.as_deref(), Some("ops-gateway-"));
}

// --- the data volume --------------------------------------------------------------------------

#[test]
fn a_released_volume_moves_at_the_device_its_snapshots_recorded() {
    let mut o = observed(reclaimed("terminated"), vec![data_volume(None)]);
    o.snapshots =
        vec![snapshot("snap-1", "vol-data", OLD, "/dev/sdh", "2026-11-25T03:00:00Z", SnapshotState::Completed)];
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert_eq!(
        r.volume,
        VolumeStep::Move { volume_id: "vol-data".into(), device: "/dev/sdh".into(), detach_from: None }
    );
    o.snapshots.clear();
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert_eq!(
        r.volume,
        VolumeStep::Move { volume_id: "vol-data".into(), device: "/dev/sdf".into(), detach_from: None }
    );
}

#[test]
fn another_gateways_volume_is_never_taken() {
    let mut others = data_volume(Some("i-00000000000000ccc"));
    others.id = "vol-other".into();
    let mut o = observed(reclaimed("terminated"), vec![others.clone()]);
    o.snapshots =
        vec![snapshot("snap-1", "vol-data", OLD, "/dev/sdf", "2026-11-25T03:00:00Z", SnapshotState::Completed)];
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert!(
        matches!(r.volume, VolumeStep::Restore { ref snapshot_id, .. } if snapshot_id == "snap-1"),
        "{:?}",
        r.volume
    );

    // Two free gateway volumes: the one whose newest snapshot was taken from this instance.
    let mut free_other = data_volume(None);
    free_other.id = "vol-other".into();
    o.volumes = vec![free_other.clone(), data_volume(None)];
    o.snapshots = vec![
        snapshot("snap-1", "vol-data", OLD, "/dev/sdf", "2026-11-25T03:00:00Z", SnapshotState::Completed),
        snapshot(
            "snap-2",
            "vol-other",
            "i-00000000000000ccc",
            "/dev/sdf",
            "2026-11-25T03:00:00Z",
            SnapshotState::Completed,
        ),
    ];
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert!(matches!(r.volume, VolumeStep::Move { ref volume_id, .. } if volume_id == "vol-data"));

    // ...and when nothing tells them apart, none is taken.
    o.snapshots.clear();
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert!(matches!(r.volume, VolumeStep::Missing { ref reason } if reason.contains("several")), "{:?}", r.volume);

    // A volume without the gateway tag is never a candidate.
    let mut untagged = data_volume(None);
    untagged.tags.remove("openclaw:role");
    o.volumes = vec![untagged];
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert!(matches!(r.volume, VolumeStep::Missing { .. }));
}

#[test]
fn a_gone_volume_is_restored_from_the_newest_completed_snapshot_of_this_instances_data_device() {
    let mut o = observed(reclaimed("terminated"), vec![]);
    let mut foreign =
        snapshot("snap-foreign", "vol-x", OLD, "/dev/sdf", "2026-11-25T09:00:00Z", SnapshotState::Completed);
    foreign.tags.remove("openclaw:managed-by");
    o.snapshots = vec![
        snapshot("snap-old", "vol-data", OLD, "/dev/sdf", "2026-11-24T03:00:00Z", SnapshotState::Completed),
        snapshot("snap-new", "vol-data", OLD, "/dev/sdf", "2026-11-25T03:00:00Z", SnapshotState::Completed),
        snapshot("snap-pending", "vol-data", OLD, "/dev/sdf", "2026-11-25T09:59:00Z", SnapshotState::Pending),
        snapshot("snap-root", "vol-root", OLD, "/dev/xvda", "2026-11-25T09:00:00Z", SnapshotState::Completed),
        snapshot(
            "snap-elsewhere",
            "vol-y",
            "i-00000000000000ccc",
            "/dev/sdf",
            "2026-11-25T09:00:00Z",
            SnapshotState::Completed,
        ),
        foreign,
    ];
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    let VolumeStep::Restore { snapshot_id, taken_at, age_seconds, az, device, tags } = r.volume else {
        panic!("{:?}", r.volume)
    };
    assert_eq!((snapshot_id.as_str(), az.as_str(), device.as_str()), ("snap-new", "us-east-1b", "/dev/sdf"));
    assert_eq!((taken_at.as_str(), age_seconds), ("2026-11-25T03:00:00Z", 7 * 3600), "which data, and how old");
    let tags: BTreeMap<_, _> = tags.into_iter().collect();
    assert_eq!(
        tags,
        tagmap(&[
            ("Name", "openclaw-data"),
            ("openclaw:role", "gateway"),
            ("openclaw:snapshot", "daily"),
            ("openclaw:managed-by", "openclaw-ops"),
            ("openclaw:restored-from", "snap-new"),
        ])
    );
    let Replacement::Launch(l) = r.replacement else { panic!() };
    assert_eq!(l.az, "us-east-1b", "the restored volume's zone");

    o.snapshots.retain(|s| s.snapshot_id != "snap-new" && s.snapshot_id != "snap-old");
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert!(matches!(r.volume, VolumeStep::Missing { ref reason } if reason.contains("no completed suite snapshot")));
    assert!(matches!(r.replacement, Replacement::Launch(_)), "a gateway without its state still beats none");
}

// --- warnings and rebalance recommendations ----------------------------------------------------

fn with_backup(mut c: Config) -> Config {
    c.backup = BackupTarget::from_env(&openclaw_ops_shared::config::MapEnv::new(&[("BACKUP_BUCKET", "b")])).unwrap();
    c
}

#[test]
fn a_warning_snapshots_the_data_volume_starts_a_backup_and_records_itself() {
    let o = observed(gateway("running"), vec![data_volume(Some(OLD))]);
    let p = prepared(plan(&warning(InstanceAction::Terminate), &o, &with_backup(config(&[]))));
    assert_eq!(p.signal, Signal::Warning(InstanceAction::Terminate));
    assert_eq!(p.record, (SPOT_WARNING.to_owned(), "2026-11-25T10:00:00Z".to_owned()));
    assert!(!p.duplicate);
    assert_eq!(
        p.snapshot,
        Some(SnapshotSource {
            volume_id: "vol-data".into(),
            name: Some("openclaw-data".into()),
            instance_id: Some(OLD.into()),
            device: Some("/dev/sdg".into()),
        })
    );
    let backup = p.backup.unwrap();
    assert_eq!(backup.archive_key, "openclaw/daily/vol-data/2026/11/25/openclaw-gateway-20261125T100000Z.tar.gz");
    assert_eq!(backup.gateway, "openclaw-gateway");
    assert_eq!(backup.gateway_id, "vol-data", "filed under the data volume, as s3-backup files it");
    assert_eq!(p.early_launch, None);
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

#[test]
fn a_repeated_warning_saves_nothing_twice() {
    let mut i = gateway("running");
    i.tags.insert(SPOT_WARNING.into(), "2026-11-25T10:00:00Z".into());
    let p = prepared(plan(
        &warning(InstanceAction::Terminate),
        &observed(i, vec![data_volume(Some(OLD))]),
        &with_backup(config(&[])),
    ));
    assert!(p.duplicate);
    assert_eq!((p.snapshot, p.backup), (None, None));
}

#[test]
fn a_warning_after_a_rebalance_recommendation_still_saves() {
    let mut i = gateway("running");
    i.tags.insert(REBALANCE.into(), "2026-11-25T09:40:00Z".into());
    let p = prepared(plan(
        &warning(InstanceAction::Stop),
        &observed(i, vec![data_volume(Some(OLD))]),
        &with_backup(config(&[])),
    ));
    assert!(!p.duplicate && p.snapshot.is_some() && p.backup.is_some());
}

#[test]
fn a_warning_says_why_a_step_is_left_out() {
    let p = prepared(plan(&warning(InstanceAction::Terminate), &observed(gateway("running"), vec![]), &config(&[])));
    assert_eq!((p.snapshot.clone(), p.backup.clone()), (None, None));
    assert!(p.notes.iter().any(|n| n.contains("nothing to snapshot")), "{:?}", p.notes);
    assert!(p.notes.iter().any(|n| n.contains("BACKUP_BUCKET")), "{:?}", p.notes);

    let o = observed(gateway("shutting-down"), vec![data_volume(Some(OLD))]);
    let p = prepared(plan(&warning(InstanceAction::Terminate), &o, &with_backup(config(&[]))));
    assert!(p.snapshot.is_some(), "a snapshot of an attached volume can still start");
    assert!(p.backup.is_none() && p.notes.iter().any(|n| n.contains("too late")));
}

#[test]
fn a_warning_in_maintenance_still_saves() {
    let mut i = gateway("running");
    i.tags.insert(MAINTENANCE.into(), "true".into());
    let p = prepared(plan(
        &warning(InstanceAction::Terminate),
        &observed(i, vec![data_volume(Some(OLD))]),
        &with_backup(config(&[])),
    ));
    assert!(p.snapshot.is_some() && p.backup.is_some());
}

#[test]
fn a_rebalance_recommendation_saves_and_starts_early_only_when_configured() {
    let o = observed(gateway("running"), vec![data_volume(Some(OLD))]);
    let p = prepared(plan(&rebalance(), &o, &with_backup(config(&[]))));
    assert_eq!(p.record.0, REBALANCE);
    assert!(p.snapshot.is_some() && p.backup.is_some());
    assert_eq!(p.early_launch, None);

    let early = with_backup(config(&[("EARLY_REPLACE", "true")]));
    let p = prepared(plan(&rebalance(), &o, &early));
    let l = p.early_launch.unwrap();
    assert_eq!((l.az.as_str(), l.subnet_id.as_deref()), ("us-east-1b", Some("subnet-b")));
    assert!(l.tags.contains(&(REPLACES.to_owned(), OLD.to_owned())));
    // The launch template tags every instance role=gateway: only a request tag of that key keeps
    // a standby from being the gateway to every other function.
    let role: Vec<&str> = l.tags.iter().filter(|(k, _)| k == "openclaw:role").map(|(_, v)| v.as_str()).collect();
    assert_eq!(role, vec!["standby"], "a standby is not the gateway yet: {:?}", l.tags);
    let name: Vec<&str> = l.tags.iter().filter(|(k, _)| k == "Name").map(|(_, v)| v.as_str()).collect();
    assert_eq!(name.len(), 1, "{:?}", l.tags);
    assert!(name[0].ends_with("-standby"), "{:?}", l.tags);
    // Other tags, another request: a replacement launched later must not reuse the standby's token.
    assert_eq!(l.client_token, format!("openclaw-ops-standby-{OLD}"));

    // At the interruption it takes over, and gets the gateway's tags it lacks.
    let mut standby = gateway("running");
    standby.id = NEW.into();
    standby.tags = l.tags.iter().cloned().collect();
    let mut interrupted = observed(reclaimed("terminated"), vec![data_volume(None)]);
    interrupted.replacements = vec![standby];
    let r = replace(plan(&state_change("terminated"), &interrupted, &early));
    let Replacement::Existing { instance_id, tags } = r.replacement else { panic!("{:?}", r.replacement) };
    assert_eq!(instance_id, NEW);
    let tags: BTreeMap<String, String> = tags.into_iter().collect();
    assert_eq!(tags.len(), 2, "only what differs: {tags:?}");
    assert_eq!(tags["openclaw:role"], "gateway");
    assert_eq!(Some(&tags["Name"]), interrupted.instance.as_ref().unwrap().tags.get("Name"));

    let mut with_replacement = o.clone();
    let mut r = gateway("running");
    r.id = NEW.into();
    with_replacement.replacements = vec![r];
    let p = prepared(plan(&rebalance(), &with_replacement, &early));
    assert_eq!(p.early_launch, None);
    assert!(p.notes.iter().any(|n| n.contains("already started")));

    let mut maintenance = o.clone();
    maintenance.instance.as_mut().unwrap().tags.insert(MAINTENANCE.into(), "true".into());
    assert_eq!(prepared(plan(&rebalance(), &maintenance, &early)).early_launch, None);

    let (reason, _) = ignored(plan(&rebalance(), &observed(reclaimed("terminated"), vec![]), &early));
    assert!(reason.contains("terminated"));
}

// --- never beside the live data ----------------------------------------------------------------

const RESCUE: &str = "i-00000000000000ccc";

fn held(plan: Plan) -> Held {
    match plan {
        Plan::Held(h) => h,
        other => panic!("expected the replacement to be held, got {other:?}"),
    }
}

/// The gateway is gone, a snapshot of its data device exists, and the volume it was taken from is
/// attached to a rescue instance: no restore, no launch, the holder named.
#[test]
fn a_volume_of_the_gateways_lineage_on_another_instance_stops_the_replacement() {
    let mut o = observed(reclaimed("terminated"), vec![data_volume(Some(RESCUE))]);
    o.snapshots =
        vec![snapshot("snap-1", "vol-data", OLD, "/dev/sdf", "2026-11-25T03:00:00Z", SnapshotState::Completed)];
    let h = held(plan(&state_change("terminated"), &o, &config(&[])));
    assert_eq!(
        h,
        Held {
            old_instance: OLD.into(),
            gateway: "openclaw-gateway".into(),
            volume_id: "vol-data".into(),
            holder: RESCUE.into(),
            attachment_state: "attached".into(),
        }
    );
    // The same when the warning arrives late, and when the rescuer took the gateway tag off the
    // volume (the snapshot of the data device still names it).
    assert_eq!(held(plan(&warning(InstanceAction::Terminate), &o, &config(&[]))).holder, RESCUE);
    o.volumes[0].tags.remove("openclaw:role");
    assert_eq!(held(plan(&state_change("terminated"), &o, &config(&[]))).volume_id, "vol-data");
    // A stop replaced with REPLACE_ON_STOP: the same.
    let mut stopped = o.clone();
    stopped.instance = Some(reclaimed("stopped"));
    assert_eq!(held(plan(&state_change("stopped"), &stopped, &config(&[("REPLACE_ON_STOP", "true")]))).holder, RESCUE);
    // The root volume's snapshot does not make a root volume the data.
    o.volumes = vec![Volume { id: "vol-root".into(), ..data_volume(Some(RESCUE)) }];
    o.volumes[0].tags.clear();
    o.snapshots.push(snapshot(
        "snap-r",
        "vol-root",
        OLD,
        "/dev/xvda",
        "2026-11-25T03:00:00Z",
        SnapshotState::Completed,
    ));
    assert!(matches!(replace(plan(&state_change("terminated"), &o, &config(&[]))).volume, VolumeStep::Restore { .. }));
}

#[test]
fn a_volume_being_restored_by_another_run_is_moved_not_restored_again() {
    let mut restoring = data_volume(None);
    restoring.id = "vol-restored".into();
    restoring.state = "creating".into();
    restoring.tags.insert(RESTORED_FROM.into(), "snap-1".into());
    let mut o = observed(reclaimed("terminated"), vec![restoring]);
    o.snapshots =
        vec![snapshot("snap-1", "vol-data", OLD, "/dev/sdf", "2026-11-25T03:00:00Z", SnapshotState::Completed)];
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert_eq!(
        r.volume,
        VolumeStep::Move { volume_id: "vol-restored".into(), device: "/dev/sdf".into(), detach_from: None }
    );
    // A deleted one is gone: then the snapshot.
    o.volumes[0].state = "deleting".into();
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert!(matches!(r.volume, VolumeStep::Restore { ref snapshot_id, .. } if snapshot_id == "snap-1"));
}

#[test]
fn of_two_replacements_the_one_holding_the_data_is_the_gateway() {
    let mut o = observed(reclaimed("terminated"), vec![data_volume(Some("i-0000000000000000c"))]);
    let replacement = |id: &str| {
        let mut r = gateway("running");
        r.id = id.into();
        r.tags.insert(REPLACES.into(), OLD.into());
        r.tags.insert("openclaw:managed-by".into(), "openclaw-ops".into());
        r
    };
    o.replacements = vec![replacement(NEW), replacement("i-0000000000000000c")];
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert_eq!(r.replacement, Replacement::Existing { instance_id: "i-0000000000000000c".into(), tags: vec![] });
    assert_eq!(r.volume, VolumeStep::Attached { volume_id: "vol-data".into(), device: "/dev/sdg".into() });
}

#[test]
fn a_free_volume_of_the_lineage_wins_over_a_free_stranger() {
    let mut stranger = data_volume(None);
    stranger.id = "vol-stranger".into();
    let mut mine = data_volume(None);
    mine.tags.clear();
    let mut o = observed(reclaimed("terminated"), vec![stranger, mine]);
    o.snapshots =
        vec![snapshot("snap-1", "vol-data", OLD, "/dev/sdf", "2026-11-25T03:00:00Z", SnapshotState::Completed)];
    let r = replace(plan(&state_change("terminated"), &o, &config(&[])));
    assert!(matches!(r.volume, VolumeStep::Move { ref volume_id, .. } if volume_id == "vol-data"), "{:?}", r.volume);
}

// --- running again ---------------------------------------------------------------------------

fn cleared(plan: Plan) -> Clear {
    match plan {
        Plan::Clear(c) => c,
        other => panic!("expected the records cleared, got {other:?}"),
    }
}

fn warned(state: &str, records: &[(&str, &str)]) -> Instance {
    let mut i = gateway(state);
    i.tags.extend(records.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    i
}

#[test]
fn a_gateway_running_again_clears_the_records_of_the_interruption_it_came_back_from() {
    let i = warned("running", &[(SPOT_WARNING, "2026-11-25T09:50:00Z"), (REBALANCE, "2026-11-25T09:40:00Z")]);
    let c = cleared(plan(&state_change("running"), &observed(i, vec![]), &config(&[])));
    assert_eq!((c.instance_id.as_str(), c.gateway.as_str()), (OLD, "openclaw-gateway"));
    // With the values read: a warning recorded between the read and the delete stays.
    assert_eq!(
        c.tags,
        vec![
            (SPOT_WARNING.to_owned(), "2026-11-25T09:50:00Z".to_owned()),
            (REBALANCE.to_owned(), "2026-11-25T09:40:00Z".to_owned())
        ]
    );
    // Either record alone, and one no time can be read from (it is no evidence of anything).
    for record in [(REBALANCE, "2026-11-25T09:40:00Z"), (SPOT_WARNING, "yesterday")] {
        let c = cleared(plan(&state_change("running"), &observed(warned("running", &[record]), vec![]), &config(&[])));
        assert_eq!(c.tags, vec![(record.0.to_owned(), record.1.to_owned())]);
    }
}

#[test]
fn running_without_a_record_or_no_longer_running_changes_nothing() {
    let (reason, notify) = ignored(plan(&state_change("running"), &observed(gateway("running"), vec![]), &config(&[])));
    assert!(reason.contains("no openclaw:spot-warning or openclaw:rebalance record"), "{reason}");
    assert!(!notify);
    for state in ["stopping", "stopped", "pending", "shutting-down", "terminated"] {
        let i = warned(state, &[(SPOT_WARNING, "2026-11-25T09:50:00Z")]);
        let (reason, _) = ignored(plan(&state_change("running"), &observed(i, vec![]), &config(&[])));
        assert!(reason.contains("out of date") && reason.contains(state), "{state}: {reason}");
    }
}

#[test]
fn a_record_made_after_the_start_belongs_to_this_run_and_stays() {
    // The running notification delivered after a newer warning: that warning is kept.
    let i = warned("running", &[(SPOT_WARNING, "2026-11-25T10:00:00Z")]);
    let (reason, _) = ignored(plan(&state_change("running"), &observed(i, vec![]), &config(&[])));
    assert!(reason.contains("kept"), "{reason}");
    let i = warned("running", &[(SPOT_WARNING, "2026-11-25T10:01:00Z"), (REBALANCE, "2026-11-25T09:40:00Z")]);
    let c = cleared(plan(&state_change("running"), &observed(i, vec![]), &config(&[])));
    assert_eq!(c.tags, vec![(REBALANCE.to_owned(), "2026-11-25T09:40:00Z".to_owned())]);
}

#[test]
fn running_standbys_retired_and_foreign_instances_are_left_alone() {
    let record = [(SPOT_WARNING, "2026-11-25T09:50:00Z")];
    let mut standby = warned("running", &record);
    standby.tags.insert("openclaw:role".into(), STANDBY_ROLE.into());
    let mut retired = warned("running", &record);
    retired.tags.insert("openclaw:role".into(), RETIRED.into());
    retired.tags.insert(REPLACED_BY.into(), NEW.into());
    for i in [standby, retired] {
        let (reason, _) = ignored(plan(&state_change("running"), &observed(i, vec![]), &config(&[])));
        assert!(reason.contains("not the gateway") || reason.contains("already replaced"), "{reason}");
    }
}

#[test]
fn after_the_clear_the_next_warning_is_saved_again() {
    let before = warned("running", &[(SPOT_WARNING, "2026-11-25T09:50:00Z")]);
    assert!(prepared(plan(&warning(InstanceAction::Stop), &observed(before, vec![]), &config(&[]))).duplicate);
    let after = gateway("running");
    let p =
        prepared(plan(&warning(InstanceAction::Stop), &observed(after, vec![data_volume(Some(OLD))]), &config(&[])));
    assert!(!p.duplicate);
    assert!(p.snapshot.is_some());
}
