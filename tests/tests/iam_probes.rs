//! The template's grants probed with the requests that matter, evaluated by the test bed as AWS
//! evaluates them: what each function must be able to do, and what a forged tag, another template,
//! another role or a re-tag must not let it do. (The end-to-end tests show the grants suffice; these
//! show they are no wider than the function's job.)

use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::stack::{ACCOUNT, SPOT_FOLLOW_UP_GROUP, Stack};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:openclaw-ops-OpsTopic";
const TEMPLATE: &str = "lt-0aaaaaaaaaaaaaaaa";
const EIP: &str = "eipalloc-0aaaaaaaaaaaaaaaa";

fn arn(kind: &str, id: &str) -> String {
    let account = if kind == "snapshot" || kind == "image" { "" } else { ACCOUNT };
    format!("arn:aws:ec2:{REGION}:{account}:{kind}/{id}")
}

fn probe(action: &str, resource: &str, context: Value) -> Value {
    json!({"action": action, "resource": resource, "context": context})
}

/// Asserts each (probe, expected) pair, naming the probe that went the wrong way.
async fn check(emulator: &Emulator, principal: &Principal, cases: &[(Value, bool)]) {
    let requests: Vec<Value> = cases.iter().map(|(p, _)| p.clone()).collect();
    let decisions = emulator.simulate(&principal.policy, &requests).await.unwrap();
    let wrong: Vec<String> = cases
        .iter()
        .zip(&decisions)
        .filter(|((_, expected), d)| d["allowed"] != *expected)
        .map(|((p, expected), d)| format!("expected allowed={expected}: {p} → {d}"))
        .collect();
    assert!(wrong.is_empty(), "{} probe(s) wrong:\n{}", wrong.len(), wrong.join("\n"));
}

async fn principal(emulator: &Emulator, logical_id: &str, stack: Stack) -> Principal {
    Principal::for_function(emulator, logical_id, &stack.topic("OpsTopic", TOPIC)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebs_snapshots_creates_only_tagged_snapshots_tags_only_at_creation_and_deletes_only_its_own() {
    let emulator = Emulator::start().await.unwrap();
    let p = principal(&emulator, "EbsSnapshotsFunction", Stack::new(&emulator).await.unwrap()).await;
    let owned = json!({"aws:ResourceTag/openclaw:managed-by": "openclaw-ops"});
    let new_snapshot = arn("snapshot", "*");
    let request_tags =
        json!({"aws:RequestTag/openclaw:managed-by": "openclaw-ops", "aws:TagKeys": ["openclaw:managed-by"]});
    check(
        &emulator,
        &p,
        &[
            (probe("ec2:DeleteSnapshot", &arn("snapshot", "snap-1"), owned.clone()), true),
            (probe("ec2:DeleteSnapshot", &arn("snapshot", "snap-1"), json!({})), false),
            (
                probe(
                    "ec2:DeleteSnapshot",
                    &arn("snapshot", "snap-1"),
                    json!({"aws:ResourceTag/openclaw:managed-by": "me"}),
                ),
                false,
            ),
            (probe("ec2:CreateSnapshot", &arn("volume", "vol-1"), json!({})), true),
            (probe("ec2:CreateSnapshot", &new_snapshot, request_tags.clone()), true),
            (probe("ec2:CreateSnapshot", &new_snapshot, json!({})), false),
            (probe("ec2:CreateTags", &new_snapshot, json!({"ec2:CreateAction": "CreateSnapshot"})), true),
            // re-tagging an existing snapshot (to make a foreign one "ours") is not tagging on create
            (probe("ec2:CreateTags", &arn("snapshot", "snap-1"), request_tags), false),
            (probe("ec2:CreateTags", &new_snapshot, json!({"ec2:CreateAction": "CopySnapshot"})), false),
            (probe("ec2:DeleteVolume", &arn("volume", "vol-1"), owned), false),
            (probe("sns:Publish", TOPIC, json!({})), true),
            (probe("sns:Publish", "arn:aws:sns:us-east-1:123456789012:other", json!({})), false),
            // The freeze: on gateways only, with the shell document only.
            (
                probe("ssm:SendCommand", &arn("instance", "i-1"), json!({"ssm:resourceTag/openclaw:role": "gateway"})),
                true,
            ),
            (probe("ssm:SendCommand", &arn("instance", "i-3"), json!({})), false),
            (probe("ssm:SendCommand", "arn:aws:ssm:us-east-1::document/AWS-RunShellScript", json!({})), true),
            (probe("ssm:SendCommand", "arn:aws:ssm:us-east-1::document/AWS-RunPowerShellScript", json!({})), false),
            (probe("ssm:DescribeInstanceInformation", "*", json!({})), true),
        ],
    )
    .await;
}

/// Without DeployGateway and SpotInstanceRoleName, spot-recovery may pass no role at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_recovery_without_its_instance_role_named_passes_no_role() {
    let emulator = Emulator::start().await.unwrap();
    let stack = Stack::new(&emulator)
        .await
        .unwrap()
        .param("SpotLaunchTemplateId", TEMPLATE)
        .param("GatewayElasticIpAllocationId", EIP)
        .bucket("BackupBucket", "backups")
        .with_spot_follow_up(&emulator)
        .await
        .unwrap();
    let p = principal(&emulator, "SpotRecoveryFunction", stack).await;
    let to_ec2 = json!({"iam:PassedToService": "ec2.amazonaws.com"});
    check(
        &emulator,
        &p,
        &[
            (probe("iam:PassRole", "arn:aws:iam::123456789012:role/openclaw-gateway", to_ec2.clone()), false),
            (probe("iam:PassRole", "arn:aws:iam::123456789012:role/admin", to_ec2), false),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_recovery_touches_only_the_gateway_its_template_its_role_and_what_it_creates() {
    let emulator = Emulator::start().await.unwrap();
    let stack = Stack::new(&emulator)
        .await
        .unwrap()
        .param("SpotLaunchTemplateId", TEMPLATE)
        .param("SpotInstanceRoleName", "openclaw-gateway")
        .param("GatewayElasticIpAllocationId", EIP)
        .bucket("BackupBucket", "backups")
        .with_spot_follow_up(&emulator)
        .await
        .unwrap();
    let p = principal(&emulator, "SpotRecoveryFunction", stack).await;
    let gateway = json!({"aws:ResourceTag/openclaw:role": "gateway"});
    let standby = json!({"aws:ResourceTag/openclaw:managed-by": "openclaw-ops"});
    let foreign = json!({"aws:ResourceTag/Name": "other-app"});
    let delete_tags = |resource: &Value, keys: &[&str]| {
        let mut context = resource.clone();
        context["aws:TagKeys"] = json!(keys);
        context
    };
    let ours = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/{TEMPLATE}");
    let theirs = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/lt-0bbbbbbbbbbbbbbbb");
    // `from_template`: whether the resource is the launch template's own or the request's.
    let launch_with = |resource: &str, template: &str, tags: bool, from_template: bool| {
        let mut context =
            json!({"ec2:LaunchTemplate": template, "ec2:IsLaunchTemplateResource": from_template.to_string()});
        if tags {
            context["aws:RequestTag/openclaw:managed-by"] = json!("openclaw-ops");
        }
        probe("ec2:RunInstances", resource, context)
    };
    let launch = |resource: &str, template: &str, tags: bool| launch_with(resource, template, tags, true);
    let role = "arn:aws:iam::123456789012:role/openclaw-gateway";
    let follow_up_role = &format!("arn:aws:iam::{ACCOUNT}:role/openclaw-ops-spot-follow-up");
    let follow_up_schedule =
        |group: &str| format!("arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{group}/spot-follow-up-i-1-1");
    check(
        &emulator,
        &p,
        &[
            (probe("ec2:AttachVolume", &arn("instance", "i-1"), gateway.clone()), true),
            (probe("ec2:AttachVolume", &arn("volume", "vol-1"), gateway.clone()), true),
            // a standby not yet tagged as the gateway, and a foreign instance or volume
            (probe("ec2:AttachVolume", &arn("instance", "i-2"), standby.clone()), false),
            (probe("ec2:AttachVolume", &arn("volume", "vol-2"), foreign.clone()), false),
            (probe("ec2:DetachVolume", &arn("volume", "vol-2"), foreign.clone()), false),
            (probe("ec2:CreateTags", &arn("instance", "i-1"), gateway.clone()), true),
            (probe("ec2:CreateTags", &arn("instance", "i-2"), standby.clone()), true),
            (probe("ec2:CreateTags", &arn("instance", "i-3"), foreign.clone()), false),
            (probe("ec2:CreateTags", &arn("volume", "vol-2"), foreign.clone()), false),
            (probe("ec2:CreateTags", &arn("instance", "*"), json!({"ec2:CreateAction": "RunInstances"})), true),
            // The gateway back from a stop sheds its warning and rebalance records, nothing else.
            (probe("ec2:DeleteTags", &arn("instance", "i-1"), delete_tags(&gateway, &["openclaw:spot-warning"])), true),
            (
                probe(
                    "ec2:DeleteTags",
                    &arn("instance", "i-1"),
                    delete_tags(&gateway, &["openclaw:spot-warning", "openclaw:rebalance"]),
                ),
                true,
            ),
            (
                probe(
                    "ec2:DeleteTags",
                    &arn("instance", "i-1"),
                    delete_tags(&gateway, &["openclaw:spot-warning", "Name"]),
                ),
                false,
            ),
            (probe("ec2:DeleteTags", &arn("instance", "i-1"), delete_tags(&gateway, &["openclaw:role"])), false),
            // No keys at all: DeleteTags would delete every tag.
            (probe("ec2:DeleteTags", &arn("instance", "i-1"), delete_tags(&gateway, &[])), false),
            (
                probe("ec2:DeleteTags", &arn("instance", "i-2"), delete_tags(&standby, &["openclaw:spot-warning"])),
                false,
            ),
            (
                probe("ec2:DeleteTags", &arn("instance", "i-3"), delete_tags(&foreign, &["openclaw:spot-warning"])),
                false,
            ),
            (launch(&arn("instance", "*"), &ours, true), true),
            (launch(&arn("instance", "*"), &ours, false), false),
            (launch(&arn("subnet", "subnet-1"), &ours, false), true),
            (launch(&arn("image", "ami-1"), &theirs, false), false),
            (launch(&ours, &ours, false), true),
            (launch(&theirs, &theirs, false), false),
            // The template's own image only; the subnet and groups may be the request's.
            (launch_with(&arn("image", "ami-1"), &ours, false, false), false),
            (launch_with(&arn("security-group", "sg-1"), &ours, false, false), true),
            (launch_with(&arn("subnet", "subnet-1"), &ours, false, false), true),
            (launch(&arn("key-pair", "mine"), &ours, false), false),
            (probe("iam:PassRole", role, json!({"iam:PassedToService": "ec2.amazonaws.com"})), true),
            (probe("iam:PassRole", role, json!({"iam:PassedToService": "lambda.amazonaws.com"})), false),
            // The follow-up check: schedules in the stack's group only, Scheduler's role to Scheduler only.
            (probe("scheduler:CreateSchedule", &follow_up_schedule(SPOT_FOLLOW_UP_GROUP), json!({})), true),
            (probe("scheduler:CreateSchedule", &follow_up_schedule("default"), json!({})), false),
            (probe("scheduler:DeleteSchedule", &follow_up_schedule(SPOT_FOLLOW_UP_GROUP), json!({})), false),
            (probe("iam:PassRole", follow_up_role, json!({"iam:PassedToService": "scheduler.amazonaws.com"})), true),
            (probe("iam:PassRole", follow_up_role, json!({"iam:PassedToService": "ec2.amazonaws.com"})), false),
            (probe("iam:PassRole", role, json!({"iam:PassedToService": "scheduler.amazonaws.com"})), false),
            (
                probe(
                    "iam:PassRole",
                    "arn:aws:iam::123456789012:role/admin",
                    json!({"iam:PassedToService": "ec2.amazonaws.com"}),
                ),
                false,
            ),
            (
                probe("ssm:SendCommand", &arn("instance", "i-1"), json!({"ssm:resourceTag/openclaw:role": "gateway"})),
                true,
            ),
            (probe("ssm:SendCommand", &arn("instance", "i-3"), foreign.clone()), false),
            (probe("ssm:SendCommand", "arn:aws:ssm:us-east-1::document/AWS-RunShellScript", json!({})), true),
            // The last-minute backup: URLs it signs write new daily objects only; it reads them back.
            (
                probe(
                    "s3:PutObject",
                    "arn:aws:s3:::backups/openclaw/daily/v/a.tar.gz",
                    json!({"s3:if-none-match": "*"}),
                ),
                true,
            ),
            (probe("s3:PutObject", "arn:aws:s3:::backups/openclaw/daily/v/a.tar.gz", json!({})), false),
            (
                probe(
                    "s3:PutObject",
                    "arn:aws:s3:::backups/openclaw/monthly/v/a.tar.gz",
                    json!({"s3:if-none-match": "*"}),
                ),
                false,
            ),
            (probe("s3:GetObject", "arn:aws:s3:::backups/openclaw/daily/v/a.tar.gz", json!({})), true),
            (probe("s3:DeleteObjectVersion", "arn:aws:s3:::backups/openclaw/daily/v/a.tar.gz", json!({})), false),
            (probe("ssm:SendCommand", "arn:aws:ssm:us-east-1::document/AWS-RunPowerShellScript", json!({})), false),
            (probe("ec2:AssociateAddress", &arn("elastic-ip", EIP), json!({})), true),
            (probe("ec2:AssociateAddress", &arn("elastic-ip", "eipalloc-0bbbbbbbbbbbbbbbb"), json!({})), false),
            (probe("ec2:AssociateAddress", &arn("instance", "i-1"), gateway), true),
            (probe("ec2:AssociateAddress", &arn("instance", "i-3"), foreign.clone()), false),
            (
                probe(
                    "ec2:CreateVolume",
                    &arn("volume", "*"),
                    json!({"aws:RequestTag/openclaw:managed-by": "openclaw-ops"}),
                ),
                true,
            ),
            (probe("ec2:CreateVolume", &arn("volume", "*"), json!({})), false),
            (
                probe(
                    "ec2:CreateVolume",
                    &arn("snapshot", "snap-1"),
                    json!({"aws:ResourceTag/openclaw:managed-by": "openclaw-ops"}),
                ),
                true,
            ),
            (probe("ec2:CreateVolume", &arn("snapshot", "snap-9"), foreign), false),
            (
                probe(
                    "cloudwatch:PutMetricAlarm",
                    "arn:aws:cloudwatch:us-east-1:123456789012:alarm:openclaw-ops-gateway-cpu",
                    json!({}),
                ),
                true,
            ),
            (
                probe(
                    "cloudwatch:PutMetricAlarm",
                    "arn:aws:cloudwatch:us-east-1:123456789012:alarm:billing",
                    json!({}),
                ),
                false,
            ),
            (
                probe(
                    "ec2:TerminateInstances",
                    &arn("instance", "i-1"),
                    json!({"aws:ResourceTag/openclaw:role": "gateway"}),
                ),
                false,
            ),
        ],
    )
    .await;
    // The key, through EC2 only, and grants only for AWS resources.
    let key = p.policy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "GrantTheKeyToEc2Only").unwrap()["Resource"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let via_ec2 = json!({"kms:ViaService": "ec2.us-east-1.amazonaws.com", "kms:GrantIsForAWSResource": "true"});
    check(
        &emulator,
        &p,
        &[
            (probe("kms:CreateGrant", &key, via_ec2.clone()), true),
            (probe("kms:CreateGrant", &key, json!({"kms:ViaService": "ec2.us-east-1.amazonaws.com"})), false),
            (probe("kms:GenerateDataKeyWithoutPlaintext", &key, via_ec2), true),
            (probe("kms:GenerateDataKeyWithoutPlaintext", &key, json!({})), false),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backup_reads_backups_runs_the_shell_document_on_gateways_and_writes_only_new_objects() {
    let emulator = Emulator::start().await.unwrap();
    let stack = Stack::new(&emulator).await.unwrap().bucket("BackupBucket", "backups");
    let p = principal(&emulator, "S3BackupFunction", stack).await;
    let once = json!({"s3:if-none-match": "*"});
    let daily = "arn:aws:s3:::backups/openclaw/daily/gw/a.tar.gz";
    check(
        &emulator,
        &p,
        &[
            (probe("s3:ListBucket", "arn:aws:s3:::backups", json!({"s3:prefix": "openclaw/daily/gw/"})), true),
            (probe("s3:ListBucket", "arn:aws:s3:::backups", json!({})), false),
            (probe("s3:GetObject", daily, json!({})), true),
            (probe("s3:GetObjectVersion", daily, json!({})), true),
            (probe("s3:GetObject", "arn:aws:s3:::other/openclaw/a", json!({})), false),
            // Every write (its own, and the instance's through the URLs it signs) creates, never overwrites.
            (probe("s3:PutObject", "arn:aws:s3:::backups/openclaw/monthly/gw/a.tar.gz", once.clone()), true),
            (probe("s3:PutObject", daily, once.clone()), true),
            (probe("s3:PutObject", daily, json!({})), false),
            (probe("s3:PutObject", daily, json!({"s3:if-none-match": "\"etag\""})), false),
            (probe("s3:PutObject", "arn:aws:s3:::backups/elsewhere/a", once.clone()), false),
            (probe("s3:PutObjectRetention", daily, json!({})), true),
            // Nothing deletes, and nothing bypasses a lock.
            (probe("s3:DeleteObject", "arn:aws:s3:::backups/openclaw/monthly/gw/a.tar.gz", json!({})), false),
            (probe("s3:DeleteObjectVersion", daily, json!({})), false),
            (probe("s3:BypassGovernanceRetention", daily, json!({})), false),
            (
                probe("ssm:SendCommand", &arn("instance", "i-1"), json!({"ssm:resourceTag/openclaw:role": "gateway"})),
                true,
            ),
            (probe("ssm:SendCommand", &arn("instance", "i-3"), json!({})), false),
        ],
    )
    .await;
}

/// The gateway's instance role (stacks/gateway.yaml): the SSM agent's calls, from an instance of
/// this account only, and nothing of SSM beyond them (AmazonSSMManagedInstanceCore, which it
/// replaced, reads every parameter of the account); the key only through Secrets Manager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_role_runs_the_ssm_agent_and_reads_no_parameter() {
    let emulator = Emulator::start().await.unwrap();
    let role = integration_tests::backup_bucket::gateway_instance_role(&emulator).await.unwrap();
    let from_instance = json!({"ec2:SourceInstanceARN": arn("instance", "i-0123456789abcdef0")});
    let from_elsewhere = json!({"ec2:SourceInstanceARN": "arn:aws:ec2:us-east-1:210987654321:instance/i-1"});
    let from_other_region = json!({"ec2:SourceInstanceARN": "arn:aws:ec2:eu-west-1:123456789012:instance/i-1"});
    let parameter = |name: &str| format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name}");
    let mut cases = vec![
        (probe("ssm:UpdateInstanceInformation", "*", from_instance.clone()), true),
        (probe("ssm:UpdateInstanceInformation", "*", json!({})), false),
        (probe("ssm:UpdateInstanceInformation", "*", from_elsewhere.clone()), false),
        (probe("ssm:UpdateInstanceInformation", "*", from_other_region), false),
    ];
    for action in [
        "ssmmessages:CreateControlChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenDataChannel",
        "ec2messages:GetMessages",
        "ec2messages:AcknowledgeMessage",
        "ec2messages:SendReply",
        "ec2messages:FailMessage",
        "ec2messages:DeleteMessage",
        "ec2messages:GetEndpoint",
    ] {
        cases.push((probe(action, "*", from_instance.clone()), true));
        cases.push((probe(action, "*", from_elsewhere.clone()), false));
    }
    // What AmazonSSMManagedInstanceCore held and the role no longer does, from the instance itself.
    for (action, resource) in [
        ("ssm:GetParameter", parameter("openclaw/anthropic-api-key")),
        ("ssm:GetParameter", parameter("any/other/team/secret")),
        ("ssm:GetParameters", parameter("any/other/team/secret")),
        ("ssm:GetParametersByPath", parameter("any")),
        ("ssm:GetDocument", format!("arn:aws:ssm:{REGION}:{ACCOUNT}:document/AWS-RunShellScript")),
        ("ssm:ListInstanceAssociations", "*".to_owned()),
        ("ssm:UpdateInstanceAssociationStatus", arn("instance", "i-0123456789abcdef0")),
        ("ssm:PutInventory", arn("instance", "i-0123456789abcdef0")),
        ("ssm:SendCommand", arn("instance", "i-0123456789abcdef0")),
        ("ssm:StartSession", arn("instance", "i-0123456789abcdef0")),
    ] {
        cases.push((probe(action, &resource, from_instance.clone()), false));
    }
    // The gateway's key decrypts only through Secrets Manager (its secrets).
    let key = "arn:aws:kms:us-east-1:123456789012:key/gw";
    let via = |service: &str| json!({"kms:ViaService": format!("{service}.{REGION}.amazonaws.com")});
    cases.extend([
        (probe("kms:Decrypt", key, via("secretsmanager")), true),
        (probe("kms:Decrypt", key, json!({})), false),
        (probe("kms:Decrypt", key, via("ssm")), false),
        (probe("kms:Decrypt", key, via("s3")), false),
        (probe("kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/other", via("secretsmanager")), false),
    ]);
    check(&emulator, &role, &cases).await;
    // Every KMS grant the role holds carries kms:ViaService.
    for statement in role.policy["Statement"].as_array().unwrap() {
        if statement["Action"].to_string().contains("kms:") {
            assert!(statement["Condition"]["StringEquals"]["kms:ViaService"].is_string(), "{statement}");
        }
    }
}
