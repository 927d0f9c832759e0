//! The EC2 calls: what the plan reads, and the writes that carry it out.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    Filter, InstanceInterruptionBehavior, InstanceMarketOptionsRequest, LaunchTemplateSpecification, MarketType,
    Placement, ResourceType, SpotInstanceType, SpotMarketOptions, Tag, TagSpecification, VolumeType,
};
use chrono::NaiveDate;
use openclaw_ops_shared::Error;
use openclaw_ops_shared::error::{Failure, sdk};
use openclaw_ops_shared::snapshot::{self, ObservedSnapshot, SnapshotKind, SnapshotSource};
use openclaw_ops_shared::tags::TagFilter;
use serde::Serialize;
use tokio::time::Instant;

use crate::plan::{Attachment, Instance, Launch, REPLACES, Subnet, Volume};

/// How often a wait looks again.
pub const POLL: Duration = Duration::from_secs(2);

/// Errors that mean "no Spot capacity for this request now": an On-Demand launch may still work.
const CAPACITY_ERRORS: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "UnfulfillableCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purchase {
    Spot,
    OnDemand,
}

impl Purchase {
    pub fn as_str(self) -> &'static str {
        match self {
            Purchase::Spot => "Spot",
            Purchase::OnDemand => "On-Demand",
        }
    }
}

/// EC2's answer to a `ClientToken` it has seen with other parameters.
const TOKEN_TAKEN: &str = "IdempotentParameterMismatch";

/// Why a launch launched nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchError {
    /// The interruption's client token launched an instance already, in the other market (the
    /// same market would have answered that instance): another delivery of the same event got
    /// there first. `spot_error` is what this delivery's Spot attempt was told, if it fell back.
    ByAnotherDelivery {
        spot_error: Option<String>,
    },
    Refused(String),
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchError::ByAnotherDelivery { .. } => {
                write!(f, "ec2:RunInstances: {TOKEN_TAKEN}: the client token launched an instance already")
            }
            LaunchError::Refused(message) => f.write_str(message),
        }
    }
}

/// A launch that succeeded, and what the Spot attempt said when it fell back to On-Demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Launched {
    pub instance_id: String,
    pub purchase: Purchase,
    pub spot_error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Ec2 {
    client: Client,
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

fn to_instance(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    Some(Instance {
        id: i.instance_id()?.to_owned(),
        state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()).unwrap_or_default(),
        spot: i.instance_lifecycle().is_some_and(|l| l.as_str() == "spot"),
        state_reason: i.state_reason().and_then(|r| r.code()).filter(|c| !c.is_empty()).map(str::to_owned),
        az: i.placement().and_then(|p| p.availability_zone()).filter(|z| !z.is_empty()).map(str::to_owned),
        subnet_id: i.subnet_id().filter(|s| !s.is_empty()).map(str::to_owned),
        tags: tag_map(i.tags()),
    })
}

fn tag_spec(resource: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    let tags = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
    TagSpecification::builder().resource_type(resource).set_tags(Some(tags.collect())).build()
}

impl Ec2 {
    pub fn new(client: Client) -> Self {
        Ec2 { client }
    }

    /// The instance, or `None` when EC2 does not know it.
    #[tracing::instrument(skip_all, fields(id = %id))]
    pub async fn instance(&self, id: &str) -> Result<Option<Instance>, Error> {
        match self.client.describe_instances().instance_ids(id).send().await {
            Ok(out) => Ok(out.reservations().iter().flat_map(|r| r.instances()).find_map(to_instance)),
            Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => Ok(None),
            Err(e) => Err(sdk("ec2:DescribeInstances")(e).into()),
        }
    }

    /// Instances carrying `openclaw:replaces=<id>` (every page).
    #[tracing::instrument(skip_all, fields(old = %old))]
    pub async fn replacements(&self, old: &str) -> Result<Vec<Instance>, Error> {
        let filter = Filter::builder().name(format!("tag:{REPLACES}")).values(old).build();
        let mut pages = self.client.describe_instances().filters(filter).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk("ec2:DescribeInstances"))?;
            out.extend(page.reservations().iter().flat_map(|r| r.instances()).filter_map(to_instance));
        }
        out.retain(|i| i.tags.get(REPLACES).map(String::as_str) == Some(old));
        Ok(out)
    }

    /// Volumes carrying the gateway tag (every page).
    #[tracing::instrument(skip_all)]
    pub async fn volumes(&self, selector: &TagFilter) -> Result<Vec<Volume>, Error> {
        let filter = Filter::builder().name(format!("tag:{}", selector.key)).values(&selector.value).build();
        let mut pages = self.client.describe_volumes().filters(filter).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk("ec2:DescribeVolumes"))?;
            out.extend(page.volumes().iter().filter_map(to_volume));
        }
        Ok(out)
    }

    /// The volumes among `ids` that exist, whatever their tags (a filter, not `VolumeIds`: EC2
    /// refuses a list naming one that is gone).
    #[tracing::instrument(skip_all)]
    pub async fn volumes_by_id(&self, ids: &[String]) -> Result<Vec<Volume>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let filter = Filter::builder().name("volume-id").set_values(Some(ids.to_vec())).build();
        let mut pages = self.client.describe_volumes().filters(filter).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk("ec2:DescribeVolumes"))?;
            out.extend(page.volumes().iter().filter_map(to_volume));
        }
        Ok(out)
    }
    #[tracing::instrument(skip_all, fields(id = %id))]

    pub async fn volume(&self, id: &str) -> Result<Option<Volume>, Failure> {
        match self.client.describe_volumes().volume_ids(id).send().await {
            Ok(out) => Ok(out.volumes().iter().find_map(to_volume)),
            Err(e) if e.code() == Some("InvalidVolume.NotFound") => Ok(None),
            Err(e) => Err(Failure::from_sdk("ec2:DescribeVolumes", &e)),
        }
    }

    /// The suite's snapshots (the plan checks the ownership tag again).
    #[tracing::instrument(skip_all)]
    pub async fn owned_snapshots(&self) -> Result<Vec<ObservedSnapshot>, Error> {
        let own = snapshot::describe_own(&self.client, snapshot::managed_filter()).await?;
        Ok(own.iter().filter_map(ObservedSnapshot::from_sdk).collect())
    }
    #[tracing::instrument(skip_all)]

    pub async fn subnets(&self, ids: &[String]) -> Result<Vec<Subnet>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.client.describe_subnets().set_subnet_ids(Some(ids.to_vec())).send().await;
        let out = out.map_err(sdk("ec2:DescribeSubnets"))?;
        Ok(out
            .subnets()
            .iter()
            .filter_map(|s| Some(Subnet { id: s.subnet_id()?.to_owned(), az: s.availability_zone()?.to_owned() }))
            .collect())
    }
    #[tracing::instrument(skip_all)]

    pub async fn create_snapshot(&self, source: &SnapshotSource, date: NaiveDate) -> Result<String, Failure> {
        let kind = SnapshotKind::SpotFinal;
        let out = self
            .client
            .create_snapshot()
            .volume_id(&source.volume_id)
            .description(source.description(kind, date))
            .tag_specifications(source.tag_specification(kind, date))
            .send()
            .await
            .map_err(sdk("ec2:CreateSnapshot"))?;
        out.snapshot_id.ok_or_else(|| Failure::call("ec2:CreateSnapshot", "answered without a snapshot id"))
    }
    #[tracing::instrument(skip_all, fields(resource = %resource, key = %key, value = %value))]

    pub async fn tag(&self, resource: &str, key: &str, value: &str) -> Result<(), Failure> {
        self.client
            .create_tags()
            .resources(resource)
            .tags(Tag::builder().key(key).value(value).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Failure::from_sdk("ec2:CreateTags", &e).context(resource))
    }
    #[tracing::instrument(skip_all, fields(resource = %resource))]

    pub async fn tag_all(&self, resource: &str, tags: &[(String, String)]) -> Result<(), Failure> {
        let tags = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
        self.client
            .create_tags()
            .resources(resource)
            .set_tags(Some(tags.collect()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Failure::from_sdk("ec2:CreateTags", &e).context(resource))
    }

    /// Deletes each tag only while it has the value given (EC2's DeleteTags with a value).
    #[tracing::instrument(skip_all, fields(resource = %resource))]
    pub async fn untag(&self, resource: &str, tags: &[(String, String)]) -> Result<(), Failure> {
        // No tags at all would delete every tag of the resource.
        if tags.is_empty() {
            return Ok(());
        }
        let tags = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
        self.client
            .delete_tags()
            .resources(resource)
            .set_tags(Some(tags.collect()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Failure::from_sdk("ec2:DeleteTags", &e).context(resource))
    }

    /// One instance from the launch template: Spot first, On-Demand when Spot has no capacity.
    ///
    /// Both requests carry the same client token, the interruption's: EC2 keeps a token only for a
    /// request that launched, answers a repeat with the same parameters with the instance it
    /// launched then (from any zone of the Region), and one with other parameters — the other
    /// market — with `IdempotentParameterMismatch`. So however many deliveries race, across both
    /// markets, one instance comes of it, and a mismatch says another delivery launched it.
    #[tracing::instrument(skip_all)]
    pub async fn launch(&self, launch: &Launch) -> Result<Launched, LaunchError> {
        let spot_error = match self.run(launch, Purchase::Spot).await {
            Ok(instance_id) => return Ok(Launched { instance_id, purchase: Purchase::Spot, spot_error: None }),
            Err((code, _)) if code == TOKEN_TAKEN => return Err(LaunchError::ByAnotherDelivery { spot_error: None }),
            Err((code, message)) if CAPACITY_ERRORS.contains(&code.as_str()) => message,
            Err((_, message)) => return Err(LaunchError::Refused(format!("ec2:RunInstances (Spot): {message}"))),
        };
        tracing::warn!(%spot_error, "no Spot capacity for the replacement; launching On-Demand");
        match self.run(launch, Purchase::OnDemand).await {
            Ok(instance_id) => Ok(Launched { instance_id, purchase: Purchase::OnDemand, spot_error: Some(spot_error) }),
            Err((code, _)) if code == TOKEN_TAKEN => {
                Err(LaunchError::ByAnotherDelivery { spot_error: Some(spot_error) })
            }
            Err((_, message)) => Err(LaunchError::Refused(format!(
                "ec2:RunInstances: Spot refused ({spot_error}), then On-Demand refused ({message})"
            ))),
        }
    }
    #[tracing::instrument(skip_all)]

    async fn run(&self, launch: &Launch, purchase: Purchase) -> Result<String, (String, String)> {
        let template = LaunchTemplateSpecification::builder()
            .launch_template_id(&launch.template_id)
            .version(&launch.template_version)
            .build();
        let mut request = self
            .client
            .run_instances()
            .launch_template(template)
            .min_count(1)
            .max_count(1)
            .client_token(&launch.client_token)
            .tag_specifications(tag_spec(ResourceType::Instance, &launch.tags));
        request = match &launch.subnet_id {
            Some(subnet) => request.subnet_id(subnet),
            None => request.placement(Placement::builder().availability_zone(&launch.az).build()),
        };
        if purchase == Purchase::Spot {
            request = request.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build(),
            );
        }
        let out = request.send().await.map_err(|e| {
            (e.code().unwrap_or_default().to_owned(), Failure::from_sdk("ec2:RunInstances", &e).detail())
        })?;
        out.instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(str::to_owned)
            .ok_or_else(|| (String::new(), "RunInstances answered without an instance".to_owned()))
    }

    /// Waits until the instance runs (AttachVolume refuses a pending one).
    #[tracing::instrument(skip_all, fields(id = %id))]
    pub async fn wait_running(&self, id: &str, deadline: Instant) -> Result<(), Failure> {
        loop {
            let state = self.instance(id).await.map_err(Failure::from)?.map(|i| i.state);
            match state.as_deref() {
                Some("running") => return Ok(()),
                Some("pending") | None => {}
                Some(other) => return Err(Failure::from(format!("the replacement {id} is {other}"))),
            }
            if Instant::now() + POLL > deadline {
                return Err(Failure::from(format!(
                    "the replacement {id} was not running before the function had to stop"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    #[tracing::instrument(skip_all, fields(volume = %volume, instance = %instance))]

    pub async fn detach(&self, volume: &str, instance: &str) -> Result<(), Failure> {
        self.client
            .detach_volume()
            .volume_id(volume)
            .instance_id(instance)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Failure::from_sdk("ec2:DetachVolume", &e).context(volume))
    }

    /// Waits until no instance holds the volume any more.
    /// Waits until no instance holds the volume — or `new` does already (a delivery that got the
    /// same replacement back from EC2 attached it first): then its device.
    #[tracing::instrument(skip_all, fields(volume = %volume, new = %new))]
    pub async fn wait_available(&self, volume: &str, new: &str, deadline: Instant) -> Result<Option<String>, Failure> {
        loop {
            match self.volume(volume).await? {
                None => return Err(Failure::from(format!("{volume} no longer exists"))),
                Some(v) if v.state == "available" && v.attachment.is_none() => return Ok(None),
                Some(Volume { attachment: Some(a), .. })
                    if a.instance_id == new && matches!(a.state.as_str(), "attaching" | "attached") =>
                {
                    return Ok(Some(a.device));
                }
                Some(v) => {
                    if Instant::now() + POLL > deadline {
                        let holder = v.attachment.map(|a| format!(", attached to {} ({})", a.instance_id, a.state));
                        return Err(Failure::from(format!(
                            "{volume} was still {}{} when the function had to stop",
                            v.state,
                            holder.unwrap_or_default()
                        )));
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }
    #[tracing::instrument(skip_all, fields(volume = %volume, instance = %instance, device = %device))]

    pub async fn attach(&self, volume: &str, instance: &str, device: &str) -> Result<(), Failure> {
        self.client
            .attach_volume()
            .volume_id(volume)
            .instance_id(instance)
            .device(device)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Failure::from_sdk("ec2:AttachVolume", &e).context(format!("{volume} → {instance}")))
    }

    /// A gp3 volume from a snapshot, tagged in the same call.
    #[tracing::instrument(skip_all, fields(snapshot = %snapshot, az = %az))]
    pub async fn restore_volume(&self, snapshot: &str, az: &str, tags: &[(String, String)]) -> Result<String, Failure> {
        let out = self
            .client
            .create_volume()
            .snapshot_id(snapshot)
            .availability_zone(az)
            .volume_type(VolumeType::Gp3)
            .tag_specifications(tag_spec(ResourceType::Volume, tags))
            .send()
            .await
            .map_err(|e| Failure::from_sdk("ec2:CreateVolume", &e).context(format!("from {snapshot}")))?;
        out.volume_id.ok_or_else(|| Failure::call("ec2:CreateVolume", "answered without a volume id"))
    }

    /// Moves the Elastic IP to the instance; answers its public address.
    #[tracing::instrument(skip_all, fields(allocation_id = %allocation_id, instance = %instance))]
    pub async fn associate_address(&self, allocation_id: &str, instance: &str) -> Result<String, Failure> {
        self.client
            .associate_address()
            .allocation_id(allocation_id)
            .instance_id(instance)
            .allow_reassociation(true)
            .send()
            .await
            .map_err(|e| {
                Failure::from_sdk("ec2:AssociateAddress", &e).context(format!("{allocation_id} → {instance}"))
            })?;
        let out = self
            .client
            .describe_addresses()
            .allocation_ids(allocation_id)
            .send()
            .await
            .map_err(|e| Failure::from_sdk("ec2:DescribeAddresses", &e).context(allocation_id))?;
        let address = out.addresses().first().ok_or_else(|| format!("{allocation_id} not found after associating"))?;
        if address.instance_id() != Some(instance) {
            return Err(Failure::from(format!(
                "{allocation_id} is on {} after associating it with {instance}",
                address.instance_id().unwrap_or("nothing")
            )));
        }
        Ok(address.public_ip().unwrap_or_default().to_owned())
    }

    /// EC2's two status checks of a running instance, `(instance, system)`: `ok`, `initializing`,
    /// `impaired`...; `None` while EC2 reports none (the instance is not running yet).
    #[tracing::instrument(skip_all, fields(id = %id))]
    pub async fn status_checks(&self, id: &str) -> Result<Option<(String, String)>, Error> {
        let out = self
            .client
            .describe_instance_status()
            .instance_ids(id)
            .send()
            .await
            .map_err(sdk("ec2:DescribeInstanceStatus"))?;
        let status = out.instance_statuses().iter().find(|s| s.instance_id() == Some(id));
        let summary = |s: Option<&aws_sdk_ec2::types::InstanceStatusSummary>| {
            s.and_then(|s| s.status()).map(|s| s.as_str().to_owned()).unwrap_or_else(|| "unknown".into())
        };
        Ok(status.map(|s| (summary(s.instance_status()), summary(s.system_status()))))
    }
}

fn to_volume(v: &aws_sdk_ec2::types::Volume) -> Option<Volume> {
    let attachment = v.attachments().iter().find(|a| a.state().is_some_and(|s| s.as_str() != "detached"));
    Some(Volume {
        id: v.volume_id()?.to_owned(),
        az: v.availability_zone().unwrap_or_default().to_owned(),
        state: v.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        attachment: attachment.and_then(|a| {
            Some(Attachment {
                instance_id: a.instance_id()?.to_owned(),
                device: a.device().unwrap_or_default().to_owned(),
                state: a.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            })
        }),
        tags: tag_map(v.tags()),
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::operation::run_instances::{RunInstancesError, RunInstancesOutput};
    use aws_sdk_ec2::types::{Instance as SdkInstance, Reservation};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn launch() -> Launch {
        Launch {
            template_id: "lt-1".into(),
            template_version: "$Default".into(),
            az: "us-east-1b".into(),
            subnet_id: Some("subnet-b".into()),
            client_token: "openclaw-ops-replace-i-0000000000000000a".into(),
            tags: vec![("openclaw:replaces".into(), "i-0000000000000000a".into())],
        }
    }

    fn started(id: &str) -> RunInstancesOutput {
        RunInstancesOutput::builder().instances(SdkInstance::builder().instance_id(id).build()).build()
    }

    fn refused(code: &'static str) -> impl Fn() -> RunInstancesError {
        move || RunInstancesError::generic(ErrorMetadata::builder().code(code).message("no capacity here").build())
    }

    fn is_spot(r: &aws_sdk_ec2::operation::run_instances::RunInstancesInput) -> bool {
        r.instance_market_options().and_then(|o| o.market_type()) == Some(&MarketType::Spot)
    }

    #[tokio::test]
    async fn spot_first_from_the_template_in_the_subnet_with_a_token_and_the_tags() {
        let spot = mock!(Client::run_instances)
            .match_requests(|r| {
                is_spot(r)
                    && r.launch_template().and_then(|t| t.launch_template_id()) == Some("lt-1")
                    && r.launch_template().and_then(|t| t.version()) == Some("$Default")
                    && r.subnet_id() == Some("subnet-b")
                    && r.client_token() == Some("openclaw-ops-replace-i-0000000000000000a")
                    && (r.min_count(), r.max_count()) == (Some(1), Some(1))
                    && r.tag_specifications()[0].tags()[0].key() == Some("openclaw:replaces")
                    && r.instance_market_options().and_then(|o| o.spot_options()).and_then(|s| s.spot_instance_type())
                        == Some(&SpotInstanceType::OneTime)
            })
            .then_output(|| started("i-spot"));
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&spot]));
        let launched = ec2.launch(&launch()).await.unwrap();
        assert_eq!(launched, Launched { instance_id: "i-spot".into(), purchase: Purchase::Spot, spot_error: None });
        assert_eq!(spot.num_calls(), 1);
    }

    #[tokio::test]
    async fn no_spot_capacity_falls_back_to_on_demand_once() {
        for code in ["InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded"] {
            let spot = mock!(Client::run_instances).match_requests(is_spot).then_error(refused(code));
            let on_demand = mock!(Client::run_instances)
                .match_requests(|r| {
                    !is_spot(r)
                        && r.client_token() == Some("openclaw-ops-replace-i-0000000000000000a")
                        && r.subnet_id() == Some("subnet-b")
                })
                .then_output(|| started("i-od"));
            let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&spot, &on_demand]));
            let launched = ec2.launch(&launch()).await.unwrap();
            assert_eq!(launched.instance_id, "i-od");
            assert_eq!(launched.purchase, Purchase::OnDemand);
            assert_eq!(launched.spot_error.as_deref(), Some(format!("{code}: no capacity here").as_str()));
            assert_eq!((spot.num_calls(), on_demand.num_calls()), (1, 1), "{code}");
        }
    }

    #[tokio::test]
    async fn other_errors_do_not_fall_back() {
        let spot = mock!(Client::run_instances).match_requests(is_spot).then_error(refused("UnauthorizedOperation"));
        let on_demand = mock!(Client::run_instances).match_requests(|r| !is_spot(r)).then_output(|| started("i-od"));
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&spot, &on_demand]));
        let err = ec2.launch(&launch()).await.unwrap_err().to_string();
        assert!(err.contains("UnauthorizedOperation"), "{err}");
        assert_eq!(on_demand.num_calls(), 0);
    }

    #[tokio::test]
    async fn both_refusals_are_reported() {
        let spot =
            mock!(Client::run_instances).match_requests(is_spot).then_error(refused("InsufficientInstanceCapacity"));
        let on_demand = mock!(Client::run_instances)
            .match_requests(|r| !is_spot(r))
            .then_error(refused("InsufficientInstanceCapacity"));
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&spot, &on_demand]));
        let err = ec2.launch(&launch()).await.unwrap_err().to_string();
        assert!(err.contains("Spot refused") && err.contains("On-Demand refused"), "{err}");
    }

    #[tokio::test]
    async fn a_token_taken_in_the_other_market_is_another_deliverys_launch() {
        // Spot taken by an On-Demand launch of the same token: no fallback, nothing launched.
        let spot = mock!(Client::run_instances).match_requests(is_spot).then_error(refused(TOKEN_TAKEN));
        let on_demand = mock!(Client::run_instances).match_requests(|r| !is_spot(r)).then_output(|| started("i-od"));
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&spot, &on_demand]));
        assert_eq!(ec2.launch(&launch()).await, Err(LaunchError::ByAnotherDelivery { spot_error: None }));
        assert_eq!(on_demand.num_calls(), 0);

        // No Spot capacity here, and the On-Demand request finds the token taken by a Spot launch.
        let spot =
            mock!(Client::run_instances).match_requests(is_spot).then_error(refused("InsufficientInstanceCapacity"));
        let on_demand = mock!(Client::run_instances).match_requests(|r| !is_spot(r)).then_error(refused(TOKEN_TAKEN));
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&spot, &on_demand]));
        assert_eq!(
            ec2.launch(&launch()).await,
            Err(LaunchError::ByAnotherDelivery {
                spot_error: Some("InsufficientInstanceCapacity: no capacity here".into())
            })
        );
    }

    #[tokio::test]
    async fn without_a_subnet_the_zone_is_placed() {
        let rule = mock!(Client::run_instances)
            .match_requests(|r| {
                r.subnet_id().is_none() && r.placement().and_then(|p| p.availability_zone()) == Some("us-east-1b")
            })
            .then_output(|| started("i-1"));
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&rule]));
        let l = Launch { subnet_id: None, ..launch() };
        assert_eq!(ec2.launch(&l).await.unwrap().instance_id, "i-1");
    }

    #[tokio::test]
    async fn an_instance_is_read_with_what_the_plan_decides_on_and_an_unknown_one_is_none() {
        use aws_sdk_ec2::operation::describe_instances::DescribeInstancesError;
        use aws_sdk_ec2::types::{InstanceLifecycleType, InstanceState, InstanceStateName, StateReason};
        let known = mock!(Client::describe_instances)
            .match_requests(|r| r.instance_ids() == ["i-0000000000000000a"])
            .then_output(|| {
                let i = SdkInstance::builder()
                    .instance_id("i-0000000000000000a")
                    .state(InstanceState::builder().name(InstanceStateName::Terminated).build())
                    .instance_lifecycle(InstanceLifecycleType::Spot)
                    .state_reason(StateReason::builder().code("Server.SpotInstanceTermination").build())
                    .placement(Placement::builder().availability_zone("us-east-1b").build())
                    .subnet_id("subnet-b")
                    .tags(tag("openclaw:role", "gateway"))
                    .build();
                DescribeInstancesOutput::builder().reservations(Reservation::builder().instances(i).build()).build()
            });
        let unknown = mock!(Client::describe_instances)
            .match_requests(|r| r.instance_ids() == ["i-0000000000000000b"])
            .then_error(|| {
                DescribeInstancesError::generic(
                    ErrorMetadata::builder().code("InvalidInstanceID.NotFound").message("gone").build(),
                )
            });
        let denied = mock!(Client::describe_instances)
            .match_requests(|r| r.instance_ids() == ["i-0000000000000000c"])
            .then_error(|| {
                DescribeInstancesError::generic(
                    ErrorMetadata::builder().code("UnauthorizedOperation").message("no").build(),
                )
            });
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&known, &unknown, &denied]));
        let i = ec2.instance("i-0000000000000000a").await.unwrap().unwrap();
        assert_eq!(i.state, "terminated");
        assert!(i.spot);
        assert_eq!(i.state_reason.as_deref(), Some("Server.SpotInstanceTermination"));
        assert_eq!((i.az.as_deref(), i.subnet_id.as_deref()), (Some("us-east-1b"), Some("subnet-b")));
        assert_eq!(i.tags["openclaw:role"], "gateway");
        assert_eq!(ec2.instance("i-0000000000000000b").await.unwrap(), None);
        let err = ec2.instance("i-0000000000000000c").await.unwrap_err().to_string();
        assert!(err.contains("UnauthorizedOperation"), "{err}");
    }

    fn data_volume(attached: Option<&str>) -> aws_sdk_ec2::types::Volume {
        use aws_sdk_ec2::types::{VolumeAttachment, VolumeAttachmentState, VolumeState};
        let mut v = aws_sdk_ec2::types::Volume::builder()
            .volume_id("vol-1")
            .availability_zone("us-east-1b")
            .state(if attached.is_some() { VolumeState::InUse } else { VolumeState::Available });
        if let Some(i) = attached {
            v = v.attachments(
                VolumeAttachment::builder()
                    .instance_id(i)
                    .device("/dev/sdf")
                    .state(VolumeAttachmentState::Attached)
                    .build(),
            );
        }
        v.build()
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_for_the_volume_ends_when_it_is_released_or_at_the_deadline() {
        use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesOutput;
        let releasing = mock!(Client::describe_volumes)
            .sequence()
            .output(|| DescribeVolumesOutput::builder().volumes(data_volume(Some("i-old"))).build())
            .times(3)
            .output(|| DescribeVolumesOutput::builder().volumes(data_volume(None)).build())
            .build();
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&releasing]));
        let started = Instant::now();
        assert_eq!(ec2.wait_available("vol-1", "i-new", started + Duration::from_secs(60)).await, Ok(None));
        assert_eq!(releasing.num_calls(), 4);
        assert_eq!(started.elapsed(), POLL * 3, "polled, not spun");

        let held = mock!(Client::describe_volumes)
            .then_output(|| DescribeVolumesOutput::builder().volumes(data_volume(Some("i-old"))).build());
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&held]));
        let started = Instant::now();
        let err = ec2.wait_available("vol-1", "i-new", started + Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "vol-1 was still in-use, attached to i-old (attached) when the function had to stop"
        );
        assert!(started.elapsed() <= Duration::from_secs(10));

        // Attached to the replacement already, by the other delivery that got it back from EC2.
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&held]));
        assert_eq!(ec2.wait_available("vol-1", "i-old", Instant::now()).await, Ok(Some("/dev/sdf".to_owned())));
    }

    fn tag(k: &str, v: &str) -> Tag {
        Tag::builder().key(k).value(v).build()
    }

    #[tokio::test]
    async fn replacements_are_read_across_pages_and_checked_again() {
        let tagged = |id: &str, replaces: &str| {
            SdkInstance::builder().instance_id(id).tags(Tag::builder().key(REPLACES).value(replaces).build()).build()
        };
        let first = mock!(Client::describe_instances)
            .match_requests(|r| r.next_token().is_none() && r.filters()[0].name() == Some("tag:openclaw:replaces"))
            .then_output(move || {
                DescribeInstancesOutput::builder()
                    .reservations(Reservation::builder().instances(tagged("i-1", "i-old")).build())
                    .next_token("n")
                    .build()
            });
        let second =
            mock!(Client::describe_instances).match_requests(|r| r.next_token() == Some("n")).then_output(move || {
                DescribeInstancesOutput::builder()
                    .reservations(
                        Reservation::builder()
                            .instances(tagged("i-2", "i-old"))
                            .instances(tagged("i-3", "i-other"))
                            .build(),
                    )
                    .build()
            });
        let ec2 = Ec2::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&first, &second]));
        let ids: Vec<String> = ec2.replacements("i-old").await.unwrap().into_iter().map(|i| i.id).collect();
        assert_eq!(ids, ["i-1", "i-2"]);
    }
}
