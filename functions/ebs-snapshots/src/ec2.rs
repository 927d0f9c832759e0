//! The EC2 calls the function makes: two paginated reads, and one write per snapshot.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, VolumeAttachmentState};
use chrono::NaiveDate;
use openclaw_ops_shared::Error;
use openclaw_ops_shared::error::SdkErrorDisplay;
use openclaw_ops_shared::snapshot::{ObservedSnapshot, SnapshotKind, SnapshotSource};
use openclaw_ops_shared::tags::{self, TagFilter};

use crate::plan::Volume;

/// Largest pages EC2 allows, so a 10,000-snapshot account takes ten Describe calls, not fifty.
const SNAPSHOT_PAGE: i32 = 1000;
const VOLUME_PAGE: i32 = 500;

#[derive(Debug, Clone)]
pub struct Ec2 {
    client: Client,
}

/// How a delete ended, short of an error worth failing the run for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// `InvalidSnapshot.NotFound`: someone else deleted it first. The goal is met.
    AlreadyGone,
    /// `InvalidSnapshot.InUse`: an AMI is built on it; AWS will not delete it, and that is fine.
    InUse(String),
}

impl Ec2 {
    pub fn new(client: Client) -> Self {
        Ec2 { client }
    }

    /// Volumes carrying the selection tag, in the client's region.
    pub async fn volumes(&self, selector: &TagFilter) -> Result<Vec<Volume>, Error> {
        let filter = Filter::builder().name(format!("tag:{}", selector.key)).values(&selector.value).build();
        let mut pages = self.client.describe_volumes().filters(filter).max_results(VOLUME_PAGE).into_paginator().send();
        let mut volumes = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ec2:DescribeVolumes", &e))?;
            volumes.extend(page.volumes().iter().filter_map(|v| {
                let attachment = v.attachments().iter().find(|a| {
                    matches!(a.state(), Some(VolumeAttachmentState::Attached | VolumeAttachmentState::Attaching))
                });
                Some(Volume {
                    source: SnapshotSource {
                        volume_id: v.volume_id()?.to_owned(),
                        name: v
                            .tags()
                            .iter()
                            .find(|t| t.key() == Some(tags::NAME))
                            .and_then(|t| t.value())
                            .map(str::to_owned),
                        instance_id: attachment.and_then(|a| a.instance_id()).map(str::to_owned),
                        device: attachment.and_then(|a| a.device()).map(str::to_owned),
                    },
                    state: v.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                })
            }));
        }
        Ok(volumes)
    }

    /// The account's own snapshots that carry the suite's ownership tag. The plan checks the tag
    /// again: the filter narrows the read, it is not what keeps foreign snapshots safe.
    pub async fn owned_snapshots(&self) -> Result<Vec<ObservedSnapshot>, Error> {
        let filter = Filter::builder().name(format!("tag:{}", tags::MANAGED_BY)).values(tags::MANAGED_BY_VALUE).build();
        let mut pages = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .filters(filter)
            .max_results(SNAPSHOT_PAGE)
            .into_paginator()
            .send();
        let mut snapshots = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ec2:DescribeSnapshots", &e))?;
            snapshots.extend(page.snapshots().iter().filter_map(ObservedSnapshot::from_sdk));
        }
        Ok(snapshots)
    }

    /// One snapshot, tagged in the same call (never a later CreateTags).
    pub async fn create_snapshot(
        &self,
        source: &SnapshotSource,
        kind: SnapshotKind,
        date: NaiveDate,
    ) -> Result<String, String> {
        let out = self
            .client
            .create_snapshot()
            .volume_id(&source.volume_id)
            .description(source.description(kind, date))
            .tag_specifications(source.tag_specification(kind, date))
            .send()
            .await
            .map_err(|e| SdkErrorDisplay(&e).to_string())?;
        out.snapshot_id.ok_or_else(|| "CreateSnapshot answered without a snapshot id".to_owned())
    }

    pub async fn delete_snapshot(&self, snapshot_id: &str) -> Result<DeleteOutcome, String> {
        match self.client.delete_snapshot().snapshot_id(snapshot_id).send().await {
            Ok(_) => Ok(DeleteOutcome::Deleted),
            Err(e) => match e.code() {
                Some("InvalidSnapshot.NotFound") => Ok(DeleteOutcome::AlreadyGone),
                Some("InvalidSnapshot.InUse") => Ok(DeleteOutcome::InUse(SdkErrorDisplay(&e).to_string())),
                _ => Err(SdkErrorDisplay(&e).to_string()),
            },
        }
    }
}

fn sdk_error<E>(operation: &'static str, err: &E) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    Error::Aws { operation, message: SdkErrorDisplay(err).to_string() }
}
