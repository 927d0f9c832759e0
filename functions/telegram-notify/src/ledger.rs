//! Duplicate suppression across containers: one small S3 object per (message id, chat), written only
//! if absent (`If-None-Match: *`), so that of two containers handed the same message (SNS and SQS
//! deliver at least once; two invocations can run at once) exactly one sends it.
//!
//! Under `deliveries/<sha256 of id and chat>/` in the delivery-record bucket:
//!
//! - `claim-<n>`: "I am sending it". Written before the send, only if absent: of two writers of the
//!   same claim, one wins; the other waits for the winner's outcome.
//! - `sent`: "it went out". Written after a successful send; from then on every copy is a duplicate.
//!
//! Nothing is lost: a send that fails deletes its claim at once (the retry, or the dead-letter
//! replay, claims again); a container that dies holding a claim leaves one that goes stale after
//! [`STALE_AFTER`] (twice the function's 60 s `Timeout`: no live holder is that old), and the next
//! copy takes over with the next generation (`claim-<n+1>`, again only if absent, so one taker
//! wins). A copy that finds a live claim waits up to [`WAIT_FOR_OTHER`] for `sent`; still claimed
//! then, it is retried later (a batch item failure on SQS, a failed invocation that Lambda retries)
//! rather than dropped. What can still send twice: a container that sent but died before writing
//! `sent`, its claim then taken over after [`STALE_AFTER`] - one duplicate, never a loss.
//!
//! The state is read with one `ListObjectsV2` of the prefix (S3 lists are strongly consistent),
//! so a missing object is never read. The bucket's lifecycle deletes the records after a day.

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use openclaw_ops_shared::Error;
use openclaw_ops_shared::error::sdk;
use sha2::{Digest, Sha256};

/// Where the records live in the bucket (the function's grant covers only this prefix).
pub const PREFIX: &str = "deliveries/";
/// A claim older than this has no live holder: twice the function's `Timeout` (template.yaml).
pub const STALE_AFTER: Duration = Duration::from_secs(120);
/// How long a copy waits for another container's send before it is retried later instead.
pub const WAIT_FOR_OTHER: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(500);

/// One record found under a delivery's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Sent,
    Claim { generation: u32, written: DateTime<Utc> },
}

impl Record {
    /// A record from its name under the delivery's prefix; `None` for a name this version never writes.
    pub fn parse(name: &str, written: DateTime<Utc>) -> Option<Record> {
        if name == "sent" {
            return Some(Record::Sent);
        }
        let generation = name.strip_prefix("claim-")?.parse().ok()?;
        Some(Record::Claim { generation, written })
    }
}

/// What to do about one delivery, given its records (the plan: pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It went out already: a duplicate.
    Duplicate,
    /// Write this claim (only if absent) and send.
    Claim(u32),
    /// Another container holds a live claim: look again shortly.
    Wait,
}

pub fn next_step(records: &[Record], now: DateTime<Utc>) -> Step {
    if records.contains(&Record::Sent) {
        return Step::Duplicate;
    }
    let latest = records
        .iter()
        .filter_map(|r| match r {
            Record::Claim { generation, written } => Some((*generation, *written)),
            Record::Sent => None,
        })
        .max_by_key(|(generation, _)| *generation);
    match latest {
        None => Step::Claim(0),
        Some((generation, written)) => {
            let age = now.signed_duration_since(written).to_std().unwrap_or_default();
            if age >= STALE_AFTER { Step::Claim(generation + 1) } else { Step::Wait }
        }
    }
}

/// The prefix of one (message id, chat) delivery.
pub fn delivery_prefix(id: &str, chat: &str) -> String {
    // The id's length first: no split of one string into (id, chat) collides with another's.
    let digest = Sha256::digest(format!("{}:{id}\n{chat}", id.len()).as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{hex}/")
}

/// The outcome of trying to take a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// This invocation holds the claim: send, then [`Ledger::sent`] or [`Ledger::release`].
    Claimed(Claim),
    Duplicate,
    /// Another container still holds a live claim after [`WAIT_FOR_OTHER`].
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    prefix: String,
    key: String,
}

pub struct Ledger {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl Ledger {
    pub fn new(s3: aws_sdk_s3::Client, bucket: String) -> Self {
        Ledger { s3, bucket }
    }

    /// Claims the delivery of `id` to `chat`, or says why not (observe → plan → apply, looped while
    /// another container's claim is live, at most until `deadline` and [`WAIT_FOR_OTHER`]).
    #[tracing::instrument(skip_all, fields(id = %id, chat = %chat))]
    pub async fn take(&self, id: &str, chat: &str, deadline: tokio::time::Instant) -> Result<Taken, Error> {
        let prefix = delivery_prefix(id, chat);
        let give_up = deadline.min(tokio::time::Instant::now() + WAIT_FOR_OTHER);
        loop {
            let records = self.records(&prefix).await?;
            match next_step(&records, Utc::now()) {
                Step::Duplicate => return Ok(Taken::Duplicate),
                Step::Claim(generation) => {
                    let key = format!("{prefix}claim-{generation}");
                    if self.put_if_absent(&key, format!("{{\"claimed_at\":\"{}\"}}", Utc::now().to_rfc3339())).await? {
                        return Ok(Taken::Claimed(Claim { prefix, key }));
                    }
                    // Another container wrote it first: read again.
                }
                Step::Wait => {
                    if tokio::time::Instant::now() + POLL >= give_up {
                        return Ok(Taken::Busy);
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// Records that the claim's message went out (Telegram's message id, for the record).
    #[tracing::instrument(skip_all)]
    pub async fn sent(&self, claim: &Claim, message_id: i64) -> Result<(), Error> {
        let body = format!("{{\"message_id\":{message_id},\"sent_at\":\"{}\"}}", Utc::now().to_rfc3339());
        // Absent already means another taker of a stale claim sent too: nothing more to record.
        self.put_if_absent(&format!("{}sent", claim.prefix), body).await.map(|_| ())
    }

    /// Gives the claim up after a failed send, so that a retry can claim it at once.
    #[tracing::instrument(skip_all)]
    pub async fn release(&self, claim: &Claim) -> Result<(), Error> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(&claim.key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk("s3:DeleteObject")(e).into())
    }
    #[tracing::instrument(skip_all, fields(prefix = %prefix))]

    async fn records(&self, prefix: &str) -> Result<Vec<Record>, Error> {
        let listed =
            self.s3.list_objects_v2().bucket(&self.bucket).prefix(prefix).send().await.map_err(sdk("s3:ListBucket"))?;
        let mut records = Vec::new();
        for object in listed.contents() {
            let name = object.key().unwrap_or_default().strip_prefix(prefix).unwrap_or_default();
            let written = object
                .last_modified()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
                .unwrap_or_else(Utc::now);
            match Record::parse(name, written) {
                Some(record) => records.push(record),
                None => tracing::warn!(key = ?object.key(), "an object this version never writes, ignored"),
            }
        }
        Ok(records)
    }

    /// `true` when written, `false` when the key exists (or a concurrent conditional write won).
    #[tracing::instrument(skip_all, fields(key = %key))]
    async fn put_if_absent(&self, key: &str, body: String) -> Result<bool, Error> {
        let put = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .content_type("application/json")
            .body(ByteStream::from(body.into_bytes()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.code(), Some("PreconditionFailed" | "ConditionalRequestConflict")) => Ok(false),
            Err(e) => Err(sdk("s3:PutObject")(e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn claim(generation: u32, seconds: i64) -> Record {
        Record::Claim { generation, written: at(seconds) }
    }

    #[test]
    fn the_first_copy_claims_generation_zero() {
        assert_eq!(next_step(&[], at(0)), Step::Claim(0));
    }

    #[test]
    fn a_sent_record_makes_every_later_copy_a_duplicate() {
        assert_eq!(next_step(&[claim(0, 0), Record::Sent], at(1)), Step::Duplicate);
        assert_eq!(next_step(&[Record::Sent], at(100_000)), Step::Duplicate);
    }

    #[test]
    fn a_live_claim_is_waited_for_a_stale_one_taken_over_with_the_next_generation() {
        assert_eq!(next_step(&[claim(0, 0)], at(119)), Step::Wait);
        assert_eq!(next_step(&[claim(0, 0)], at(120)), Step::Claim(1));
        // The latest generation decides: an old stale one beside a live one is waited for.
        assert_eq!(next_step(&[claim(0, 0), claim(1, 200)], at(250)), Step::Wait);
        assert_eq!(next_step(&[claim(1, 200), claim(0, 0)], at(400)), Step::Claim(2));
        // A writer's clock ahead of ours: not stale.
        assert_eq!(next_step(&[claim(0, 10)], at(0)), Step::Wait);
    }

    #[test]
    fn records_are_named_as_written_and_nothing_else_counts() {
        assert_eq!(Record::parse("sent", at(0)), Some(Record::Sent));
        assert_eq!(Record::parse("claim-7", at(0)), Some(claim(7, 0)));
        for name in ["claim-", "claim--1", "claim-x", "sent2", "", "other/claim-0"] {
            assert_eq!(Record::parse(name, at(0)), None, "{name}");
        }
    }

    #[test]
    fn one_prefix_per_message_and_chat() {
        let a = delivery_prefix("msg-1", "111");
        assert!(a.starts_with(PREFIX) && a.ends_with('/') && a.len() == PREFIX.len() + 65, "{a}");
        assert_eq!(a, delivery_prefix("msg-1", "111"));
        assert_ne!(a, delivery_prefix("msg-1", "-100222:7"));
        assert_ne!(a, delivery_prefix("msg-2", "111"));
        // No id/chat split makes two deliveries one.
        assert_ne!(delivery_prefix("a\nb", "c"), delivery_prefix("a", "b\nc"));
    }
}
