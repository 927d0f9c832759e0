//! All of the function's policy, as one pure function from what was observed to what to do.
//!
//! - One `daily` snapshot per selected volume per scheduled date: created when the date has none.
//! - `daily` snapshots are kept for `retention_days` dates, today's included; `spot-final` and
//!   `manual` ones for `retention_days` days of age. Older ones are deleted...
//! - ...but never below `min_snapshots` completed snapshots per source volume: the newest expired
//!   ones are kept instead, so a week of failed runs (or a deleted volume) never wipes the history.
//! - Only snapshots carrying the ownership tag are ever considered; pending ones are never touched.
//! - Only snapshots whose tags agree with EC2's own fields ([`crate::verify`]) are believed: the others
//!   are never deleted and are reported.
//! - More deletions than the circuit breaker's limit in one run are held back ([`limit`]) until a
//!   manual `prune` confirms their number.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use openclaw_ops_shared::snapshot::{ObservedSnapshot, SnapshotKind, SnapshotSource, State};
use serde::Serialize;

use crate::verify::Ec2Fields;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub retention_days: u32,
    pub min_snapshots: u32,
    /// The oldest a genuine scheduled event can be when it runs (`MAX_EVENT_AGE_SECONDS`): how late
    /// after its date a snapshot of that date may start.
    pub max_event_age_secs: u32,
}

/// A volume selected by `SNAPSHOT_TAG`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    #[serde(flatten)]
    pub source: SnapshotSource,
    /// EC2's volume state (`in-use`, `available`, `creating`...).
    pub state: String,
}

impl Volume {
    fn can_snapshot(&self) -> bool {
        matches!(self.state.as_str(), "in-use" | "available")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteReason {
    /// Older than the retention window, and the floor is met without it.
    Expired,
    /// A second `daily` snapshot for a date that already has one (two deliveries of one event).
    Duplicate,
    /// EC2 gave up on it (`error` state): it holds no data.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Present {
    pub volume_id: String,
    pub snapshot_id: String,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deletion {
    pub snapshot_id: String,
    pub volume_id: String,
    pub kind: SnapshotKind,
    pub date: NaiveDate,
    pub reason: DeleteReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub snapshot_id: String,
    pub volume_id: String,
    pub date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    /// A snapshot id, or a volume id when a volume could not be snapshotted.
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The scheduled date the run acts for.
    pub date: NaiveDate,
    pub create: Vec<SnapshotSource>,
    pub present: Vec<Present>,
    pub delete: Vec<Deletion>,
    pub keep_by_floor: Vec<Kept>,
    pub skip: Vec<Skip>,
    /// Snapshots carrying the ownership tag whose tags disagree with EC2's `VolumeId` or `StartTime`:
    /// never deleted, never counted.
    pub disagree: Vec<Skip>,
    /// Deletions the circuit breaker held back: the plan would delete more than its limit.
    pub held: Vec<Deletion>,
    /// Set when the breaker held `held` back.
    pub breaker: Option<Breaker>,
}

/// Why deletions were held: how many, against which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Breaker {
    pub limit: u32,
    /// The count a manual `{"action": "prune", "confirm_deletes": N}` must name.
    pub would_delete: usize,
}

/// The circuit breaker. Unconfirmed, a plan deleting more than `max_deletes` keeps its creates and
/// holds every deletion; confirmed (a manual `prune`), it is carried out whole, but only when the
/// confirmed count is the plan's own: a count for another plan (a day later, after someone's change)
/// confirms nothing.
pub fn limit(mut plan: Plan, max_deletes: u32, confirmed: Option<usize>) -> Result<Plan, String> {
    if let Some(confirmed) = confirmed {
        if confirmed != plan.delete.len() {
            return Err(format!(
                "confirm_deletes is {confirmed} but the plan now deletes {}: nothing done; run \
                 {{\"dry_run\": true}} to see the plan and confirm its count",
                plan.delete.len()
            ));
        }
        return Ok(plan);
    }
    if plan.delete.len() > max_deletes as usize {
        plan.breaker = Some(Breaker { limit: max_deletes, would_delete: plan.delete.len() });
        plan.held = std::mem::take(&mut plan.delete);
    }
    Ok(plan)
}

/// Decides what to create and delete at `now` (the scheduled time of the run).
pub fn plan(volumes: &[Volume], snapshots: &[ObservedSnapshot], policy: &Policy, now: DateTime<Utc>) -> Plan {
    plan_with_sources(volumes, snapshots, &[], policy, now)
}

/// [`plan`], with copies' sources also looked up in `sources`: the DR region's copies are planned
/// with the home region's snapshots as their sources (`crate::copy`).
pub fn plan_with_sources(
    volumes: &[Volume],
    snapshots: &[ObservedSnapshot],
    sources: &[ObservedSnapshot],
    policy: &Policy,
    now: DateTime<Utc>,
) -> Plan {
    let today = now.date_naive();
    let mut plan = Plan {
        date: today,
        create: Vec::new(),
        present: Vec::new(),
        delete: Vec::new(),
        keep_by_floor: Vec::new(),
        skip: Vec::new(),
        disagree: Vec::new(),
        held: Vec::new(),
        breaker: None,
    };
    let ec2 = Ec2Fields::new(snapshots, TimeDelta::seconds(i64::from(policy.max_event_age_secs))).with_sources(sources);

    let mut by_volume: BTreeMap<&str, Vec<Candidate<'_>>> = BTreeMap::new();
    let mut daily_by_day: BTreeMap<(&str, NaiveDate), Vec<Candidate<'_>>> = BTreeMap::new();
    for snapshot in snapshots.iter().filter(|s| s.is_managed()) {
        let kind = match snapshot.kind() {
            Ok(kind) => kind,
            Err(why) => {
                plan.skip.push(Skip { id: snapshot.snapshot_id.clone(), reason: format!("not understood: {why}") });
                continue;
            }
        };
        let volume_id = match ec2.check(snapshot) {
            Ok(volume_id) => volume_id,
            Err(why) => {
                let reason = format!("{TAGS_DISAGREE}: {why}");
                plan.disagree.push(Skip { id: snapshot.snapshot_id.clone(), reason });
                continue;
            }
        };
        let candidate = Candidate { snapshot, volume_id, kind, date: snapshot.date() };
        if snapshot.state == State::Error {
            plan.delete.push(candidate.deletion(DeleteReason::Failed));
        } else if kind == SnapshotKind::Daily {
            daily_by_day.entry((volume_id, candidate.date)).or_default().push(candidate);
        } else {
            by_volume.entry(volume_id).or_default().push(candidate);
        }
    }

    // One daily snapshot per volume and date; extra completed copies go, pending ones wait.
    let mut todays: BTreeMap<&str, &ObservedSnapshot> = BTreeMap::new();
    for ((volume_id, date), mut copies) in daily_by_day {
        copies.sort_by_key(|c| (c.snapshot.state != State::Completed, c.snapshot.start_time, &c.snapshot.snapshot_id));
        let mut copies = copies.into_iter();
        let keeper = copies.next().expect("a group has at least one snapshot");
        for extra in copies {
            if extra.snapshot.state == State::Completed {
                plan.delete.push(extra.deletion(DeleteReason::Duplicate));
            } else {
                plan.skip.push(extra.skip_pending("duplicate of this date's snapshot"));
            }
        }
        if date == today {
            todays.insert(volume_id, keeper.snapshot);
        }
        by_volume.entry(volume_id).or_default().push(keeper);
    }

    let oldest_kept_date = today.checked_sub_days(Days::new(u64::from(policy.retention_days) - 1)).unwrap_or(today);
    let oldest_kept_time = now - TimeDelta::days(i64::from(policy.retention_days));
    for (volume_id, candidates) in by_volume {
        let (retained, expired): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|c| match c.kind {
            SnapshotKind::Daily => c.date >= oldest_kept_date,
            SnapshotKind::SpotFinal | SnapshotKind::Manual => c.snapshot.start_time > oldest_kept_time,
        });
        let completed_retained = retained.iter().filter(|c| c.snapshot.state == State::Completed).count();
        let (mut expired, pending): (Vec<_>, Vec<_>) =
            expired.into_iter().partition(|c| c.snapshot.state == State::Completed);
        plan.skip.extend(pending.iter().map(|c| c.skip_pending("expired")));

        expired.sort_by_key(|c| std::cmp::Reverse((c.date, c.snapshot.start_time, &c.snapshot.snapshot_id)));
        let shortfall = (policy.min_snapshots as usize).saturating_sub(completed_retained);
        for (i, candidate) in expired.into_iter().enumerate() {
            if i < shortfall {
                plan.keep_by_floor.push(Kept {
                    snapshot_id: candidate.snapshot.snapshot_id.clone(),
                    volume_id: volume_id.to_owned(),
                    date: candidate.date,
                });
            } else {
                plan.delete.push(candidate.deletion(DeleteReason::Expired));
            }
        }
    }

    let mut volumes: Vec<&Volume> = volumes.iter().collect();
    volumes.sort_by(|a, b| a.source.volume_id.cmp(&b.source.volume_id));
    volumes.dedup_by(|a, b| a.source.volume_id == b.source.volume_id);
    for volume in volumes {
        let volume_id = volume.source.volume_id.as_str();
        if let Some(existing) = todays.get(volume_id) {
            plan.present.push(Present {
                volume_id: volume_id.to_owned(),
                snapshot_id: existing.snapshot_id.clone(),
                state: existing.state,
            });
        } else if volume.can_snapshot() {
            plan.create.push(volume.source.clone());
        } else {
            plan.skip.push(Skip { id: volume_id.to_owned(), reason: format!("volume is {}", volume.state) });
        }
    }

    plan.delete.sort_by(|a, b| (&a.volume_id, a.date, &a.snapshot_id).cmp(&(&b.volume_id, b.date, &b.snapshot_id)));
    plan.keep_by_floor.sort_by(|a, b| (&a.volume_id, a.date).cmp(&(&b.volume_id, b.date)));
    plan.skip.sort_by(|a, b| a.id.cmp(&b.id));
    plan.disagree.sort_by(|a, b| a.id.cmp(&b.id));
    plan
}

/// How a snapshot whose tags EC2 contradicts is reported.
pub const TAGS_DISAGREE: &str = "tags disagree with EC2";

#[derive(Debug, Clone, Copy)]
struct Candidate<'a> {
    snapshot: &'a ObservedSnapshot,
    /// The source volume, as the tags and EC2 agree.
    volume_id: &'a str,
    kind: SnapshotKind,
    date: NaiveDate,
}

impl Candidate<'_> {
    fn deletion(&self, reason: DeleteReason) -> Deletion {
        Deletion {
            snapshot_id: self.snapshot.snapshot_id.clone(),
            volume_id: self.volume_id.to_owned(),
            kind: self.kind,
            date: self.date,
            reason,
        }
    }

    fn skip_pending(&self, why: &str) -> Skip {
        Skip {
            id: self.snapshot.snapshot_id.clone(),
            reason: format!("{why}, but {:?}: left until it completes", self.snapshot.state),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openclaw_ops_shared::tags;

    use super::*;

    const POLICY: Policy = Policy { retention_days: 7, min_snapshots: 3, max_event_age_secs: 43_200 };

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn at(d: u32) -> DateTime<Utc> {
        day(d).and_hms_opt(3, 0, 0).unwrap().and_utc()
    }

    fn volume(id: &str) -> Volume {
        Volume {
            source: SnapshotSource {
                volume_id: id.into(),
                name: Some(format!("{id}-name")),
                instance_id: Some("i-1".into()),
                device: Some("/dev/sdf".into()),
            },
            state: "in-use".into(),
        }
    }

    fn snap(id: &str, volume: &str, kind: &str, d: u32, state: State) -> ObservedSnapshot {
        let mut tags = BTreeMap::new();
        tags.insert(tags::MANAGED_BY.to_owned(), tags::MANAGED_BY_VALUE.to_owned());
        tags.insert(tags::KIND.to_owned(), kind.to_owned());
        tags.insert(tags::DATE.to_owned(), day(d).to_string());
        tags.insert(tags::VOLUME_ID.to_owned(), volume.to_owned());
        ObservedSnapshot {
            snapshot_id: id.into(),
            volume_id: volume.into(),
            state,
            start_time: at(d) + TimeDelta::seconds(5),
            tags,
        }
    }

    fn daily(volume: &str, days: impl IntoIterator<Item = u32>) -> Vec<ObservedSnapshot> {
        days.into_iter().map(|d| snap(&format!("snap-{volume}-{d:02}"), volume, "daily", d, State::Completed)).collect()
    }

    fn deleted(plan: &Plan) -> BTreeSet<String> {
        plan.delete.iter().map(|d| d.snapshot_id.clone()).collect()
    }

    fn ids<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        items.into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn first_run_creates_one_snapshot_per_volume_and_deletes_nothing() {
        let p = plan(&[volume("vol-b"), volume("vol-a")], &[], &POLICY, at(10));
        assert_eq!(p.date, day(10));
        assert_eq!(p.create.iter().map(|s| s.volume_id.as_str()).collect::<Vec<_>>(), ["vol-a", "vol-b"]);
        assert!(p.delete.is_empty() && p.keep_by_floor.is_empty() && p.present.is_empty() && p.skip.is_empty());
    }

    #[test]
    fn a_second_run_on_the_same_day_creates_nothing() {
        let snaps = daily("vol-a", [10]);
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(10));
        assert!(p.create.is_empty());
        assert_eq!(
            p.present,
            [Present { volume_id: "vol-a".into(), snapshot_id: "snap-vol-a-10".into(), state: State::Completed }]
        );
    }

    #[test]
    fn a_pending_snapshot_of_today_counts_as_present() {
        let snaps = vec![snap("snap-p", "vol-a", "daily", 10, State::Pending)];
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(10));
        assert!(p.create.is_empty());
        assert_eq!(p.present[0].state, State::Pending);
    }

    #[test]
    fn steady_state_keeps_exactly_retention_days_dates_today_included() {
        // Days 3..=9 exist; the run of day 10 creates day 10 and deletes day 3.
        let snaps = daily("vol-a", 3..=9);
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(10));
        assert_eq!(p.create.len(), 1);
        assert_eq!(deleted(&p), ids(["snap-vol-a-03"]));
        assert_eq!(p.delete[0].reason, DeleteReason::Expired);
        assert!(p.keep_by_floor.is_empty());
    }

    #[test]
    fn after_a_long_gap_every_expired_snapshot_goes_at_once() {
        let snaps = daily("vol-a", 1..=20);
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(20));
        assert_eq!(p.delete.len(), 13, "days 1..=13 expire; 14..=20 are the window");
        assert!(p.create.is_empty());
    }

    #[test]
    fn the_floor_keeps_the_newest_completed_snapshots_when_runs_fail() {
        // Snapshots stopped after day 7; on day 17 all of 1..=7 are expired.
        let snaps = daily("vol-a", 1..=7);
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(17));
        let kept: Vec<_> = p.keep_by_floor.iter().map(|k| k.snapshot_id.as_str()).collect();
        assert_eq!(kept, ["snap-vol-a-05", "snap-vol-a-06", "snap-vol-a-07"]);
        assert_eq!(deleted(&p), ids(["snap-vol-a-01", "snap-vol-a-02", "snap-vol-a-03", "snap-vol-a-04"]));
    }

    #[test]
    fn the_floor_tops_up_what_the_window_still_holds() {
        // Day 12: the window is 6..=12 and holds days 6 and 7; one expired snapshot (day 5) is kept.
        let snaps = daily("vol-a", 1..=7);
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(12));
        assert_eq!(p.keep_by_floor.iter().map(|k| k.date).collect::<Vec<_>>(), [day(5)]);
        assert_eq!(p.delete.len(), 4);
    }

    #[test]
    fn the_floor_counts_only_completed_snapshots() {
        let mut snaps = daily("vol-a", 1..=3);
        snaps.push(snap("snap-pending", "vol-a", "daily", 12, State::Pending));
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(12));
        assert_eq!(p.keep_by_floor.len(), 3, "{p:?}");
        assert!(p.delete.is_empty());
    }

    #[test]
    fn a_gone_volume_ages_out_down_to_the_floor() {
        let snaps = daily("vol-gone", 1..=5);
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(30));
        assert_eq!(deleted(&p), ids(["snap-vol-gone-01", "snap-vol-gone-02"]));
        assert_eq!(p.keep_by_floor.len(), 3);
        assert!(p.keep_by_floor.iter().all(|k| k.volume_id == "vol-gone"));
        assert_eq!(p.create.len(), 1);
    }

    #[test]
    fn a_zero_floor_lets_everything_expire() {
        let snaps = daily("vol-gone", 1..=5);
        let p = plan(&[], &snaps, &Policy { min_snapshots: 0, ..POLICY }, at(30));
        assert_eq!(p.delete.len(), 5);
    }

    #[test]
    fn snapshots_without_the_ownership_tag_are_never_considered() {
        let mut foreign = daily("vol-a", 1..=3);
        for s in &mut foreign {
            s.tags.remove(tags::MANAGED_BY);
        }
        let mut other_owner = daily("vol-b", 1..=2);
        for s in &mut other_owner {
            s.tags.insert(tags::MANAGED_BY.into(), "someone-else".into());
        }
        let all: Vec<_> = foreign.into_iter().chain(other_owner).collect();
        let p = plan(&[volume("vol-a")], &all, &POLICY, at(30));
        assert!(p.delete.is_empty() && p.keep_by_floor.is_empty() && p.skip.is_empty() && p.present.is_empty());
        assert_eq!(p.create.len(), 1, "a foreign snapshot of today does not count as ours");
    }

    #[test]
    fn pending_snapshots_are_never_deleted() {
        let snaps = vec![
            snap("snap-old-pending", "vol-a", "daily", 1, State::Pending),
            snap("snap-old-other", "vol-a", "daily", 2, State::Other),
        ];
        let p = plan(&[], &snaps, &Policy { min_snapshots: 0, ..POLICY }, at(30));
        assert!(p.delete.is_empty());
        assert_eq!(p.skip.len(), 2);
        assert!(p.skip[0].reason.contains("left until it completes"), "{:?}", p.skip);
    }

    #[test]
    fn failed_snapshots_are_deleted_and_do_not_count_as_today() {
        let snaps = vec![snap("snap-err", "vol-a", "daily", 10, State::Error)];
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(10));
        assert_eq!(p.create.len(), 1);
        assert_eq!(p.delete[0].reason, DeleteReason::Failed);
    }

    #[test]
    fn duplicates_of_a_date_keep_the_first_completed_copy() {
        let mut snaps = daily("vol-a", [10]);
        let mut later = snap("snap-dup", "vol-a", "daily", 10, State::Completed);
        later.start_time += TimeDelta::seconds(30);
        let mut pending = snap("snap-dup-pending", "vol-a", "daily", 10, State::Pending);
        pending.start_time -= TimeDelta::seconds(30);
        snaps.extend([later, pending]);
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(10));
        assert_eq!(p.present[0].snapshot_id, "snap-vol-a-10");
        assert_eq!(deleted(&p), ids(["snap-dup"]));
        assert_eq!(p.delete[0].reason, DeleteReason::Duplicate);
        assert_eq!(p.skip.len(), 1);
    }

    #[test]
    fn spot_final_and_manual_expire_by_age_and_never_count_as_a_day() {
        let mut snaps = vec![
            snap("snap-spot-old", "vol-a", "spot-final", 1, State::Completed),
            snap("snap-manual-new", "vol-a", "manual", 10, State::Completed),
        ];
        snaps.extend(daily("vol-a", 4..=9));
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(10));
        assert_eq!(p.create.len(), 1, "a manual snapshot of today is not today's daily");
        assert_eq!(deleted(&p), ids(["snap-spot-old"]));
    }

    #[test]
    fn age_expiry_is_exact_to_the_retention_period() {
        let mut spot = snap("snap-spot", "vol-a", "spot-final", 3, State::Completed);
        let policy = Policy { min_snapshots: 0, ..POLICY };
        spot.start_time = at(10) - TimeDelta::days(7) + TimeDelta::seconds(1);
        assert!(plan(&[], std::slice::from_ref(&spot), &policy, at(10)).delete.is_empty());
        spot.start_time = at(10) - TimeDelta::days(7);
        assert_eq!(plan(&[], &[spot], &policy, at(10)).delete.len(), 1);
    }

    #[test]
    fn unknown_kinds_are_skipped_not_deleted() {
        let snaps = vec![snap("snap-weird", "vol-a", "weekly", 1, State::Completed)];
        let p = plan(&[], &snaps, &Policy { retention_days: 1, min_snapshots: 0, ..POLICY }, at(30));
        assert!(p.delete.is_empty());
        assert!(p.skip[0].reason.contains("weekly"));
    }

    #[test]
    fn a_missing_date_tag_falls_back_to_the_start_date() {
        let mut s = snap("snap-a", "vol-a", "daily", 10, State::Completed);
        s.tags.remove(tags::DATE);
        let p = plan(&[volume("vol-a")], &[s], &POLICY, at(10));
        assert!(p.create.is_empty());
    }

    #[test]
    fn volumes_that_cannot_be_snapshotted_are_skipped_with_their_state() {
        let mut v = volume("vol-a");
        v.state = "creating".into();
        let p = plan(&[v.clone(), v], &[], &POLICY, at(10));
        assert!(p.create.is_empty());
        assert_eq!(p.skip, [Skip { id: "vol-a".into(), reason: "volume is creating".into() }]);
    }

    #[test]
    fn a_one_day_retention_keeps_only_today() {
        let snaps = daily("vol-a", 8..=10);
        let p = plan(&[volume("vol-a")], &snaps, &Policy { retention_days: 1, min_snapshots: 1, ..POLICY }, at(10));
        assert_eq!(deleted(&p), ids(["snap-vol-a-08", "snap-vol-a-09"]));
    }

    #[test]
    fn snapshots_whose_tags_disagree_with_ec2_are_never_deleted_nor_counted() {
        // A foreign snapshot (EC2: of vol-x) tagged as vol-a's, long expired.
        let mut foreign = snap("snap-foreign", "vol-x", "manual", 1, State::Completed);
        foreign.tags.insert(tags::VOLUME_ID.into(), "vol-a".into());
        // An old snapshot re-tagged as today's: believed, it would be the day's first copy and the
        // real snapshot of today would go as a duplicate.
        let mut retagged = snap("snap-old", "vol-a", "daily", 2, State::Completed);
        retagged.tags.insert(tags::DATE.into(), day(10).to_string());
        let mut snaps = daily("vol-a", 4..=10);
        snaps.extend([foreign, retagged]);
        let p = plan(&[volume("vol-a")], &snaps, &Policy { min_snapshots: 0, ..POLICY }, at(10));
        assert!(p.delete.is_empty(), "{:?}", p.delete);
        assert_eq!(p.present[0].snapshot_id, "snap-vol-a-10");
        let ids: Vec<_> = p.disagree.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["snap-foreign", "snap-old"]);
        assert!(p.disagree.iter().all(|s| s.reason.starts_with("tags disagree with EC2: ")), "{:?}", p.disagree);
        assert!(p.disagree[0].reason.contains("EC2's VolumeId is vol-x"), "{}", p.disagree[0].reason);
        assert!(p.disagree[1].reason.contains("EC2's StartTime is 2026-11-02"), "{}", p.disagree[1].reason);
    }

    #[test]
    fn the_circuit_breaker_holds_every_delete_over_its_limit_and_creates_go_on() {
        let snaps = daily("vol-a", 1..=20);
        let p = plan(&[volume("vol-a")], &snaps, &POLICY, at(21));
        assert_eq!((p.create.len(), p.delete.len()), (1, 14));

        let held = limit(p.clone(), 13, None).unwrap();
        assert!(held.delete.is_empty());
        assert_eq!(held.held, p.delete);
        assert_eq!(held.breaker, Some(Breaker { limit: 13, would_delete: 14 }));
        assert_eq!(held.create, p.create, "today's snapshots are still made");

        let at_limit = limit(p.clone(), 14, None).unwrap();
        assert_eq!((at_limit.delete.len(), at_limit.breaker), (14, None));

        let confirmed = limit(p.clone(), 1, Some(14)).unwrap();
        assert_eq!((confirmed.delete.len(), confirmed.held.len()), (14, 0));
        let wrong = limit(p, 1, Some(13)).unwrap_err();
        assert!(wrong.contains("confirm_deletes is 13 but the plan now deletes 14"), "{wrong}");
    }

    /// Ten simulated days, applying each plan: exactly `retention_days` per volume at the end, and
    /// never fewer than the floor however many runs fail.
    #[test]
    fn simulated_days_converge_to_the_window_and_hold_the_floor() {
        let volumes = [volume("vol-a"), volume("vol-b")];
        let mut store: Vec<ObservedSnapshot> = Vec::new();
        let run = |d: u32, create_works: bool, store: &mut Vec<ObservedSnapshot>| {
            let p = plan(&volumes, store, &POLICY, at(d));
            let gone = deleted(&p);
            store.retain(|s| !gone.contains(&s.snapshot_id));
            if create_works {
                for src in &p.create {
                    store.extend(daily(&src.volume_id, [d]));
                }
            }
        };
        for d in 1..=10 {
            run(d, true, &mut store);
        }
        for v in ["vol-a", "vol-b"] {
            let dates: Vec<_> = store.iter().filter(|s| s.volume_id == v).map(|s| s.date()).collect();
            assert_eq!(dates, (4..=10).map(day).collect::<Vec<_>>());
        }
        for d in 11..=30 {
            run(d, false, &mut store);
            assert!(store.iter().filter(|s| s.volume_id == "vol-a").count() >= 3);
        }
        assert_eq!(
            store.iter().filter(|s| s.volume_id == "vol-a").map(|s| s.date()).collect::<Vec<_>>(),
            [day(8), day(9), day(10)]
        );
    }
}
