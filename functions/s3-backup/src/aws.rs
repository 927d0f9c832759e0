//! The AWS calls: the gateways (EC2), the command (SSM), and reading backups back (S3).

use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use aws_sdk_s3::types::ServerSideEncryption;
use openclaw_ops_shared::Error;
use openclaw_ops_shared::error::SdkErrorDisplay;
use openclaw_ops_shared::ssm::{self, ShellCommand};
use openclaw_ops_shared::tags::TagFilter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::Gateway;
use crate::{drift, layout};

#[derive(Debug, Clone)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub s3: aws_sdk_s3::Client,
}

/// The manifest's fields the function relies on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub archive: ArchiveInfo,
    pub trigger: String,
    /// When the script made it (UTC, RFC 3339).
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub files: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveInfo {
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

/// How a command ended.
pub use openclaw_ops_shared::ssm::Invocation as CommandOutcome;

fn sdk<E>(operation: &'static str) -> impl Fn(E) -> Error
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| Error::Aws { operation, message: SdkErrorDisplay(&e).to_string() }
}

impl Clients {
    /// Running instances carrying the gateway tag.
    pub async fn gateways(&self, tag: &TagFilter) -> Result<Vec<Gateway>, Error> {
        let mut pages = self
            .ec2
            .describe_instances()
            .filters(Filter::builder().name(format!("tag:{}", tag.key)).values(&tag.value).build())
            .filters(Filter::builder().name("instance-state-name").values("running").build())
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk("ec2:DescribeInstances"))?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = instance.instance_id() else { continue };
                let name = instance.tags().iter().find(|t| t.key() == Some("Name")).and_then(|t| t.value());
                out.push(Gateway { instance_id: id.to_owned(), name: name.unwrap_or(id).to_owned() });
            }
        }
        Ok(out)
    }

    /// Keys under a prefix (every page).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, Error> {
        let mut pages = self.s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk("s3:ListBucket"))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        Ok(keys)
    }

    /// Reads a backup back: its manifest, then the archive beside it, streamed through SHA-256 (an archive can
    /// be larger than the function's memory). `Err` says what does not match.
    pub async fn verify(&self, bucket: &str, manifest_key: &str) -> Result<Manifest, String> {
        let object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(manifest_key)
            .send()
            .await
            .map_err(|e| SdkErrorDisplay(&e).to_string())?;
        let bytes = object.body.collect().await.map_err(|e| e.to_string())?.into_bytes();
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| format!("manifest {manifest_key}: {e}"))?;
        let archive_key =
            layout::archive_for(manifest_key).ok_or_else(|| format!("{manifest_key} is not a manifest"))?;
        let mut archive = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(&archive_key)
            .send()
            .await
            .map_err(|e| format!("archive {archive_key}: {}", SdkErrorDisplay(&e)))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = archive.body.try_next().await.map_err(|e| e.to_string())? {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let sha256: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if size != manifest.archive.size || sha256 != manifest.archive.sha256 {
            return Err(format!(
                "archive {archive_key} is {size} bytes with SHA-256 {sha256}; the manifest says {} bytes, {}",
                manifest.archive.size, manifest.archive.sha256
            ));
        }
        Ok(manifest)
    }

    /// Runs a shell script on an instance and waits for it, until `deadline`.
    pub async fn run(
        &self,
        instance_id: &str,
        comment: &str,
        script: String,
        timeout: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<CommandOutcome, String> {
        let command = ShellCommand {
            instance_id,
            comment,
            script,
            execution_timeout: timeout,
            delivery_timeout: Duration::from_secs(60),
        };
        let outcome = ssm::run(&self.ssm, command, deadline).await?;
        if outcome.running() {
            return Err(format!(
                "command {} still {} when the function had to stop",
                outcome.command_id, outcome.status
            ));
        }
        Ok(outcome)
    }

    /// The bucket's versioning, default encryption and lifecycle rules, for the drift check. What
    /// cannot be read is kept as its error, to be reported.
    pub async fn bucket_settings(&self, bucket: &str) -> drift::Observed {
        // Three independent reads, at once.
        let (versioning, encryption, lifecycle) = tokio::join!(
            self.s3.get_bucket_versioning().bucket(bucket).send(),
            self.s3.get_bucket_encryption().bucket(bucket).send(),
            self.s3.get_bucket_lifecycle_configuration().bucket(bucket).send(),
        );
        let versioning = match versioning {
            Ok(v) => Ok(v.status().map(|s| s.as_str().to_owned())),
            Err(e) => Err(format!("s3:GetBucketVersioning: {}", SdkErrorDisplay(&e))),
        };
        let encryption = match encryption {
            Ok(out) => Ok(out
                .server_side_encryption_configuration()
                .map(|c| c.rules())
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r.apply_server_side_encryption_by_default())
                .map(|d| drift::Encryption {
                    algorithm: d.sse_algorithm().as_str().to_owned(),
                    kms_key: d.kms_master_key_id().map(str::to_owned),
                })
                .collect()),
            Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some(NO_ENCRYPTION) => Ok(vec![]),
            Err(e) => Err(format!("s3:GetEncryptionConfiguration: {}", SdkErrorDisplay(&e))),
        };
        let lifecycle = match lifecycle {
            Ok(out) => Ok(Some(out.rules().iter().map(rule).collect())),
            Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some(NO_LIFECYCLE) => Ok(None),
            Err(e) => Err(format!("s3:GetLifecycleConfiguration: {}", SdkErrorDisplay(&e))),
        };
        drift::Observed { versioning, encryption, lifecycle }
    }

    /// Copies a verified backup (archive and manifest) under another prefix, encrypted the same way.
    pub async fn copy(&self, bucket: &str, from: &str, to: &str, kms_key_id: Option<&str>) -> Result<(), String> {
        self.s3
            .copy_object()
            .bucket(bucket)
            .copy_source(format!("{bucket}/{}", encode_key(from)))
            .key(to)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .set_ssekms_key_id(kms_key_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| format!("s3:CopyObject {from} → {to}: {}", SdkErrorDisplay(&e)))?;
        Ok(())
    }
}

const NO_ENCRYPTION: &str = "ServerSideEncryptionConfigurationNotFoundError";
const NO_LIFECYCLE: &str = "NoSuchLifecycleConfiguration";

fn rule(r: &aws_sdk_s3::types::LifecycleRule) -> drift::Rule {
    #[allow(deprecated)] // CloudFormation's rule-level `Prefix` may come back in the legacy field.
    let legacy_prefix = r.prefix();
    drift::Rule {
        id: r.id().unwrap_or_default().to_owned(),
        enabled: r.status() == &aws_sdk_s3::types::ExpirationStatus::Enabled,
        prefix: r.filter().and_then(|f| f.prefix()).or(legacy_prefix).unwrap_or_default().to_owned(),
        expiration_days: r.expiration().and_then(|e| e.days()),
        transitions: r
            .transitions()
            .iter()
            .filter_map(|t| Some((t.days()?, t.storage_class()?.as_str().to_owned())))
            .collect(),
        noncurrent_days: r.noncurrent_version_expiration().and_then(|n| n.noncurrent_days()),
        abort_upload_days: r.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()),
    }
}

/// CopySource is URL-encoded; keys are ours (letters, digits, `-_./`) but be exact anyway.
fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
