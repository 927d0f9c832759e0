//! The clients the function uses, built once per container, and the EC2 calls it makes: two
//! paginated reads, and one write per snapshot.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, Tag, VolumeAttachmentState};
use chrono::NaiveDate;
use openclaw_ops_shared::Error;
use openclaw_ops_shared::error::{Failure, sdk};
use openclaw_ops_shared::snapshot::{self, ObservedSnapshot, SnapshotKind, SnapshotSource};
use openclaw_ops_shared::tags::{self, TagFilter};

use crate::consistency::{self, Consistency};
use crate::plan::Volume;

/// The largest page of volumes EC2 allows (snapshots: `shared::snapshot::describe_own`).
const VOLUME_PAGE: i32 = 500;

/// Every client a run uses: the region's EC2, SSM for the consistency hook, SNS for the report's
/// notification, and the DR region's EC2 when copies are on (`SNAPSHOT_COPY_REGION`).
pub struct Clients {
    pub ec2: Ec2,
    pub ssm: aws_sdk_ssm::Client,
    pub sns: aws_sdk_sns::Client,
    pub dr: Option<crate::copy::Dr>,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig, config: &crate::Config) -> Self {
        Clients {
            ec2: Ec2::new(Client::new(sdk)),
            ssm: aws_sdk_ssm::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
            dr: config.copy.clone().map(|copy| crate::copy::Dr::from_sdk(copy, sdk)),
        }
    }
}

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
    #[tracing::instrument(skip_all)]
    pub async fn volumes(&self, selector: &TagFilter) -> Result<Vec<Volume>, Error> {
        let filter = Filter::builder().name(format!("tag:{}", selector.key)).values(&selector.value).build();
        let mut pages = self.client.describe_volumes().filters(filter).max_results(VOLUME_PAGE).into_paginator().send();
        let mut volumes = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk("ec2:DescribeVolumes"))?;
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
    /// again: the filter narrows the read, it is not what keeps foreign snapshots safe. Each one's
    /// `volume_id` is EC2's `VolumeId` (the `openclaw:volume-id` tag stays in `tags`).
    #[tracing::instrument(skip_all)]
    pub async fn owned_snapshots(&self) -> Result<Vec<ObservedSnapshot>, Error> {
        let own = snapshot::describe_own(&self.client, snapshot::managed_filter()).await?;
        Ok(own
            .iter()
            .filter_map(|sdk| {
                let mut observed = ObservedSnapshot::from_sdk(sdk)?;
                // EC2's own VolumeId, not the tag: the plan checks the tag against it (verify.rs).
                observed.volume_id = sdk.volume_id().unwrap_or_default().to_owned();
                Some(observed)
            })
            .collect())
    }

    /// One snapshot, tagged in the same call (never a later CreateTags).
    #[tracing::instrument(skip_all, fields(volume = %source.volume_id))]
    pub async fn create_snapshot(
        &self,
        source: &SnapshotSource,
        kind: SnapshotKind,
        date: NaiveDate,
    ) -> Result<String, Failure> {
        self.create_tagged(source, kind, date, None).await
    }

    /// A daily snapshot, tagged with how it was taken (`openclaw:consistency`) from its creation.
    #[tracing::instrument(skip_all, fields(volume = %source.volume_id))]
    pub async fn create_daily(
        &self,
        source: &SnapshotSource,
        date: NaiveDate,
        consistency: Consistency,
    ) -> Result<String, Failure> {
        let tag = Tag::builder().key(consistency::TAG).value(consistency.as_str()).build();
        self.create_tagged(source, SnapshotKind::Daily, date, Some(tag)).await
    }
    #[tracing::instrument(skip_all)]

    async fn create_tagged(
        &self,
        source: &SnapshotSource,
        kind: SnapshotKind,
        date: NaiveDate,
        extra: Option<Tag>,
    ) -> Result<String, Failure> {
        let mut tags = source.tag_specification(kind, date);
        if let Some(extra) = extra {
            tags.tags.get_or_insert_with(Vec::new).push(extra);
        }
        let out = self
            .client
            .create_snapshot()
            .volume_id(&source.volume_id)
            .description(source.description(kind, date))
            .tag_specifications(tags)
            .send()
            .await
            .map_err(sdk("ec2:CreateSnapshot"))?;
        out.snapshot_id.ok_or_else(|| Failure::call("ec2:CreateSnapshot", "answered without a snapshot id"))
    }
    #[tracing::instrument(skip_all, fields(snapshot_id = %snapshot_id))]

    pub async fn delete_snapshot(&self, snapshot_id: &str) -> Result<DeleteOutcome, Failure> {
        match self.client.delete_snapshot().snapshot_id(snapshot_id).send().await {
            Ok(_) => Ok(DeleteOutcome::Deleted),
            Err(e) => match e.code() {
                Some("InvalidSnapshot.NotFound") => Ok(DeleteOutcome::AlreadyGone),
                Some("InvalidSnapshot.InUse") => {
                    Ok(DeleteOutcome::InUse(Failure::from_sdk("ec2:DeleteSnapshot", &e).detail()))
                }
                _ => Err(Failure::from_sdk("ec2:DeleteSnapshot", &e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::delete_snapshot::{DeleteSnapshotError, DeleteSnapshotOutput};
    use aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput;
    use aws_sdk_ec2::operation::describe_volumes::{DescribeVolumesError, DescribeVolumesOutput};
    use aws_sdk_ec2::types::{Snapshot, SnapshotState, Tag, Volume as SdkVolume, VolumeAttachment, VolumeState};
    use aws_smithy_async::rt::sleep::TokioSleep;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn owned(id: &str) -> Snapshot {
        Snapshot::builder()
            .snapshot_id(id)
            .state(SnapshotState::Completed)
            .tags(Tag::builder().key(tags::MANAGED_BY).value(tags::MANAGED_BY_VALUE).build())
            .build()
    }

    #[tokio::test]
    async fn snapshots_are_read_across_every_page_with_the_largest_page_size() {
        let first = mock!(Client::describe_snapshots)
            .match_requests(|r| {
                r.next_token().is_none()
                    && r.max_results() == Some(1000)
                    && r.owner_ids() == ["self"]
                    && r.filters()[0].name() == Some("tag:openclaw:managed-by")
                    && r.filters()[0].values() == ["openclaw-ops"]
            })
            .then_output(|| {
                DescribeSnapshotsOutput::builder()
                    .snapshots(owned("snap-1"))
                    .snapshots(owned("snap-2"))
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::describe_snapshots)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(|| DescribeSnapshotsOutput::builder().snapshots(owned("snap-3")).build());
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&first, &second]));

        let ids: Vec<_> = ec2.owned_snapshots().await.unwrap().into_iter().map(|s| s.snapshot_id).collect();
        assert_eq!(ids, ["snap-1", "snap-2", "snap-3"]);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    fn volume(id: &str) -> SdkVolume {
        SdkVolume::builder()
            .volume_id(id)
            .state(VolumeState::InUse)
            .tags(Tag::builder().key("Name").value("openclaw-data").build())
            .attachments(
                VolumeAttachment::builder()
                    .instance_id("i-1")
                    .device("/dev/sdf")
                    .state(VolumeAttachmentState::Attached)
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn volumes_are_read_across_every_page_with_attachment_and_name() {
        let first = mock!(Client::describe_volumes)
            .match_requests(|r| {
                r.next_token().is_none()
                    && r.max_results() == Some(500)
                    && r.filters()[0].name() == Some("tag:openclaw:snapshot")
            })
            .then_output(|| DescribeVolumesOutput::builder().volumes(volume("vol-1")).next_token("n").build());
        let second = mock!(Client::describe_volumes)
            .match_requests(|r| r.next_token() == Some("n"))
            .then_output(|| DescribeVolumesOutput::builder().volumes(volume("vol-2")).build());
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&first, &second]));

        let volumes = ec2.volumes(&"openclaw:snapshot=daily".parse().unwrap()).await.unwrap();
        assert_eq!(volumes.len(), 2);
        let v = &volumes[1];
        assert_eq!(v.source.volume_id, "vol-2");
        assert_eq!(v.source.name.as_deref(), Some("openclaw-data"));
        assert_eq!(v.source.instance_id.as_deref(), Some("i-1"));
        assert_eq!(v.source.device.as_deref(), Some("/dev/sdf"));
        assert_eq!(v.state, "in-use");
    }

    /// Throttling is retried by the SDK with the suite's retry configuration, not by a hand loop.
    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_with_backoff() {
        let throttled = || {
            DescribeVolumesError::generic(
                ErrorMetadata::builder().code("RequestLimitExceeded").message("Request limit exceeded.").build(),
            )
        };
        let rule = mock!(Client::describe_volumes)
            .sequence()
            .error(throttled)
            .times(3)
            .output(|| DescribeVolumesOutput::builder().volumes(volume("vol-1")).build())
            .build();
        let client = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&rule], |c| c
            .retry_config(openclaw_ops_shared::aws::retry_config())
            .sleep_impl(TokioSleep::new()));
        let started = tokio::time::Instant::now();
        let volumes = Ec2::new(client).volumes(&"k=v".parse().unwrap()).await.unwrap();
        assert_eq!(volumes.len(), 1);
        assert_eq!(rule.num_calls(), 4);
        assert!(started.elapsed() >= std::time::Duration::from_millis(100), "backed off between tries");
    }

    #[tokio::test]
    async fn delete_outcomes_by_error_code() {
        let err = |code: &'static str| {
            move || DeleteSnapshotError::generic(ErrorMetadata::builder().code(code).message("m").build())
        };
        let ok = mock!(Client::delete_snapshot)
            .match_requests(|r| r.snapshot_id() == Some("snap-ok"))
            .then_output(|| DeleteSnapshotOutput::builder().build());
        let gone = mock!(Client::delete_snapshot)
            .match_requests(|r| r.snapshot_id() == Some("snap-gone"))
            .then_error(err("InvalidSnapshot.NotFound"));
        let in_use = mock!(Client::delete_snapshot)
            .match_requests(|r| r.snapshot_id() == Some("snap-ami"))
            .then_error(err("InvalidSnapshot.InUse"));
        let denied = mock!(Client::delete_snapshot)
            .match_requests(|r| r.snapshot_id() == Some("snap-denied"))
            .then_error(err("UnauthorizedOperation"));
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&ok, &gone, &in_use, &denied]));

        assert_eq!(ec2.delete_snapshot("snap-ok").await, Ok(DeleteOutcome::Deleted));
        assert_eq!(ec2.delete_snapshot("snap-gone").await, Ok(DeleteOutcome::AlreadyGone));
        assert_eq!(ec2.delete_snapshot("snap-ami").await, Ok(DeleteOutcome::InUse("InvalidSnapshot.InUse: m".into())));
        let denied = ec2.delete_snapshot("snap-denied").await.unwrap_err();
        assert_eq!(denied.to_string(), "ec2:DeleteSnapshot failed: UnauthorizedOperation: m");
        assert_eq!(denied.code(), Some("UnauthorizedOperation"));
    }
}
