//! The off-region copy (optional, `SNAPSHOT_COPY_REGION`): each day's completed `daily` snapshot of
//! a selected volume is copied to the DR region, encrypted with that region's key, once; the copies
//! there are pruned by the same plan as the home region's (the dates, the floor, one circuit breaker
//! over both regions' deletions).
//!
//! observe (the DR region's suite-tagged snapshots, beside the home region's) → plan ([`plan`],
//! [`limit`], pure) → apply ([`Dr::apply`]: copies, then the DR plan's deletions) → report
//! ([`DrReport`], a section of the run's report).
//!
//! ## At most one copy per source
//!
//! `CopySnapshot` takes no client token, and neither it nor `CreateTags` can be made conditional, so
//! "no copy of S is there yet" (what the plan sees) and "copy S" (what apply does) can interleave
//! with a concurrent run's. Two runs can both copy S; each then settles it by itself, without any
//! lock:
//!
//! 1. Every copy of S gets the same `Description` ([`CopyRequest::description`]), which only
//!    `CopySnapshot` can set (no `CreateTags` changes it), and the tag `openclaw:source-snapshot-id=S`.
//! 2. After its copy returns, a run waits [`SETTLE`], then lists the DR region's copies of S (that
//!    tag, that description, EC2's copy `VolumeId`, not failed) and ranks them by (`StartTime`,
//!    snapshot id): a total order every run computes alike. The wait makes every copy that started
//!    no later than this run's own visible in the list, so the first copy is seen by every run
//!    whose copy ranks after it.
//! 3. A run whose copy is not the first deletes its own copy, and only its own, and only when it has
//!    seen the first one: a run never deletes a copy it did not make, so two runs can never delete
//!    both; the first copy is never deleted by this step.
//!
//! When both runs see both copies, exactly one survives. When EC2's eventual consistency hides the
//! earlier copy from the later run's list, both survive that run; the next run's plan sees two copies
//! of one date and deletes the later one as a `duplicate` (the same order: completed first, then
//! `StartTime`, then id), so a duplicate never outlives one more run, and the Recycle Bin keeps any
//! copy deleted this way restorable. A pending (in-progress) copy counts as the source's copy: it is
//! not copied again while it runs; a copy that fails (`error`) is deleted and made again.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use chrono::{DateTime, Days, NaiveDate, Utc};
use openclaw_ops_shared::Error;
use openclaw_ops_shared::config::{self, Env};
use openclaw_ops_shared::error::{self, sdk};
use openclaw_ops_shared::snapshot::{self, ObservedSnapshot, SnapshotKind, State};
use openclaw_ops_shared::tags;
use serde::Serialize;

use crate::apply::{self, Deleted, Failure, Outcome, Pacing};
use crate::aws::Ec2;
use crate::plan::{self, Breaker, Deletion, Kept, Plan, Policy, Skip};
use crate::report::Report;
pub use crate::verify::{COPY_VOLUME_ID, SOURCE_SNAPSHOT_ID};

/// On a copy: the region its source is in.
pub const SOURCE_REGION: &str = "openclaw:source-region";

/// Where copies go, and with which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyConfig {
    /// The DR region (`SNAPSHOT_COPY_REGION`).
    pub region: String,
    /// The DR region's KMS key ARN (`SNAPSHOT_COPY_KMS_KEY_ID`): every copy is encrypted with it.
    pub kms_key_id: String,
    /// The function's own region (`AWS_REGION`, set by Lambda): the sources' region.
    pub home_region: String,
}

impl CopyConfig {
    /// `None` when `SNAPSHOT_COPY_REGION` is empty (copies off).
    pub fn from_env(env: &impl Env) -> Result<Option<Self>, Error> {
        let Some(region) = config::optional(env, "SNAPSHOT_COPY_REGION") else {
            return Ok(None);
        };
        let kms_key_id = config::optional(env, "SNAPSHOT_COPY_KMS_KEY_ID").ok_or_else(|| {
            Error::Config(
                "SNAPSHOT_COPY_KMS_KEY_ID is required with SNAPSHOT_COPY_REGION: copies are encrypted with the DR \
                 region's key"
                    .into(),
            )
        })?;
        let home_region = config::required(env, "AWS_REGION")?;
        if region == home_region {
            return Err(Error::Config(format!(
                "SNAPSHOT_COPY_REGION is {region}, the function's own region: an off-region copy must go elsewhere"
            )));
        }
        if !kms_key_id.starts_with("arn:") || !kms_key_id.contains(&format!(":kms:{region}:")) {
            return Err(Error::Config(format!(
                "SNAPSHOT_COPY_KMS_KEY_ID={kms_key_id:?}: expected the ARN of a KMS key in {region}"
            )));
        }
        Ok(Some(CopyConfig { region, kms_key_id, home_region }))
    }
}

/// One source to copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyRequest {
    pub source_snapshot_id: String,
    pub volume_id: String,
    pub date: NaiveDate,
    /// The source's `Name` tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl CopyRequest {
    /// The same for every copy of one source: what a run recognises its rivals by (module docs).
    pub fn description(&self, home_region: &str) -> String {
        format!(
            "openclaw-ops copy of {} ({home_region}): daily snapshot of {} ({})",
            self.source_snapshot_id, self.volume_id, self.date
        )
    }

    /// Written by `CopySnapshot` itself (never a later `CreateTags`): what links the copy to its
    /// source, and what the plan checks through it (`verify.rs`).
    pub fn tags(&self, home_region: &str) -> Vec<(String, String)> {
        vec![
            (tags::MANAGED_BY.to_owned(), tags::MANAGED_BY_VALUE.to_owned()),
            (tags::KIND.to_owned(), SnapshotKind::Daily.as_str().to_owned()),
            (tags::DATE.to_owned(), self.date.format("%Y-%m-%d").to_string()),
            (tags::VOLUME_ID.to_owned(), self.volume_id.clone()),
            (SOURCE_SNAPSHOT_ID.to_owned(), self.source_snapshot_id.clone()),
            (SOURCE_REGION.to_owned(), home_region.to_owned()),
            (tags::NAME.to_owned(), self.name.clone().unwrap_or_else(|| self.volume_id.clone())),
        ]
    }
}

/// What to do in the DR region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyPlan {
    pub region: String,
    pub copy: Vec<CopyRequest>,
    /// Sources not completed yet: copied by a later run.
    pub waiting: Vec<Skip>,
    /// The DR region's copies planned as the home region's snapshots are (nothing to create).
    pub prune: Plan,
}

/// Decides what to copy and what to delete in the DR region. `home_plan` is the home region's plan
/// for the same run (what it deletes or distrusts is not copied); `dr` the DR region's snapshots
/// carrying the suite's tag, `home` the home region's (the copies' sources).
pub fn plan(
    home_plan: &Plan,
    home: &[ObservedSnapshot],
    dr: &[ObservedSnapshot],
    policy: &Policy,
    now: DateTime<Utc>,
    region: &str,
) -> CopyPlan {
    let prune = plan::plan_with_sources(&[], dr, home, policy, now);

    // What already stands for a source in the DR region: believed copies (their tags agree with EC2
    // through their source), not failed. A forged tag on a foreign snapshot there is not believed,
    // so it can neither be deleted nor stand in for a copy.
    let distrusted: BTreeSet<&str> = prune.disagree.iter().chain(&prune.skip).map(|s| s.id.as_str()).collect();
    let mut copied_sources = BTreeSet::new();
    let mut copied_days = BTreeSet::new();
    for copy in dr.iter().filter(|s| s.is_managed() && s.state != State::Error) {
        if distrusted.contains(copy.snapshot_id.as_str()) || copy.kind() != Ok(SnapshotKind::Daily) {
            continue;
        }
        if let Some(source) = copy.tags.get(SOURCE_SNAPSHOT_ID) {
            copied_sources.insert(source.as_str());
        }
        if let Some(volume) = copy.tags.get(tags::VOLUME_ID) {
            copied_days.insert((volume.as_str(), copy.date()));
        }
    }

    // The sources: the home region's believed daily snapshots within the retention window that this
    // run keeps, one per volume and date (the one the home plan keeps).
    let not_kept: BTreeSet<&str> = home_plan
        .delete
        .iter()
        .chain(&home_plan.held)
        .map(|d| d.snapshot_id.as_str())
        .chain(home_plan.disagree.iter().chain(&home_plan.skip).map(|s| s.id.as_str()))
        .collect();
    let today = now.date_naive();
    let oldest = today.checked_sub_days(Days::new(u64::from(policy.retention_days) - 1)).unwrap_or(today);
    let mut by_day: BTreeMap<(&str, NaiveDate), Vec<&ObservedSnapshot>> = BTreeMap::new();
    for source in home {
        let eligible = source.is_managed()
            && source.kind() == Ok(SnapshotKind::Daily)
            && source.volume_id != COPY_VOLUME_ID
            && !source.volume_id.is_empty()
            && source.state != State::Error
            && source.date() >= oldest
            && !not_kept.contains(source.snapshot_id.as_str());
        if eligible {
            by_day.entry((source.volume_id.as_str(), source.date())).or_default().push(source);
        }
    }
    let mut copy = Vec::new();
    let mut waiting = Vec::new();
    for ((volume_id, date), mut group) in by_day {
        group.sort_by_key(|s| (s.state != State::Completed, s.start_time, &s.snapshot_id));
        let source = group[0];
        if copied_sources.contains(source.snapshot_id.as_str()) || copied_days.contains(&(volume_id, date)) {
            continue;
        }
        if source.state == State::Completed {
            copy.push(CopyRequest {
                source_snapshot_id: source.snapshot_id.clone(),
                volume_id: volume_id.to_owned(),
                date,
                name: source.tags.get(tags::NAME).cloned(),
            });
        } else {
            waiting.push(Skip {
                id: source.snapshot_id.clone(),
                reason: format!("{:?}: copied to {region} by a run after it completes", source.state),
            });
        }
    }
    CopyPlan { region: region.to_owned(), copy, waiting, prune }
}

/// The circuit breaker over both regions: the DR region's deletions count with the home region's
/// against `max_deletes`, and a manual `prune` confirms their sum (see [`plan::limit`]).
pub fn limit(
    mut home: Plan,
    dr: Option<CopyPlan>,
    max_deletes: u32,
    confirmed: Option<usize>,
) -> Result<(Plan, Option<CopyPlan>), String> {
    let Some(mut dr) = dr else {
        return plan::limit(home, max_deletes, confirmed).map(|p| (p, None));
    };
    let total = home.delete.len() + dr.prune.delete.len();
    if let Some(confirmed) = confirmed {
        if confirmed != total {
            return Err(format!(
                "confirm_deletes is {confirmed} but the plan now deletes {total} ({} here, {} in {}): nothing done; \
                 run {{\"dry_run\": true}} to see the plan and confirm its count",
                home.delete.len(),
                dr.prune.delete.len(),
                dr.region
            ));
        }
        return Ok((home, Some(dr)));
    }
    if total > max_deletes as usize {
        let breaker = Breaker { limit: max_deletes, would_delete: total };
        home.breaker = Some(breaker);
        home.held = std::mem::take(&mut home.delete);
        dr.prune.breaker = Some(breaker);
        dr.prune.held = std::mem::take(&mut dr.prune.delete);
    }
    Ok((home, Some(dr)))
}

/// A copy made by this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copied {
    pub source_snapshot_id: String,
    pub volume_id: String,
    pub date: NaiveDate,
    pub snapshot_id: String,
}

/// A copy this run made and deleted again: a concurrent run's copy of the same source came first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostRace {
    pub source_snapshot_id: String,
    /// This run's copy, deleted.
    pub deleted: String,
    /// The first copy, kept.
    pub kept: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CopyOutcome {
    pub copied: Vec<Copied>,
    pub lost_race: Vec<LostRace>,
    /// The DR plan's deletions (and every failure in the DR region, copies' included).
    pub prune: Outcome,
}

/// A copy of the same source, as the race check ranks it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rival {
    pub start_time: DateTime<Utc>,
    pub snapshot_id: String,
}

/// How long a run waits between its copies and listing their rivals (module docs, step 2): a rival
/// that started no later than this run's copy is stored, and listed, by then. A `StartTime` tie at
/// the API's resolution is then settled by id alike in every run, and EC2's eventual consistency
/// (seconds) mostly settles too; what it hides longer is a duplicate for the next run's plan.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The first of the copies of one source (module docs, step 2): `None` when none is in view.
pub fn first_copy(rivals: &[Rival]) -> Option<&Rival> {
    rivals.iter().min()
}

/// The DR region's EC2.
#[derive(Debug, Clone)]
pub struct Dr {
    pub config: CopyConfig,
    client: Client,
    ec2: Ec2,
}

impl Dr {
    pub fn new(config: CopyConfig, client: Client) -> Self {
        Dr { config, ec2: Ec2::new(client.clone()), client }
    }

    /// A client of the DR region with the function's own SDK configuration (`CopySnapshot` is sent
    /// to the destination region, naming the source region).
    pub fn from_sdk(config: CopyConfig, sdk: &aws_config::SdkConfig) -> Self {
        let conf =
            aws_sdk_ec2::config::Builder::from(sdk).region(aws_config::Region::new(config.region.clone())).build();
        Dr::new(config, Client::from_conf(conf))
    }

    /// The DR region's snapshots carrying the suite's tag.
    #[tracing::instrument(skip_all)]
    pub async fn snapshots(&self) -> Result<Vec<ObservedSnapshot>, Error> {
        self.ec2.owned_snapshots().await
    }
    #[tracing::instrument(skip_all)]

    async fn copy(&self, request: &CopyRequest) -> Result<String, error::Failure> {
        let home = &self.config.home_region;
        let tags = request.tags(home).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
        let spec = TagSpecification::builder().resource_type(ResourceType::Snapshot).set_tags(Some(tags.collect()));
        let out = self
            .client
            .copy_snapshot()
            .source_region(home)
            .source_snapshot_id(&request.source_snapshot_id)
            .description(request.description(home))
            .encrypted(true)
            .kms_key_id(&self.config.kms_key_id)
            .tag_specifications(spec.build())
            .send()
            .await
            .map_err(sdk("ec2:CopySnapshot"))?;
        out.snapshot_id.ok_or_else(|| error::Failure::call("ec2:CopySnapshot", "answered without a snapshot id"))
    }

    /// Every copy of the request's source in the DR region (module docs, step 2).
    #[tracing::instrument(skip_all)]
    async fn rivals(&self, request: &CopyRequest) -> Result<Vec<Rival>, error::Failure> {
        let description = request.description(&self.config.home_region);
        let filter =
            Filter::builder().name(format!("tag:{SOURCE_SNAPSHOT_ID}")).values(&request.source_snapshot_id).build();
        let mut rivals = Vec::new();
        for s in snapshot::describe_own(&self.client, filter).await? {
            let genuine = s.description() == Some(description.as_str())
                && s.volume_id() == Some(COPY_VOLUME_ID)
                && s.state() != Some(&aws_sdk_ec2::types::SnapshotState::Error);
            let start = s.start_time().and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
            if let (true, Some(id), Some(start_time)) = (genuine, s.snapshot_id(), start) {
                rivals.push(Rival { start_time, snapshot_id: id.to_owned() });
            }
        }
        Ok(rivals)
    }

    /// Copies, settles races (module docs), then carries out the DR plan's deletions.
    #[tracing::instrument(skip_all)]
    pub async fn apply(&self, plan: &CopyPlan, pacing: Pacing) -> CopyOutcome {
        let mut outcome = CopyOutcome::default();
        let mut failed = Vec::new();
        let fail = |request: &CopyRequest, error: error::Failure| Failure {
            action: "copy",
            id: request.source_snapshot_id.clone(),
            error,
        };
        let mut made = Vec::new();
        for request in &plan.copy {
            match self.copy(request).await {
                Ok(snapshot_id) => made.push((request, snapshot_id)),
                Err(error) => failed.push(fail(request, error)),
            }
        }
        if !made.is_empty() {
            tokio::time::sleep(SETTLE).await;
        }
        for (request, snapshot_id) in made {
            let rivals = match self.rivals(request).await {
                Ok(rivals) => rivals,
                Err(error) => {
                    // Kept: the next run's plan deletes it if it turns out to be a duplicate.
                    failed.push(fail(
                        request,
                        error.context(format!("copied as {snapshot_id}, but listing its rivals failed")),
                    ));
                    outcome.copied.push(copied(request, snapshot_id));
                    continue;
                }
            };
            match first_copy(&rivals) {
                Some(first) if first.snapshot_id != snapshot_id => {
                    let kept = first.snapshot_id.clone();
                    match self.ec2.delete_snapshot(&snapshot_id).await {
                        Ok(_) => outcome.lost_race.push(LostRace {
                            source_snapshot_id: request.source_snapshot_id.clone(),
                            deleted: snapshot_id,
                            kept,
                        }),
                        Err(error) => failed.push(fail(
                            request,
                            error.context(format!(
                                "copied as {snapshot_id} after {kept}, a concurrent run's copy; deleting it failed"
                            )),
                        )),
                    }
                }
                _ => outcome.copied.push(copied(request, snapshot_id)),
            }
        }
        outcome.prune = apply::apply(&self.ec2, &plan.prune, pacing, None).await;
        outcome.prune.failed.extend(failed);
        outcome.prune.failed.sort_by(|a, b| (a.action, &a.id).cmp(&(b.action, &b.id)));
        outcome
    }
}

fn copied(request: &CopyRequest, snapshot_id: String) -> Copied {
    Copied {
        source_snapshot_id: request.source_snapshot_id.clone(),
        volume_id: request.volume_id.clone(),
        date: request.date,
        snapshot_id,
    }
}

/// The DR region's part of the run's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrReport {
    pub region: String,
    pub copied: Vec<Copied>,
    /// Copies this run made and deleted again: a concurrent run's copy came first.
    pub lost_race: Vec<LostRace>,
    /// Sources not completed yet: copied by a later run.
    pub waiting: Vec<Skip>,
    pub deleted: Vec<Deleted>,
    pub kept_by_floor: Vec<Kept>,
    pub skipped: Vec<Skip>,
    pub held_by_breaker: Vec<Deletion>,
    pub deferred: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_copy: Vec<CopyRequest>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_delete: Vec<Deletion>,
}

impl Report {
    /// Adds the DR region's plan and outcome (`None`: a dry run). Its failures and its snapshots
    /// whose tags disagree with EC2 join the run's own, so they fail the run and notify alike.
    pub fn with_dr(mut self, plan: CopyPlan, outcome: Option<CopyOutcome>) -> Self {
        let dry_run = outcome.is_none();
        let outcome = outcome.unwrap_or_default();
        let region = plan.region;
        self.failed.extend(outcome.prune.failed.into_iter().map(|f| Failure { id: format!("{region}:{}", f.id), ..f }));
        self.tags_disagree.extend(
            plan.prune.disagree.into_iter().map(|s| Skip { id: s.id, reason: format!("in {region}: {}", s.reason) }),
        );
        let mut skipped = plan.prune.skip;
        skipped.extend(outcome.prune.skipped);
        self.dr = Some(DrReport {
            region,
            copied: outcome.copied,
            lost_race: outcome.lost_race,
            waiting: plan.waiting,
            deleted: outcome.prune.deleted,
            kept_by_floor: plan.prune.keep_by_floor,
            skipped,
            held_by_breaker: plan.prune.held,
            deferred: outcome.prune.deferred.len(),
            would_copy: if dry_run { plan.copy } else { Vec::new() },
            would_delete: if dry_run { plan.prune.delete } else { Vec::new() },
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use openclaw_ops_shared::config::MapEnv;

    use super::*;
    use crate::plan::{DeleteReason, Volume};

    fn reasons(plan: &Plan) -> Vec<(String, DeleteReason)> {
        plan.delete.iter().map(|d| (d.snapshot_id.clone(), d.reason)).collect()
    }

    const POLICY: Policy = Policy { retention_days: 7, min_snapshots: 3, max_event_age_secs: 43_200 };
    const DR: &str = "us-west-2";

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn at(d: u32) -> DateTime<Utc> {
        day(d).and_hms_opt(3, 0, 0).unwrap().and_utc()
    }

    fn source(volume: &str, d: u32, state: State) -> ObservedSnapshot {
        let mut t = BTreeMap::new();
        t.insert(tags::MANAGED_BY.to_owned(), tags::MANAGED_BY_VALUE.to_owned());
        t.insert(tags::KIND.to_owned(), "daily".to_owned());
        t.insert(tags::DATE.to_owned(), day(d).to_string());
        t.insert(tags::VOLUME_ID.to_owned(), volume.to_owned());
        ObservedSnapshot {
            snapshot_id: format!("snap-{volume}-{d:02}"),
            volume_id: volume.into(),
            state,
            start_time: at(d) + TimeDelta::seconds(5),
            tags: t,
        }
    }

    /// A copy as EC2 reports it in the DR region, made `late` after its source.
    fn copy_of(src: &ObservedSnapshot, id: &str, late: TimeDelta) -> ObservedSnapshot {
        let request = CopyRequest {
            source_snapshot_id: src.snapshot_id.clone(),
            volume_id: src.volume_id.clone(),
            date: src.date(),
            name: None,
        };
        ObservedSnapshot {
            snapshot_id: id.into(),
            volume_id: COPY_VOLUME_ID.into(),
            state: State::Completed,
            start_time: src.start_time + late,
            tags: request.tags("us-east-1").into_iter().collect(),
        }
    }

    fn volume(id: &str) -> Volume {
        Volume {
            source: openclaw_ops_shared::snapshot::SnapshotSource {
                volume_id: id.into(),
                name: None,
                instance_id: None,
                device: None,
            },
            state: "in-use".into(),
        }
    }

    fn run(home: &[ObservedSnapshot], dr: &[ObservedSnapshot], d: u32) -> CopyPlan {
        let home_plan = plan::plan(&[volume("vol-a")], home, &POLICY, at(d));
        plan(&home_plan, home, dr, &POLICY, at(d), DR)
    }

    fn sources(plan: &CopyPlan) -> Vec<&str> {
        plan.copy.iter().map(|c| c.source_snapshot_id.as_str()).collect()
    }

    #[test]
    fn completed_sources_without_a_copy_are_copied_and_pending_ones_wait() {
        let home = vec![source("vol-a", 9, State::Completed), source("vol-a", 10, State::Pending)];
        let p = run(&home, &[], 10);
        assert_eq!(sources(&p), ["snap-vol-a-09"]);
        assert_eq!(p.waiting.len(), 1);
        assert_eq!(p.waiting[0].id, "snap-vol-a-10");
        assert!(p.waiting[0].reason.contains("by a run after it completes"), "{}", p.waiting[0].reason);
        let tags: BTreeMap<_, _> = p.copy[0].tags("us-east-1").into_iter().collect();
        assert_eq!(tags[SOURCE_SNAPSHOT_ID], "snap-vol-a-09");
        assert_eq!(tags[SOURCE_REGION], "us-east-1");
        assert_eq!(tags[tags::DATE], "2026-11-09");
        assert_eq!(tags[tags::KIND], "daily");
        assert_eq!(tags[tags::VOLUME_ID], "vol-a");
    }

    #[test]
    fn a_source_with_a_copy_pending_or_completed_is_not_copied_again_but_a_failed_copy_is_redone() {
        let home = vec![source("vol-a", 8, State::Completed), source("vol-a", 9, State::Completed)];
        let mut pending = copy_of(&home[0], "snap-copy-08", TimeDelta::hours(1));
        pending.state = State::Pending;
        let mut failed = copy_of(&home[1], "snap-copy-09", TimeDelta::hours(1));
        failed.state = State::Error;
        let p = run(&home, &[pending, failed], 10);
        assert_eq!(sources(&p), ["snap-vol-a-09"]);
        assert_eq!(reasons(&p.prune), [("snap-copy-09".to_owned(), DeleteReason::Failed)]);
    }

    #[test]
    fn expired_distrusted_and_foreign_sources_are_not_copied() {
        let mut home: Vec<_> = (1..=10).map(|d| source("vol-a", d, State::Completed)).collect();
        // Re-tagged: EC2 says another volume.
        home[9].volume_id = "vol-x".into();
        // Not the suite's.
        home[8].tags.remove(tags::MANAGED_BY);
        let p = run(&home, &[], 10);
        assert_eq!(sources(&p), (4..=8).map(|d| format!("snap-vol-a-{d:02}")).collect::<Vec<_>>());
    }

    #[test]
    fn a_forged_copy_in_the_dr_region_is_neither_deleted_nor_taken_for_a_copy() {
        let home: Vec<_> = (1..=10).map(|d| source("vol-a", d, State::Completed)).collect();
        let mut dr: Vec<_> =
            home.iter().map(|s| copy_of(s, &s.snapshot_id.replace("snap", "copy"), TimeDelta::hours(1))).collect();
        // A foreign DR snapshot (EC2: of a DR volume) tagged as vol-a's, long expired...
        let mut foreign = source("vol-a", 1, State::Completed);
        foreign.snapshot_id = "snap-foreign".into();
        foreign.volume_id = "vol-dr".into();
        // ...and a copy of day 9 whose volume tag says vol-b: its source says vol-a.
        dr[8].tags.insert(tags::VOLUME_ID.into(), "vol-b".into());
        dr.push(foreign);
        let p = run(&home, &dr, 10);
        let deleted: Vec<_> = p.prune.delete.iter().map(|d| d.snapshot_id.as_str()).collect();
        assert_eq!(deleted, ["copy-vol-a-01", "copy-vol-a-02", "copy-vol-a-03"]);
        let disagree: Vec<_> = p.prune.disagree.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(disagree, ["copy-vol-a-09", "snap-foreign"]);
        assert_eq!(sources(&p), ["snap-vol-a-09"], "the distrusted copy does not stand for day 9's");
    }

    #[test]
    fn two_copies_of_one_source_leave_the_first_and_the_later_goes_as_a_duplicate() {
        let home = vec![source("vol-a", 9, State::Completed)];
        let first = copy_of(&home[0], "snap-zz-first", TimeDelta::hours(1));
        let later = copy_of(&home[0], "snap-aa-later", TimeDelta::hours(1) + TimeDelta::seconds(1));
        let p = run(&home, &[later.clone(), first.clone()], 10);
        assert!(p.copy.is_empty());
        assert_eq!(reasons(&p.prune), [("snap-aa-later".to_owned(), DeleteReason::Duplicate)]);
        // The race check ranks them the same way, and ties by id.
        let rank = |s: &ObservedSnapshot| Rival { start_time: s.start_time, snapshot_id: s.snapshot_id.clone() };
        assert_eq!(first_copy(&[rank(&later), rank(&first)]).unwrap().snapshot_id, "snap-zz-first");
        let tie = Rival { start_time: first.start_time, snapshot_id: "snap-00".into() };
        assert_eq!(first_copy(&[rank(&first), tie]).unwrap().snapshot_id, "snap-00");
    }

    #[test]
    fn the_breaker_counts_both_regions_and_a_prune_confirms_their_sum() {
        let home: Vec<_> = (1..=12).map(|d| source("vol-a", d, State::Completed)).collect();
        let dr: Vec<_> =
            home.iter().map(|s| copy_of(s, &s.snapshot_id.replace("snap", "copy"), TimeDelta::hours(1))).collect();
        let home_plan = plan::plan(&[volume("vol-a")], &home, &POLICY, at(13));
        let dr_plan = plan(&home_plan, &home, &dr, &POLICY, at(13), DR);
        assert_eq!((home_plan.delete.len(), dr_plan.prune.delete.len()), (6, 6));

        let (h, d) = limit(home_plan.clone(), Some(dr_plan.clone()), 11, None).unwrap();
        let d = d.unwrap();
        assert_eq!((h.delete.len(), d.prune.delete.len(), h.held.len(), d.prune.held.len()), (0, 0, 6, 6));
        assert_eq!(h.breaker, Some(Breaker { limit: 11, would_delete: 12 }));
        assert_eq!(h.create.len(), 1, "today's snapshot is still made");

        let (h, d) = limit(home_plan.clone(), Some(dr_plan.clone()), 12, None).unwrap();
        assert_eq!((h.delete.len(), d.unwrap().prune.delete.len()), (6, 6));
        let (h, d) = limit(home_plan.clone(), Some(dr_plan.clone()), 1, Some(12)).unwrap();
        assert_eq!((h.delete.len(), d.unwrap().prune.delete.len()), (6, 6));
        let wrong = limit(home_plan, Some(dr_plan), 1, Some(6)).unwrap_err();
        assert!(wrong.contains("plan now deletes 12 (6 here, 6 in us-west-2)"), "{wrong}");
    }

    /// Ten days of runs, each copying what completed before it (today's snapshot is pending while
    /// its run lasts), then a later run on day 10: seven dates in the DR region, as at home.
    #[test]
    fn simulated_days_keep_seven_dates_in_the_dr_region() {
        let mut home: Vec<ObservedSnapshot> = Vec::new();
        let mut dr: Vec<ObservedSnapshot> = Vec::new();
        let mut step = |d: u32, now: DateTime<Utc>, home: &mut Vec<ObservedSnapshot>| {
            let home_plan = plan::plan(&[volume("vol-a")], home, &POLICY, now);
            let p = plan(&home_plan, home, &dr, &POLICY, now, DR);
            let gone: BTreeSet<_> =
                home_plan.delete.iter().chain(&p.prune.delete).map(|x| x.snapshot_id.clone()).collect();
            home.retain(|s| !gone.contains(&s.snapshot_id));
            dr.retain(|s| !gone.contains(&s.snapshot_id));
            for c in &p.copy {
                let src = home.iter().find(|s| s.snapshot_id == c.source_snapshot_id).unwrap();
                let mut copy = copy_of(src, &format!("copy-{}", c.source_snapshot_id), TimeDelta::zero());
                copy.start_time = now + TimeDelta::seconds(30);
                dr.push(copy);
            }
            if !home_plan.create.is_empty() {
                home.push(source("vol-a", d, State::Completed));
            }
            dr.iter().map(|s| s.date()).collect::<Vec<_>>()
        };
        for d in 1..=10 {
            let dates = step(d, at(d), &mut home);
            assert_eq!(dates, (d.saturating_sub(6).max(1)..d).map(day).collect::<Vec<_>>(), "day {d}");
        }
        let dates = step(10, at(10) + TimeDelta::hours(6), &mut home);
        assert_eq!(dates, (4..=10).map(day).collect::<Vec<_>>());
    }

    #[test]
    fn configuration_needs_the_key_in_the_dr_region_and_another_region() {
        let env = |pairs: &[(&str, &str)]| CopyConfig::from_env(&MapEnv::new(pairs));
        assert_eq!(env(&[]).unwrap(), None);
        assert_eq!(env(&[("SNAPSHOT_COPY_REGION", "")]).unwrap(), None);
        let key = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let ok = env(&[("SNAPSHOT_COPY_REGION", DR), ("SNAPSHOT_COPY_KMS_KEY_ID", key), ("AWS_REGION", "us-east-1")]);
        assert_eq!(
            ok.unwrap(),
            Some(CopyConfig { region: DR.into(), kms_key_id: key.into(), home_region: "us-east-1".into() })
        );
        let no_key = env(&[("SNAPSHOT_COPY_REGION", DR), ("AWS_REGION", "us-east-1")]).unwrap_err();
        assert!(no_key.to_string().contains("SNAPSHOT_COPY_KMS_KEY_ID is required"), "{no_key}");
        let same = env(&[("SNAPSHOT_COPY_REGION", DR), ("SNAPSHOT_COPY_KMS_KEY_ID", key), ("AWS_REGION", DR)]);
        assert!(same.unwrap_err().to_string().contains("the function's own region"));
        let home_key = key.replace(DR, "us-east-1");
        let wrong =
            env(&[("SNAPSHOT_COPY_REGION", DR), ("SNAPSHOT_COPY_KMS_KEY_ID", &home_key), ("AWS_REGION", "us-east-1")]);
        assert!(wrong.unwrap_err().to_string().contains("expected the ARN of a KMS key in us-west-2"));
    }
}
