//! The backup bucket as the functions use it: pre-signed URLs for the instance, read-back
//! verification, Object Lock retention and the verified records.
//!
//! The gateway's instance holds no grant on the bucket. For each run a function hands its script
//! pre-signed URLs for exactly that run's archive and manifest: each PUT carries `If-None-Match: *`
//! among its *signed* headers (left out, the signature no longer matches; used twice, S3 answers
//! 412), so nothing the instance holds can overwrite a backup or write any other key. The function
//! then reads the backup back, sets Object Lock retention on exactly the versions it verified, and
//! only then writes the record (`layout::record_for`) that "latest", "already backed up today", the
//! monthly copy and the freshness metric are computed from. An object without a record is ignored.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode, ServerSideEncryption};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layout::{self, Kind};
use super::script::Upload;
pub use super::settings::LockMode;
use crate::error::{Error, Failure, sdk as aws};

/// Object Lock retention the functions set on what they verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub mode: LockMode,
    /// Retention of a daily backup, from when it was made (the daily lifecycle's expiry).
    pub daily_days: u32,
    /// Retention of a monthly copy (the monthly lifecycle's expiry).
    pub monthly_days: u32,
}

fn retention_mode(mode: LockMode) -> ObjectLockRetentionMode {
    match mode {
        LockMode::Governance => ObjectLockRetentionMode::Governance,
        LockMode::Compliance => ObjectLockRetentionMode::Compliance,
    }
}

/// The manifest's fields the functions rely on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub archive: ArchiveInfo,
    pub trigger: String,
    /// When the script says it made it (UTC, RFC 3339): written on the instance, so for people only.
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

/// One object version, as verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub key: String,
    /// `None` only where the bucket is not versioned (drift, reported apart).
    pub version_id: Option<String>,
}

/// A backup read back whole: the manifest and the archive versions that matched each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub manifest: Manifest,
    pub manifest_version: Version,
    pub archive_version: Version,
}

/// What a function writes once it verified (and locked) a backup. Only functions write records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub schema: String,
    pub gateway_id: String,
    pub gateway: String,
    pub instance_id: String,
    pub kind: String,
    /// When the function planned the backup (the stamp in its key).
    pub made_at: DateTime<Utc>,
    pub verified_at: DateTime<Utc>,
    pub archive: Version,
    pub manifest: Version,
    pub size: u64,
    pub sha256: String,
    #[serde(default)]
    pub retain_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub lock_mode: Option<String>,
}

const RECORD_SCHEMA: &str = "openclaw-ops/verified-backup@1";

/// Which gateway a backup belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner<'a> {
    pub gateway_id: &'a str,
    pub gateway: &'a str,
    pub instance_id: &'a str,
}

#[derive(Debug, Clone)]
pub struct Store {
    s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub kms_key_id: Option<String>,
    pub lock: Option<Lock>,
}

impl super::settings::Settings {
    /// The bucket these settings name, with their key and Object Lock retention.
    pub fn store(&self, s3: aws_sdk_s3::Client) -> Store {
        let lock = self.lock_mode.map(|mode| Lock {
            mode,
            daily_days: self.daily_retention_days,
            monthly_days: super::settings::MONTHLY_RETENTION_DAYS,
        });
        Store::new(s3, self.bucket.clone(), self.kms_key_id.clone(), lock)
    }
}

impl Store {
    pub fn new(s3: aws_sdk_s3::Client, bucket: String, kms_key_id: Option<String>, lock: Option<Lock>) -> Self {
        Store { s3, bucket, kms_key_id, lock }
    }

    /// A PUT of exactly `key` that refuses to overwrite, valid for `lifetime`: the command's delivery
    /// and execution timeouts. The URL also dies with the signer's session credentials (Lambda's role
    /// credentials): the function waits for the command, so the upload happens while they are valid.
    #[tracing::instrument(skip_all, fields(key = %key, content_type = %content_type))]
    pub async fn upload_url(&self, key: &str, content_type: &str, lifetime: Duration) -> Result<Upload, Error> {
        let config = PresigningConfig::expires_in(lifetime)
            .map_err(|e| Error::Config(format!("a pre-signed URL cannot live {lifetime:?}: {e}")))?;
        let request = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .content_type(content_type)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .set_ssekms_key_id(self.kms_key_id.clone())
            .presigned(config)
            .await
            .map_err(aws("s3:PutObject (pre-signing)"))?;
        let headers: Vec<(String, String)> =
            request.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect();
        if !headers.iter().any(|(name, value)| name.eq_ignore_ascii_case("if-none-match") && value == "*") {
            return Err(Error::Config(format!("the pre-signed PUT of {key} does not carry If-None-Match")));
        }
        let signed = signed_headers(request.uri());
        if !signed.iter().any(|h| h == "if-none-match") {
            return Err(Error::Config(format!("If-None-Match is not among the signed headers of the PUT of {key}")));
        }
        Ok(Upload { url: request.uri().to_owned(), headers })
    }

    /// A GET of exactly this version, for `lifetime`.
    #[tracing::instrument(skip_all)]
    pub async fn download_url(&self, version: &Version, lifetime: Duration) -> Result<String, Error> {
        let config = PresigningConfig::expires_in(lifetime)
            .map_err(|e| Error::Config(format!("a pre-signed URL cannot live {lifetime:?}: {e}")))?;
        let request = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&version.key)
            .set_version_id(version.version_id.clone())
            .presigned(config)
            .await
            .map_err(aws("s3:GetObject (pre-signing)"))?;
        Ok(request.uri().to_owned())
    }

    /// Keys under a prefix (every page).
    #[tracing::instrument(skip_all, fields(prefix = %prefix))]
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut pages = self.s3.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(aws("s3:ListBucket"))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        Ok(keys)
    }

    /// Reads a backup back: its manifest, then the archive beside it, streamed through SHA-256 (an
    /// archive can be larger than the function's memory); with `versions`, exactly those versions.
    /// `Err` says what does not match.
    #[tracing::instrument(skip_all, fields(manifest_key = %manifest_key))]
    pub async fn verify(&self, manifest_key: &str, versions: Option<(&Version, &Version)>) -> Result<Verified, String> {
        let archive_key =
            layout::archive_for(manifest_key).ok_or_else(|| format!("{manifest_key} is not a manifest"))?;
        let (manifest_version, archive_version) = match versions {
            Some((m, a)) => (m.version_id.clone(), a.version_id.clone()),
            None => (None, None),
        };
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(manifest_key)
            .set_version_id(manifest_version)
            .send()
            .await
            .map_err(|e| format!("manifest {manifest_key}: {}", Failure::from_sdk("s3:GetObject", &e).detail()))?;
        let manifest_version =
            Version { key: manifest_key.to_owned(), version_id: object.version_id().map(str::to_owned) };
        let bytes = object.body.collect().await.map_err(|e| e.to_string())?.into_bytes();
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| format!("manifest {manifest_key}: {e}"))?;
        let mut archive = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&archive_key)
            .set_version_id(archive_version)
            .send()
            .await
            .map_err(|e| format!("archive {archive_key}: {}", Failure::from_sdk("s3:GetObject", &e).detail()))?;
        let archive_version = Version { key: archive_key.clone(), version_id: archive.version_id().map(str::to_owned) };
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
        Ok(Verified { manifest, manifest_version, archive_version })
    }

    /// Locks the verified versions (when Object Lock is configured) and then writes their record.
    /// A record that exists already (a retried run) is kept: it was written with the same content.
    #[tracing::instrument(skip_all)]
    pub async fn keep(
        &self,
        verified: &Verified,
        kind: Kind,
        owner: &Owner<'_>,
        made_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Record, Error> {
        let record_key = layout::record_for(&verified.manifest_version.key, kind)
            .ok_or_else(|| Error::Input(format!("{} is not a manifest", verified.manifest_version.key)))?;
        let retain_until = match &self.lock {
            Some(lock) => {
                let days = if kind == Kind::Monthly { lock.monthly_days } else { lock.daily_days };
                let until = made_at + chrono::Duration::days(i64::from(days));
                for version in [&verified.archive_version, &verified.manifest_version] {
                    self.retain(version, lock.mode, until).await?;
                }
                Some(until)
            }
            None => None,
        };
        let record = Record {
            schema: RECORD_SCHEMA.to_owned(),
            gateway_id: owner.gateway_id.to_owned(),
            gateway: owner.gateway.to_owned(),
            instance_id: owner.instance_id.to_owned(),
            kind: kind.as_str().to_owned(),
            made_at,
            verified_at: now,
            archive: verified.archive_version.clone(),
            manifest: verified.manifest_version.clone(),
            size: verified.manifest.archive.size,
            sha256: verified.manifest.archive.sha256.clone(),
            retain_until,
            lock_mode: self.lock.as_ref().map(|l| retention_mode(l.mode).as_str().to_owned()),
        };
        let body = serde_json::to_vec_pretty(&record).expect("a record always serialises");
        let written = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(&record_key)
            .if_none_match("*")
            .content_type("application/json")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .set_ssekms_key_id(self.kms_key_id.clone())
            .body(ByteStream::from(body))
            .send()
            .await;
        match written {
            Ok(_) => Ok(record),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(record),
            Err(e) => Err(aws("s3:PutObject (record)")(e).into()),
        }
    }
    #[tracing::instrument(skip_all)]

    async fn retain(&self, version: &Version, mode: LockMode, until: DateTime<Utc>) -> Result<(), Error> {
        let retention = ObjectLockRetention::builder()
            .mode(retention_mode(mode))
            .retain_until_date(aws_smithy_types::DateTime::from_secs(until.timestamp()))
            .build();
        self.s3
            .put_object_retention()
            .bucket(&self.bucket)
            .key(&version.key)
            .set_version_id(version.version_id.clone())
            .retention(retention)
            .send()
            .await
            .map_err(aws("s3:PutObjectRetention"))?;
        Ok(())
    }

    /// Reads a record back.
    #[tracing::instrument(skip_all, fields(key = %key))]
    pub async fn record(&self, key: &str) -> Result<Record, Error> {
        let object = self.s3.get_object().bucket(&self.bucket).key(key).send().await.map_err(aws("s3:GetObject"))?;
        let bytes = object.body.collect().await.map_err(|e| Error::aws("s3:GetObject", e))?.into_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|e| Failure::call("s3:GetObject", format!("record {key} is not a record: {e}")).into())
    }

    /// Copies a verified version under another key, encrypted the same way, never over anything.
    #[tracing::instrument(skip_all, fields(to = %to))]
    pub async fn copy(&self, from: &Version, to: &str) -> Result<(), Error> {
        let mut source = format!("{}/{}", self.bucket, encode_key(&from.key));
        if let Some(id) = &from.version_id {
            source.push_str(&format!("?versionId={}", encode_key(id)));
        }
        self.s3
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(source)
            .key(to)
            .if_none_match("*")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .set_ssekms_key_id(self.kms_key_id.clone())
            .send()
            .await
            .map_err(aws("s3:CopyObject"))?;
        Ok(())
    }
}

/// The header names a pre-signed URL's signature covers (`X-Amz-SignedHeaders`).
pub fn signed_headers(url: &str) -> Vec<String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))
        .flat_map(|list| list.split("%3B").flat_map(|h| h.split(';')))
        .map(str::to_ascii_lowercase)
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_headers_are_read_from_the_query() {
        let url = "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=content-type%3Bhost%3Bif-none-match&X-Amz-Signature=ab";
        assert_eq!(signed_headers(url), ["content-type", "host", "if-none-match"]);
        assert!(signed_headers("https://b/k").is_empty());
    }

    #[test]
    fn copy_sources_are_encoded() {
        assert_eq!(encode_key("p/daily/vol-1/a b+c.tar.gz"), "p/daily/vol-1/a%20b%2Bc.tar.gz");
        // Each UTF-8 byte of a non-ASCII character is encoded on its own.
        assert_eq!(encode_key("p/gw-ü/é€.tar.gz"), "p/gw-%C3%BC/%C3%A9%E2%82%AC.tar.gz");
        assert_eq!(encode_key("a%2Bb?c=d&e#f"), "a%252Bb%3Fc%3Dd%26e%23f");
    }

    mod s3 {
        use aws_sdk_s3::Client;
        use aws_sdk_s3::operation::copy_object::CopyObjectOutput;
        use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
        use aws_sdk_s3::operation::put_object::PutObjectOutput;
        use aws_sdk_s3::operation::put_object_retention::PutObjectRetentionOutput;
        use aws_sdk_s3::types::error::NoSuchKey;
        use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
        use aws_smithy_types::error::ErrorMetadata;

        use super::super::*;

        const MANIFEST_KEY: &str = "p/daily/vol-1/2026/11/25/gw-20261125T023007Z.manifest.json";
        const ARCHIVE: &[u8] = b"an archive's bytes";

        fn archive_key() -> String {
            layout::archive_for(MANIFEST_KEY).unwrap()
        }

        fn sha256(bytes: &[u8]) -> String {
            Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
        }

        fn manifest(size: u64, sha256: String) -> Manifest {
            Manifest {
                archive: ArchiveInfo { key: archive_key(), size, sha256 },
                trigger: "schedule".into(),
                time: None,
                files: vec![],
            }
        }

        fn manifest_object(manifest: Manifest) -> Rule {
            mock!(Client::get_object).match_requests(|r| r.key() == Some(MANIFEST_KEY)).then_output(move || {
                GetObjectOutput::builder()
                    .version_id("mv-1")
                    .body(ByteStream::from(serde_json::to_vec(&manifest).unwrap()))
                    .build()
            })
        }

        fn archive_object(bytes: &'static [u8]) -> Rule {
            mock!(Client::get_object).match_requests(|r| r.key() == Some(archive_key().as_str())).then_output(
                move || GetObjectOutput::builder().version_id("av-1").body(ByteStream::from_static(bytes)).build(),
            )
        }

        fn store(client: Client, lock: Option<Lock>) -> Store {
            Store::new(client, "bucket".into(), Some("key-1".into()), lock)
        }

        #[tokio::test]
        async fn an_archive_matching_its_manifest_verifies_with_the_versions_read() {
            let m = manifest_object(manifest(ARCHIVE.len() as u64, sha256(ARCHIVE)));
            let a = archive_object(ARCHIVE);
            let store = store(mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&m, &a]), None);

            let verified = store.verify(MANIFEST_KEY, None).await.unwrap();
            assert_eq!(
                verified.manifest_version,
                Version { key: MANIFEST_KEY.into(), version_id: Some("mv-1".into()) }
            );
            assert_eq!(verified.archive_version, Version { key: archive_key(), version_id: Some("av-1".into()) });
            assert_eq!(verified.manifest.archive.size, ARCHIVE.len() as u64);
        }

        #[tokio::test]
        async fn an_archive_of_another_size_is_refused() {
            let m = manifest_object(manifest(ARCHIVE.len() as u64 + 1, sha256(ARCHIVE)));
            let a = archive_object(ARCHIVE);
            let store = store(mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&m, &a]), None);

            let err = store.verify(MANIFEST_KEY, None).await.unwrap_err();
            assert!(err.contains(&format!("is {} bytes", ARCHIVE.len())), "{err}");
            assert!(err.contains(&format!("the manifest says {} bytes", ARCHIVE.len() + 1)), "{err}");
        }

        #[tokio::test]
        async fn an_archive_of_the_same_size_with_another_sha256_is_refused() {
            let m = manifest_object(manifest(ARCHIVE.len() as u64, sha256(ARCHIVE)));
            let a = archive_object(b"AN ARCHIVE'S BYTES");
            let store = store(mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&m, &a]), None);

            let err = store.verify(MANIFEST_KEY, None).await.unwrap_err();
            assert!(err.contains(&sha256(b"AN ARCHIVE'S BYTES")), "{err}");
            assert!(err.contains(&sha256(ARCHIVE)), "{err}");
        }

        /// With versions, exactly those are read: a newer version under the same key (which
        /// If-None-Match should make impossible) is not what gets verified.
        #[tokio::test]
        async fn the_versions_asked_for_are_the_versions_read() {
            let good = manifest(ARCHIVE.len() as u64, sha256(ARCHIVE));
            let m = mock!(Client::get_object)
                .match_requests(|r| r.key() == Some(MANIFEST_KEY) && r.version_id() == Some("mv-1"))
                .then_output(move || {
                    GetObjectOutput::builder()
                        .version_id("mv-1")
                        .body(ByteStream::from(serde_json::to_vec(&good).unwrap()))
                        .build()
                });
            let a = mock!(Client::get_object)
                .match_requests(|r| r.key() == Some(archive_key().as_str()) && r.version_id() == Some("av-1"))
                .then_output(|| {
                    GetObjectOutput::builder().version_id("av-1").body(ByteStream::from_static(ARCHIVE)).build()
                });
            let newer = mock!(Client::get_object).then_output(|| {
                GetObjectOutput::builder().version_id("v-new").body(ByteStream::from_static(b"{}")).build()
            });
            let store = store(mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&m, &a, &newer]), None);

            let manifest_version = Version { key: MANIFEST_KEY.into(), version_id: Some("mv-1".into()) };
            let archive_version = Version { key: archive_key(), version_id: Some("av-1".into()) };
            let verified = store.verify(MANIFEST_KEY, Some((&manifest_version, &archive_version))).await.unwrap();
            assert_eq!((verified.manifest_version, verified.archive_version), (manifest_version, archive_version));
            assert_eq!(newer.num_calls(), 0);
        }

        #[tokio::test]
        async fn a_missing_archive_is_named() {
            let m = manifest_object(manifest(ARCHIVE.len() as u64, sha256(ARCHIVE)));
            let a = mock!(Client::get_object).match_requests(|r| r.key() == Some(archive_key().as_str())).then_error(
                || {
                    GetObjectError::NoSuchKey(
                        NoSuchKey::builder()
                            .meta(ErrorMetadata::builder().code("NoSuchKey").message("gone").build())
                            .build(),
                    )
                },
            );
            let store = store(mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&m, &a]), None);

            let err = store.verify(MANIFEST_KEY, None).await.unwrap_err();
            assert!(err.starts_with(&format!("archive {}", archive_key())), "{err}");
            assert!(err.contains("NoSuchKey"), "{err}");
        }

        #[tokio::test]
        async fn copies_name_their_source_encoded() {
            let copy = mock!(Client::copy_object)
                .match_requests(|r| {
                    r.bucket() == Some("bucket")
                        && r.copy_source()
                            == Some(
                                "bucket/p/daily/my%20gw%2Bü/a.tar.gz?versionId=v%2B1".replace('ü', "%C3%BC").as_str(),
                            )
                        && r.key() == Some("p/monthly/a.tar.gz")
                        && r.if_none_match() == Some("*")
                        && r.ssekms_key_id() == Some("key-1")
                })
                .then_output(|| CopyObjectOutput::builder().build());
            let store = store(mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&copy]), None);

            let from = Version { key: "p/daily/my gw+ü/a.tar.gz".into(), version_id: Some("v+1".into()) };
            store.copy(&from, "p/monthly/a.tar.gz").await.unwrap();
            assert_eq!(copy.num_calls(), 1);
        }

        fn verified() -> Verified {
            Verified {
                manifest: manifest(ARCHIVE.len() as u64, sha256(ARCHIVE)),
                manifest_version: Version { key: MANIFEST_KEY.into(), version_id: Some("mv-1".into()) },
                archive_version: Version { key: archive_key(), version_id: Some("av-1".into()) },
            }
        }

        const OWNER: Owner<'static> = Owner { gateway_id: "vol-1", gateway: "gw", instance_id: "i-1" };

        /// Both versions are locked before the record exists: a record is a promise they are kept.
        #[tokio::test]
        async fn keeping_locks_both_versions_then_writes_the_record() {
            let made_at = "2026-11-25T02:30:07Z".parse::<DateTime<Utc>>().unwrap();
            let until = aws_smithy_types::DateTime::from_secs((made_at + chrono::Duration::days(7)).timestamp());
            let lock = |key: String, version: &'static str| {
                mock!(Client::put_object_retention)
                    .match_requests(move |r| {
                        let retention = r.retention().unwrap();
                        r.key() == Some(key.as_str())
                            && r.version_id() == Some(version)
                            && retention.mode() == Some(&ObjectLockRetentionMode::Governance)
                            && retention.retain_until_date() == Some(&until)
                    })
                    .then_output(|| PutObjectRetentionOutput::builder().build())
            };
            let archive = lock(archive_key(), "av-1");
            let manifest = lock(MANIFEST_KEY.into(), "mv-1");
            let record_key = layout::record_for(MANIFEST_KEY, Kind::Schedule).unwrap();
            let record = mock!(Client::put_object)
                .match_requests(move |r| r.key() == Some(record_key.as_str()) && r.if_none_match() == Some("*"))
                .then_output(|| PutObjectOutput::builder().build());
            let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&archive, &manifest, &record]);
            let lock = Lock { mode: LockMode::Governance, daily_days: 7, monthly_days: 365 };

            let kept =
                store(client, Some(lock)).keep(&verified(), Kind::Schedule, &OWNER, made_at, made_at).await.unwrap();
            assert_eq!(kept.retain_until, Some(made_at + chrono::Duration::days(7)));
            assert_eq!(kept.lock_mode.as_deref(), Some("GOVERNANCE"));
            assert_eq!((archive.num_calls(), manifest.num_calls(), record.num_calls()), (1, 1, 1));
        }

        /// A retried run finds its record written (412 on If-None-Match): the same record, kept.
        #[tokio::test]
        async fn a_record_already_written_is_kept() {
            let now = Utc::now();
            let exists = mock!(Client::put_object).sequence().http_status(412, None).build();
            let store = store(mock_client!(aws_sdk_s3, RuleMode::Sequential, [&exists]), None);

            let kept = store.keep(&verified(), Kind::Manual, &OWNER, now, now).await.unwrap();
            assert_eq!((kept.kind.as_str(), kept.retain_until), ("manual", None));
            assert_eq!(exists.num_calls(), 1);
        }

        #[tokio::test]
        async fn a_record_that_cannot_be_written_fails_the_keep() {
            let now = Utc::now();
            let denied = mock!(Client::put_object).sequence().http_status(403, None).build();
            let store = store(mock_client!(aws_sdk_s3, RuleMode::Sequential, [&denied]), None);

            let err = store.keep(&verified(), Kind::Manual, &OWNER, now, now).await.unwrap_err();
            assert!(err.to_string().contains("s3:PutObject (record)"), "{err}");
        }
    }
}
