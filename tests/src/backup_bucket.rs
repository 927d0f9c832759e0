//! The backup bucket as template.yaml makes it: `BackupBucket`'s versioning, Object Lock, encryption
//! and lifecycle, read from the template and applied through the S3 API, so tests (and the drift check
//! they exercise) use the template's settings instead of a copy of them.

use anyhow::Context;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectLockConfiguration,
    ObjectLockEnabled, ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule, Transition, TransitionStorageClass, VersioningConfiguration,
};
use serde_json::Value;

use crate::emulator::Emulator;
use crate::iam::Principal;
use crate::stack::Stack;

use crate::template::Template;

/// Applies `BackupBucket`'s versioning, default encryption and lifecycle to `bucket`, with the
/// template's parameter defaults and `key_arn` as the stack's key.
pub async fn configure_like_the_template(s3: &aws_sdk_s3::Client, bucket: &str, key_arn: &str) -> anyhow::Result<()> {
    let stack = Stack::of(Template::load()?, "us-east-1")?.bucket("BackupBucket", bucket).resource(
        "OpsKey",
        key_arn,
        &[("Arn", key_arn)],
    );
    let all = stack.template().resource("BackupBucket")?.get("Properties").context("BackupBucket Properties")?;
    let mut props = serde_json::Map::new();
    for setting in ["VersioningConfiguration", "BucketEncryption", "LifecycleConfiguration", "ObjectLockConfiguration"]
    {
        props.insert(setting.to_owned(), stack.resolve(all.get(setting).with_context(|| setting.to_owned())?)?);
    }
    let props = Value::Object(props);

    if props["VersioningConfiguration"]["Status"] == "Enabled" {
        let versioning = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        s3.put_bucket_versioning().bucket(bucket).versioning_configuration(versioning).send().await?;
    }
    // Object Lock on, with no default retention (the functions lock what they verified).
    if props["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled" {
        anyhow::ensure!(
            props["ObjectLockConfiguration"].get("Rule").is_none(),
            "the template gives BackupBucket a default retention; this bed applies none"
        );
        let lock = ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).build();
        s3.put_object_lock_configuration().bucket(bucket).object_lock_configuration(lock).send().await?;
    }
    let mut encryption = ServerSideEncryptionConfiguration::builder();
    for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"].as_array().context("encryption")? {
        let default = &rule["ServerSideEncryptionByDefault"];
        encryption = encryption.rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::from(
                            default["SSEAlgorithm"].as_str().context("algorithm")?,
                        ))
                        .set_kms_master_key_id(default["KMSMasterKeyID"].as_str().map(str::to_owned))
                        .build()?,
                )
                .set_bucket_key_enabled(rule["BucketKeyEnabled"].as_bool())
                .build(),
        );
    }
    s3.put_bucket_encryption().bucket(bucket).server_side_encryption_configuration(encryption.build()?).send().await?;

    let days = |v: &Value| v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_i64().map(|d| d as i32));
    let mut lifecycle = BucketLifecycleConfiguration::builder();
    for rule in props["LifecycleConfiguration"]["Rules"].as_array().context("lifecycle rules")? {
        let mut r = LifecycleRule::builder()
            .set_id(rule["Id"].as_str().map(str::to_owned))
            .status(ExpirationStatus::from(rule["Status"].as_str().context("Status")?))
            .filter(LifecycleRuleFilter::builder().prefix(rule["Prefix"].as_str().unwrap_or_default()).build());
        let expiration_days = days(&rule["ExpirationInDays"]);
        let delete_markers = rule["ExpiredObjectDeleteMarker"].as_bool();
        if expiration_days.is_some() || delete_markers.is_some() {
            r = r.expiration(
                LifecycleExpiration::builder()
                    .set_days(expiration_days)
                    .set_expired_object_delete_marker(delete_markers)
                    .build(),
            );
        }
        for t in rule["Transitions"].as_array().into_iter().flatten() {
            r = r.transitions(
                Transition::builder()
                    .set_days(days(&t["TransitionInDays"]))
                    .storage_class(TransitionStorageClass::from(t["StorageClass"].as_str().context("StorageClass")?))
                    .build(),
            );
        }
        if let Some(d) = days(&rule["NoncurrentVersionExpiration"]["NoncurrentDays"]) {
            r = r.noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(d).build());
        }
        if let Some(d) = days(&rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]) {
            r = r.abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder().days_after_initiation(d).build(),
            );
        }
        lifecycle = lifecycle.rules(r.build()?);
    }
    s3.put_bucket_lifecycle_configuration().bucket(bucket).lifecycle_configuration(lifecycle.build()?).send().await?;
    Ok(())
}

/// The gateway's instance role as a user holding exactly stacks/gateway.yaml's `GatewayRole`
/// statements (no grant on the backups: what a taken-over gateway holds).
pub async fn gateway_instance_role(emulator: &Emulator) -> anyhow::Result<Principal> {
    let mut stack = Stack::of(Template::load_file("stacks/gateway.yaml")?, &emulator.region)?;
    for (logical_id, arn) in [
        ("AnthropicApiKeySecret", "arn:aws:secretsmanager:us-east-1:123456789012:secret:openclaw/anthropic-AbCdEf"),
        ("TelegramBotTokenSecret", "arn:aws:secretsmanager:us-east-1:123456789012:secret:openclaw/telegram-AbCdEf"),
        ("GatewayAuthTokenSecret", "arn:aws:secretsmanager:us-east-1:123456789012:secret:openclaw/gateway-AbCdEf"),
    ] {
        stack = stack.resource(logical_id, arn, &[]);
    }
    stack = stack
        .resource(
            "GatewayKey",
            "arn:aws:kms:us-east-1:123456789012:key/gw",
            &[("Arn", "arn:aws:kms:us-east-1:123456789012:key/gw")],
        )
        .resource(
            "GatewayLogGroup",
            "/openclaw/gw",
            &[("Arn", "arn:aws:logs:us-east-1:123456789012:log-group:/openclaw/gw")],
        )
        .resource("DataVolume", "vol-0123456789abcdef0", &[]);
    Principal::for_role(emulator, "GatewayRole", &stack).await
}
