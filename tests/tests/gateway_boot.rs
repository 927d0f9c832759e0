//! The gateway's user data (stacks/gateway.yaml), both tiers, run whole under bash the way an EC2
//! instance runs it, by testbed/gateway_boot.py: in a root filesystem built from Debian's packages
//! (testbed/gateway_rootfs.sh), with a loop device for the EBS data volume, the AWS calls against the
//! emulator through an instance metadata service that requires IMDSv2 tokens, and then the real
//! OpenClaw gateway (Node 24, the pinned release from npm) started from the unit the user data writes.
//!
//! Each tier boots twice with the same volume: a first instance, which attaches the blank volume,
//! waits for its device, formats it and signals once OpenClaw answers; then a replacement, as a stack
//! update makes one, which waits while the old instance still holds the volume, mounts it unformatted
//! and finds the first instance's data.
//!
//! Needs root (loop devices, mounts, namespaces); the first run builds the root filesystem and fills
//! npm's and pip's caches under target/gateway-boot (a few minutes), later runs reuse them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use integration_tests::emulator::Emulator;
use integration_tests::gateway_stack::{tier, user_data};
use integration_tests::iam::Principal;
use integration_tests::stack::Stack;
use integration_tests::template::Template;
use integration_tests::workspace_root;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DOMAIN: &str = "bot.example.com";
const STATE_DIR: &str = "/home/openclaw/data/openclaw";
/// The data volume's mount point: the state directory lives one level below it.
const DATA_DIR: &str = "/home/openclaw/data";

/// The root filesystem every boot starts from (built once, kept under target/).
fn rootfs() -> &'static PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = workspace_root().join("target/gateway-boot");
        let started = Instant::now();
        let out = std::process::Command::new(workspace_root().join("testbed/gateway_rootfs.sh")).arg(&dir).output();
        let out = out.expect("running testbed/gateway_rootfs.sh");
        assert!(
            out.status.success(),
            "testbed/gateway_rootfs.sh failed (it needs root and Debian's package mirror): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("gateway root filesystem ready in {:.0?}", started.elapsed());
        dir.join("rootfs")
    })
}

async fn launch(ec2: &aws_sdk_ec2::Client, image: &str, az: &str) -> String {
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("openclaw:role").value("gateway").build())
        .build();
    let out = ec2
        .run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
        .min_count(1)
        .max_count(1)
        .placement(aws_sdk_ec2::types::Placement::builder().availability_zone(az).build())
        .tag_specifications(tags)
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_owned()
}

struct Boot {
    spec: Value,
    work: PathBuf,
}

impl Boot {
    /// Boots the user data once and answers gateway_boot.py's report.
    async fn run(&self) -> Value {
        std::fs::create_dir_all(&self.work).unwrap();
        let spec_path = self.work.join("spec.json");
        std::fs::write(&spec_path, self.spec.to_string()).unwrap();
        let out = tokio::process::Command::new(workspace_root().join(".venv/bin/python"))
            .arg(workspace_root().join("testbed/gateway_boot.py"))
            .arg(&spec_path)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "gateway_boot.py failed: {stderr}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn lines(report: &Value, key: &str) -> String {
    format!("{key}:\n{}", report[key]["out"].as_str().unwrap_or_default())
}

/// What every successful boot shows, whichever instance it is.
fn check_boot(name: &str, r: &Value, auth_token: &str) {
    let context = format!(
        "{name}: user data exit {}\n--- stderr\n{}\n--- bootstrap log\n{}",
        r["user_data"]["code"],
        r["user_data"]["err"].as_str().unwrap_or_default(),
        r["bootstrap_log"].as_str().unwrap_or_default()
    );
    assert_eq!(r["user_data"]["code"], 0, "{context}");

    // dnf was asked only for AL2023 package names, Node 24 among them.
    let packages: Vec<&str> = r["dnf"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["packages"].as_array().unwrap())
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        r["dnf"].as_array().unwrap().iter().all(|c| c["missing"].as_array().unwrap().is_empty()),
        "{name}: {packages:?}"
    );
    for wanted in ["nodejs24", "nodejs24-npm", "git", "aws-cfn-bootstrap", "amazon-cloudwatch-agent", "sqlite"] {
        assert!(packages.contains(&wanted), "{name}: dnf never asked for {wanted}: {packages:?}");
    }
    assert!(r["node_version"].as_str().unwrap().starts_with("v24."), "{name}: node {}", r["node_version"]);
    assert!(r["gateway_version"].as_str().unwrap().contains("2026.9.6"), "{name}: {}", r["gateway_version"]);

    // The data volume: XFS, mounted by UUID one level above the state directory, which lives in it;
    // both owned by openclaw alone; OpenClaw's default state directory (~/.openclaw) leads there.
    let data = r["data_dir"]["out"].as_str().unwrap();
    assert_eq!(
        data.lines().collect::<Vec<_>>(),
        ["openclaw:openclaw 700", "the state directory is not a mount point", "on the volume", STATE_DIR],
        "{name}: {data}"
    );
    let state = r["state_dir"]["out"].as_str().unwrap();
    let mut state_lines = state.lines();
    assert_eq!(state_lines.next(), Some("openclaw:openclaw 700"), "{name}: {state}");
    let mount = state_lines.next().unwrap_or_default();
    let mount: Vec<&str> = mount.split_whitespace().collect();
    assert_eq!(mount, ["xfs", r["loop_device"].as_str().unwrap()], "{name}: {state}");
    let uuid = state_lines.next().unwrap_or_default();
    assert_eq!(state_lines.next(), Some("openclaw"), "{name}: the filesystem label (XFS allows 12 characters)");
    assert!(state.contains(&format!("UUID={uuid} {DATA_DIR} xfs defaults,nofail 0 2")), "{name}: fstab: {state}");

    // The units systemd would load, verified by systemd itself.
    let verify = &r["systemd_analyze_verify"];
    assert_eq!(verify["code"], 0, "{name}: systemd-analyze verify: {verify}");

    // The instance asked its metadata only with IMDSv2 tokens, and learned who it is and its keys.
    let imds = r["imds"].as_array().unwrap();
    assert!(imds.iter().all(|q| q["status"] != 401 && q["status"] != 400), "{name}: IMDSv1 was tried: {imds:?}");
    for path in ["/latest/meta-data/instance-id", "/latest/meta-data/iam/security-credentials/"] {
        assert!(imds.iter().any(|q| q["path"] == path && q["status"] == 200), "{name}: never asked {path}: {imds:?}");
    }

    // OpenClaw: /healthz on 18789, the webhook listener where the tier's traffic goes (the ALB's
    // target group to 8787 on the instance's address; nginx to 127.0.0.1:8787).
    assert_eq!(r["healthz"]["status"], 200, "{name}: {}\n{}", r["healthz"], r["gateway_log"]);
    assert!(r["healthz"]["body"].as_str().unwrap().contains("\"ok\":true"), "{name}: {}", r["healthz"]);
    assert_eq!(r["webhook_listening"], true, "{name}: nothing listens on 8787\n{}", r["gateway_log"]);
    let listeners = &r["listeners"];
    let on = |port: &str| -> Vec<String> {
        listeners[port].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
    };
    if name == "full" {
        // The ALB reaches both on the instance's address.
        assert!(on("18789").contains(&"0.0.0.0:18789".to_owned()), "{name}: {listeners}");
        assert_eq!(on("8787"), ["0.0.0.0:8787"], "{name}: {listeners}");
    } else {
        // Only nginx on the instance itself reaches them.
        assert!(on("18789").iter().all(|a| a.starts_with("127.0.0.1:") || a.starts_with("[::1]:")), "{listeners}");
        assert_eq!(on("8787"), ["127.0.0.1:8787"], "{name}: {listeners}");
    }

    // The webhook secret: derived from the auth token, handed to OpenClaw by reference, registered
    // with Telegram with the URL, demanded of every call, and never written to the state directory.
    let secret = r["webhook_secret"].as_str().unwrap();
    assert_eq!(secret, &sha256_hex(&format!("telegram-webhook:{auth_token}"))[..64], "{name}");
    let set_webhook = r["telegram"].as_array().unwrap().iter().rfind(|c| c["method"] == "setWebhook");
    let set_webhook =
        set_webhook.unwrap_or_else(|| panic!("{name}: OpenClaw never called setWebhook: {}", r["telegram"]));
    assert_eq!(set_webhook["params"]["url"], format!("https://{DOMAIN}/telegram-webhook"), "{name}");
    assert_eq!(set_webhook["params"]["secret_token"], secret, "{name}");
    let accepted = &r["webhook_with_secret"];
    assert_eq!(accepted["status"], 200, "{name}: {accepted}");
    assert_eq!(accepted["headers"]["x-openclaw-delivery-accepted"], "durable", "{name}: {accepted}");
    let refused = &r["webhook_without_secret"]["status"];
    assert!(refused.as_u64().is_some_and(|s| s >= 400), "{name}: a call without the secret got {refused}");
    let config = r["config_file"].as_str().unwrap();
    assert!(!config.contains(secret) && !config.contains(auth_token), "{name}: a secret in openclaw.json: {config}");

    // The Control UI's origins come from the stack, not from OpenClaw's runtime fallback.
    assert!(lines(r, "allowed_origins").contains(&format!("https://{DOMAIN}")), "{name}: {}", r["allowed_origins"]);
    assert!(
        !r["gateway_log"].as_str().unwrap().contains("seeded gateway.controlUi.allowedOrigins"),
        "{name}: OpenClaw had to make up the allowed origins"
    );

    // CloudFormation heard SUCCESS once, and only while /healthz answered; the first, lost signal
    // was sent again.
    let signals = r["cfn_signal"].as_array().unwrap();
    assert_eq!(signals[0]["delivered"], false, "{name}: the test bed drops the first signal: {signals:?}");
    let delivered: Vec<&Value> = signals.iter().filter(|s| s["delivered"] == true).collect();
    assert_eq!(delivered.len(), 1, "{name}: {signals:?}");
    assert_eq!(delivered[0]["success"], "true", "{name}: {signals:?}");
    assert!(signals.iter().all(|s| s["success"] == "true" && s["healthz"] == 200), "{name}: {signals:?}");

    // The CloudWatch agent gets the memory and disk metrics the suite's alarms read.
    let agent = r["cloudwatch_agent"].as_array().unwrap();
    assert_eq!(agent.len(), 1, "{name}");
    let metrics = agent[0]["config"]["metrics"]["metrics_collected"].to_string();
    assert!(metrics.contains("mem_used_percent") && metrics.contains("disk_used_percent"), "{name}: {metrics}");

    if name == "budget" {
        let port_80 = r["listeners"]["80"].as_array().unwrap();
        assert!(port_80.contains(&json!("0.0.0.0:80")), "{name}: nginx does not listen on 80: {port_80:?}");
        assert_eq!(r["nginx_test"]["code"], 0, "{name}: nginx -t: {}", r["nginx_test"]);
        let redirect = &r["nginx_redirect"];
        assert_eq!(redirect["status"], 301, "{name}: {redirect}");
        assert_eq!(redirect["headers"]["location"], format!("https://{DOMAIN}/telegram-webhook"), "{name}");
    }
}

async fn boots_twice(name: &str) {
    let rootfs = rootfs().clone();
    let emulator = Emulator::start().await.unwrap();
    let admin = emulator.admin().await;
    let ec2 = aws_sdk_ec2::Client::new(&admin);
    let secrets = aws_sdk_secretsmanager::Client::new(&admin);
    let t = tier(name);
    let az = format!("{}a", emulator.region);

    let image = ec2.describe_images().owners("amazon").send().await.unwrap().images()[0].image_id().unwrap().to_owned();
    let first = launch(&ec2, &image, &az).await;
    let volume = ec2.create_volume().availability_zone(&az).size(20).send().await.unwrap().volume_id.unwrap();
    let auth_token = "gatewayauthtoken0123456789abcdefghijklmnopqrstuv";
    let mut arns = BTreeMap::new();
    for (resource, value) in [
        ("AnthropicApiKeySecret", "sk-ant-testbed"),
        ("TelegramBotTokenSecret", "123456:TESTBED-token"),
        ("GatewayAuthTokenSecret", auth_token),
    ] {
        let arn = secrets.create_secret().name(format!("{name}-{resource}")).secret_string(value).send().await.unwrap();
        arns.insert(resource, arn.arn.unwrap());
    }
    // The instance's role: stacks/gateway.yaml's GatewayRole statements exactly as written (its
    // managed policies, SSM's and the backup policy, serve no boot step), resolved to this account.
    let key = aws_sdk_kms::Client::new(&admin).create_key().send().await.unwrap().key_metadata.unwrap();
    let log_group = format!("/openclaw/{name}/gateway");
    let log_group_arn = format!("arn:aws:logs:{}:123456789012:log-group:{log_group}:*", emulator.region);
    let mut stack = Stack::of(Template::load_file("stacks/gateway.yaml").unwrap(), &emulator.region)
        .unwrap()
        .resource("DataVolume", &volume, &[])
        .resource("GatewayKey", key.key_id(), &[("Arn", key.arn().unwrap())])
        .resource("GatewayLogGroup", &log_group, &[("Arn", log_group_arn.as_str())]);
    for (resource, arn) in &arns {
        stack = stack.resource(resource, arn, &[]);
    }
    let role = Principal::for_role(&emulator, "GatewayRole", &stack).await.unwrap();
    let keys = &role.keys;

    let mut values: BTreeMap<&str, String> = arns.into_iter().collect();
    values.insert("AWS::Region", emulator.region.clone());
    values.insert("DomainName", DOMAIN.into());
    values.insert("DataVolume", volume.clone());
    values.insert("GatewayLogGroup", log_group);
    values.insert(
        "BootstrapHandle",
        "https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com/arn%3Aaws%3Acloudformation/BootstrapHandle"
            .into(),
    );
    let script = user_data(&t, &values);
    let work = std::env::temp_dir().join(format!("openclaw-gateway-boot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("user-data.sh"), &script).unwrap();
    // The EBS volume: a sparse image file, a loop device per boot.
    let image_file = work.join("data-volume.img");
    std::fs::File::create(&image_file).unwrap().set_len(1 << 30).unwrap();

    // The memory the tier's instance type reports (MemTotal, kB) on the first boot: a t3.micro gets
    // swap, a t3.small not. (The replacement reports this machine's: writing its 2 GiB swap file
    // would outlast the old instance's hold on the volume that the scenario times.)
    let memory_kib = if name == "budget" { 949_000 } else { 1_955_000 };
    let spec = |instance: &str, boot: &str, release: Value| Boot {
        spec: json!({
            "rootfs": rootfs,
            "cache": workspace_root().join("target/gateway-boot/cache"),
            "work": work.join(boot),
            "user_data": work.join("user-data.sh"),
            "volume_image": image_file,
            "device": "/dev/sdf",
            "state_dir": STATE_DIR,
            "tier": name,
            "domain": DOMAIN,
            "openclaw_version": "2026.9.6",
            "certbot_version": "5.8.0",
            "emulator": {"url": emulator.url, "region": emulator.region, "admin": {
                "access_key_id": emulator.admin_keys().access_key_id,
                "secret_access_key": emulator.admin_keys().secret_access_key}},
            "instance": {"id": instance, "az": az, "role": "openclaw-gateway", "keys": {
                "access_key_id": keys.access_key_id, "secret_access_key": keys.secret_access_key}},
            "volume_id": volume,
            "device_delay": 3,
            "release_after": release,
            "cfn_signal_failures": 1,
            "memory_kib": if boot == "first" { json!(memory_kib) } else { Value::Null },
        }),
        work: work.join(boot),
    };

    // First boot: a blank volume, attached by the instance, its device late.
    let started = Instant::now();
    let one = spec(&first, "first", Value::Null).run().await;
    check_boot(name, &one, auth_token);
    let log = one["data_volume_log"].as_str().unwrap();
    assert!(log.contains("is blank, formatting it"), "{name}: {log}");
    // Swap below 1.5 GB of memory: 2 GiB, made by mkswap, kept in fstab.
    let swap = one["swapon"].as_array().unwrap();
    if name == "budget" {
        assert_eq!(swap.len(), 1, "{name}: {swap:?}");
        assert_eq!(swap[0]["args"], json!(["/swapfile"]), "{name}");
        assert_eq!(swap[0]["size"], 2u64 << 30, "{name}");
        assert_eq!((swap[0]["mode"].as_str(), swap[0]["signature"].as_bool()), (Some("0o600"), Some(true)), "{name}");
        assert!(one["fstab"].as_str().unwrap().contains("/swapfile none swap defaults 0 0"), "{name}");
    } else {
        assert!(swap.is_empty(), "{name}: a t3.small needs no swap: {swap:?}");
    }
    assert!(log.contains("waiting for /dev/sdf"), "{name}: the device was not waited for: {log}");
    let timeline = one["volume_timeline"].to_string();
    assert!(timeline.contains("attached at /dev/sdf") && timeline.contains("/dev/sdf appeared"), "{timeline}");
    eprintln!(
        "{name}: first boot took {} s in the user data ({:.0?} with the test bed's setup)",
        one["user_data"]["seconds"],
        started.elapsed()
    );

    // The full tier's replacement finds a volume from before the state directory moved one level
    // below the mount point (OpenClaw's files at the volume's top), which its boot moves down.
    let old_layout = name == "full";
    if old_layout {
        to_the_old_layout(&image_file, &work);
    }

    // A replacement (a stack update, or an early standby): it installs everything first, then looks
    // for the volume, which the old instance still holds and lets go of only 10 s later; the new one
    // waits, attaches it, and mounts it as it is.
    let second = launch(&ec2, &image, &az).await;
    let two =
        spec(&second, "second", json!({"seconds": 10, "from_instance": first, "after_waiting": true})).run().await;
    check_boot(name, &two, auth_token);
    let log = two["data_volume_log"].as_str().unwrap();
    assert!(!log.contains("formatting"), "{name}: the replacement formatted the data volume: {log}");
    assert!(log.contains(&format!("in-use\t{first}")), "{name}: it did not wait for the old instance: {log}");
    assert_eq!(two["marker_before"].as_str().unwrap().trim(), format!("written-by-{first}"), "{name}: data lost");
    assert_eq!(log.contains("moving OpenClaw's state from the volume's top"), old_layout, "{name}: {log}");
    let uuid = |r: &Value| r["state_dir"]["out"].as_str().unwrap().lines().nth(2).unwrap().to_owned();
    assert_eq!(uuid(&one), uuid(&two), "{name}: the filesystem changed");
    let attached = ec2.describe_volumes().volume_ids(&volume).send().await.unwrap();
    let attachment = &attached.volumes()[0].attachments()[0];
    assert_eq!(attachment.instance_id(), Some(second.as_str()), "{name}");

    // The SSM agent of the replacement starts with the role's keys (testbed/fake_ssm_agent.py: its
    // heartbeat, Session Manager's control channel) and takes a Run Command through ec2messages:
    // the role's SsmAgent* statements alone make the instance a managed node.
    let mut agent_env = serde_json::Map::new();
    for (k, v) in emulator.function_env(keys) {
        agent_env.insert(k, json!(v));
    }
    emulator.register_instance(&second, agent_env).await.unwrap();
    let managed = emulator.run_shell(&second, "echo managed".into()).await;
    assert_eq!(managed.map(|(out, _)| out.trim().to_owned()), Ok("managed".to_owned()), "{name}");

    // Both boots and the agent did what they did as the role, and the role allowed every call.
    let calls = emulator.calls_by(&role.keys).await.unwrap();
    let denied: Vec<_> = calls.iter().filter(|c| !c.allowed).collect();
    assert!(denied.is_empty(), "{name}: the instance role was denied: {denied:?}");
    let used: std::collections::BTreeSet<&str> = calls.iter().map(|c| c.action.as_str()).collect();
    for action in [
        "secretsmanager:GetSecretValue",
        "ec2:DescribeVolumes",
        "ec2:AttachVolume",
        "ssm:UpdateInstanceInformation",
        "ssmmessages:CreateControlChannel",
        "ssmmessages:OpenControlChannel",
        "ec2messages:GetMessages",
        "ec2messages:AcknowledgeMessage",
        "ec2messages:SendReply",
    ] {
        assert!(used.contains(action), "{name}: the instance never called {action}: {used:?}");
    }

    // What AmazonSSMManagedInstanceCore allowed and the role no longer does: reading a parameter
    // of the account that is not the gateway's (with the instance's own keys, as a taken-over
    // gateway would try).
    let ssm_admin = aws_sdk_ssm::Client::new(&admin);
    let parameter = "/other-team/database-password";
    ssm_admin
        .put_parameter()
        .name(parameter)
        .value("hunter2")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let ssm_role = aws_sdk_ssm::Client::new(&emulator.sdk_config(keys).await);
    let read = ssm_role.get_parameter().name(parameter).with_decryption(true).send().await;
    let error = read.expect_err("the instance role read another team's SSM parameter");
    assert_eq!(
        aws_sdk_ssm::error::ProvideErrorMetadata::code(&error),
        Some("AccessDeniedException"),
        "{name}: {error:?}"
    );
    let last = emulator.calls_by(keys).await.unwrap().into_iter().rfind(|c| c.action == "ssm:GetParameter");
    assert!(last.is_some_and(|c| !c.allowed), "{name}: the bed never saw the GetParameter");
    std::fs::remove_dir_all(&work).unwrap();
}

/// Puts the data volume's image back in the layout from before the state directory moved one
/// level down: OpenClaw's files at the top of the volume, no state directory.
fn to_the_old_layout(image: &std::path::Path, work: &std::path::Path) {
    let mount = work.join("old-layout");
    std::fs::create_dir_all(&mount).unwrap();
    let status = std::process::Command::new("mount").arg("-o").arg("loop").arg(image).arg(&mount).status().unwrap();
    assert!(status.success(), "mount -o loop {}", image.display());
    let state = mount.join(std::path::Path::new(STATE_DIR).file_name().unwrap());
    let moved = (|| -> std::io::Result<()> {
        for entry in std::fs::read_dir(&state)? {
            let entry = entry?;
            std::fs::rename(entry.path(), mount.join(entry.file_name()))?;
        }
        std::fs::remove_dir(&state)
    })();
    let status = std::process::Command::new("umount").arg(&mount).status().unwrap();
    moved.unwrap();
    assert!(status.success(), "umount {}", mount.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_tier_boots_formats_once_and_survives_a_replacement() {
    boots_twice("full").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_tier_boots_formats_once_and_survives_a_replacement() {
    boots_twice("budget").await;
}
