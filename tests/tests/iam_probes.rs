//! The template's grants probed with the requests that matter, evaluated by the test bed as AWS
//! evaluates them: what each function must be able to do, and what a forged tag, another template,
//! another role or a re-tag must not let it do. (The end-to-end tests show the grants suffice; these
//! show they are no wider than the function's job.)

use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::stack::{ACCOUNT, Stack};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_recovery_touches_only_the_gateway_its_template_its_role_and_what_it_creates() {
    let emulator = Emulator::start().await.unwrap();
    let stack = Stack::new(&emulator)
        .await
        .unwrap()
        .param("SpotLaunchTemplateId", TEMPLATE)
        .param("GatewayElasticIpAllocationId", EIP)
        .bucket("BackupBucket", "backups");
    let p = principal(&emulator, "SpotRecoveryFunction", stack).await;
    let gateway = json!({"aws:ResourceTag/openclaw:role": "gateway"});
    let standby = json!({"aws:ResourceTag/openclaw:managed-by": "openclaw-ops"});
    let foreign = json!({"aws:ResourceTag/Name": "other-app"});
    let ours = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/{TEMPLATE}");
    let theirs = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/lt-0bbbbbbbbbbbbbbbb");
    let launch = |resource: &str, template: &str, tags: bool| {
        let mut context = json!({"ec2:LaunchTemplate": template, "ec2:IsLaunchTemplateResource": "true"});
        if tags {
            context["aws:RequestTag/openclaw:managed-by"] = json!("openclaw-ops");
        }
        probe("ec2:RunInstances", resource, context)
    };
    let role = "arn:aws:iam::123456789012:role/openclaw-gateway";
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
            (probe("ec2:CreateTags", &arn("instance", "i-2"), standby), true),
            (probe("ec2:CreateTags", &arn("instance", "i-3"), foreign.clone()), false),
            (probe("ec2:CreateTags", &arn("volume", "vol-2"), foreign.clone()), false),
            (probe("ec2:CreateTags", &arn("instance", "*"), json!({"ec2:CreateAction": "RunInstances"})), true),
            (launch(&arn("instance", "*"), &ours, true), true),
            (launch(&arn("instance", "*"), &ours, false), false),
            (launch(&arn("subnet", "subnet-1"), &ours, false), true),
            (launch(&arn("image", "ami-1"), &theirs, false), false),
            (launch(&ours, &ours, false), true),
            (launch(&theirs, &theirs, false), false),
            (probe("iam:PassRole", role, json!({"iam:PassedToService": "ec2.amazonaws.com"})), true),
            (probe("iam:PassRole", role, json!({"iam:PassedToService": "lambda.amazonaws.com"})), false),
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
