//! spot-recovery end to end: its real bootstrap, against the emulator, as an IAM user holding exactly
//! the template's policy for it. The emulator cannot reclaim a Spot instance by itself: the test bed
//! does it the way EC2 does (state reason included), and the test delivers EC2's EventBridge events.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    DomainType, Filter, Instance, InstanceMarketOptionsRequest, LaunchTemplateSpecification, MarketType,
    RequestLaunchTemplateData, ResourceType, Tag, TagSpecification, VolumeType,
};
use chrono::{DateTime, SecondsFormat, Utc};
use integration_tests::account::{drain, ops_topic_with_capture};
use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::openclaw_state::{StateDir, state_dir};
use integration_tests::runtime::Function;
use integration_tests::stack::Stack;
use serde_json::{Value, json};

const LOGICAL_ID: &str = "SpotRecoveryFunction";
const BUCKET: &str = "openclaw-backups-spot";
/// The data volume's zone; the gateway's subnet there is the one a replacement must use.
const AZ: &str = "us-east-1b";
/// Bed time runs this much faster than real time: a reclaimed instance's 30 s of `shutting-down`
/// take 6 s, a new target's 60 s of `initial` 12 s; the function's own waits stay real.
const TIME_SCALE: f64 = 5.0;

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn tags_of(i: &Instance) -> BTreeMap<String, String> {
    i.tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap_or_default().to_owned())).collect()
}

/// How the gateway's address is moved in a test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tier {
    Budget,
    Full,
}

struct Bed {
    emulator: Emulator,
    ec2: aws_sdk_ec2::Client,
    principal: Principal,
    gateway: String,
    data_volume: String,
    foreign: String,
    foreign_volume: String,
    subnets: BTreeMap<String, String>,
    allocation_id: String,
    target_group: Option<String>,
    queue_url: String,
    topic_arn: String,
    template_id: String,
    schedule_group: String,
    follow_up_role: String,
}

impl Bed {
    async fn start(tier: Tier) -> Bed {
        let emulator = Emulator::start().await.unwrap();
        emulator.set_time_scale(TIME_SCALE).await.unwrap();
        let admin = emulator.admin().await;
        let ec2 = aws_sdk_ec2::Client::new(&admin);
        let image =
            ec2.describe_images().owners("amazon").send().await.unwrap().images.unwrap()[0].image_id.clone().unwrap();
        // The operator's launch template (SpotLaunchTemplateId): it hands the gateway its instance
        // role, and does not tag instances as the gateway.
        let iam = aws_sdk_iam::Client::new(&admin);
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        iam.create_role()
            .role_name("openclaw-gateway")
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .unwrap();
        let profile = iam.create_instance_profile().instance_profile_name("openclaw-gateway").send().await.unwrap();
        let profile_arn = profile.instance_profile.unwrap().arn;
        iam.add_role_to_instance_profile()
            .instance_profile_name("openclaw-gateway")
            .role_name("openclaw-gateway")
            .send()
            .await
            .unwrap();
        let template_id = ec2
            .create_launch_template()
            .launch_template_name("openclaw-gateway")
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id(&image)
                    .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
                    .iam_instance_profile(
                        aws_sdk_ec2::types::LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                            .arn(&profile_arn)
                            .build(),
                    )
                    // stacks/gateway.yaml's instance tags: EC2 gives them to every launch from the
                    // template unless the request tags the same key.
                    .tag_specifications(
                        aws_sdk_ec2::types::LaunchTemplateTagSpecificationRequest::builder()
                            .resource_type(ResourceType::Instance)
                            .tags(tag("Name", "openclaw-gateway"))
                            .tags(tag("openclaw:role", "gateway"))
                            .tags(tag("openclaw:managed-by", "openclaw-ops"))
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .launch_template
            .unwrap()
            .launch_template_id
            .unwrap();
        let subnets: BTreeMap<String, String> = ec2
            .describe_subnets()
            .filters(Filter::builder().name("default-for-az").values("true").build())
            .send()
            .await
            .unwrap()
            .subnets()
            .iter()
            .map(|s| (s.availability_zone().unwrap().to_owned(), s.subnet_id().unwrap().to_owned()))
            .collect();

        let spot = |az: &str, name: &str, gateway: bool| {
            let mut spec = TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(tag("Name", name))
                .tags(tag("team", "ops"));
            // Launched from the gateway's template, another app says what it is, as it must.
            spec = spec.tags(tag("openclaw:role", if gateway { "gateway" } else { "app" }));
            ec2.run_instances()
                .launch_template(LaunchTemplateSpecification::builder().launch_template_id(&template_id).build())
                .min_count(1)
                .max_count(1)
                .subnet_id(&subnets[az])
                .instance_market_options(InstanceMarketOptionsRequest::builder().market_type(MarketType::Spot).build())
                .tag_specifications(spec.build())
                .send()
        };
        let gateway =
            spot(AZ, "openclaw-gateway", true).await.unwrap().instances()[0].instance_id().unwrap().to_owned();
        let foreign =
            spot("us-east-1a", "other-app", false).await.unwrap().instances()[0].instance_id().unwrap().to_owned();

        let volume = |az: &'static str, tags: &'static [(&'static str, &'static str)]| {
            let spec = tags
                .iter()
                .fold(TagSpecification::builder().resource_type(ResourceType::Volume), |b, (k, v)| b.tags(tag(k, v)))
                .build();
            ec2.create_volume()
                .availability_zone(az)
                .size(20)
                .volume_type(VolumeType::Gp3)
                .encrypted(true)
                .tag_specifications(spec)
                .send()
        };
        let data_volume =
            volume(AZ, &[("Name", "openclaw-data"), ("openclaw:snapshot", "daily"), ("openclaw:role", "gateway")])
                .await
                .unwrap()
                .volume_id
                .unwrap();
        let foreign_volume = volume("us-east-1a", &[("Name", "other-data")]).await.unwrap().volume_id.unwrap();
        for (v, i) in [(&data_volume, &gateway), (&foreign_volume, &foreign)] {
            ec2.attach_volume().volume_id(v).instance_id(i).device("/dev/sdf").send().await.unwrap();
        }

        let allocation_id = ec2.allocate_address().domain(DomainType::Vpc).send().await.unwrap().allocation_id.unwrap();
        ec2.associate_address().allocation_id(&allocation_id).instance_id(&gateway).send().await.unwrap();
        let target_group = if tier == Tier::Full {
            let elb = aws_sdk_elasticloadbalancingv2::Client::new(&admin);
            let vpc = ec2.describe_vpcs().send().await.unwrap().vpcs()[0].vpc_id().unwrap().to_owned();
            let arn = elb
                .create_target_group()
                .name("openclaw-gateway")
                .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
                .port(8787)
                .vpc_id(vpc)
                .health_check_port("18789")
                .health_check_path("/healthz")
                // As the template's WebhookTargetGroup: a new target is `initial` for 2 x 30 s.
                .healthy_threshold_count(2)
                .health_check_interval_seconds(30)
                .send()
                .await
                .unwrap()
                .target_groups()[0]
                .target_group_arn()
                .unwrap()
                .to_owned();
            let target = aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder().id(&gateway).build();
            elb.register_targets().target_group_arn(&arn).targets(target).send().await.unwrap();
            Some(arn)
        } else {
            None
        };
        let s3 = aws_sdk_s3::Client::new(&admin);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let (topic_arn, queue_url) = ops_topic_with_capture(&admin).await.unwrap();
        let stack = Stack::new(&emulator).await.unwrap().bucket("BackupBucket", BUCKET);
        let key_arn = stack.attr("OpsKey.Arn").unwrap().to_owned();
        integration_tests::backup_bucket::configure_like_the_template(&s3, BUCKET, &key_arn).await.unwrap();
        let stack = stack
            .topic("OpsTopic", &topic_arn)
            .param("SpotLaunchTemplateId", &template_id)
            .param("SpotInstanceRoleName", "openclaw-gateway")
            .param("GatewayElasticIpAllocationId", if target_group.is_some() { "" } else { allocation_id.as_str() })
            .param("GatewayTargetGroupArn", target_group.clone().unwrap_or_default())
            .with_spot_follow_up(&emulator)
            .await
            .unwrap();
        let schedule_group = integration_tests::stack::SPOT_FOLLOW_UP_GROUP.to_owned();
        let follow_up_role = stack.attr("SpotFollowUpSchedulerRole.Arn").unwrap().to_owned();
        let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
        Bed {
            emulator,
            ec2,
            principal,
            gateway,
            data_volume,
            foreign,
            foreign_volume,
            subnets,
            allocation_id,
            target_group,
            queue_url,
            topic_arn,
            template_id,
            schedule_group,
            follow_up_role,
        }
    }

    async fn function(&self, extra: &[(&str, &str)]) -> Function {
        let mut env = self.emulator.function_env(&self.principal.keys);
        let subnets = self.subnets.values().cloned().collect::<Vec<_>>().join(",");
        env.extend([
            ("NOTIFY_TOPIC_ARN".to_owned(), self.topic_arn.clone()),
            ("LAUNCH_TEMPLATE_ID".to_owned(), self.template_id.clone()),
            ("SUBNET_IDS".to_owned(), subnets),
            ("FOLLOW_UP_SCHEDULE_GROUP".to_owned(), self.schedule_group.clone()),
            ("FOLLOW_UP_ROLE_ARN".to_owned(), self.follow_up_role.clone()),
        ]);
        match &self.target_group {
            Some(arn) => env.push(("TARGET_GROUP_ARN".to_owned(), arn.clone())),
            None => env.push(("ELASTIC_IP_ALLOCATION_ID".to_owned(), self.allocation_id.clone())),
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Function::start("spot-recovery", &env).await.unwrap()
    }

    async fn instances(&self) -> Vec<Instance> {
        let out = self.ec2.describe_instances().send().await.unwrap();
        out.reservations().iter().flat_map(|r| r.instances()).cloned().collect()
    }

    async fn instance(&self, id: &str) -> Instance {
        self.instances().await.into_iter().find(|i| i.instance_id() == Some(id)).unwrap()
    }

    async fn replacements(&self) -> Vec<Instance> {
        let old = self.gateway.clone();
        self.instances().await.into_iter().filter(|i| tags_of(i).get("openclaw:replaces") == Some(&old)).collect()
    }

    /// Waits (real time, bounded) until EC2 says the instance is `state`.
    async fn wait_for_state(&self, id: &str, state: &str) {
        for _ in 0..100 {
            if self.instance(id).await.state().and_then(|s| s.name()).map(|n| n.as_str()) == Some(state) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{id} never became {state}");
    }

    async fn attached_to(&self, volume: &str) -> Option<(String, String)> {
        let out = self.ec2.describe_volumes().volume_ids(volume).send().await.unwrap();
        let v = out.volumes().first()?;
        v.attachments().first().map(|a| (a.instance_id().unwrap().to_owned(), a.device().unwrap().to_owned()))
    }

    async fn eip_instance(&self) -> Option<String> {
        let out = self.ec2.describe_addresses().allocation_ids(&self.allocation_id).send().await.unwrap();
        out.addresses()[0].instance_id().map(str::to_owned)
    }

    async fn notifications(&self) -> Vec<Value> {
        drain(&self.emulator.admin().await, &self.queue_url).await.unwrap()
    }

    async fn mutating_calls(&self) -> Vec<String> {
        let calls = self.emulator.calls_by(&self.principal.keys).await.unwrap();
        calls
            .into_iter()
            .map(|c| c.action)
            .filter(|a| !["Describe", "List", "Get"].iter().any(|p| a.split(':').nth(1).unwrap_or("").starts_with(p)))
            .collect()
    }

    /// Everything the function did was granted by the template (and was not just tried).
    async fn assert_all_allowed(&self) {
        let calls = self.emulator.calls_by(&self.principal.keys).await.unwrap();
        let denied: Vec<_> = calls.iter().filter(|c| !c.allowed).map(|c| c.action.as_str()).collect();
        assert!(denied.is_empty(), "denied: {denied:?}");
        assert!(!calls.is_empty());
    }

    /// The follow-up schedules in the stack's group, by name, as GetSchedule answers (the emulator,
    /// unlike Scheduler, keeps a one-shot schedule after its time and never runs it: the test
    /// delivers its Input).
    async fn schedules(&self) -> BTreeMap<String, Value> {
        let all = self.emulator.schedules(&self.schedule_group).await.unwrap();
        all.into_iter().map(|s| (s["Name"].as_str().unwrap().to_owned(), s)).collect()
    }

    async fn snapshots(&self) -> Vec<aws_sdk_ec2::types::Snapshot> {
        let out = self.ec2.describe_snapshots().send().await.unwrap();
        out.snapshots().to_vec()
    }
}

fn ec2_event(detail_type: &str, id: &str, time: DateTime<Utc>, detail: Value) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": detail_type, "source": "aws.ec2", "account": "123456789012",
        "time": time.to_rfc3339_opts(SecondsFormat::Secs, true), "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{}", detail["instance-id"].as_str().unwrap())],
        "detail": detail
    })
}

fn warning(instance: &str, time: DateTime<Utc>) -> Value {
    ec2_event(
        "EC2 Spot Instance Interruption Warning",
        "warning-1",
        time,
        json!({"instance-id": instance, "instance-action": "terminate"}),
    )
}

fn rebalance(instance: &str, time: DateTime<Utc>) -> Value {
    ec2_event("EC2 Instance Rebalance Recommendation", "rebalance-1", time, json!({"instance-id": instance}))
}

fn state_change(instance: &str, state: &str, time: DateTime<Utc>) -> Value {
    ec2_event(
        "EC2 Instance State-change Notification",
        "state-1",
        time,
        json!({"instance-id": instance, "state": state}),
    )
}

/// The machine plays the gateway for SSM, with its state directory; its "instance role" is the admin.
/// Each test its own state directory (`name`): tests run at once in one process.
async fn play_the_gateway(bed: &Bed, name: &str) -> StateDir {
    let state = state_dir(name);
    let mut env = serde_json::Map::new();
    for (k, v) in bed.emulator.function_env(&bed.emulator.admin_keys()) {
        env.insert(k, json!(v));
    }
    bed.emulator.register_instance(&bed.gateway, env).await.unwrap();
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_snapshots_the_data_volume_backs_up_records_and_notifies_once() {
    let bed = Bed::start(Tier::Budget).await;
    let state = play_the_gateway(&bed, "spot-warning").await;
    let function = bed.function(&[("BACKUP_BUCKET", BUCKET), ("STATE_DIR", &state.root.to_string_lossy())]).await;
    let before = bed.instances().await.len();
    let now = Utc::now();

    let report = function.invoke(&warning(&bed.gateway, now)).await.unwrap().response();
    assert_eq!(report["plan"]["action"], "prepare", "{report}");
    let outcome = &report["outcome"];
    assert_eq!(outcome["failed"], json!([]), "{report}");
    assert_eq!(outcome["backup"]["status"], "Success", "{report}");

    // The spot-final snapshot of the gateway's data volume, tagged as the contract says.
    let snapshot_id = outcome["snapshot_id"].as_str().unwrap();
    let snapshots = bed.snapshots().await;
    let snapshot = snapshots.iter().find(|s| s.snapshot_id() == Some(snapshot_id)).unwrap();
    assert_eq!(snapshot.volume_id(), Some(bed.data_volume.as_str()));
    let tags: BTreeMap<_, _> = snapshot.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
    assert_eq!(tags["openclaw:kind"], "spot-final");
    assert_eq!(tags["openclaw:managed-by"], "openclaw-ops");
    assert_eq!(tags["openclaw:instance-id"], bed.gateway);
    assert_eq!(tags["openclaw:device"], "/dev/sdf");

    // The backup really ran on the "instance" (through the URLs the function signed), landed where
    // s3-backup's layout puts it (filed under the data volume), and was read back and recorded.
    let archive = report["plan"]["backup"]["archive_key"].as_str().unwrap();
    assert!(archive.starts_with(&format!("openclaw/daily/{}/", bed.data_volume)), "{archive}");
    assert!(archive.contains("/openclaw-gateway-"), "{archive}");
    let record = outcome["backup"]["record"].as_str().expect("a verified record");
    assert!(record.ends_with(".verified-spot-warning.json"), "{record}");
    let s3 = aws_sdk_s3::Client::new(&bed.emulator.admin().await);
    let manifest_key = report["plan"]["backup"]["manifest_key"].as_str().unwrap();
    let manifest = s3.get_object().bucket(BUCKET).key(manifest_key).send().await.unwrap();
    let manifest: Value = serde_json::from_slice(&manifest.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(manifest["trigger"], "spot-warning");
    assert_eq!(manifest["instance_id"], bed.gateway);
    assert!(s3.head_object().bucket(BUCKET).key(archive).send().await.is_ok());
    assert!(s3.head_object().bucket(BUCKET).key(record).send().await.is_ok());
    let head = s3.head_object().bucket(BUCKET).key(archive).send().await.unwrap();
    assert_eq!(head.object_lock_mode().map(|m| m.as_str()), Some("GOVERNANCE"), "locked once verified");

    // The warning is recorded on the instance; nobody was launched; the notice went out.
    let gw = tags_of(&bed.instance(&bed.gateway).await);
    assert_eq!(gw["openclaw:spot-warning"], now.to_rfc3339_opts(SecondsFormat::Secs, true));
    assert_eq!(bed.instances().await.len(), before);
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["severity"], "warning");
    assert!(notes[0]["title"].as_str().unwrap().starts_with("Spot interruption in ~2 min: openclaw-gateway"));

    // The same warning again: nothing is saved twice, nobody is told twice.
    let again = function.invoke(&warning(&bed.gateway, now)).await.unwrap().response();
    assert_eq!(again["plan"]["duplicate"], true);
    assert_eq!(again["outcome"]["snapshot_id"], Value::Null);
    let spot_finals = bed
        .snapshots()
        .await
        .iter()
        .filter(|s| s.tags().iter().any(|t| t.key() == Some("openclaw:kind") && t.value() == Some("spot-final")))
        .count();
    assert_eq!(spot_finals, 1);
    assert_eq!(bed.notifications().await, Vec::<Value>::new());
    bed.assert_all_allowed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_termination_is_replaced_in_the_volumes_zone_with_the_volume_the_address_and_the_tags() {
    let bed = Bed::start(Tier::Budget).await;
    let state = play_the_gateway(&bed, "spot-replace").await;
    let function = bed.function(&[("BACKUP_BUCKET", BUCKET), ("STATE_DIR", &state.root.to_string_lossy())]).await;
    let warned_at = Utc::now();
    function.invoke(&warning(&bed.gateway, warned_at)).await.unwrap().response();
    bed.notifications().await;

    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    let terminated_at = Utc::now();
    let report = function.invoke(&state_change(&bed.gateway, "terminated", terminated_at)).await.unwrap().response();
    assert_eq!(report["plan"]["action"], "replace", "{report}");
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");

    let replacements = bed.replacements().await;
    assert_eq!(replacements.len(), 1);
    let new = &replacements[0];
    let new_id = new.instance_id().unwrap().to_owned();
    assert_eq!(report["outcome"]["replacement"], new_id);
    assert_eq!(report["outcome"]["purchase"], "spot");
    assert_eq!(new.placement().unwrap().availability_zone(), Some(AZ));
    assert_eq!(new.subnet_id(), Some(bed.subnets[AZ].as_str()));
    assert_eq!(new.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
    let tags = tags_of(new);
    assert_eq!(tags["Name"], "openclaw-gateway");
    assert_eq!(tags["openclaw:role"], "gateway", "the next interruption is handled too");
    assert_eq!(tags["team"], "ops");
    assert_eq!(tags["openclaw:managed-by"], "openclaw-ops");
    assert!(!tags.contains_key("openclaw:spot-warning"), "the old instance's history stays with it: {tags:?}");
    // aws:* keys are EC2's own (it tags what it launches from a template); none was asked for.
    let asked = report["plan"]["replacement"]["tags"].as_array().unwrap();
    assert!(asked.iter().all(|kv| !kv[0].as_str().unwrap().starts_with("aws:")), "{asked:?}");
    assert!(tags.keys().filter(|k| k.starts_with("aws:")).all(|k| k.starts_with("aws:ec2launchtemplate:")), "{tags:?}");
    assert_eq!(tags["aws:ec2launchtemplate:id"], bed.template_id);

    assert_eq!(bed.attached_to(&bed.data_volume).await, Some((new_id.clone(), "/dev/sdf".to_owned())));
    assert_eq!(bed.eip_instance().await.as_deref(), Some(new_id.as_str()));
    let old = tags_of(&bed.instance(&bed.gateway).await);
    assert_eq!(old["openclaw:replaced-by"], new_id);
    assert_eq!(old["openclaw:role"], "replaced", "retired: nothing takes it for the gateway again");

    // One EMF line per run, counting the replacement.
    let emf: Vec<Value> = function
        .settled_output()
        .await
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 2);
    assert_eq!(emf[0]["SpotWarnings"], 1.0);
    assert_eq!(emf[1]["Replacements"], 1.0);
    assert_eq!(emf[1]["RecoveryFailures"], 0.0);
    assert!(emf[1]["RecoverySeconds"].as_f64().unwrap() >= 0.0);

    // The foreign instance and its volume were never touched.
    assert_eq!(bed.instance(&bed.foreign).await.state().unwrap().name().unwrap().as_str(), "running");
    assert_eq!(bed.attached_to(&bed.foreign_volume).await, Some((bed.foreign.clone(), "/dev/sdf".to_owned())));

    // The timeline, as a human receives it.
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = &notes[0];
    assert_eq!(note["severity"], "info");
    assert_eq!(note["fields"]["replacement"], new_id);
    assert_eq!(note["fields"]["purchase option"], "Spot");
    let steps: Vec<&str> = note["table"]["rows"].as_array().unwrap().iter().map(|r| r[2].as_str().unwrap()).collect();
    assert!(steps[0].starts_with("Spot interruption warning for"), "{steps:?}");
    assert!(steps[1].contains("terminated (state reason Server.SpotInstanceTermination)"), "{steps:?}");
    assert!(steps.iter().any(|s| s.contains("attached to") && s.contains("/dev/sdf")), "{steps:?}");
    assert!(steps.iter().any(|s| s.starts_with("Elastic IP")), "{steps:?}");
    let table: Vec<String> = note["table"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("| {} | {} | {} |", r[0].as_str().unwrap(), r[1].as_str().unwrap(), r[2].as_str().unwrap()))
        .collect();
    eprintln!("recovery timeline:\n{}", table.join("\n"));

    // Least privilege: everything it did was granted.
    let calls = bed.emulator.calls_by(&bed.principal.keys).await.unwrap();
    assert!(calls.iter().all(|c| c.allowed), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_out_of_order_events_start_exactly_one_replacement() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[]).await;
    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    let t = Utc::now();

    // The termination first (no warning was recorded: the state reason is the evidence)...
    let first = function.invoke(&state_change(&bed.gateway, "terminated", t)).await.unwrap().response();
    assert_eq!(first["outcome"]["failed"], json!([]), "{first}");
    let new_id = first["outcome"]["replacement"].as_str().unwrap().to_owned();
    // ...then the warning, late, and the termination twice more, and a stale "stopped".
    for event in [
        warning(&bed.gateway, t - chrono::TimeDelta::seconds(120)),
        state_change(&bed.gateway, "terminated", t),
        state_change(&bed.gateway, "terminated", t),
        state_change(&bed.gateway, "stopped", t - chrono::TimeDelta::seconds(30)),
    ] {
        let report = function.invoke(&event).await.unwrap().response();
        assert_eq!(report["plan"]["action"], "ignore", "{report}");
        assert_eq!(report["plan"]["reason"], format!("already replaced by {new_id}"));
    }
    assert_eq!(bed.notifications().await.len(), 1, "the replacement's timeline, once");
    assert_eq!(bed.replacements().await.len(), 1);
    let running =
        bed.instances().await.into_iter().filter(|i| i.state().unwrap().name().unwrap().as_str() == "running");
    let gateways: Vec<String> = running
        .filter(|i| tags_of(i).get("openclaw:role").map(String::as_str) == Some("gateway"))
        .map(|i| i.instance_id().unwrap().to_owned())
        .collect();
    assert_eq!(gateways, std::slice::from_ref(&new_id), "never two running gateways");
    assert_eq!(bed.attached_to(&bed.data_volume).await, Some((new_id, "/dev/sdf".to_owned())));
    let launches = bed.mutating_calls().await.into_iter().filter(|a| a == "ec2:RunInstances").count();
    assert_eq!(launches, 1);
    bed.assert_all_allowed().await;
}

/// Two deliveries of one interruption in two containers at once, while Spot capacity runs out for
/// one request and is back for the next: one run falls back to On-Demand while the other gets
/// Spot. Separate tokens per market would launch one of each; one token for the interruption makes
/// EC2 answer the second market's request `IdempotentParameterMismatch`: launched by the other run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_while_spot_capacity_comes_and_goes_launch_exactly_one_replacement() {
    let bed = Bed::start(Tier::Budget).await;
    let (a, b) = (bed.function(&[]).await, bed.function(&[]).await);
    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    bed.emulator.spot_capacity(1, 2).await.unwrap();
    let event = state_change(&bed.gateway, "terminated", Utc::now());

    let (first, second) = tokio::join!(a.invoke(&event), b.invoke(&event));
    let reports = [first.unwrap().response(), second.unwrap().response()];
    let live: Vec<String> = bed
        .replacements()
        .await
        .into_iter()
        .filter(|i| i.state().unwrap().name().unwrap().as_str() != "terminated")
        .map(|i| i.instance_id().unwrap().to_owned())
        .collect();
    assert_eq!(live.len(), 1, "exactly one replacement: {live:?}\n{:#}\n{:#}", reports[0], reports[1]);
    let new_id = &live[0];
    for report in &reports {
        assert_eq!(report["outcome"]["failed"], json!([]), "{report:#}");
        assert_eq!(report["outcome"]["replacement"], json!(new_id), "{report:#}");
    }
    let timelines: Vec<String> = reports.iter().map(|r| r["outcome"]["timeline"].to_string()).collect();
    assert!(timelines.iter().any(|t| t.contains("no Spot capacity")), "one run was refused Spot: {timelines:?}");
    assert!(
        timelines.iter().any(|t| t.contains("launched by another delivery")),
        "the refused run found the other's launch: {timelines:?}"
    );
    // It is Spot: the request that got capacity won, the On-Demand fallback launched nothing.
    assert_eq!(bed.instance(new_id).await.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
    bed.wait_for_state(&bed.gateway, "terminated").await;
    assert_eq!(bed.attached_to(&bed.data_volume).await, Some((new_id.clone(), "/dev/sdf".to_owned())));
    assert_eq!(bed.eip_instance().await.as_deref(), Some(new_id.as_str()));
    bed.assert_all_allowed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_tier_moves_the_target_and_reports_its_health() {
    let bed = Bed::start(Tier::Full).await;
    let function = bed.function(&[]).await;
    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    let report = function.invoke(&state_change(&bed.gateway, "terminated", Utc::now())).await.unwrap().response();
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    let new_id = report["outcome"]["replacement"].as_str().unwrap();
    assert_eq!(report["outcome"]["target_health"], "healthy");

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&bed.emulator.admin().await);
    let health =
        elb.describe_target_health().target_group_arn(bed.target_group.as_ref().unwrap()).send().await.unwrap();
    let targets: Vec<&str> =
        health.target_health_descriptions().iter().filter_map(|d| d.target().and_then(|t| t.id())).collect();
    assert_eq!(targets, [new_id]);
    assert_ne!(bed.eip_instance().await.as_deref(), Some(new_id), "the Elastic IP is not the full tier's address");
    let note = &bed.notifications().await[0];
    assert_eq!(note["fields"]["target health"], "healthy");
    bed.assert_all_allowed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_data_volume_is_restored_from_the_newest_snapshot_and_said_loudly() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[]).await;
    let warned = function.invoke(&warning(&bed.gateway, Utc::now())).await.unwrap().response();
    let snapshot_id = warned["outcome"]["snapshot_id"].as_str().unwrap().to_owned();
    bed.notifications().await;

    bed.emulator.spot_interruption_taking(&bed.gateway, "terminate", 0.0).await.unwrap();
    bed.wait_for_state(&bed.gateway, "terminated").await;
    bed.ec2.delete_volume().volume_id(&bed.data_volume).send().await.unwrap();
    let report = function.invoke(&state_change(&bed.gateway, "terminated", Utc::now())).await.unwrap().response();
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    assert_eq!(report["plan"]["volume"]["kind"], "restore");
    assert_eq!(report["outcome"]["restored_from"], snapshot_id);

    let new_id = report["outcome"]["replacement"].as_str().unwrap();
    let restored = report["outcome"]["volume_id"].as_str().unwrap();
    let out = bed.ec2.describe_volumes().volume_ids(restored).send().await.unwrap();
    let v = &out.volumes()[0];
    assert_eq!(v.snapshot_id(), Some(snapshot_id.as_str()));
    assert_eq!(v.availability_zone(), Some(AZ));
    let tags: BTreeMap<_, _> = v.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
    assert_eq!(tags["openclaw:role"], "gateway");
    assert_eq!(tags["openclaw:snapshot"], "daily", "ebs-snapshots keeps protecting it");
    assert_eq!(tags["openclaw:restored-from"], snapshot_id);
    assert_eq!(bed.attached_to(restored).await, Some((new_id.to_owned(), "/dev/sdf".to_owned())));

    let notes = bed.notifications().await;
    assert_eq!(notes[0]["severity"], "critical");
    assert!(notes[0]["text"].as_str().unwrap().contains("The data volume was gone"), "{notes:?}");
    bed.assert_all_allowed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_stop_is_replaced_only_with_replace_on_stop_and_the_volume_is_detached_first() {
    let bed = Bed::start(Tier::Budget).await;
    bed.emulator.spot_interruption_taking(&bed.gateway, "stop", 0.0).await.unwrap();
    bed.wait_for_state(&bed.gateway, "stopped").await;
    let event = state_change(&bed.gateway, "stopped", Utc::now());

    let off = bed.function(&[]).await;
    let report = off.invoke(&event).await.unwrap().response();
    assert_eq!(report["plan"]["action"], "ignore");
    assert_eq!(bed.replacements().await.len(), 0);
    let note = &bed.notifications().await[0];
    assert!(note["text"].as_str().unwrap().contains("REPLACE_ON_STOP"), "{note}");
    drop(off);

    let on = bed.function(&[("REPLACE_ON_STOP", "true")]).await;
    let report = on.invoke(&event).await.unwrap().response();
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    let new_id = report["outcome"]["replacement"].as_str().unwrap();
    assert_eq!(bed.attached_to(&bed.data_volume).await, Some((new_id.to_owned(), "/dev/sdf".to_owned())));
    // The stopped one no longer counts as the gateway, should EC2 start it again.
    let old = bed.instance(&bed.gateway).await;
    assert_eq!(old.state().unwrap().name().unwrap().as_str(), "stopped");
    assert_eq!(tags_of(&old)["openclaw:role"], "replaced");
    bed.assert_all_allowed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_stopping_or_terminating_the_gateway_or_maintenance_is_never_replaced() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[("REPLACE_ON_STOP", "true")]).await;
    bed.ec2.stop_instances().instance_ids(&bed.gateway).send().await.unwrap();
    let report = function.invoke(&state_change(&bed.gateway, "stopped", Utc::now())).await.unwrap().response();
    assert!(report["plan"]["reason"].as_str().unwrap().contains("on purpose"), "{report}");

    bed.ec2.create_tags().resources(&bed.gateway).tags(tag("openclaw:maintenance", "true")).send().await.unwrap();
    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    let report = function.invoke(&state_change(&bed.gateway, "terminated", Utc::now())).await.unwrap().response();
    assert!(report["plan"]["reason"].as_str().unwrap().contains("openclaw:maintenance=true"), "{report}");

    assert_eq!(bed.replacements().await.len(), 0);
    let launches = bed.mutating_calls().await.into_iter().filter(|a| a == "ec2:RunInstances").count();
    assert_eq!(launches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_instances_events_and_bad_input_change_nothing_at_all() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[("EARLY_REPLACE", "true"), ("REPLACE_ON_STOP", "true")]).await;
    let before = bed.instances().await.len();
    let now = Utc::now();
    for event in [warning(&bed.foreign, now), rebalance(&bed.foreign, now)] {
        let report = function.invoke(&event).await.unwrap().response();
        assert_eq!(report["plan"]["action"], "ignore", "{report}");
        assert!(report["plan"]["reason"].as_str().unwrap().contains("not the gateway"));
    }
    bed.emulator.spot_interruption_taking(&bed.foreign, "terminate", 0.0).await.unwrap();
    let report = function.invoke(&state_change(&bed.foreign, "terminated", now)).await.unwrap().response();
    assert_eq!(report["plan"]["action"], "ignore", "{report}");

    for bad in [
        json!({"dry_run": true}),
        state_change("i-0123; rm -rf /", "terminated", now),
        json!({"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-11-25T03:00:00Z", "detail": {}}),
    ] {
        let (kind, message) = function.invoke(&bad).await.unwrap().error();
        assert_eq!(kind, "InputError", "{message}");
    }

    assert_eq!(bed.mutating_calls().await, Vec::<String>::new(), "no change at all");
    assert_eq!(bed.instances().await.len(), before);
    assert_eq!(bed.attached_to(&bed.foreign_volume).await, None, "released by its own termination only");
    assert_eq!(bed.eip_instance().await.as_deref(), Some(bed.gateway.as_str()));
    assert_eq!(bed.notifications().await, Vec::<Value>::new());
    let reads: Vec<String> =
        bed.emulator.calls_by(&bed.principal.keys).await.unwrap().into_iter().map(|c| c.action).collect();
    assert!(reads.iter().all(|a| a == "ec2:DescribeInstances"), "one read per foreign event: {reads:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_recommendation_starts_a_standby_that_takes_over_at_the_interruption() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[("EARLY_REPLACE", "true")]).await;
    let report = function.invoke(&rebalance(&bed.gateway, Utc::now())).await.unwrap().response();
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    let standby = report["outcome"]["replacement"].as_str().unwrap().to_owned();
    let tags = tags_of(&bed.instance(&standby).await);
    assert_eq!(tags["openclaw:replaces"], bed.gateway);
    // The template tags role=gateway: the standby's own request tag overrides it.
    assert_eq!(tags["openclaw:role"], "standby", "not the gateway before it has the data: {tags:?}");
    assert_eq!(tags["Name"], "openclaw-gateway-standby");
    assert_eq!(bed.attached_to(&bed.data_volume).await.unwrap().0, bed.gateway, "the volume stays until the end");

    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    let report = function.invoke(&state_change(&bed.gateway, "terminated", Utc::now())).await.unwrap().response();
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    assert_eq!(report["outcome"]["replacement"], standby);
    assert_eq!(bed.replacements().await.len(), 1);
    // Tagged as the gateway before the attach: MoveTheGatewaysDataVolume names the role tag on the
    // instance, and the strict bed refuses the attach to a standby (assert_all_allowed below).
    let steps: Vec<&str> =
        report["outcome"]["timeline"].as_array().unwrap().iter().map(|s| s["what"].as_str().unwrap()).collect();
    let at = |needle: &str| steps.iter().position(|s| s.contains(needle)).unwrap_or_else(|| panic!("{steps:?}"));
    assert!(at("takes over: tagged as the gateway") < at("attached to"), "{steps:?}");
    let tags = tags_of(&bed.instance(&standby).await);
    assert_eq!(tags["openclaw:role"], "gateway");
    assert_eq!(tags["Name"], "openclaw-gateway", "the gateway's name once it is the gateway");
    assert_eq!(bed.attached_to(&bed.data_volume).await, Some((standby.clone(), "/dev/sdf".to_owned())));
    assert_eq!(bed.eip_instance().await, Some(standby));
    let launches = bed.mutating_calls().await.into_iter().filter(|a| a == "ec2:RunInstances").count();
    assert_eq!(launches, 1);
    bed.assert_all_allowed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_finished_by_lambdas_retry_without_a_second_launch() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[]).await;
    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    let event = state_change(&bed.gateway, "terminated", Utc::now());

    bed.principal.deny(&bed.emulator, &["ec2:AttachVolume"]).await.unwrap();
    let (kind, message) = function.invoke(&event).await.unwrap().error();
    assert_eq!(kind, "IncompleteRun");
    assert!(message.contains("volume") && message.contains("AttachVolume"), "{message}");
    let failed = bed.notifications().await;
    assert_eq!(failed[0]["severity"], "critical");
    assert!(failed[0]["title"].as_str().unwrap().contains("INCOMPLETE"), "{failed:?}");
    assert_eq!(tags_of(&bed.instance(&bed.gateway).await)["openclaw:role"], "gateway", "not retired yet");
    let new_id = bed.replacements().await[0].instance_id().unwrap().to_owned();
    assert_eq!(bed.eip_instance().await.as_deref(), Some(new_id.as_str()), "the steps after the failure still ran");

    // Lambda retries the same event once the cause is gone.
    bed.principal.restore(&bed.emulator).await.unwrap();
    let report = function.invoke(&event).await.unwrap().response();
    assert_eq!(report["plan"]["replacement"], json!({"kind": "existing", "instance_id": new_id, "tags": []}));
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    assert_eq!(bed.attached_to(&bed.data_volume).await, Some((new_id, "/dev/sdf".to_owned())));
    assert_eq!(tags_of(&bed.instance(&bed.gateway).await)["openclaw:role"], "replaced");
    let launches = bed.mutating_calls().await.into_iter().filter(|a| a == "ec2:RunInstances").count();
    assert_eq!(launches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_plans_and_reports_but_changes_nothing() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[("DRY_RUN", "true")]).await;
    let report = function.invoke(&warning(&bed.gateway, Utc::now())).await.unwrap().response();
    assert_eq!((report["plan"]["action"].as_str(), report["dry_run"].as_bool()), (Some("prepare"), Some(true)));
    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    let report = function.invoke(&state_change(&bed.gateway, "terminated", Utc::now())).await.unwrap().response();
    assert_eq!(report["plan"]["action"], "replace", "{report}");
    assert_eq!(report["plan"]["replacement"]["kind"], "launch");
    assert_eq!(report["outcome"], Value::Null);

    assert_eq!(bed.mutating_calls().await, ["sns:Publish", "sns:Publish"]);
    assert_eq!(bed.replacements().await.len(), 0);
    let notes = bed.notifications().await;
    assert!(notes[0]["text"].as_str().unwrap().contains("dry run"), "{notes:?}");
    assert!(notes[1]["title"].as_str().unwrap().starts_with("Dry run: openclaw-gateway would be replaced"));
}

// --- AWS's timings and rules, which the test bed now keeps ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_volume_moves_only_once_the_reclaimed_instance_has_released_it() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[]).await;
    // 30 s of shutting-down (6 s real at the test's time scale), the volume attached all along.
    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    assert_eq!(bed.instance(&bed.gateway).await.state().unwrap().name().unwrap().as_str(), "shutting-down");
    assert_eq!(bed.attached_to(&bed.data_volume).await.map(|a| a.0), Some(bed.gateway.clone()));

    let report = function.invoke(&state_change(&bed.gateway, "terminated", Utc::now())).await.unwrap().response();
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    let new_id = report["outcome"]["replacement"].as_str().unwrap().to_owned();
    let steps: Vec<String> = report["outcome"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["what"].as_str().unwrap().to_owned())
        .collect();
    let available = steps.iter().position(|s| s.ends_with("available")).expect("waited for the release");
    let attached = steps.iter().position(|s| s.contains("attached to")).expect("attached");
    assert!(available < attached, "{steps:?}");
    assert_eq!(bed.instance(&bed.gateway).await.state().unwrap().name().unwrap().as_str(), "terminated");
    assert_eq!(bed.attached_to(&bed.data_volume).await, Some((new_id, "/dev/sdf".to_owned())));
    bed.assert_all_allowed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_standby_does_not_block_the_replacement() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[("EARLY_REPLACE", "true")]).await;
    let report = function.invoke(&rebalance(&bed.gateway, Utc::now())).await.unwrap().response();
    let standby = report["outcome"]["replacement"].as_str().unwrap().to_owned();
    // The standby is reclaimed (or terminated by hand) before the gateway is.
    bed.ec2.terminate_instances().instance_ids(&standby).send().await.unwrap();

    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    let report = function.invoke(&state_change(&bed.gateway, "terminated", Utc::now())).await.unwrap().response();
    // EC2 answers a client token reused with other tags with IdempotentParameterMismatch.
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    let new_id = report["outcome"]["replacement"].as_str().unwrap().to_owned();
    assert_ne!(new_id, standby);
    assert_eq!(bed.instance(&new_id).await.state().unwrap().name().unwrap().as_str(), "running");
    assert_eq!(bed.attached_to(&bed.data_volume).await, Some((new_id, "/dev/sdf".to_owned())));
    bed.assert_all_allowed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_replacement_died_launches_a_live_one() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[]).await;
    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    let event = state_change(&bed.gateway, "terminated", Utc::now());
    bed.principal.deny(&bed.emulator, &["ec2:AttachVolume"]).await.unwrap();
    let (kind, _) = function.invoke(&event).await.unwrap().error();
    assert_eq!(kind, "IncompleteRun");
    let first = bed.replacements().await[0].instance_id().unwrap().to_owned();
    // The first replacement is itself reclaimed before Lambda's retry.
    bed.ec2.terminate_instances().instance_ids(&first).send().await.unwrap();

    bed.principal.restore(&bed.emulator).await.unwrap();
    let report = function.invoke(&event).await.unwrap().response();
    // EC2 answers the same client token with the same (now terminated) instance.
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    let second = report["outcome"]["replacement"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(bed.instance(&second).await.state().unwrap().name().unwrap().as_str(), "running");
    assert_eq!(bed.attached_to(&bed.data_volume).await, Some((second, "/dev/sdf".to_owned())));
}

/// spot-recovery's work does not fit in its time: the new target is still booting when the run
/// must stop (its `Timeout` of 300 s, here on a time scale of 15: 20 s). The run says so and ends
/// incomplete in time, the old instance is not retired, and Lambda's retry finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_still_booting_at_the_deadline_is_reported_unfinished_and_the_retry_completes() {
    let bed = Bed::start(Tier::Full).await;
    bed.emulator.set_target_health("*", 900.0, "healthy").await.unwrap();
    let mut env = bed.emulator.function_env(&bed.principal.keys);
    let subnets = bed.subnets.values().cloned().collect::<Vec<_>>().join(",");
    env.extend([
        ("NOTIFY_TOPIC_ARN".to_owned(), bed.topic_arn.clone()),
        ("LAUNCH_TEMPLATE_ID".to_owned(), bed.template_id.clone()),
        ("SUBNET_IDS".to_owned(), subnets),
        ("TARGET_GROUP_ARN".to_owned(), bed.target_group.clone().unwrap()),
    ]);
    let function = Function::start_scaled("spot-recovery", &env, 15.0).await.unwrap();
    assert_eq!(function.timeout(), std::time::Duration::from_secs(300), "template.yaml's Timeout");

    bed.emulator.spot_interruption_taking(&bed.gateway, "terminate", 0.0).await.unwrap();
    bed.wait_for_state(&bed.gateway, "terminated").await;
    let event = state_change(&bed.gateway, "terminated", Utc::now());
    let started = std::time::Instant::now();
    let (kind, message) = function.invoke(&event).await.unwrap().error();
    assert_eq!(kind, "IncompleteRun", "ended by the function, not by Lambda's timeout: {message}");
    assert!(started.elapsed() < function.deadline(), "{:?}", started.elapsed());
    assert!(message.contains("health") && message.contains("initial"), "{message}");
    let notes = bed.notifications().await;
    assert_eq!(notes[0]["severity"], "critical", "{notes:?}");
    assert!(notes[0]["title"].as_str().unwrap().contains("INCOMPLETE"), "{notes:?}");
    assert_eq!(tags_of(&bed.instance(&bed.gateway).await)["openclaw:role"], "gateway", "not retired yet");

    // Half an hour later the target has booted (15 min) and passed its checks; Lambda delivers the
    // event again.
    bed.emulator.set_clock(Utc::now() + chrono::TimeDelta::minutes(30)).await.unwrap();
    let report = function.invoke(&event).await.unwrap().response();
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    assert_eq!(report["outcome"]["target_health"], "healthy");
    assert_eq!(tags_of(&bed.instance(&bed.gateway).await)["openclaw:role"], "replaced");
    let launches = bed.mutating_calls().await.into_iter().filter(|a| a == "ec2:RunInstances").count();
    assert_eq!(launches, 1);
    bed.assert_all_allowed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_a_reachable_ssm_agent_is_snapshotted_and_its_backup_refused_at_once() {
    let bed = Bed::start(Tier::Budget).await;
    let state = state_dir("spot-no-agent");
    // The gateway is not registered with the test bed's SSM: no agent.
    let function = bed.function(&[("BACKUP_BUCKET", BUCKET), ("STATE_DIR", &state.root.to_string_lossy())]).await;
    let (kind, message) = function.invoke(&warning(&bed.gateway, Utc::now())).await.unwrap().error();
    assert_eq!(kind, "IncompleteRun", "{message}");
    assert!(message.contains("InvalidInstanceId") && message.contains("AmazonSSMManagedInstanceCore"), "{message}");
    // The snapshot, the record and the notices still happened.
    let snapshots = bed.snapshots().await;
    assert!(snapshots.iter().any(|s| s.volume_id() == Some(bed.data_volume.as_str())), "{snapshots:?}");
    assert!(tags_of(&bed.instance(&bed.gateway).await).contains_key("openclaw:spot-warning"));
    let notes = bed.notifications().await;
    assert!(notes.iter().any(|n| n["severity"] == "critical"), "{notes:?}");
}

/// A `curl` whose archive upload never ends: it notes its process id, then waits.
const STUCK_CURL: &str = r#"#!/bin/bash
for arg in "$@"; do
  if [[ "$arg" == *archive.tar.gz* ]]; then echo $$ > "$(dirname "$0")/stuck.pid"; exec sleep 600; fi
done
exec /usr/bin/curl "$@"
"#;

/// The last-minute backup is still uploading when the run must stop (its `Timeout` of 300 s on a
/// time scale of 10: 30 s, 15 of them kept to report). It is cancelled through SSM (the script is
/// killed on the instance), and the report says so: left running, a retry could start a second
/// backup beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_still_running_at_the_deadline_is_cancelled_and_reported() {
    let bed = Bed::start(Tier::Budget).await;
    let state = state_dir("spot-deadline");
    let bin = std::env::temp_dir().join(format!("openclaw-stuck-curl-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("curl"), STUCK_CURL).unwrap();
    std::fs::set_permissions(bin.join("curl"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The script runs as the state directory's owner: the stand-in must be reachable for it.
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut instance_env = serde_json::Map::new();
    for (k, v) in bed.emulator.function_env(&bed.emulator.admin_keys()) {
        instance_env.insert(k, json!(v));
    }
    instance_env
        .insert("PATH".into(), json!(format!("{}:{}", bin.display(), integration_tests::emulator::INSTANCE_PATH)));
    bed.emulator.register_instance(&bed.gateway, instance_env).await.unwrap();

    let mut env = bed.emulator.function_env(&bed.principal.keys);
    env.extend([
        ("NOTIFY_TOPIC_ARN".to_owned(), bed.topic_arn.clone()),
        ("LAUNCH_TEMPLATE_ID".to_owned(), bed.template_id.clone()),
        ("ELASTIC_IP_ALLOCATION_ID".to_owned(), bed.allocation_id.clone()),
        ("BACKUP_BUCKET".to_owned(), BUCKET.to_owned()),
        ("STATE_DIR".to_owned(), state.root.to_string_lossy().into_owned()),
    ]);
    let function = Function::start_scaled("spot-recovery", &env, 10.0).await.unwrap();
    let started = std::time::Instant::now();
    // Whether the run counts the unfinished backup as a failure or not, it must say what became of it.
    let report = match function.invoke(&warning(&bed.gateway, Utc::now())).await.unwrap() {
        integration_tests::runtime::Outcome::Response(report) => report.to_string(),
        integration_tests::runtime::Outcome::Error { error_message, .. } => error_message,
    };
    assert!(started.elapsed() < function.deadline(), "{:?}", started.elapsed());
    assert!(report.contains("when the window closed; cancelled, so a retry does not run it twice"), "{report}");

    // SSM cancelled it: the invocation ends Cancelled and the upload it was making is gone.
    let ssm = aws_sdk_ssm::Client::new(&bed.emulator.admin().await);
    let command_id = report.split("backup command ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let mut status = String::new();
    for _ in 0..40 {
        let invocation =
            ssm.get_command_invocation().command_id(&command_id).instance_id(&bed.gateway).send().await.unwrap();
        status = invocation.status().unwrap().as_str().to_owned();
        if status == "Cancelled" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status, "Cancelled");
    let pid = std::fs::read_to_string(bin.join("stuck.pid")).expect("the upload had started").trim().to_owned();
    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
    for _ in 0..50 {
        if !proc.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!proc.exists(), "the stuck upload {pid} still runs");
    let calls = bed.emulator.calls_by(&bed.principal.keys).await.unwrap();
    assert_eq!(calls.iter().filter(|c| c.action == "ssm:CancelCommand").count(), 1);
    bed.assert_all_allowed().await;
    std::fs::remove_dir_all(&bin).unwrap();
}

/// Point 4 of issue 15: the gateway's data volume is on a rescue instance when the interruption's
/// termination arrives. Restoring the newest snapshot beside it would serve stale data at the
/// gateway's address (split brain): the run changes nothing and names the instance holding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_volume_on_another_instance_is_never_replaced_by_a_snapshot() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[]).await;
    // A warning's spot-final snapshot: what a restore would take.
    let warned = function.invoke(&warning(&bed.gateway, Utc::now())).await.unwrap().response();
    assert!(warned["outcome"]["snapshot_id"].is_string(), "{warned}");
    bed.notifications().await;
    bed.emulator.spot_interruption_taking(&bed.gateway, "terminate", 0.0).await.unwrap();
    bed.wait_for_state(&bed.gateway, "terminated").await;

    // An operator's rescue instance takes the released volume (and the gateway tag off it).
    let rescue = bed
        .ec2
        .run_instances()
        .launch_template(LaunchTemplateSpecification::builder().launch_template_id(&bed.template_id).build())
        .min_count(1)
        .max_count(1)
        .subnet_id(&bed.subnets[AZ])
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(tag("Name", "rescue"))
                .tags(tag("openclaw:role", "rescue"))
                .build(),
        )
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_owned();
    bed.ec2.attach_volume().volume_id(&bed.data_volume).instance_id(&rescue).device("/dev/sdf").send().await.unwrap();
    bed.ec2
        .delete_tags()
        .resources(&bed.data_volume)
        .tags(Tag::builder().key("openclaw:role").build())
        .send()
        .await
        .unwrap();

    let report = function.invoke(&state_change(&bed.gateway, "terminated", Utc::now())).await.unwrap().response();
    assert_eq!(report["plan"]["action"], "held", "{report}");
    assert_eq!(report["plan"]["holder"], rescue);
    assert_eq!(report["plan"]["volume_id"], bed.data_volume);
    assert_eq!(report["outcome"], Value::Null);

    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["severity"], "critical");
    assert!(notes[0]["title"].as_str().unwrap().contains(&rescue), "{notes:?}");
    assert_eq!(notes[0]["fields"]["held by"], rescue);

    let mut changes: Vec<String> = bed.mutating_calls().await.into_iter().filter(|a| a != "sns:Publish").collect();
    changes.sort();
    assert_eq!(changes, ["ec2:CreateSnapshot", "ec2:CreateTags"], "the warning's only (at once, in any order)");
    assert_eq!(bed.replacements().await.len(), 0);
    assert_eq!(bed.attached_to(&bed.data_volume).await, Some((rescue, "/dev/sdf".to_owned())));
    let volumes = bed.ec2.describe_volumes().send().await.unwrap();
    assert!(volumes.volumes().iter().all(|v| v.snapshot_id().unwrap_or_default().is_empty()), "nothing restored");
    assert_eq!(bed.eip_instance().await.as_deref(), Some(bed.gateway.as_str()), "the address stays");
    bed.assert_all_allowed().await;
}

/// Point 5 of issue 15: a Spot stop (warned and recorded), a restart, then the operator's own
/// terminate. The gateway's `running` notification clears the records of the interruption it came
/// back from, so the next warning is saved again (not taken for a repeated delivery) and the old
/// record is no evidence of anything; the terminate is not replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_back_from_a_spot_stop_sheds_its_records_and_a_deliberate_terminate_is_not_replaced() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[]).await;
    let stop_warning = |time: DateTime<Utc>| {
        ec2_event(
            "EC2 Spot Instance Interruption Warning",
            "warning-stop",
            time,
            json!({"instance-id": bed.gateway, "instance-action": "stop"}),
        )
    };
    let first = Utc::now() - chrono::TimeDelta::minutes(3);
    function.invoke(&rebalance(&bed.gateway, first - chrono::TimeDelta::minutes(2))).await.unwrap().response();
    let report = function.invoke(&stop_warning(first)).await.unwrap().response();
    assert_eq!(report["plan"]["duplicate"], false, "{report}");
    let tags = tags_of(&bed.instance(&bed.gateway).await);
    assert!(tags.contains_key("openclaw:spot-warning") && tags.contains_key("openclaw:rebalance"), "{tags:?}");
    bed.emulator.spot_interruption_taking(&bed.gateway, "stop", 0.0).await.unwrap();
    bed.wait_for_state(&bed.gateway, "stopped").await;
    let report = function.invoke(&state_change(&bed.gateway, "stopped", Utc::now())).await.unwrap().response();
    assert!(report["plan"]["reason"].as_str().unwrap().contains("REPLACE_ON_STOP"), "{report}");
    bed.notifications().await;

    // EC2 (or the operator) starts it again: its `running` notification clears both records.
    bed.ec2.start_instances().instance_ids(&bed.gateway).send().await.unwrap();
    bed.wait_for_state(&bed.gateway, "running").await;
    let running = state_change(&bed.gateway, "running", Utc::now());
    let report = function.invoke(&running).await.unwrap().response();
    assert_eq!(report["plan"]["action"], "clear", "{report}");
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    let tags = tags_of(&bed.instance(&bed.gateway).await);
    assert!(!tags.contains_key("openclaw:spot-warning"), "the old warning is gone: {tags:?}");
    assert!(!tags.contains_key("openclaw:rebalance"), "{tags:?}");
    assert_eq!(tags["openclaw:role"], "gateway");
    assert_eq!(bed.notifications().await, Vec::<Value>::new(), "a routine clear is not news");

    // The same notification again: one read, no write.
    let calls_before = bed.emulator.calls_by(&bed.principal.keys).await.unwrap().len();
    let report = function.invoke(&running).await.unwrap().response();
    assert_eq!(report["plan"]["action"], "ignore", "{report}");
    let calls = bed.emulator.calls_by(&bed.principal.keys).await.unwrap();
    let actions: Vec<&str> = calls[calls_before..].iter().map(|c| c.action.as_str()).collect();
    assert_eq!(actions, ["ec2:DescribeInstances"]);

    // A new warning is a new interruption: recorded fresh and saved, not taken for a repeat.
    let second = Utc::now();
    let report = function.invoke(&stop_warning(second)).await.unwrap().response();
    assert_eq!(report["plan"]["duplicate"], false, "{report}");
    assert!(report["outcome"]["snapshot_id"].is_string(), "{report}");
    let tags = tags_of(&bed.instance(&bed.gateway).await);
    assert_eq!(tags["openclaw:spot-warning"], second.to_rfc3339_opts(SecondsFormat::Secs, true));

    // Later the operator terminates it on purpose.
    bed.ec2.terminate_instances().instance_ids(&bed.gateway).send().await.unwrap();
    bed.wait_for_state(&bed.gateway, "terminated").await;
    let report = function.invoke(&state_change(&bed.gateway, "terminated", Utc::now())).await.unwrap().response();
    assert_eq!(report["plan"]["action"], "ignore", "{report}");
    assert!(report["plan"]["reason"].as_str().unwrap().contains("Client.UserInitiatedShutdown"), "{report}");
    assert_eq!(bed.replacements().await.len(), 0);
    let launches = bed.mutating_calls().await.into_iter().filter(|a| a == "ec2:RunInstances").count();
    assert_eq!(launches, 0);
    bed.assert_all_allowed().await;
}

/// The follow-up event a schedule delivers: its target's Input.
fn input_of(schedule: &Value) -> Value {
    serde_json::from_str(schedule["Target"]["Input"].as_str().unwrap()).unwrap()
}

/// After a takeover nothing has seen the gateway serve yet: the run says "replaced, not yet seen
/// serving" and asks Scheduler for exactly one follow-up check (a duplicate delivery of the
/// termination adds none). The check, delivered as the schedule delivers it, sees the replacement
/// pass EC2's status checks: only then is the gateway said to serve, and nothing more is scheduled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_is_not_yet_seen_serving_until_its_follow_up_check_sees_it_serve() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[]).await;
    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    let t = Utc::now();
    let report = function.invoke(&state_change(&bed.gateway, "terminated", t)).await.unwrap().response();
    assert_eq!(report["outcome"]["failed"], json!([]), "{report}");
    let new_id = report["outcome"]["replacement"].as_str().unwrap().to_owned();
    let name = format!("spot-follow-up-{new_id}-1");
    assert_eq!(report["outcome"]["follow_up"]["name"], name, "{report}");
    assert_eq!(report["outcome"]["follow_up"]["already"], false);
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let title = notes[0]["title"].as_str().unwrap();
    assert!(title.contains("replaced, not yet seen serving"), "{title}");
    assert_eq!(notes[0]["fields"]["seen serving"], "not yet");
    assert_eq!(notes[0]["fields"]["follow-up"], name);

    let duplicate = function.invoke(&state_change(&bed.gateway, "terminated", t)).await.unwrap().response();
    assert_eq!(duplicate["plan"]["action"], "ignore", "{duplicate}");

    let schedules = bed.schedules().await;
    assert_eq!(schedules.keys().collect::<Vec<_>>(), [&name], "exactly one follow-up check");
    let schedule = &schedules[&name];
    let expression = schedule["ScheduleExpression"].as_str().unwrap();
    let at = expression.strip_prefix("at(").and_then(|e| e.strip_suffix(')')).unwrap();
    let at = chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S").unwrap().and_utc();
    let after = (at - t).num_seconds();
    assert!((290..=330).contains(&after), "five minutes after the takeover: {expression} ({after} s)");
    assert_eq!(schedule["ScheduleExpressionTimezone"], "UTC");
    assert_eq!(schedule["FlexibleTimeWindow"]["Mode"], "OFF");
    assert_eq!(schedule["ActionAfterCompletion"], "DELETE");
    assert_eq!(schedule["GroupName"], bed.schedule_group);
    let target = &schedule["Target"];
    assert_eq!(target["Arn"], "arn:aws:lambda:us-east-1:123456789012:function:local", "the function itself");
    assert_eq!(target["RoleArn"], bed.follow_up_role);
    let input = input_of(schedule);
    assert_eq!(input["kind"], "spot-recovery-follow-up");
    assert_eq!(input["instance-id"], bed.gateway);
    assert_eq!(input["replacement-id"], new_id);
    assert_eq!(input["attempt"], 1);

    let checked = function.invoke(&input).await.unwrap().response();
    assert_eq!(checked["decision"], "serving", "{checked}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["severity"], "info");
    assert_eq!(notes[0]["title"], format!("Gateway replacement {new_id} is serving"));
    assert_eq!(notes[0]["fields"]["replacement"], new_id);
    assert_eq!(bed.schedules().await.len(), 1, "no further check");
    let creates = bed.mutating_calls().await.into_iter().filter(|a| a == "scheduler:CreateSchedule").count();
    assert_eq!(creates, 1);
    bed.assert_all_allowed().await;
}

/// A replacement that never passes its health checks: the takeover's run ends incomplete with the
/// follow-up check scheduled, Lambda's retry finds it scheduled already (one schedule), the check
/// sees the target still not healthy and schedules the next one, and the last check, at the give-up
/// time, escalates with a critical notification and schedules nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_not_serving_is_looked_at_again_until_the_give_up_time_then_escalated() {
    let bed = Bed::start(Tier::Full).await;
    bed.emulator.set_target_health("*", 0.0, "unhealthy").await.unwrap();
    let function = bed.function(&[("HEALTH_TIMEOUT_SECONDS", "3")]).await;
    bed.emulator.spot_interruption(&bed.gateway, "terminate").await.unwrap();
    let event = state_change(&bed.gateway, "terminated", Utc::now());
    let (kind, message) = function.invoke(&event).await.unwrap().error();
    assert_eq!(kind, "IncompleteRun", "{message}");
    assert!(message.contains("health"), "{message}");
    let new_id = bed.replacements().await[0].instance_id().unwrap().to_owned();
    let first = format!("spot-follow-up-{new_id}-1");
    assert_eq!(bed.schedules().await.keys().collect::<Vec<_>>(), [&first]);

    // Lambda's retry of the same event: the check is there already, and that is no failure.
    let (_, message) = function.invoke(&event).await.unwrap().error();
    assert!(!message.contains("follow-up"), "{message}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 2, "{notes:?}");
    let steps = |note: &Value| -> Vec<String> {
        note["table"]["rows"].as_array().unwrap().iter().map(|r| r[2].as_str().unwrap().to_owned()).collect()
    };
    assert!(steps(&notes[0]).iter().any(|s| s.contains(&first) && !s.contains("already")), "{notes:?}");
    assert!(steps(&notes[1]).iter().any(|s| s.contains(&first) && s.contains("already scheduled")), "{notes:?}");
    let schedules = bed.schedules().await;
    assert_eq!(schedules.len(), 1, "one chain of checks");

    // The first check: the target is still not healthy, the give-up time is ahead.
    let checked = function.invoke(&input_of(&schedules[&first])).await.unwrap().response();
    assert_eq!(checked["decision"], "again", "{checked}");
    assert!(checked["observed"].as_str().unwrap().starts_with("target "), "{checked}");
    let second = format!("spot-follow-up-{new_id}-2");
    assert_eq!(checked["next"]["name"], second);
    assert!(bed.notifications().await.is_empty(), "another look is no news");
    let schedules = bed.schedules().await;
    assert_eq!(schedules.keys().collect::<Vec<_>>(), [&first, &second]);
    let next = input_of(&schedules[&second]);
    assert_eq!(next["attempt"], 2);
    assert_eq!(next["give-up"], input_of(&schedules[&first])["give-up"], "the same chain");

    // The last check, at the give-up time (the chain started half an hour ago).
    let mut last = next;
    let now = Utc::now();
    last["taken-over"] = json!((now - chrono::TimeDelta::minutes(31)).to_rfc3339_opts(SecondsFormat::Secs, true));
    last["give-up"] = json!((now - chrono::TimeDelta::minutes(1)).to_rfc3339_opts(SecondsFormat::Secs, true));
    let checked = function.invoke(&last).await.unwrap().response();
    assert_eq!(checked["decision"], "escalate", "{checked}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["severity"], "critical");
    assert_eq!(notes[0]["title"], format!("Gateway replacement {new_id} NOT serving after a Spot interruption"));
    assert!(notes[0]["text"].as_str().unwrap().contains("target "), "{notes:?}");
    assert_eq!(bed.schedules().await.len(), 2, "nothing more is scheduled");
    bed.assert_all_allowed().await;
}

/// A follow-up event naming an instance that did not take over from the one it names (here another
/// application's) is refused: no notification, no schedule, no change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_follow_up_naming_another_instance_is_refused_and_changes_nothing() {
    let bed = Bed::start(Tier::Budget).await;
    let function = bed.function(&[]).await;
    let now = Utc::now();
    let forged = json!({
        "kind": "spot-recovery-follow-up", "instance-id": bed.gateway, "replacement-id": bed.foreign, "attempt": 1,
        "taken-over": (now - chrono::TimeDelta::minutes(5)).to_rfc3339_opts(SecondsFormat::Secs, true),
        "give-up": (now + chrono::TimeDelta::minutes(25)).to_rfc3339_opts(SecondsFormat::Secs, true),
    });
    let (_, message) = function.invoke(&forged).await.unwrap().error();
    assert!(message.contains(&bed.foreign) && message.contains("openclaw:replaces"), "{message}");
    assert!(bed.notifications().await.is_empty());
    assert!(bed.schedules().await.is_empty());
    assert_eq!(bed.mutating_calls().await, Vec::<String>::new());
}
