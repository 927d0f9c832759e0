//! template.yaml, checked where the emulator cannot: the scoping of every grant (moto ignores
//! Condition keys and non-`*` resources), the configuration each function receives, and the
//! settings the suite promises (cfn-lint checks the rest in the test command).

use std::collections::BTreeSet;

use integration_tests::template::{Statement, Template};
use serde_norway::Value;

const FUNCTIONS: &[&str] = &["EbsSnapshotsFunction", "TelegramNotifyFunction", "CostCheckFunction", "S3BackupFunction"];

fn is_read_only(action: &str) -> bool {
    let name = action.split(':').nth(1).unwrap_or(action);
    ["Describe", "List", "Get"].iter().any(|p| name.starts_with(p))
}

fn is_wildcard(resource: &Value) -> bool {
    match resource {
        Value::String(s) => s == "*",
        Value::Sequence(items) => items.iter().any(is_wildcard),
        _ => false,
    }
}

#[test]
fn every_mutating_grant_is_scoped_to_a_resource_or_a_tag() {
    let template = Template::load().unwrap();
    for function in FUNCTIONS {
        for s in template.function_statements(function).unwrap() {
            assert_eq!(s.effect, "Allow", "{function}: {s:?}");
            // No resource types in the Service Authorization Reference: "*" is the only scope, and
            // cancelling a command runs nothing.
            let unscopable = ["ssm:CancelCommand"];
            let mutating: Vec<_> =
                s.actions.iter().filter(|a| !is_read_only(a) && !unscopable.contains(&a.as_str())).collect();
            if mutating.is_empty() {
                continue;
            }
            assert!(
                !is_wildcard(&s.resource),
                "{function} {:?}: {mutating:?} on Resource \"*\"; scope it to ARNs or a tag condition",
                s.sid
            );
        }
    }
}

#[test]
fn each_function_gets_exactly_the_configuration_it_reads() {
    let template = Template::load().unwrap();
    let cases: [(&str, &[&str]); 4] = [
        (
            "S3BackupFunction",
            &[
                "NOTIFY_TOPIC_ARN",
                "GATEWAY_TAG",
                "BACKUP_BUCKET",
                "BACKUP_PREFIX",
                "BACKUP_KMS_KEY_ID",
                "BACKUP_DAILY_RETENTION_DAYS",
                "BACKUP_OBJECT_LOCK",
                "STATE_DIR",
                "DRY_RUN",
            ],
        ),
        (
            "CostCheckFunction",
            &[
                "NOTIFY_TOPIC_ARN",
                "COST_TIER",
                "COST_ESTIMATE",
                "COST_WARN_PCT",
                "COST_ALERT_PCT",
                "COST_PART_WARN_USD",
                "COST_PART_ALERT_USD",
                "COST_TAG",
                "COST_SUITE_TAG",
                "COST_GATEWAY_STACK",
            ],
        ),
        (
            "EbsSnapshotsFunction",
            &[
                "NOTIFY_TOPIC_ARN",
                "SNAPSHOT_TAG",
                "RETENTION_DAYS",
                "MIN_SNAPSHOTS",
                "MAX_DELETES",
                "MAX_EVENT_AGE_SECONDS",
                "DRY_RUN",
                "SNAPSHOT_COPY_REGION",
                "SNAPSHOT_COPY_KMS_KEY_ID",
                "SNAPSHOT_CONSISTENCY",
                "FREEZE_LIMIT_SECONDS",
                "DATA_DEVICE",
                "STATE_DIR",
            ],
        ),
        (
            "TelegramNotifyFunction",
            &[
                "TELEGRAM_SECRET_ARN",
                "TELEGRAM_CHATS",
                "TELEGRAM_INSUFFICIENT_DATA",
                "TELEGRAM_DLQ_URL",
                "TELEGRAM_API_URL",
                "TELEGRAM_DELIVERY_BUCKET",
            ],
        ),
    ];
    for (function, want) in cases {
        let got: BTreeSet<String> = template.function_environment(function).unwrap().into_iter().collect();
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{function}");
    }
}

#[test]
fn the_suite_settings_match_the_architecture() {
    let template = Template::load().unwrap();
    let doc = &template.doc;
    assert_eq!(doc["Transform"].as_str(), Some("AWS::Serverless-2016-10-31"));
    let globals = &doc["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    // arm64 unless the Architecture parameter says x86_64 (for local builds without arm64 emulation).
    assert_eq!(globals["Architectures"][0], serde_norway::from_str::<Value>("!Ref Architecture").unwrap());
    assert_eq!(doc["Parameters"]["Architecture"]["Default"].as_str(), Some("arm64"));
    assert_eq!(globals["MemorySize"].as_u64(), Some(128));
    assert_eq!(globals["LoggingConfig"]["LogFormat"].as_str(), Some("JSON"));

    assert_eq!(doc["Parameters"]["SnapshotSchedule"]["Default"].as_str(), Some("cron(0 3 * * ? *)"));
    assert_eq!(doc["Parameters"]["SnapshotTag"]["Default"].as_str(), Some("openclaw:snapshot=daily"));
    assert_eq!(doc["Parameters"]["RetentionDays"]["Default"].as_u64(), Some(7));
    assert_eq!(doc["Parameters"]["MinSnapshots"]["Default"].as_u64(), Some(3));

    let key = template.resource("OpsKey").unwrap();
    assert_eq!(key["DeletionPolicy"].as_str(), Some("Retain"));
    assert_eq!(key["Properties"]["EnableKeyRotation"].as_bool(), Some(true));
    let key_policy = format!("{:?}", key["Properties"]["KeyPolicy"]);
    assert!(key_policy.contains("cloudwatch.amazonaws.com") && key_policy.contains("events.amazonaws.com"));
    for topic in ["OpsTopic", "OpsFallbackTopic"] {
        let props = &template.resource(topic).unwrap()["Properties"];
        assert!(props.get("KmsMasterKeyId").is_some(), "{topic} is encrypted with the stack's key");
    }

    let function = template.resource("EbsSnapshotsFunction").unwrap();
    assert_eq!(function["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"));
    assert_eq!(function["Metadata"]["BuildProperties"]["Binary"].as_str(), Some("ebs-snapshots"));
    assert_eq!(function["Properties"]["Events"]["Daily"]["Type"].as_str(), Some("Schedule"));
    let logs = template.resource("EbsSnapshotsLogGroup").unwrap();
    assert_eq!(logs["Properties"]["RetentionInDays"].as_u64(), Some(30));
    let alarm = template.resource("EbsSnapshotsErrorsAlarm").unwrap();
    assert_eq!(alarm["Properties"]["MetricName"].as_str(), Some("Errors"));
}

/// ebs-snapshots refuses scheduled events older than a genuine retry can be. That age is EventBridge's
/// retries on the Daily rule plus Lambda's asynchronous queue: the function's MAX_EVENT_AGE_SECONDS
/// must be their sum, and docs/ARCHITECTURE.md shows the same sum, so neither drifts from the template.
#[test]
fn ebs_snapshots_max_event_age_is_eventbridges_plus_lambdas() {
    let template = Template::load().unwrap();
    let props = &template.resource("EbsSnapshotsFunction").unwrap()["Properties"];
    let eventbridge =
        props["Events"]["Daily"]["Properties"]["RetryPolicy"]["MaximumEventAgeInSeconds"].as_u64().unwrap();
    let lambda = props["EventInvokeConfig"]["MaximumEventAgeInSeconds"].as_u64().unwrap();
    let configured = &props["Environment"]["Variables"]["MAX_EVENT_AGE_SECONDS"];
    let configured = configured.as_u64().or_else(|| configured.as_str().and_then(|s| s.parse().ok())).unwrap();
    assert_eq!(
        configured,
        eventbridge + lambda,
        "MAX_EVENT_AGE_SECONDS = EventBridge's {eventbridge} + Lambda's {lambda}"
    );
    let docs = std::fs::read_to_string(integration_tests::workspace_root().join("docs/ARCHITECTURE.md")).unwrap();
    let derivation = format!("{eventbridge} + {lambda} = {configured}");
    assert!(docs.contains(&derivation), "docs/ARCHITECTURE.md shows the derivation `{derivation}`");

    let params = &template.doc["Parameters"];
    assert_eq!(params["MinSnapshots"]["MinValue"].as_u64(), Some(1), "a floor of 0 lets a whole history expire");
    assert_eq!(params["MaxDeletesPerRun"]["Default"].as_u64(), Some(20));
    assert_eq!(
        props["Environment"]["Variables"]["MAX_DELETES"],
        serde_norway::from_str::<Value>("!Ref MaxDeletesPerRun").unwrap()
    );
}

/// Every deleted snapshot stays restorable: a Region-level EBS Recycle Bin rule (a tag-level one is
/// escaped by re-tagging first), locked by default, retention a parameter defaulting to 7 days.
#[test]
fn deleted_snapshots_go_to_a_locked_region_level_recycle_bin() {
    let template = Template::load().unwrap();
    let rule = template.resource("SnapshotRecycleBinRule").unwrap();
    assert_eq!(rule["Type"].as_str(), Some("AWS::Rbin::Rule"));
    let props = &rule["Properties"];
    assert_eq!(props["ResourceType"].as_str(), Some("EBS_SNAPSHOT"));
    assert!(props.get("ResourceTags").is_none(), "Region-level: no resource tags to escape by");
    assert_eq!(props["RetentionPeriod"]["RetentionPeriodUnit"].as_str(), Some("DAYS"));
    assert_eq!(
        props["RetentionPeriod"]["RetentionPeriodValue"],
        serde_norway::from_str::<Value>("!Ref RecycleBinRetentionDays").unwrap()
    );
    let params = &template.doc["Parameters"];
    assert_eq!(params["RecycleBinRetentionDays"]["Default"].as_u64(), Some(7));
    assert_eq!(params["RecycleBinLock"]["Default"].as_str(), Some("locked"));
    assert_eq!(params["RecycleBinExcludeTag"]["Default"].as_str(), Some(""), "no exclusion unless asked for");
    let lock = format!("{:?}", props["LockConfiguration"]);
    assert!(lock.contains("RecycleBinLocked") && lock.contains("UnlockDelayValue"), "{lock}");
    let readme = std::fs::read_to_string(integration_tests::workspace_root().join("README.md")).unwrap();
    assert!(readme.contains("aws ec2 restore-snapshot-from-recycle-bin"), "the README says how to bring one back");
}

fn alarm_actions(template: &Template, id: &str) -> String {
    format!("{:?}", template.resource(id).unwrap()["Properties"]["AlarmActions"])
}

#[test]
fn telegram_notify_failures_go_to_e_mail_never_back_into_ops() {
    let template = Template::load().unwrap();
    for id in ["TelegramNotifyErrorsAlarm", "TelegramUndeliveredAlarm"] {
        let actions = alarm_actions(&template, id);
        assert!(actions.contains("OpsFallbackTopic") && !actions.contains("\"OpsTopic\""), "{id}: {actions}");
    }
    let queue = &template.resource("TelegramQueue").unwrap()["Properties"];
    assert!(format!("{:?}", queue["RedrivePolicy"]).contains("TelegramDeadLetterQueue"));
    let events = &template.resource("TelegramNotifyFunction").unwrap()["Properties"]["Events"]["OpsQueue"];
    assert_eq!(events["Type"].as_str(), Some("SQS"));
    assert_eq!(events["Properties"]["FunctionResponseTypes"][0].as_str(), Some("ReportBatchItemFailures"));
}

#[test]
fn the_gateway_alarms_the_seed_names_publish_to_ops() {
    let template = Template::load().unwrap();
    for (id, metric) in [
        ("GatewayCpuAlarm", "CPUUtilization"),
        ("GatewayMemoryAlarm", "mem_used_percent"),
        ("GatewayDiskAlarm", "disk_used_percent"),
        ("GatewayStatusCheckAlarm", "StatusCheckFailed"),
        ("GatewaySystemCheckAlarm", "StatusCheckFailed_System"),
        ("GatewayLogErrorsAlarm", "GatewayLogErrors"),
    ] {
        let alarm = template.resource(id).unwrap();
        assert_eq!(alarm["Properties"]["MetricName"].as_str(), Some(metric), "{id}");
        assert!(alarm_actions(&template, id).contains("OpsTopic"), "{id}");
    }
    assert!(alarm_actions(&template, "GatewaySystemCheckAlarm").contains("ec2:recover"));
}

#[test]
fn heartbeats_alarm_after_26_hours_without_a_successful_run() {
    let template = Template::load().unwrap();
    // The daily functions; cost-check runs weekly, longer than an alarm can look back (7 days).
    for (alarm, function) in
        [("EbsSnapshotsHeartbeatAlarm", "EbsSnapshotsFunction"), ("S3BackupHeartbeatAlarm", "S3BackupFunction")]
    {
        let p = &template.resource(alarm).unwrap()["Properties"];
        assert_eq!(p["TreatMissingData"].as_str(), Some("breaching"));
        let period = p["Metrics"][0]["MetricStat"]["Period"].as_u64().unwrap();
        assert_eq!(period * p["EvaluationPeriods"].as_u64().unwrap(), 26 * 3600);
        assert_eq!(p["DatapointsToAlarm"], p["EvaluationPeriods"]);
        assert_eq!(p["Metrics"][2]["Expression"].as_str(), Some("invocations - errors"));
        assert!(format!("{:?}", p["Metrics"][0]).contains(function), "{alarm} watches {function}");
    }
}

#[test]
fn cost_check_runs_monthly_on_the_2nd_and_weekly_with_the_documented_inputs() {
    let template = Template::load().unwrap();
    let events = &template.resource("CostCheckFunction").unwrap()["Properties"]["Events"];
    assert_eq!(events["Monthly"]["Properties"]["Schedule"].as_str(), Some("cron(0 6 2 * ? *)"));
    assert_eq!(events["Monthly"]["Properties"]["Input"].as_str(), Some(r#"{"check": "monthly"}"#));
    assert_eq!(events["Weekly"]["Properties"]["Input"].as_str(), Some(r#"{"check": "weekly"}"#));
    let inputs = [
        events["Monthly"]["Properties"]["Input"].as_str().unwrap(),
        events["Weekly"]["Properties"]["Input"].as_str().unwrap(),
    ];
    let samples = ["monthly.json", "weekly.json"].map(|f| {
        std::fs::read_to_string(integration_tests::workspace_root().join("events/cost-check").join(f)).unwrap()
    });
    for (input, sample) in inputs.iter().zip(samples) {
        let a: serde_json::Value = serde_json::from_str(input).unwrap();
        let b: serde_json::Value = serde_json::from_str(&sample).unwrap();
        assert_eq!(a, b, "the sample event is what the schedule sends");
    }
}

#[test]
fn spot_recovery_gets_exactly_the_configuration_it_reads_and_the_three_events() {
    let template = Template::load().unwrap();
    let got: BTreeSet<String> = template.function_environment("SpotRecoveryFunction").unwrap().into_iter().collect();
    let want: BTreeSet<String> = [
        "NOTIFY_TOPIC_ARN",
        "GATEWAY_TAG",
        "SNAPSHOT_TAG",
        "LAUNCH_TEMPLATE_ID",
        "LAUNCH_TEMPLATE_VERSION",
        "SUBNET_IDS",
        "ELASTIC_IP_ALLOCATION_ID",
        "TARGET_GROUP_ARN",
        "REPLACE_ON_STOP",
        "EARLY_REPLACE",
        "DATA_DEVICE",
        "ALARM_NAME_PREFIX",
        "HEALTH_TIMEOUT_SECONDS",
        "FOLLOW_UP_SCHEDULE_GROUP",
        "FOLLOW_UP_ROLE_ARN",
        "FOLLOW_UP_INTERVAL_SECONDS",
        "FOLLOW_UP_GIVE_UP_SECONDS",
        "BACKUP_BUCKET",
        "BACKUP_PREFIX",
        "BACKUP_KMS_KEY_ID",
        "BACKUP_DAILY_RETENTION_DAYS",
        "BACKUP_OBJECT_LOCK",
        "STATE_DIR",
        "DRY_RUN",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(got, want);

    let function = template.resource("SpotRecoveryFunction").unwrap();
    assert_eq!(function["Metadata"]["BuildProperties"]["Binary"].as_str(), Some("spot-recovery"));
    let timeout = function["Properties"]["Timeout"].as_u64().unwrap();
    assert!((240..=900).contains(&timeout), "long enough for the bounded waits: {timeout}");
    let events = &function["Properties"]["Events"];
    let mut detail_types = BTreeSet::new();
    for (_, e) in events.as_mapping().unwrap() {
        assert_eq!(e["Type"].as_str(), Some("EventBridgeRule"));
        assert_eq!(e["Properties"]["Pattern"]["source"][0].as_str(), Some("aws.ec2"));
        for t in e["Properties"]["Pattern"]["detail-type"].as_sequence().unwrap() {
            detail_types.insert(t.as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        detail_types,
        [
            "EC2 Spot Instance Interruption Warning",
            "EC2 Instance Rebalance Recommendation",
            "EC2 Instance State-change Notification"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<BTreeSet<_>>()
    );
    let states = format!("{:?}", events["StateChange"]["Properties"]["Pattern"]["detail"]["state"]);
    // `running`: the gateway back from a Spot stop sheds that interruption's records.
    assert!(states.contains("stopped") && states.contains("terminated") && states.contains("running"), "{states}");
    // Every sample event the function accepts is one the rules deliver.
    let dir = integration_tests::workspace_root().join("events/spot-recovery");
    let (mut accepted, mut follow_ups) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("bad-") {
            continue;
        }
        let sample: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // The follow-up check's event comes from the function's own schedule, not from a rule.
        if sample["kind"] == "spot-recovery-follow-up" {
            follow_ups += 1;
            continue;
        }
        assert_eq!(sample["source"], "aws.ec2", "{}", path.display());
        assert!(detail_types.contains(sample["detail-type"].as_str().unwrap()), "{}", path.display());
        if let Some(state) = sample["detail"]["state"].as_str() {
            assert!(states.contains(state), "{}: {state}", path.display());
        }
        accepted += 1;
    }
    assert!(accepted >= 5);
    assert_eq!(follow_ups, 1, "events/spot-recovery/follow-up.json");
    let on_failure = &function["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"].as_str(), Some("SNS"));
    assert_eq!(template.resource("SpotRecoveryLogGroup").unwrap()["Properties"]["RetentionInDays"].as_u64(), Some(30));
    assert!(format!("{:?}", template.doc["Rules"]["OneGatewayAddress"]).contains("GatewayTargetGroupArn"));
}

/// The follow-up check's schedules: in the stack's own group, invoking spot-recovery only, with a
/// role that Scheduler alone, and only for this account, may assume.
#[test]
fn spot_recovery_schedules_its_follow_up_in_its_own_group_with_a_role_for_that_alone() {
    let template = Template::load().unwrap();
    let group = template.resource("SpotFollowUpScheduleGroup").unwrap();
    assert_eq!(group["Type"].as_str(), Some("AWS::Scheduler::ScheduleGroup"));
    let env = format!("{:?}", template.resource("SpotRecoveryFunction").unwrap()["Properties"]["Environment"]);
    assert!(env.contains("SpotFollowUpScheduleGroup") && env.contains("SpotFollowUpSchedulerRole.Arn"), "{env}");

    let role = &template.resource("SpotFollowUpSchedulerRole").unwrap()["Properties"];
    let trust = &role["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(trust.as_sequence().unwrap().len(), 1);
    assert_eq!(trust[0]["Principal"]["Service"].as_str(), Some("scheduler.amazonaws.com"));
    assert!(format!("{:?}", trust[0]["Condition"]["StringEquals"]["aws:SourceAccount"]).contains("AWS::AccountId"));
    assert!(role.get("Policies").is_none() && role.get("ManagedPolicyArns").is_none(), "its one grant is apart");
    let invoke = &template.resource("SpotFollowUpInvokePolicy").unwrap()["Properties"];
    assert!(format!("{:?}", invoke["Roles"]).contains("SpotFollowUpSchedulerRole"));
    let grants = invoke["PolicyDocument"]["Statement"].as_sequence().unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0]["Action"].as_str(), Some("lambda:InvokeFunction"));
    assert!(format!("{:?}", grants[0]["Resource"]).contains("SpotRecoveryFunction.Arn"));

    let statements = template.function_statements("SpotRecoveryFunction").unwrap();
    let create: Vec<_> =
        statements.iter().filter(|s| s.actions.iter().any(|a| a == "scheduler:CreateSchedule")).collect();
    assert_eq!(create.len(), 1);
    let scope = format!("{:?}", create[0].resource);
    assert!(scope.contains(":schedule/${SpotFollowUpScheduleGroup}/*"), "its own group only: {scope}");
    let pass: Vec<_> = statements
        .iter()
        .filter(|s| {
            s.actions.iter().any(|a| a == "iam:PassRole") && format!("{:?}", s.resource).contains("SpotFollowUp")
        })
        .collect();
    assert_eq!(pass.len(), 1);
    assert!(format!("{:?}", pass[0].resource).contains("SpotFollowUpSchedulerRole.Arn"));
    assert!(format!("{:?}", pass[0].condition).contains("scheduler.amazonaws.com"), "to Scheduler only");
}

#[test]
fn the_dr_replica_is_encrypted_with_its_own_key_and_kept_like_the_original() {
    let template = Template::load().unwrap();
    let bucket = template.resource("BackupBucket").unwrap();
    let replication = format!("{:?}", bucket["Properties"]["ReplicationConfiguration"]);
    assert!(replication.contains("ReplicateBackups"), "off unless asked: {replication}");
    assert!(replication.contains("SseKmsEncryptedObjects"), "KMS-encrypted backups are replicated");
    assert!(replication.contains("ReplicaKmsKeyID"), "replicas are encrypted with the DR region's key");
    assert!(replication.contains("Prefix"), "only the backups are replicated");
    for id in ["BackupReplicationRole", "BackupReplicationPolicy"] {
        assert_eq!(template.resource(id).unwrap()["Condition"], Value::from("ReplicateBackups"), "{id}");
    }

    let replica = Template::load_file("stacks/backup-replica.yaml").unwrap();
    let replica_bucket = &replica.resource("ReplicaBucket").unwrap()["Properties"];
    for setting in ["LifecycleConfiguration", "VersioningConfiguration", "PublicAccessBlockConfiguration"] {
        assert_eq!(replica_bucket[setting], bucket["Properties"][setting], "{setting}");
    }
    assert_eq!(replica.resource("ReplicaKey").unwrap()["Properties"]["EnableKeyRotation"], Value::from(true));
}

/// The parameters that describe a gateway run by hand, which the rules keep empty with `DeployGateway`
/// (the `!Equals [!Ref X, ""]` of `DeployedGatewayNeedsADomainAndNoOther`).
fn by_hand_parameters(template: &Template) -> BTreeSet<String> {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Tagged(t) if t.tag == "Equals" => {
                if let Some([Value::Tagged(r), Value::String(empty)]) = t.value.as_sequence().map(Vec::as_slice)
                    && r.tag == "Ref"
                    && empty.is_empty()
                {
                    out.insert(r.value.as_str().unwrap().to_owned());
                }
            }
            Value::Tagged(t) => walk(&t.value, out),
            Value::Sequence(items) => items.iter().for_each(|x| walk(x, out)),
            Value::Mapping(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(&template.doc["Rules"]["DeployedGatewayNeedsADomainAndNoOther"]["Assertions"], &mut out);
    out
}

/// A condition of the template in one mode: `DeployGateway` set, and with it the by-hand parameters
/// empty; `None` where it depends on anything else.
fn condition_in_mode(template: &Template, v: &Value, deployed: bool, by_hand: &BTreeSet<String>) -> Option<bool> {
    let Value::Tagged(t) = v else { return None };
    let args = t.value.as_sequence();
    let operand = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Tagged(r) if r.tag == "Ref" && r.value.as_str() == Some("DeployGateway") => Some(deployed.to_string()),
        Value::Tagged(r) if r.tag == "Ref" && deployed && by_hand.contains(r.value.as_str()?) => Some(String::new()),
        _ => None,
    };
    // Three-valued: what one operand decides, the unknown ones do not change.
    let each = || -> Vec<Option<bool>> {
        args.into_iter().flatten().map(|x| condition_in_mode(template, x, deployed, by_hand)).collect()
    };
    let decided = |all: Vec<Option<bool>>, deciding: bool| {
        if all.contains(&Some(deciding)) {
            Some(deciding)
        } else if all.iter().all(Option::is_some) {
            Some(!deciding)
        } else {
            None
        }
    };
    match t.tag.to_string().as_str() {
        "!Condition" => {
            let name = t.value.as_str()?;
            condition_in_mode(template, &template.doc["Conditions"][name], deployed, by_hand)
        }
        "!Equals" => Some(operand(&args?[0])? == operand(&args?[1])?),
        "!Not" => condition_in_mode(template, &args?[0], deployed, by_hand).map(|b| !b),
        "!And" => decided(each(), false),
        "!Or" => decided(each(), true),
        _ => None,
    }
}

/// A part of the template as CloudFormation would see it in one mode: each `!If` whose condition
/// the mode decides replaced by its branch (both kept, as a list, when it does not), `AWS::NoValue`
/// gone.
fn in_mode(template: &Template, v: &Value, deployed: bool, by_hand: &BTreeSet<String>) -> Option<Value> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" && t.value.as_str() == Some("AWS::NoValue") => None,
        Value::Tagged(t) if t.tag == "If" => {
            let [name, yes, no] = t.value.as_sequence().unwrap().as_slice() else { panic!("{v:?}") };
            let condition = Value::Tagged(Box::new(serde_norway::value::TaggedValue {
                tag: serde_norway::value::Tag::new("Condition"),
                value: name.clone(),
            }));
            match condition_in_mode(template, &condition, deployed, by_hand) {
                Some(true) => in_mode(template, yes, deployed, by_hand),
                Some(false) => in_mode(template, no, deployed, by_hand),
                None => Some(Value::Sequence(
                    [yes, no].into_iter().filter_map(|b| in_mode(template, b, deployed, by_hand)).collect(),
                )),
            }
        }
        Value::Tagged(t) => Some(Value::Tagged(Box::new(serde_norway::value::TaggedValue {
            tag: t.tag.clone(),
            value: in_mode(template, &t.value, deployed, by_hand)?,
        }))),
        Value::Sequence(items) => {
            Some(Value::Sequence(items.iter().filter_map(|x| in_mode(template, x, deployed, by_hand)).collect()))
        }
        Value::Mapping(m) => Some(Value::Mapping(
            m.iter().filter_map(|(k, x)| Some((k.clone(), in_mode(template, x, deployed, by_hand)?))).collect(),
        )),
        other => Some(other.clone()),
    }
}

/// The parameters a value names (`!Ref X`, `${X}` in a `!Sub`), among `names`.
fn parameters_named(v: &Value, names: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    fn walk(v: &Value, names: &BTreeSet<String>, out: &mut BTreeSet<String>) {
        match v {
            Value::Tagged(t) if t.tag == "Ref" => {
                out.extend(t.value.as_str().filter(|n| names.contains(*n)).map(str::to_owned))
            }
            Value::String(s) => out.extend(names.iter().filter(|n| s.contains(&format!("${{{n}}}"))).cloned()),
            Value::Tagged(t) => walk(&t.value, names, out),
            Value::Sequence(items) => items.iter().for_each(|x| walk(x, names, out)),
            Value::Mapping(m) => m.values().for_each(|x| walk(x, names, out)),
            _ => {}
        }
    }
    walk(v, names, &mut out);
    out
}

/// The nested gateway stack's outputs a value reads (`!GetAtt Gateway.Outputs.X`).
fn gateway_outputs_named(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Tagged(t) if t.tag == "GetAtt" => {
                let target = match &t.value {
                    Value::String(s) => s.clone(),
                    Value::Sequence(parts) => parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("."),
                    _ => String::new(),
                };
                out.extend(target.strip_prefix("Gateway.Outputs.").map(str::to_owned));
            }
            Value::Tagged(t) => walk(&t.value, out),
            Value::Sequence(items) => items.iter().for_each(|x| walk(x, out)),
            Value::Mapping(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

#[test]
fn with_deploy_gateway_spot_recovery_is_scoped_to_the_nested_stacks_outputs_and_by_hand_to_the_parameters() {
    let template = Template::load().unwrap();
    let by_hand = by_hand_parameters(&template);
    for p in ["SpotLaunchTemplateId", "GatewayElasticIpAllocationId", "GatewayTargetGroupArn", "GatewayInstanceId"] {
        assert!(by_hand.contains(p), "the rule keeps {p} empty with DeployGateway: {by_hand:?}");
    }
    let statements = template.function_statements("SpotRecoveryFunction").unwrap();
    let scope = |s: &Statement, deployed: bool| {
        let both = Value::Sequence(vec![s.resource.clone(), s.condition.clone().unwrap_or(Value::Null)]);
        in_mode(&template, &both, deployed, &by_hand).unwrap()
    };

    // Whatever is scoped to a by-hand parameter is scoped to a nested stack's output instead when
    // the stack deploys the gateway, and no by-hand parameter is left (they are empty then).
    let mut by_hand_scoped = 0;
    for s in &statements {
        let (hand, deployed) = (scope(s, false), scope(s, true));
        assert!(gateway_outputs_named(&hand).is_empty(), "{:?} reads the nested stack without it: {hand:?}", s.sid);
        assert!(
            parameters_named(&deployed, &by_hand).is_empty(),
            "{:?} is scoped to an empty parameter with DeployGateway: {deployed:?}",
            s.sid
        );
        if !parameters_named(&hand, &by_hand).is_empty() {
            by_hand_scoped += 1;
            assert!(
                !gateway_outputs_named(&deployed).is_empty(),
                "{:?}: by hand {hand:?}, with DeployGateway {deployed:?}",
                s.sid
            );
        }
    }
    assert!(by_hand_scoped >= 3, "the launch template, Elastic IP and target group statements");

    // What each grant names with DeployGateway, where the resource has no by-hand parameter at all
    // (the instance role, the gateway's key) or the output differs from the environment's.
    let with = |action: &str| statements.iter().filter(|s| s.actions.iter().any(|a| a == action)).collect::<Vec<_>>();
    let on_output = |s: &Statement, output: &str| {
        gateway_outputs_named(&in_mode(&template, &s.resource, true, &by_hand).unwrap()).contains(output)
    };
    let names = |action: &str, output: &str| {
        let hits: Vec<_> = with(action).into_iter().filter(|s| on_output(s, output)).collect();
        assert!(!hits.is_empty(), "with DeployGateway, {action} is granted on Outputs.{output}");
        hits
    };
    for s in names("ec2:RunInstances", "LaunchTemplateId") {
        let condition = in_mode(&template, s.condition.as_ref().unwrap(), true, &by_hand).unwrap();
        assert!(gateway_outputs_named(&condition).contains("LaunchTemplateId"), "ec2:LaunchTemplate: {condition:?}");
    }
    names("ec2:AssociateAddress", "ElasticIpAllocationId");
    names("elasticloadbalancing:RegisterTargets", "TargetGroupArnOrNone");
    names("elasticloadbalancing:DeregisterTargets", "TargetGroupArnOrNone");
    names("iam:PassRole", "InstanceRoleArn");
    // The gateway's key (its root and data volumes): what a launch from the template and a volume
    // restored from a snapshot need, through EC2 only, as on the suite's own key in both modes.
    for action in [
        "kms:CreateGrant",
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
    ] {
        names(action, "GatewayKeyArn");
    }
    for s in statements.iter().filter(|s| on_output(s, "GatewayKeyArn")) {
        assert!(format!("{:?}", s.condition).contains("ec2.${AWS::Region}.amazonaws.com"), "through EC2 only: {s:?}");
        let hand = in_mode(&template, &s.resource, false, &by_hand).unwrap();
        assert!(format!("{hand:?}").contains("OpsKey"), "{hand:?}");
    }
    // By hand, the role the operator names (SpotInstanceRoleName), or none: never a wildcard.
    let pass_role = with("iam:PassRole")[0];
    assert_eq!(pass_role.when.as_deref(), Some("SpotPassesARole"), "PassRole only when a role is named");
    let hand = in_mode(&template, &pass_role.resource, false, &by_hand).unwrap();
    assert_eq!(parameters_named(&hand, &by_hand), BTreeSet::from(["SpotInstanceRoleName".to_owned()]), "{hand:?}");
    assert!(!format!("{hand:?}").contains('*'), "{hand:?}");

    // The outputs exist, and are what the grants need: the launch template's role and key.
    let gateway = Template::load_file("stacks/gateway.yaml").unwrap();
    let mut read = BTreeSet::new();
    for s in &statements {
        read.extend(gateway_outputs_named(&scope(s, true)));
    }
    for output in &read {
        assert!(gateway.doc["Outputs"].get(output.as_str()).is_some(), "stacks/gateway.yaml has no output {output}");
    }
    let output = |name: &str| format!("{:?}", gateway.doc["Outputs"][name]["Value"]);
    let launch = &gateway.resource("GatewayLaunchTemplate").unwrap()["Properties"]["LaunchTemplateData"];
    assert!(format!("{:?}", launch["IamInstanceProfile"]).contains("GatewayInstanceProfile.Arn"));
    let profile_roles = format!("{:?}", gateway.resource("GatewayInstanceProfile").unwrap()["Properties"]["Roles"]);
    assert!(profile_roles.contains("GatewayRole") && output("InstanceRoleArn").contains("GatewayRole.Arn"));
    assert!(output("GatewayKeyArn").contains("GatewayKey.Arn"));
    assert!(format!("{:?}", launch["BlockDeviceMappings"]).contains("GatewayKey.Arn"), "the root volume's key");
    let data_volume = &gateway.resource("DataVolume").unwrap()["Properties"];
    assert!(format!("{:?}", data_volume["KmsKeyId"]).contains("GatewayKey.Arn"), "the data volume's key");
    // The budget tier's target group and a by-hand gateway without one: the same ARN no target
    // group has (a Resource cannot be empty).
    assert!(output("TargetGroupArnOrNone").contains("WebhookTargetGroup"));
    let placeholder = "targetgroup/none/0000000000000000";
    let hand_target = in_mode(&template, &with("elasticloadbalancing:RegisterTargets")[0].resource, false, &by_hand);
    assert!(format!("{hand_target:?}").contains(placeholder) && output("TargetGroupArnOrNone").contains(placeholder));
}

/// cost-check runs weekly: its heartbeat looks back as far as an alarm can (7 days), and every day
/// of that without an invocation must be missing, not one.
#[test]
fn cost_check_has_a_heartbeat_as_long_as_an_alarm_can_look_back() {
    let template = Template::load().unwrap();
    let p = &template.resource("CostCheckHeartbeatAlarm").unwrap()["Properties"];
    assert_eq!(p["Namespace"].as_str(), Some("AWS/Lambda"));
    assert_eq!(p["MetricName"].as_str(), Some("Invocations"));
    assert!(format!("{:?}", p["Dimensions"]).contains("CostCheckFunction"));
    let window = p["Period"].as_u64().unwrap() * p["EvaluationPeriods"].as_u64().unwrap();
    assert_eq!(window, 7 * 86400, "a weekly run always falls in the window; CloudWatch allows no more");
    assert_eq!(p["DatapointsToAlarm"], p["EvaluationPeriods"]);
    assert_eq!((p["ComparisonOperator"].as_str(), p["Threshold"].as_u64()), (Some("LessThanThreshold"), Some(1)));
    assert_eq!(p["TreatMissingData"].as_str(), Some("breaching"), "no invocation publishes no datapoint");
    assert!(alarm_actions(&template, "CostCheckHeartbeatAlarm").contains("OpsTopic"));
}

/// The queues hold alarm text: encrypted with the suite's key, which SNS may use to deliver to them,
/// and telegram-notify to write its remainders (through SQS only).
#[test]
fn telegram_queues_are_encrypted_with_the_suites_key_that_sns_may_use() {
    let template = Template::load().unwrap();
    for id in ["TelegramQueue", "TelegramDeadLetterQueue"] {
        let p = &template.resource(id).unwrap()["Properties"];
        assert!(format!("{:?}", p["KmsMasterKeyId"]).contains("OpsKey"), "{id}");
        assert!(p.get("SqsManagedSseEnabled").is_none(), "{id}");
    }
    let policy = format!("{:?}", template.resource("OpsKey").unwrap()["Properties"]["KeyPolicy"]);
    assert!(policy.contains("SnsDeliversToEncryptedQueues") && policy.contains("sns.amazonaws.com"));
    let statements = template.function_statements("TelegramNotifyFunction").unwrap();
    let encrypt = statements.iter().find(|s| s.sid.as_deref() == Some("EncryptUndelivered")).unwrap();
    assert_eq!(encrypt.actions, ["kms:GenerateDataKey"]);
    assert!(format!("{:?}", encrypt.condition).contains("sqs."), "through SQS only: {encrypt:?}");
}

/// Access to the backups is recorded: S3 server access logs, into a bucket S3 can deliver them to
/// (SSE-S3, not SSE-KMS), that only S3's log delivery for this bucket may write.
#[test]
fn the_backup_buckets_access_is_logged() {
    let template = Template::load().unwrap();
    let logging = &template.resource("BackupBucket").unwrap()["Properties"]["LoggingConfiguration"];
    assert!(format!("{:?}", logging["DestinationBucketName"]).contains("BackupAccessLogBucket"));
    let logs = &template.resource("BackupAccessLogBucket").unwrap()["Properties"];
    let encryption = &logs["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"];
    assert_eq!(encryption["SSEAlgorithm"].as_str(), Some("AES256"));
    assert_eq!(logs["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"].as_bool(), Some(true));
    let policy = format!("{:?}", template.resource("BackupAccessLogBucketPolicy").unwrap()["Properties"]);
    assert!(policy.contains("logging.s3.amazonaws.com") && policy.contains("aws:SourceArn"), "{policy}");
}

/// Every check checkov skips (the test command runs it on every template with 0 failed) is skipped
/// in place, with its reason.
#[test]
fn every_checkov_skip_says_why() {
    let mut skips = 0;
    for file in ["template.yaml", "stacks/gateway.yaml", "stacks/backup-replica.yaml"] {
        let template = Template::load_file(file).unwrap();
        for (id, resource) in template.doc["Resources"].as_mapping().unwrap() {
            for skip in resource["Metadata"]["checkov"]["skip"].as_sequence().into_iter().flatten() {
                let check = skip["id"].as_str().unwrap_or_default();
                let comment = skip["comment"].as_str().unwrap_or_default();
                assert!(check.starts_with("CKV_"), "{file} {id:?}: {skip:?}");
                assert!(comment.len() >= 30, "{file} {id:?} {check}: a reason, not {comment:?}");
                skips += 1;
            }
        }
    }
    assert!(skips >= 20, "{skips}");
}

/// The off-region copy's grants exist only with `SnapshotCopyRegion` set, each scoped to the suite's
/// snapshots or the DR key through EC2; the DR region's stack keeps deleted copies in a locked,
/// Region-level Recycle Bin.
#[test]
fn the_dr_copy_grants_are_conditional_and_scoped_and_the_dr_region_has_a_locked_recycle_bin() {
    let template = Template::load().unwrap();
    let copy: Vec<_> = template
        .function_statements("EbsSnapshotsFunction")
        .unwrap()
        .into_iter()
        .filter(|s| s.when.is_some())
        .collect();
    let sids: BTreeSet<&str> = copy.iter().filter_map(|s| s.sid.as_deref()).collect();
    for sid in [
        "CopyOwnedSnapshotsToTheDrRegion",
        "CreateOnlyOwnedCopies",
        "TagCopiesAtCreationOnly",
        "DeleteOnlyOwnedCopies",
        "EncryptCopiesWithTheDrKeyThroughEc2",
        "GrantTheDrKeyToEc2Only",
        "ReadGatewaySnapshotsThroughEc2",
    ] {
        assert!(sids.contains(sid), "{sid} missing: {sids:?}");
    }
    for s in &copy {
        let condition = serde_json::to_string(&s.condition).unwrap();
        assert!(
            condition.contains("openclaw:managed-by")
                || condition.contains("CopySnapshot")
                || condition.contains("kms:ViaService"),
            "{:?} is not scoped: {condition}",
            s.sid
        );
    }

    let dr = Template::load_file("stacks/dr-region.yaml").unwrap();
    let rule = dr.resource("SnapshotRecycleBinRule").unwrap();
    assert_eq!(rule["Type"].as_str(), Some("AWS::Rbin::Rule"));
    let props = &rule["Properties"];
    assert_eq!(props["ResourceType"].as_str(), Some("EBS_SNAPSHOT"));
    assert!(props.get("ResourceTags").is_none(), "Region-level: no resource tags");
    assert_eq!(dr.doc["Parameters"]["RecycleBinLock"]["Default"].as_str(), Some("locked"));
    assert_eq!(dr.doc["Parameters"]["RecycleBinRetentionDays"]["Default"].as_u64(), Some(7));
}
