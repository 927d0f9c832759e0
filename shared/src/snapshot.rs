//! The suite's EBS snapshots: how they are tagged at creation and read back.
//! ebs-snapshots makes `daily` ones; spot-recovery makes `spot-final` ones; operators `manual` ones.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use aws_sdk_ec2::types::{Filter, ResourceType, Snapshot, SnapshotState, Tag, TagSpecification};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::error::{Failure, sdk};
use crate::tags;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotKind {
    /// One per volume per scheduled date; what retention counts.
    Daily,
    /// Taken on a Spot interruption warning; expires by age.
    SpotFinal,
    /// Taken by hand; expires by age.
    Manual,
}

impl SnapshotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Daily => "daily",
            SnapshotKind::SpotFinal => "spot-final",
            SnapshotKind::Manual => "manual",
        }
    }
}

impl fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SnapshotKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "daily" => Ok(SnapshotKind::Daily),
            "spot-final" => Ok(SnapshotKind::SpotFinal),
            "manual" => Ok(SnapshotKind::Manual),
            other => Err(format!("unknown snapshot kind {other:?}")),
        }
    }
}

/// What a new snapshot records about its source, written as tags in the CreateSnapshot call itself
/// (TagSpecifications: the snapshot never exists untagged, and the IAM policy can require the tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotSource {
    pub volume_id: String,
    pub name: Option<String>,
    pub instance_id: Option<String>,
    pub device: Option<String>,
}

impl SnapshotSource {
    pub fn tags(&self, kind: SnapshotKind, date: NaiveDate) -> Vec<(String, String)> {
        let mut out = vec![
            (tags::MANAGED_BY.to_owned(), tags::MANAGED_BY_VALUE.to_owned()),
            (tags::KIND.to_owned(), kind.as_str().to_owned()),
            (tags::DATE.to_owned(), date.format("%Y-%m-%d").to_string()),
            (tags::VOLUME_ID.to_owned(), self.volume_id.clone()),
        ];
        if let Some(instance) = &self.instance_id {
            out.push((tags::INSTANCE_ID.to_owned(), instance.clone()));
        }
        if let Some(device) = &self.device {
            out.push((tags::DEVICE.to_owned(), device.clone()));
        }
        let name = self.name.clone().unwrap_or_else(|| self.volume_id.clone());
        out.push((tags::NAME.to_owned(), name));
        out
    }

    pub fn tag_specification(&self, kind: SnapshotKind, date: NaiveDate) -> TagSpecification {
        let tags = self.tags(kind, date).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
        TagSpecification::builder().resource_type(ResourceType::Snapshot).set_tags(Some(tags.collect())).build()
    }

    pub fn description(&self, kind: SnapshotKind, date: NaiveDate) -> String {
        format!("openclaw-ops {kind} snapshot of {} ({date})", self.volume_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Pending,
    Completed,
    Error,
    /// Anything newer EC2 may add (`recoverable`, `recovering`...): treated like pending, never touched.
    Other,
}

/// A snapshot as the plan functions see it: plain data, no SDK types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedSnapshot {
    pub snapshot_id: String,
    /// The `openclaw:volume-id` tag, else the snapshot's VolumeId (EC2 reports `vol-ffffffff` for
    /// copies; the tag is what survives).
    pub volume_id: String,
    pub state: State,
    pub start_time: DateTime<Utc>,
    pub tags: BTreeMap<String, String>,
}

impl ObservedSnapshot {
    pub fn from_sdk(snapshot: &Snapshot) -> Option<Self> {
        let snapshot_id = snapshot.snapshot_id()?.to_owned();
        let tags: BTreeMap<String, String> = snapshot
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
            .collect();
        let volume_id =
            tags.get(tags::VOLUME_ID).cloned().or_else(|| snapshot.volume_id().map(str::to_owned)).unwrap_or_default();
        let state = match snapshot.state() {
            Some(SnapshotState::Pending) => State::Pending,
            Some(SnapshotState::Completed) => State::Completed,
            Some(SnapshotState::Error) => State::Error,
            _ => State::Other,
        };
        let start_time = snapshot
            .start_time()
            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
            .unwrap_or(DateTime::UNIX_EPOCH);
        Some(ObservedSnapshot { snapshot_id, volume_id, state, start_time, tags })
    }

    /// Carries the suite's ownership tag: the only snapshots the suite may ever delete.
    pub fn is_managed(&self) -> bool {
        self.tags.get(tags::MANAGED_BY).map(String::as_str) == Some(tags::MANAGED_BY_VALUE)
    }

    pub fn kind(&self) -> Result<SnapshotKind, String> {
        self.tags.get(tags::KIND).ok_or_else(|| format!("no {} tag", tags::KIND))?.parse()
    }

    /// The scheduled date it was taken for; the start date when the tag is missing or malformed.
    pub fn date(&self) -> NaiveDate {
        self.tags
            .get(tags::DATE)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .unwrap_or_else(|| self.start_time.date_naive())
    }
}

/// EC2's largest page: a 10,000-snapshot account takes ten reads, not fifty.
const SNAPSHOT_PAGE: i32 = 1000;

/// The suite's ownership tag as a server-side filter. It narrows the read; it is not what keeps
/// foreign snapshots safe (each plan checks the tag again).
pub fn managed_filter() -> Filter {
    Filter::builder().name(format!("tag:{}", tags::MANAGED_BY)).values(tags::MANAGED_BY_VALUE).build()
}

/// The account's own snapshots (`owner-ids self`: never moto's or AWS's public ones) that match
/// `filter`, across every page.
#[tracing::instrument(skip_all)]
pub async fn describe_own(client: &aws_sdk_ec2::Client, filter: Filter) -> Result<Vec<Snapshot>, Failure> {
    let mut pages = client
        .describe_snapshots()
        .owner_ids("self")
        .filters(filter)
        .max_results(SNAPSHOT_PAGE)
        .into_paginator()
        .send();
    let mut snapshots = Vec::new();
    while let Some(page) = pages.next().await {
        snapshots.extend(page.map_err(sdk("ec2:DescribeSnapshots"))?.snapshots.unwrap_or_default());
    }
    Ok(snapshots)
}

#[cfg(test)]
mod tests {
    use aws_smithy_types::DateTime as SmithyDateTime;

    use super::*;

    fn source() -> SnapshotSource {
        SnapshotSource {
            volume_id: "vol-1".into(),
            name: Some("openclaw-data".into()),
            instance_id: Some("i-1".into()),
            device: Some("/dev/sdf".into()),
        }
    }

    #[test]
    fn tags_at_creation_follow_the_contract() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let spec = source().tag_specification(SnapshotKind::Daily, date);
        assert_eq!(spec.resource_type(), Some(&ResourceType::Snapshot));
        let tags: BTreeMap<_, _> = spec.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
        assert_eq!(tags["openclaw:managed-by"], "openclaw-ops");
        assert_eq!(tags["openclaw:kind"], "daily");
        assert_eq!(tags["openclaw:date"], "2026-11-25");
        assert_eq!(tags["openclaw:volume-id"], "vol-1");
        assert_eq!(tags["openclaw:instance-id"], "i-1");
        assert_eq!(tags["openclaw:device"], "/dev/sdf");
        assert_eq!(tags["Name"], "openclaw-data");
    }

    #[test]
    fn unattached_unnamed_volume_gets_its_id_as_name_and_no_attachment_tags() {
        let src = SnapshotSource { volume_id: "vol-2".into(), name: None, instance_id: None, device: None };
        let tags: BTreeMap<_, _> = src.tags(SnapshotKind::Manual, NaiveDate::MIN).into_iter().collect();
        assert_eq!(tags["Name"], "vol-2");
        assert!(!tags.contains_key("openclaw:instance-id") && !tags.contains_key("openclaw:device"));
    }

    #[test]
    fn reads_back_an_sdk_snapshot() {
        let sdk = Snapshot::builder()
            .snapshot_id("snap-1")
            .volume_id("vol-ffffffff")
            .state(SnapshotState::Completed)
            .start_time(SmithyDateTime::from_secs(1_764_040_000))
            .tags(Tag::builder().key("openclaw:managed-by").value("openclaw-ops").build())
            .tags(Tag::builder().key("openclaw:volume-id").value("vol-1").build())
            .tags(Tag::builder().key("openclaw:kind").value("spot-final").build())
            .build();
        let s = ObservedSnapshot::from_sdk(&sdk).unwrap();
        assert_eq!(s.volume_id, "vol-1");
        assert!(s.is_managed());
        assert_eq!(s.kind(), Ok(SnapshotKind::SpotFinal));
        assert_eq!(s.state, State::Completed);
        assert_eq!(s.date(), s.start_time.date_naive());
    }

    #[test]
    fn foreign_snapshots_are_not_managed() {
        let mut s = ObservedSnapshot::from_sdk(&Snapshot::builder().snapshot_id("snap-x").build()).unwrap();
        assert!(!s.is_managed());
        s.tags.insert("openclaw:managed-by".into(), "someone-else".into());
        assert!(!s.is_managed());
        assert_eq!(s.state, State::Other);
    }
}
