//! A small OpenClaw account in the emulator: the gateway instance with its root volume, its data
//! volume (tagged for snapshots and as the gateway's), a stray untagged volume, and the suite's `ops`
//! topic with an SQS queue subscribed to it to read what was published.

use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_ec2::types::{Filter, ResourceType, Snapshot, Tag, TagSpecification, VolumeType};
use serde_json::Value;

use crate::emulator::Emulator;

pub const AZ: &str = "us-east-1a";

pub struct OpenClawAccount {
    pub admin: SdkConfig,
    pub instance_id: String,
    pub root_volume: String,
    pub data_volume: String,
    pub untagged_volume: String,
    pub topic_arn: String,
    pub queue_url: String,
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

impl OpenClawAccount {
    pub async fn seed(emulator: &Emulator) -> anyhow::Result<Self> {
        let admin = emulator.admin().await;
        let ec2 = aws_sdk_ec2::Client::new(&admin);

        let image = ec2.describe_images().owners("amazon").send().await.context("DescribeImages")?;
        let image_id =
            image.images().first().and_then(|i| i.image_id()).context("the emulator has no AMIs")?.to_owned();
        let run = ec2
            .run_instances()
            .image_id(image_id)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
            .min_count(1)
            .max_count(1)
            .placement(aws_sdk_ec2::types::Placement::builder().availability_zone(AZ).build())
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(tag("Name", "openclaw-gateway"))
                    .tags(tag("openclaw:role", "gateway"))
                    .build(),
            )
            .send()
            .await
            .context("RunInstances")?;
        let instance_id = run.instances()[0].instance_id().context("instance id")?.to_owned();

        let root_volume = root_volume(&ec2, &instance_id).await?;
        ec2.create_tags()
            .resources(&root_volume)
            .tags(tag("Name", "openclaw-root"))
            .tags(tag("openclaw:snapshot", "daily"))
            .send()
            .await
            .context("CreateTags root")?;

        let data_volume = Self::volume(
            &ec2,
            &[("Name", "openclaw-data"), ("openclaw:snapshot", "daily"), ("openclaw:role", "gateway")],
        )
        .await?;
        ec2.attach_volume()
            .volume_id(&data_volume)
            .instance_id(&instance_id)
            .device("/dev/sdf")
            .send()
            .await
            .context("AttachVolume")?;
        let untagged_volume = Self::volume(&ec2, &[("Name", "scratch")]).await?;

        let (topic_arn, queue_url) = ops_topic_with_capture(&admin).await?;
        Ok(OpenClawAccount { admin, instance_id, root_volume, data_volume, untagged_volume, topic_arn, queue_url })
    }

    pub async fn volume(ec2: &aws_sdk_ec2::Client, tags: &[(&str, &str)]) -> anyhow::Result<String> {
        let spec = tags
            .iter()
            .fold(TagSpecification::builder().resource_type(ResourceType::Volume), |b, (k, v)| b.tags(tag(k, v)))
            .build();
        let out = ec2
            .create_volume()
            .availability_zone(AZ)
            .size(20)
            .volume_type(VolumeType::Gp3)
            .encrypted(true)
            .tag_specifications(spec)
            .send()
            .await
            .context("CreateVolume")?;
        out.volume_id.context("volume id")
    }

    /// Every snapshot in the account, the emulator's own included.
    pub async fn snapshots(&self) -> anyhow::Result<Vec<Snapshot>> {
        let ec2 = aws_sdk_ec2::Client::new(&self.admin);
        Ok(ec2.describe_snapshots().send().await.context("DescribeSnapshots")?.snapshots.unwrap_or_default())
    }

    /// The notifications published to `ops` since the last call (as JSON where they are JSON).
    pub async fn notifications(&self) -> anyhow::Result<Vec<Value>> {
        drain(&self.admin, &self.queue_url).await
    }
}

pub fn tag_value<'a>(snapshot: &'a Snapshot, key: &str) -> Option<&'a str> {
    snapshot.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// The `ops` topic, with an SQS queue subscribed (raw delivery) to capture what is published.
pub async fn ops_topic_with_capture(admin: &SdkConfig) -> anyhow::Result<(String, String)> {
    let sns = aws_sdk_sns::Client::new(admin);
    let sqs = aws_sdk_sqs::Client::new(admin);
    let topic_arn = sns.create_topic().name("ops").send().await.context("CreateTopic")?.topic_arn.context("arn")?;
    // Tests move the clock across days: keep messages the longest SQS allows (default is 4 days).
    let queue_url = sqs
        .create_queue()
        .queue_name("ops-capture")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .context("CreateQueue")?
        .queue_url
        .context("url")?;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .context("GetQueueAttributes")?;
    let queue_arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .context("queue arn")?
        .clone();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .context("Subscribe")?;
    Ok((topic_arn, queue_url))
}

/// Everything in a capture queue, as JSON where it is JSON.
pub async fn drain(admin: &SdkConfig, queue_url: &str) -> anyhow::Result<Vec<Value>> {
    let sqs = aws_sdk_sqs::Client::new(admin);
    let mut out = Vec::new();
    loop {
        let batch = sqs.receive_message().queue_url(queue_url).max_number_of_messages(10).send().await?;
        let messages = batch.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(out);
        }
        for m in messages {
            let body = m.body().unwrap_or_default();
            out.push(serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned())));
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message().queue_url(queue_url).receipt_handle(handle).send().await?;
            }
        }
    }
}

/// A standby as spot-recovery starts one on a rebalance recommendation, beside `gateway`: launched
/// from a template carrying stacks/gateway.yaml's instance tags (`openclaw:role=gateway`,
/// `Name=openclaw-gateway`, which EC2 gives every launch unless the request tags the same key) and
/// with spot-recovery's request tags for a standby, so what lands on it is what EC2 would merge.
/// Its root volume is tagged as the stack's template tags root volumes. Until it takes over it has
/// no data volume.
pub struct Standby {
    pub instance_id: String,
    pub root_volume: String,
}

pub async fn launch_standby(admin: &SdkConfig, gateway: &str, az: &str) -> anyhow::Result<Standby> {
    use aws_sdk_ec2::types::{LaunchTemplateSpecification, LaunchTemplateTagSpecificationRequest, Placement};
    let ec2 = aws_sdk_ec2::Client::new(admin);
    let image = ec2.describe_images().owners("amazon").send().await.context("DescribeImages")?;
    let image_id = image.images().first().and_then(|i| i.image_id()).context("the emulator has no AMIs")?.to_owned();
    let data = aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
        .image_id(image_id)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
        .tag_specifications(
            LaunchTemplateTagSpecificationRequest::builder()
                .resource_type(ResourceType::Instance)
                .tags(tag("Name", "openclaw-gateway"))
                .tags(tag("openclaw:role", "gateway"))
                .tags(tag("openclaw:managed-by", "openclaw-ops"))
                .build(),
        )
        .build();
    let template = ec2
        .create_launch_template()
        .launch_template_name(format!("openclaw-gateway-{gateway}"))
        .launch_template_data(data)
        .send()
        .await
        .context("CreateLaunchTemplate")?;
    let template_id = template.launch_template().and_then(|t| t.launch_template_id()).context("template id")?;
    // spot-recovery's request for a standby (plan::launch, Launching::Standby).
    let run = ec2
        .run_instances()
        .launch_template(LaunchTemplateSpecification::builder().launch_template_id(template_id).build())
        .min_count(1)
        .max_count(1)
        .placement(Placement::builder().availability_zone(az).build())
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(tag("Name", "openclaw-gateway-standby"))
                .tags(tag("openclaw:role", "standby"))
                .tags(tag("openclaw:replaces", gateway))
                .tags(tag("openclaw:managed-by", "openclaw-ops"))
                .tags(tag("team", "ops"))
                .build(),
        )
        .send()
        .await
        .context("RunInstances (standby)")?;
    let instance_id = run.instances()[0].instance_id().context("instance id")?.to_owned();
    let root_volume = root_volume(&ec2, &instance_id).await?;
    ec2.create_tags()
        .resources(&root_volume)
        .tags(tag("Name", "openclaw-gateway-root"))
        .tags(tag("openclaw:managed-by", "openclaw-ops"))
        .send()
        .await
        .context("CreateTags root")?;
    let described = ec2.describe_instances().instance_ids(&instance_id).send().await.context("DescribeInstances")?;
    let tags: std::collections::BTreeMap<&str, &str> =
        described.reservations()[0].instances()[0].tags().iter().filter_map(|t| Some((t.key()?, t.value()?))).collect();
    anyhow::ensure!(
        tags.get("openclaw:role") == Some(&"standby") && tags.get("Name") == Some(&"openclaw-gateway-standby"),
        "the request's tags override the template's: {tags:?}"
    );
    Ok(Standby { instance_id, root_volume })
}

/// The volume a new instance booted from (the only one attached to it).
async fn root_volume(ec2: &aws_sdk_ec2::Client, instance_id: &str) -> anyhow::Result<String> {
    let volumes = ec2
        .describe_volumes()
        .filters(Filter::builder().name("attachment.instance-id").values(instance_id).build())
        .send()
        .await
        .context("DescribeVolumes")?;
    Ok(volumes.volumes().first().and_then(|v| v.volume_id()).context("root volume")?.to_owned())
}
