//! The gateway stack (stacks/gateway.yaml) as CloudFormation would receive it: rendered offline by
//! testbed/render_gateway.py (template.yaml through the SAM translator with DeployGateway=true, the
//! gateway stack once per tier with its conditions resolved), then held to the seed architecture's
//! network rules and cost estimate, and to the contracts the suite's functions rely on.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    process::{Command, Stdio},
};

use integration_tests::gateway_stack::rendered;
use integration_tests::workspace_root;
use serde_json::Value;

const TIERS: [&str; 2] = ["full", "budget"];

fn load(file: &str) -> Value {
    rendered()[file].clone()
}

fn tier(name: &str) -> Value {
    load(&format!("gateway-{name}.json"))
}

fn resources<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str(), &r["Properties"]))
        .collect()
}

fn resource<'a>(template: &'a Value, id: &str) -> &'a Value {
    template["Resources"].get(id).unwrap_or_else(|| panic!("no resource {id}"))
}

fn reference(v: &Value) -> Option<&str> {
    v.get("Ref").and_then(Value::as_str)
}

fn number(v: &Value) -> i64 {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or_else(|| panic!("not a number: {v}"))
}

fn tags(props: &Value) -> BTreeSet<(String, String)> {
    props["Tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|t| (t["Key"].as_str().unwrap().to_owned(), t["Value"].as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug)]
struct Ingress {
    group: String,
    cidr: Option<String>,
    source_group: Option<String>,
    from: i64,
    to: i64,
}

/// Every ingress rule of a tier: inline in security groups and as separate resources.
fn ingress_rules(template: &Value) -> Vec<Ingress> {
    let rule = |group: &str, r: &Value| {
        let (from, to) =
            if r["IpProtocol"] == "-1" { (0, 65535) } else { (number(&r["FromPort"]), number(&r["ToPort"])) };
        Ingress {
            group: group.to_owned(),
            cidr: r.get("CidrIp").or_else(|| r.get("CidrIpv6")).and_then(Value::as_str).map(str::to_owned),
            source_group: r.get("SourceSecurityGroupId").and_then(reference).map(str::to_owned),
            from,
            to,
        }
    };
    let mut out = Vec::new();
    for (id, props) in resources(template, "AWS::EC2::SecurityGroup") {
        for r in props["SecurityGroupIngress"].as_array().into_iter().flatten() {
            out.push(rule(id, r));
        }
    }
    for (_, props) in resources(template, "AWS::EC2::SecurityGroupIngress") {
        out.push(rule(reference(&props["GroupId"]).expect("GroupId names a group of the stack"), props));
    }
    out
}

/// Where the default route of the instance's subnet goes: "NatGatewayId" or "GatewayId" (the IGW).
fn instance_route(template: &Value) -> String {
    let subnet = reference(&resource(template, "GatewayInstance")["Properties"]["SubnetId"]).unwrap().to_owned();
    let table = resources(template, "AWS::EC2::SubnetRouteTableAssociation")
        .into_iter()
        .find(|(_, a)| reference(&a["SubnetId"]) == Some(subnet.as_str()))
        .and_then(|(_, a)| reference(&a["RouteTableId"]).map(str::to_owned))
        .expect("the instance's subnet has a route table");
    let (_, route) = resources(template, "AWS::EC2::Route")
        .into_iter()
        .find(|(_, r)| {
            reference(&r["RouteTableId"]) == Some(table.as_str()) && r["DestinationCidrBlock"] == "0.0.0.0/0"
        })
        .expect("a default route");
    ["NatGatewayId", "GatewayId"].into_iter().find(|k| route.get(*k).is_some()).unwrap().to_owned()
}

fn contains_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(key) || m.values().any(|x| contains_key(x, key)),
        Value::Array(a) => a.iter().any(|x| contains_key(x, key)),
        _ => false,
    }
}

#[test]
fn the_seeds_network_rules_hold_in_both_tiers() {
    for name in TIERS {
        let t = tier(name);
        let rules = ingress_rules(&t);
        assert!(!rules.is_empty(), "{name}: no ingress rules found at all");
        for r in &rules {
            assert!(!(r.from <= 22 && 22 <= r.to), "{name}: port 22 is open: {r:?}");
        }
        let open_to_the_world: BTreeSet<(String, i64, i64)> = rules
            .iter()
            .filter(|r| matches!(r.cidr.as_deref(), Some("0.0.0.0/0" | "::/0")))
            .map(|r| (r.group.clone(), r.from, r.to))
            .collect();
        let want: BTreeSet<(String, i64, i64)> = match name {
            "full" => [("AlbSecurityGroup".to_owned(), 443, 443)].into(),
            // 80 only for Let's Encrypt's HTTP-01 challenge and the redirect (the exception).
            _ => [("GatewaySecurityGroup".to_owned(), 443, 443), ("GatewaySecurityGroup".to_owned(), 80, 80)].into(),
        };
        assert_eq!(open_to_the_world, want, "{name}: what 0.0.0.0/0 reaches");
        for r in rules.iter().filter(|r| r.cidr.is_some()) {
            assert!(matches!(r.cidr.as_deref(), Some("0.0.0.0/0" | "::/0")), "{name}: unexpected CIDR rule {r:?}");
        }

        let launch = &resource(&t, "GatewayLaunchTemplate")["Properties"]["LaunchTemplateData"];
        assert_eq!(launch["MetadataOptions"]["HttpTokens"], "required", "{name}: IMDSv2 only");
        assert!(!contains_key(&t["Resources"], "KeyName"), "{name}: no key pair anywhere");
        for (id, subnet) in resources(&t, "AWS::EC2::Subnet") {
            assert_eq!(subnet["MapPublicIpOnLaunch"], false, "{name}: {id} hands out public addresses");
        }
        assert!(
            !serde_json::to_string(&t["Resources"]).unwrap().contains("\"AssociatePublicIpAddress\":true"),
            "{name}: an interface asks for a public IP"
        );
        let flow_logs = resources(&t, "AWS::EC2::FlowLog");
        assert_eq!(flow_logs.len(), 1, "{name}: VPC Flow Logs");
        assert_eq!(flow_logs[0].1["TrafficType"], "ALL");
    }
}

#[test]
fn full_tier_keeps_the_instance_private_behind_the_alb() {
    let t = tier("full");
    for r in ingress_rules(&t).iter().filter(|r| r.group == "GatewaySecurityGroup") {
        assert_eq!(r.source_group.as_deref(), Some("AlbSecurityGroup"), "only the ALB reaches the instance: {r:?}");
        assert!([8787, 18789].contains(&r.from) && r.from == r.to, "webhook and health check only: {r:?}");
    }
    assert_eq!(instance_route(&t), "NatGatewayId", "outbound through the NAT Gateway only");
    assert!(resources(&t, "AWS::EC2::EIPAssociation").is_empty(), "no address on the instance");
    for (id, eip) in resources(&t, "AWS::EC2::EIP") {
        assert!(eip.get("InstanceId").is_none(), "{id} is on the instance");
        let used_by_nat =
            resources(&t, "AWS::EC2::NatGateway").iter().any(|(_, n)| n["AllocationId"]["Fn::GetAtt"][0] == id);
        assert!(used_by_nat, "{id}: the full tier's only Elastic IP is the NAT Gateway's");
    }

    let listeners = resources(&t, "AWS::ElasticLoadBalancingV2::Listener");
    assert_eq!(listeners.len(), 1);
    let listener = listeners[0].1;
    assert_eq!((listener["Protocol"].as_str(), number(&listener["Port"])), (Some("HTTPS"), 443), "HTTPS only");
    assert!(listener["SslPolicy"].as_str().unwrap().contains("TLS13"), "a TLS 1.3 policy");
    let alb = &resource(&t, "LoadBalancer")["Properties"];
    let subnets = alb["Subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 2, "an ALB needs two zones");
    let cidr_of =
        |s: &Value| resource(&t, reference(s).unwrap())["Properties"]["CidrBlock"].as_str().unwrap().to_owned();
    assert_eq!(
        subnets.iter().map(cidr_of).collect::<BTreeSet<_>>(),
        ["10.0.1.0/24", "10.0.2.0/24"].map(String::from).into()
    );
    assert_eq!(cidr_of(&resource(&t, "GatewayInstance")["Properties"]["SubnetId"]), "10.0.10.0/24");

    let (_, group) = resources(&t, "AWS::ElasticLoadBalancingV2::TargetGroup").pop().unwrap();
    assert_eq!(number(&group["Port"]), 8787, "traffic to the Telegram webhook listener");
    assert_eq!(number(&group["HealthCheckPort"]), 18789);
    assert_eq!(group["HealthCheckPath"], "/healthz");
    let (_, association) = resources(&t, "AWS::WAFv2::WebACLAssociation").pop().expect("WAF on the ALB");
    assert_eq!(reference(&association["ResourceArn"]), Some("LoadBalancer"));
    let (_, acl) = resources(&t, "AWS::WAFv2::WebACL").pop().unwrap();
    let rules = serde_json::to_string(&acl["Rules"]).unwrap();
    assert!(rules.contains("RateBasedStatement") && rules.contains("GeoMatchStatement"), "{rules}");
    let alarms = resources(&t, "AWS::CloudWatch::Alarm");
    assert!(alarms.iter().any(|(_, a)| a["MetricName"] == "UnHealthyHostCount"), "an UnHealthyHostCount alarm");
}

#[test]
fn budget_tier_is_the_instance_with_an_elastic_ip_and_nginx() {
    let t = tier("budget");
    assert_eq!(instance_route(&t), "GatewayId", "straight out through the Internet Gateway");
    let (_, association) = resources(&t, "AWS::EC2::EIPAssociation").pop().expect("an Elastic IP");
    assert_eq!(reference(&association["InstanceId"]), Some("GatewayInstance"));
    for kind in ["AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::EC2::NatGateway", "AWS::WAFv2::WebACL"] {
        assert!(resources(&t, kind).is_empty(), "budget tier has no {kind}");
    }
    let script = user_data(&t);
    for needle in [
        "limit_req_zone",
        "limit_req zone=webhook",
        "/.well-known/acme-challenge/",
        "return 301 https://",
        "certbot certonly",
    ] {
        assert!(script.contains(needle), "nginx / Let's Encrypt setup lacks {needle:?}");
    }
    assert_eq!(cidr_of_instance_subnet(&t), "10.0.1.0/24");
}

fn cidr_of_instance_subnet(t: &Value) -> String {
    let subnet = reference(&resource(t, "GatewayInstance")["Properties"]["SubnetId"]).unwrap();
    resource(t, subnet)["Properties"]["CidrBlock"].as_str().unwrap().to_owned()
}

fn user_data(t: &Value) -> String {
    integration_tests::gateway_stack::user_data(t, &BTreeMap::new())
}

fn bash_parses(what: &str, script: &str) {
    let mut child = Command::new("bash").arg("-n").stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what} is not valid bash: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_user_data_and_the_scripts_it_installs_are_valid_bash() {
    for name in TIERS {
        let script = user_data(&tier(name));
        assert!(script.len() < 16 * 1024, "{name}: EC2 takes at most 16 KB of user data, got {}", script.len());
        bash_parses(&format!("{name}: user data"), &script);
        let mut installed = Vec::new();
        let mut rest = script.as_str();
        while let Some(start) = rest.find("cat > /usr/local/libexec/") {
            let header_end = start + rest[start..].find('\n').unwrap();
            let path = rest[start + "cat > ".len()..header_end].split_whitespace().next().unwrap().to_owned();
            let body_end = header_end + rest[header_end..].find("\nEOF\n").expect("heredoc ends");
            bash_parses(&format!("{name}: {path}"), &rest[header_end + 1..body_end]);
            installed.push(path);
            rest = &rest[body_end..];
        }
        assert_eq!(
            installed,
            [
                "/usr/local/libexec/openclaw-data-volume",
                "/usr/local/libexec/openclaw-secrets",
                "/usr/local/libexec/openclaw-start",
                "/usr/local/libexec/openclaw-tls"
            ],
            "{name}"
        );
        for needle in [
            "/etc/systemd/system/openclaw-gateway.service",
            "systemctl enable --now openclaw-gateway.service",
            "ExecStartPre=+/usr/local/libexec/openclaw-secrets",
            "openclaw gateway --port 18789",
            "amazon-cloudwatch-agent-ctl",
            "mem_used_percent",
            "disk_used_percent",
            "state_dir=/home/openclaw/data/openclaw",
            "data_dir=$(dirname \"$state_dir\")",
            "UUID=$uuid $data_dir xfs",
            "dnf install -y nodejs24 nodejs24-npm",
            "alternatives --set node /usr/bin/node-24",
        ] {
            assert!(script.contains(needle), "{name}: user data lacks {needle:?}");
        }
    }
}

#[test]
fn the_instance_and_its_data_volume_carry_what_the_suite_relies_on() {
    let template = load("template.json");
    let snapshot_tag = template["Parameters"]["SnapshotTag"]["Default"].as_str().unwrap().split_once('=').unwrap();
    let snapshot_tag = (snapshot_tag.0.to_owned(), snapshot_tag.1.to_owned());
    let gateway = ("openclaw:role".to_owned(), "gateway".to_owned());
    let managed = ("openclaw:managed-by".to_owned(), "openclaw-ops".to_owned());
    for name in TIERS {
        let t = tier(name);
        let instance = &resource(&t, "GatewayInstance")["Properties"];
        assert!(tags(instance).contains(&gateway) && tags(instance).contains(&managed), "{name}: instance tags");
        let launch = &resource(&t, "GatewayLaunchTemplate")["Properties"]["LaunchTemplateData"];
        let launch_tags = serde_json::to_string(&launch["TagSpecifications"]).unwrap();
        assert!(
            launch_tags.contains("\"openclaw:role\"") && launch_tags.contains("openclaw-ops"),
            "{name}: a replacement's tags"
        );

        // The data volume is a volume of its own, attached: terminating the instance never deletes it.
        let volumes = resources(&t, "AWS::EC2::Volume");
        assert_eq!(volumes.len(), 1, "{name}");
        let (id, volume) = volumes[0];
        let volume_tags = tags(volume);
        for tag in [&gateway, &snapshot_tag, &managed] {
            assert!(volume_tags.contains(tag), "{name}: data volume lacks {tag:?}");
        }
        assert_eq!(
            (number(&volume["Size"]), volume["VolumeType"].as_str(), &volume["Encrypted"]),
            (20, Some("gp3"), &Value::Bool(true))
        );
        assert_eq!(volume["KmsKeyId"]["Fn::GetAtt"][0], "GatewayKey", "{name}: encrypted with the stack's key");
        assert_eq!(resource(&t, id)["DeletionPolicy"], "Snapshot", "{name}: deleting the stack keeps a snapshot");
        // No attachment resource: a stack update replacing the instance would create the new
        // attachment while the old instance still holds the volume, and fail. The instance attaches
        // the volume itself once it is free (tests/tests/gateway_boot.rs boots a replacement).
        assert!(resources(&t, "AWS::EC2::VolumeAttachment").is_empty(), "{name}: an attachment resource");
        assert!(user_data(&t).contains("aws ec2 attach-volume"), "{name}: the instance attaches its volume");
        let (wait, _) =
            resources(&t, "AWS::CloudFormation::WaitCondition").pop().expect("the stack waits for the bootstrap");
        assert_eq!(resource(&t, wait)["DependsOn"], "GatewayInstance", "{name}");
        assert!(user_data(&t).contains("signal true"), "{name}: the bootstrap signals");
        let mappings = launch["BlockDeviceMappings"].as_array().unwrap();
        assert_eq!(mappings.len(), 1, "{name}: only the root volume comes with the launch");
        let root = &mappings[0]["Ebs"];
        assert_eq!(
            (number(&root["VolumeSize"]), root["VolumeType"].as_str(), &root["Encrypted"]),
            (20, Some("gp3"), &Value::Bool(true))
        );

        // The role: the SSM agent, its secrets, CloudWatch - nothing else; no grant at all on the
        // backups (the functions hand the instance pre-signed URLs for exactly one run's objects),
        // and no managed policy (AmazonSSMManagedInstanceCore reads every SSM parameter).
        let role = &resource(&t, "GatewayRole")["Properties"];
        assert!(role.get("ManagedPolicyArns").is_none(), "{name}: {}", role["ManagedPolicyArns"]);
        assert!(!serde_json::to_string(role).unwrap().contains("s3:"), "{name}: the instance role must not reach S3");
        let actions: BTreeSet<String> = role["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().iter())
            .flat_map(|s| match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
                other => panic!("{other}"),
            })
            .collect();
        for action in &actions {
            let service = action.split(':').next().unwrap();
            assert!(
                ["secretsmanager", "kms", "logs", "cloudwatch", "ec2", "ssm", "ssmmessages", "ec2messages"]
                    .contains(&service),
                "{name}: {action}"
            );
            if service == "ssm" {
                assert_eq!(action, "ssm:UpdateInstanceInformation", "{name}: the agent's heartbeat only");
            }
            if service == "ec2" {
                assert!(action.starts_with("ec2:Describe") || action == "ec2:AttachVolume", "{name}: {action}");
            }
        }
        // AttachVolume: the stack's data volume only, to an instance tagged as the gateway only.
        // The agent's grants: only for credentials of an instance of this account and region.
        for s in role["Policies"][0]["PolicyDocument"]["Statement"].as_array().unwrap() {
            if s["Sid"].as_str().unwrap_or_default().starts_with("SsmAgent") {
                let condition = serde_json::to_string(&s["Condition"]["ArnLike"]["ec2:SourceInstanceARN"]).unwrap();
                assert!(condition.contains(":instance/*"), "{name}: {s}");
            }
            // Every KMS grant of the instance through the service that uses the key.
            if serde_json::to_string(&s["Action"]).unwrap().contains("kms:") {
                assert!(s["Condition"]["StringEquals"].get("kms:ViaService").is_some(), "{name}: {s}");
            }
            if s["Action"] == "ec2:AttachVolume" {
                let resource = serde_json::to_string(&s["Resource"]).unwrap();
                assert!(
                    resource.contains("volume/${DataVolume}")
                        || (resource.contains("instance/*")
                            && s["Condition"]["StringEquals"]["aws:ResourceTag/openclaw:role"] == "gateway"),
                    "{name}: {s}"
                );
            }
        }
        let key = &resource(&t, "GatewayKey")["Properties"];
        assert_eq!(key["EnableKeyRotation"], true, "{name}");
    }
}

/// How a resource of the tier (or of the suite's own stack) accounts for one line of the seed's
/// estimate, as cost-check itemises it (functions/cost-check/src/estimate.json).
fn accounted_for(line: &str, tier_name: &str, t: &Value, suite: &Value) -> Result<String, String> {
    let launch = &resource(t, "GatewayLaunchTemplate")["Properties"]["LaunchTemplateData"];
    let one = |kind: &str| resources(t, kind).first().map(|(id, _)| id.to_string());
    let found = match line {
        l if l.starts_with("EC2 ") => {
            let want = l.trim_start_matches("EC2 ");
            (launch["InstanceType"] == want && !resources(t, "AWS::EC2::Instance").is_empty())
                .then(|| format!("GatewayInstance ({want})"))
        }
        "EBS 20 GB gp3" => resources(t, "AWS::EC2::Volume")
            .iter()
            .find(|(_, v)| number(&v["Size"]) == 20 && v["VolumeType"] == "gp3")
            .map(|(id, _)| format!("{id} (and the 20 GB root volume: two volumes where the seed priced one)")),
        "NAT Gateway" => one("AWS::EC2::NatGateway"),
        "ALB" => one("AWS::ElasticLoadBalancingV2::LoadBalancer"),
        "Secrets Manager (3 secrets)" => {
            let secrets = resources(t, "AWS::SecretsManager::Secret");
            (secrets.len() == 3).then(|| secrets.iter().map(|(id, _)| *id).collect::<Vec<_>>().join(", "))
        }
        "S3" => (resource(suite, "BackupBucket")["Type"] == "AWS::S3::Bucket").then(|| "BackupBucket (suite)".into()),
        "CloudWatch" => {
            let logs = one("AWS::Logs::LogGroup");
            let alarms = ["GatewayCpuAlarm", "GatewayMemoryAlarm", "GatewayDiskAlarm"]
                .iter()
                .all(|a| resource(suite, a)["Condition"] == "HasGatewayInstance");
            let deployed_turns_them_on = serde_json::to_string(&suite["Conditions"]["HasGatewayInstance"])
                .unwrap()
                .contains("GatewayIsDeployed");
            (logs.is_some() && alarms && deployed_turns_them_on)
                .then(|| "log groups + the suite's gateway alarms".into())
        }
        "KMS" => resources(t, "AWS::KMS::Key")
            .first()
            .filter(|(_, k)| k["EnableKeyRotation"] == true)
            .map(|(id, _)| id.to_string()),
        "Elastic IP" => resources(t, "AWS::EC2::EIPAssociation")
            .iter()
            .find(|(_, a)| reference(&a["InstanceId"]) == Some("GatewayInstance"))
            .map(|(id, _)| id.to_string()),
        // AWS WAF cannot attach to an Elastic IP: the budget tier's rate limit is nginx's, at no cost
        // (the README's cost table says so).
        "WAF" if tier_name == "budget" => (resources(t, "AWS::WAFv2::WebACL").is_empty()
            && user_data(t).contains("limit_req zone=webhook"))
        .then(|| "nginx limit_req on the instance (no AWS WAF: it cannot attach to an Elastic IP)".into()),
        "WAF" => one("AWS::WAFv2::WebACL"),
        _ => None,
    };
    found.ok_or_else(|| format!("{tier_name}: no resource accounts for the estimate's line {line:?}"))
}

#[test]
fn every_line_of_the_seeds_cost_estimate_is_a_resource_of_its_tier() {
    let estimate: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("functions/cost-check/src/estimate.json")).unwrap(),
    )
    .unwrap();
    let suite = load("template.json");
    for name in TIERS {
        let t = tier(name);
        let lines = estimate[name]["lines"].as_array().unwrap();
        assert!(lines.len() >= 7, "{name}: the seed itemises {} lines", lines.len());
        for line in lines {
            let line = line["name"].as_str().unwrap();
            if let Err(e) = accounted_for(line, name, &t, &suite) {
                panic!("{e}");
            }
        }
        // The seed's "CloudTrail: free tier" line (not in cost-check's estimate, having no price).
        let (_, trail) = resources(&t, "AWS::CloudTrail::Trail").pop().expect("CloudTrail");
        assert_eq!(
            (&trail["IsMultiRegionTrail"], &trail["EnableLogFileValidation"]),
            (&Value::Bool(true), &Value::Bool(true))
        );
        assert!(trail.get("KMSKeyId").is_some(), "{name}: the trail is encrypted");
    }
    // And a line this test does not know is not silently accepted.
    assert!(accounted_for("Route 53", "full", &tier("full"), &suite).is_err());
}

/// Every `Fn::GetAtt [Gateway, Outputs.X]` in the rendered suite template.
fn gateway_outputs_used(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(a)) = m.get("Fn::GetAtt")
                && a[0] == "Gateway"
            {
                out.insert(a[1].as_str().unwrap().trim_start_matches("Outputs.").to_owned());
            }
            m.values().for_each(|x| gateway_outputs_used(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| gateway_outputs_used(x, out)),
        _ => {}
    }
}

#[test]
fn the_suite_deploys_the_gateway_only_when_asked_and_points_its_functions_at_it() {
    let suite = load("template.json");
    assert_eq!(suite["Parameters"]["DeployGateway"]["Default"], "false", "off unless asked");
    let stack = resource(&suite, "Gateway");
    assert_eq!(stack["Type"], "AWS::CloudFormation::Stack", "the SAM translator made the nested stack");
    assert_eq!(stack["Condition"], "GatewayIsDeployed");
    assert!(stack["Properties"]["TemplateURL"].as_str().unwrap().ends_with("/gateway.yaml"));

    let gateway = integration_tests::template::Template::load_file("stacks/gateway.yaml").unwrap();
    let declared = gateway.doc["Parameters"].as_mapping().unwrap();
    let passed: BTreeSet<String> = stack["Properties"]["Parameters"].as_object().unwrap().keys().cloned().collect();
    for name in &passed {
        assert!(declared.contains_key(name.as_str()), "the suite passes {name}, which stacks/gateway.yaml lacks");
    }
    for (name, p) in declared {
        let name = name.as_str().unwrap();
        assert!(p.get("Default").is_some() || passed.contains(name), "stacks/gateway.yaml needs {name}");
    }
    assert_eq!(stack["Properties"]["Parameters"]["AlarmTopicArn"], serde_json::json!({"Ref": "OpsTopic"}));

    let mut used = BTreeSet::new();
    gateway_outputs_used(&suite, &mut used);
    let outputs = gateway.doc["Outputs"].as_mapping().unwrap();
    for name in &used {
        assert!(outputs.contains_key(name.as_str()), "the suite reads Outputs.{name}, which stacks/gateway.yaml lacks");
    }
    let environment = &resource(&suite, "SpotRecoveryFunction")["Properties"]["Environment"]["Variables"];
    for (variable, output) in [
        ("LAUNCH_TEMPLATE_ID", "LaunchTemplateId"),
        ("SUBNET_IDS", "InstanceSubnetId"),
        ("ELASTIC_IP_ALLOCATION_ID", "ElasticIpAllocationId"),
        ("TARGET_GROUP_ARN", "TargetGroupArn"),
    ] {
        let value = &environment[variable]["Fn::If"];
        assert_eq!(value[0], "GatewayIsDeployed", "{variable}");
        assert_eq!(value[1]["Fn::GetAtt"][1], format!("Outputs.{output}"), "{variable}");
    }
    assert_eq!(
        resource(&suite, "CostCheckFunction")["Properties"]["Environment"]["Variables"]["COST_TIER"]["Fn::If"][1]["Ref"],
        "Tier"
    );
    for alarm in [
        "GatewayCpuAlarm",
        "GatewayMemoryAlarm",
        "GatewayDiskAlarm",
        "GatewayStatusCheckAlarm",
        "GatewaySystemCheckAlarm",
    ] {
        let dimensions = serde_json::to_string(&resource(&suite, alarm)["Properties"]["Dimensions"]).unwrap();
        assert!(dimensions.contains("Outputs.InstanceId"), "{alarm}: {dimensions}");
    }
}

/// A stack update must not replace the instance because AWS published a newer AMI: an SSM-typed
/// parameter is resolved again on every update (the stack's first form did that).
#[test]
fn the_ami_stays_put_under_a_stack_update_unless_the_operator_names_another() {
    for name in TIERS {
        let t = tier(name);
        for (p, decl) in t["Parameters"].as_object().unwrap() {
            assert!(
                !decl["Type"].as_str().unwrap_or_default().starts_with("AWS::SSM::Parameter::Value"),
                "{name}: parameter {p} is re-resolved on every stack update"
            );
        }
        let image = &resource(&t, "GatewayLaunchTemplate")["Properties"]["LaunchTemplateData"]["ImageId"];
        // Rendered with ImageId at its default (empty): the dynamic reference.
        assert_eq!(
            image.as_str(),
            Some("{{resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64}}"),
            "{name}: the newest AL2023 at creation, as a dynamic reference"
        );
    }
}

#[test]
fn openclaw_and_certbot_are_pinned_to_the_releases_the_boot_test_runs() {
    let suite = load("template.json");
    for name in TIERS {
        assert_eq!(tier(name)["Parameters"]["OpenClawVersion"]["Default"], "2026.9.6", "{name}");
    }
    // Only the budget tier installs certbot; its version is the stack's own parameter.
    let budget = tier("budget");
    assert_eq!(budget["Parameters"]["CertbotVersion"]["Default"], "5.8.0");
    let script = user_data(&budget);
    assert!(script.contains("pip install --quiet \"certbot==5.8.0\""), "certbot is installed at its pinned version");
    assert!(!script.contains("install --quiet certbot\n"), "an unpinned certbot install is left");
    assert_eq!(suite["Parameters"]["OpenClawVersion"]["Default"], "2026.9.6", "template.yaml passes its own default");
}

/// RunInstances has no "on-demand" market type, and EC2 applies a launch template's market to a
/// request that names none: the template spot-recovery launches replacements from must name no
/// market, or its On-Demand fallback is Spot too (tests/tests/spot_market.rs launches both). The
/// first instance of a Spot gateway comes from a twin that differs by the Spot request alone.
#[test]
fn replacements_launch_from_a_template_without_a_market_and_the_first_spot_instance_from_its_twin() {
    for name in TIERS {
        let t = tier(name);
        let replacement = &resource(&t, "GatewayLaunchTemplate")["Properties"]["LaunchTemplateData"];
        assert!(!contains_key(replacement, "InstanceMarketOptions"), "{name}: the replacement template names a market");
        let mut twin = resource(&t, "GatewaySpotLaunchTemplate")["Properties"]["LaunchTemplateData"].clone();
        let market = twin.as_object_mut().unwrap().remove("InstanceMarketOptions").expect("the twin asks for Spot");
        assert_eq!(market["MarketType"], "spot", "{name}");
        assert_eq!(market["SpotOptions"]["InstanceInterruptionBehavior"], "terminate", "{name}");
        assert_eq!(&twin, replacement, "{name}: the twin differs from the replacement template beyond its market");
        let first = &resource(&t, "GatewayInstance")["Properties"]["LaunchTemplate"];
        assert_eq!(
            reference(&first["LaunchTemplateId"]),
            Some("GatewaySpotLaunchTemplate"),
            "{name}: the first instance"
        );
        assert_eq!(
            t["Outputs"]["LaunchTemplateId"]["Value"],
            serde_json::json!({"Ref": "GatewayLaunchTemplate"}),
            "{name}: spot-recovery is given the replacement template"
        );
    }
    let suite = load("template.json");
    let env = &suite["Resources"]["SpotRecoveryFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        env["LAUNCH_TEMPLATE_ID"]["Fn::If"][1],
        serde_json::json!({"Fn::GetAtt": ["Gateway", "Outputs.LaunchTemplateId"]}),
        "spot-recovery's template with DeployGateway"
    );
}

/// An early standby (launched on a rebalance recommendation) gets the data volume only at the
/// interruption, maybe hours later: everything that needs no volume is done before the user data
/// waits for it, so the standby serves as soon as it is handed the volume.
#[test]
fn the_user_data_installs_everything_before_it_waits_for_the_data_volume() {
    for name in TIERS {
        let script = user_data(&tier(name));
        let at = |needle: &str| script.find(needle).unwrap_or_else(|| panic!("{name}: user data lacks {needle:?}"));
        let wait = at("systemctl start openclaw-data-volume.service");
        assert_eq!(script.matches("systemctl start openclaw-data-volume.service").count(), 1, "{name}: waits once");
        for before in [
            "npm-24 install --global",
            "cat > /etc/systemd/system/openclaw-gateway.service",
            "amazon-cloudwatch-agent-ctl",
            "systemctl enable --now openclaw-tls.timer",
        ] {
            assert!(at(before) < wait, "{name}: {before:?} waits for the data volume");
        }
        for after in ["openclaw config set --batch-json", "systemctl enable --now openclaw-gateway.service", "/healthz"]
        {
            assert!(wait < at(after), "{name}: {after:?} comes before the data volume is there");
        }
    }
}
