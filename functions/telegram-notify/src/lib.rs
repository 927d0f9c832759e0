//! telegram-notify: CloudWatch alarms and the suite's notifications, rendered for a phone and sent
//! to Telegram.
//!
//! observe (parse the event; the bot token, cached at most `TOKEN_MAX_AGE` and read again when
//! Telegram refuses it) → plan (render; which chats: a replay's own list only within
//! `TELEGRAM_CHATS`, minus those that already got it, in this container or any other: [`ledger`])
//! → apply (claim, send, paced and retried) → report (response, log line, EMF; an undelivered
//! remainder goes to the dead-letter queue, whose alarm e-mails `ops-fallback`).

pub mod alarm;
pub mod config;
pub mod deliver;
pub mod input;
pub mod ledger;
pub mod message;
pub mod render;
pub mod report;
pub mod telegram;

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::Error;
use openclaw_ops_shared::error::SdkErrorDisplay;
use openclaw_ops_shared::invocation;
use openclaw_ops_shared::run;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub use crate::config::Config;
use crate::deliver::{Failed, Pacer};
use crate::input::{Incoming, Undelivered};
use crate::ledger::{Ledger, Taken};
use crate::message::Message;
use crate::render::InsufficientData;
use crate::report::{DeadLettered, ForChat, Report, Response, Skipped};
use crate::telegram::{Chat, Telegram};

pub const FUNCTION: &str = "telegram-notify";
/// Kept back from the invocation's deadline to write the undelivered remainder down.
const RESERVE: Duration = Duration::from_secs(3);
/// (message id, chat) pairs remembered per container, to drop a duplicate without asking S3.
const REMEMBERED: usize = 4096;
/// How long a container trusts the bot token it read: a rotated secret reaches every warm container
/// within this time even when the old token still works (a revoked one is read again at once, on
/// Telegram's 401). Ten minutes is ~150 reads a day per warm container, a few cents a month.
pub const TOKEN_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// Is a token read at `fetched` too old to trust at `now`?
pub fn token_is_stale(fetched: Instant, now: Instant) -> bool {
    now.saturating_duration_since(fetched) >= TOKEN_MAX_AGE
}

/// The chats one message goes to: the configured ones, or a replay's own list cut to those that are
/// configured. Answers (to send to, refused): any body on the `ops` queue can name chats, and the
/// bot must write to no chat the operator did not list.
pub fn targets(only: Option<&[Chat]>, configured: &[Chat]) -> (Vec<Chat>, Vec<Chat>) {
    match only {
        None => (configured.to_vec(), Vec::new()),
        Some(only) => only.iter().cloned().partition(|chat| configured.contains(chat)),
    }
}

pub struct Handler {
    config: Config,
    secrets: aws_sdk_secretsmanager::Client,
    sqs: aws_sdk_sqs::Client,
    http: reqwest::Client,
    /// The client with the last token read, and when it was read.
    telegram: Mutex<Option<(Telegram, Instant)>>,
    pacer: Pacer,
    delivered: Mutex<Remembered>,
    /// The delivery records shared by every container (`TELEGRAM_DELIVERY_BUCKET`).
    ledger: Option<Ledger>,
}

/// One invocation's client, and whether it already read the token again after a 401.
struct Session {
    telegram: Telegram,
    reread: bool,
}

/// Recently delivered (message id, chat) pairs, oldest first out.
type Remembered = (HashSet<(String, String)>, VecDeque<(String, String)>);

impl Handler {
    pub fn new(
        config: Config,
        secrets: aws_sdk_secretsmanager::Client,
        sqs: aws_sdk_sqs::Client,
        s3: aws_sdk_s3::Client,
    ) -> Self {
        let ledger = config.delivery_bucket.clone().map(|bucket| Ledger::new(s3, bucket));
        Handler {
            config,
            secrets,
            sqs,
            http: telegram::http_client(),
            telegram: Mutex::new(None),
            pacer: Pacer::default(),
            delivered: Mutex::new((HashSet::new(), VecDeque::new())),
            ledger,
        }
    }

    /// A client with the bot token: the cached one while it is younger than `TOKEN_MAX_AGE`, unless
    /// `refused` (Telegram answered 401 to it), else read again from Secrets Manager.
    async fn telegram(&self, refused: bool) -> Result<Telegram, Error> {
        let mut cached = self.telegram.lock().await;
        if let Some((telegram, fetched)) = &*cached
            && !refused
            && !token_is_stale(*fetched, Instant::now())
        {
            return Ok(telegram.clone());
        }
        let secret = self.secrets.get_secret_value().secret_id(&self.config.secret_arn).send().await.map_err(|e| {
            Error::Aws { operation: "secretsmanager:GetSecretValue", message: SdkErrorDisplay(&e).to_string() }
        })?;
        let raw = secret.secret_string().unwrap_or_default();
        let token = serde_json::from_str::<Value>(raw)
            .ok()
            .and_then(|v| v.get("bot_token").and_then(Value::as_str).map(str::to_owned))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Config("the Telegram secret must be JSON {\"bot_token\": \"...\"}".into()))?;
        let telegram = Telegram::new(self.http.clone(), &self.config.api_url, token);
        *cached = Some((telegram.clone(), Instant::now()));
        Ok(telegram)
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Response, Error> {
        let from_sqs = event.payload["Records"][0]["eventSource"] == "aws:sqs";
        let incoming = input::parse(event.payload)?;
        let mut session = Session { telegram: self.telegram(false).await?, reread: false };
        let deadline = invocation::deadline(&event.context, RESERVE);

        let mut report = Report::default();
        let mut batch = from_sqs.then(SqsBatchResponse::default);
        for item in incoming {
            if let Err(e) = self.deliver_one(&mut session, &item, deadline, &mut report).await {
                match (&item.sqs_message_id, &mut batch) {
                    (Some(id), Some(batch)) => batch.add_failure(id),
                    _ => return Err(e),
                }
            }
        }
        let response = Response { report, batch };
        run::record(&response);
        Ok(response)
    }

    /// Delivers one message to each chat that has not had it; writes down what could not be sent.
    async fn deliver_one(
        &self,
        session: &mut Session,
        item: &Incoming,
        deadline: tokio::time::Instant,
        report: &mut Report,
    ) -> Result<(), Error> {
        if let Message::Alarm(a) = &item.message
            && a.state == alarm::State::InsufficientData
            && self.config.insufficient_data == InsufficientData::Skip
        {
            report.skipped.push(Skipped { id: item.id.clone(), reason: "INSUFFICIENT_DATA is configured to skip" });
            return Ok(());
        }
        let rendered = render::render(&item.message, self.config.insufficient_data);
        let (chats, refused) = targets(item.only_chats.as_deref(), &self.config.chats);
        for chat in refused {
            tracing::warn!(id = %item.id, chat = %chat.label(), "refused: the message names a chat not in TELEGRAM_CHATS");
            report.refused.push(ForChat { reason: Some("not in TELEGRAM_CHATS"), ..ForChat::new(&item.id, &chat) });
        }
        let mut undelivered = Vec::new();
        let mut errors = Vec::new();
        let mut busy = Vec::new();
        for chat in chats {
            let key = (item.id.clone(), chat.label());
            if self.delivered.lock().await.0.contains(&key) {
                report.duplicates.push(ForChat::new(&item.id, &chat));
                continue;
            }
            let claim = match &self.ledger {
                None => None,
                Some(ledger) => match ledger.take(&item.id, &chat.label(), deadline).await {
                    Ok(Taken::Claimed(claim)) => Some(claim),
                    Ok(Taken::Duplicate) => {
                        self.remember(key).await;
                        report
                            .duplicates
                            .push(ForChat { seen_by: Some("another container"), ..ForChat::new(&item.id, &chat) });
                        continue;
                    }
                    Ok(Taken::Busy) => {
                        tracing::info!(id = %item.id, chat = %chat.label(), "another container is sending it; retried later");
                        report.in_flight_elsewhere.push(ForChat::new(&item.id, &chat));
                        busy.push(chat.label());
                        continue;
                    }
                    // An alert that may come twice beats one that never comes: sent unclaimed.
                    Err(error) => {
                        tracing::warn!(id = %item.id, chat = %chat.label(), %error, "delivery records unreadable; sending unclaimed");
                        report
                            .unclaimed
                            .push(ForChat { error: Some(error.to_string()), ..ForChat::new(&item.id, &chat) });
                        None
                    }
                },
            };
            let mut result = self.pacer.deliver(&session.telegram, &chat, &rendered, deadline).await;
            if matches!(result, Err(Failed::TokenRejected(_))) && !session.reread {
                // Read once per invocation: a token that is refused again is not retried per chat.
                tracing::warn!("Telegram refused the bot token; reading it again");
                session.telegram = self.telegram(true).await?;
                session.reread = true;
                result = self.pacer.deliver(&session.telegram, &chat, &rendered, deadline).await;
            }
            match result {
                Ok(sent) => {
                    self.remember(key).await;
                    if let (Some(ledger), Some(claim)) = (&self.ledger, &claim)
                        && let Err(error) = ledger.sent(claim, sent.message_id).await
                    {
                        // Sent all the same; its claim goes stale, and only a copy arriving after
                        // that could send it again (ledger.rs).
                        tracing::warn!(id = %item.id, chat = %chat.label(), %error, "sent, but not recorded as sent");
                    }
                    report.sent.push(report::Sent {
                        id: item.id.clone(),
                        chat: sent.chat.label(),
                        message_id: sent.message_id,
                        plain_text: sent.as_plain_text,
                        waited_429: sent.waited_429,
                    });
                }
                Err(error) => {
                    tracing::warn!(id = %item.id, chat = %chat.label(), %error, "not delivered");
                    if let (Some(ledger), Some(claim)) = (&self.ledger, &claim)
                        && let Err(release) = ledger.release(claim).await
                    {
                        // Its retry waits until the claim goes stale (ledger::STALE_AFTER) instead.
                        tracing::warn!(id = %item.id, chat = %chat.label(), error = %release, "claim not released");
                    }
                    errors.push(format!("{}: {error}", chat.label()));
                    undelivered.push(chat);
                }
            }
        }
        if undelivered.is_empty() {
            return in_flight(&item.id, &busy);
        }
        let remainder = Undelivered { id: item.id.clone(), chats: undelivered, errors, origin: item.origin.clone() };
        let Some(queue) = &self.config.dead_letter_queue_url else {
            return Err(Error::Incomplete(format!(
                "not delivered and no TELEGRAM_DLQ_URL: {}",
                remainder.errors.join("; ")
            )));
        };
        self.sqs
            .send_message()
            .queue_url(queue)
            .message_body(remainder.to_json())
            .send()
            .await
            .map_err(|e| Error::Aws { operation: "sqs:SendMessage", message: SdkErrorDisplay(&e).to_string() })?;
        report.dead_lettered.push(DeadLettered { id: remainder.id, chats: remainder.chats, errors: remainder.errors });
        in_flight(&item.id, &busy)
    }

    async fn remember(&self, key: (String, String)) {
        let mut guard = self.delivered.lock().await;
        let (set, order) = &mut *guard;
        if set.insert(key.clone()) {
            order.push_back(key);
        }
        while order.len() > REMEMBERED {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
    }
}

/// A message another container was still sending to some chats fails, so that it comes again (SQS
/// redelivers the record; Lambda retries an invocation): by then it is sent (a duplicate) or its
/// claim stale (taken over). The chats this invocation sent are recorded and not sent again.
fn in_flight(id: &str, busy: &[String]) -> Result<(), Error> {
    if busy.is_empty() {
        return Ok(());
    }
    Err(Error::Incomplete(format!(
        "{id}: another invocation is still sending it to {}; retried later",
        busy.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(id: &str, thread: Option<i64>) -> Chat {
        Chat { id: id.into(), thread }
    }

    #[test]
    fn a_replay_goes_only_to_configured_chats_the_rest_is_refused() {
        let configured = [chat("111", None), chat("-100222", Some(7))];
        assert_eq!(targets(None, &configured), (configured.to_vec(), vec![]));
        let only = [chat("-100222", Some(7)), chat("999", None), chat("-100222", None), chat("@elsewhere", None)];
        let (send, refused) = targets(Some(&only), &configured);
        assert_eq!(send, [chat("-100222", Some(7))]);
        assert_eq!(refused, [chat("999", None), chat("-100222", None), chat("@elsewhere", None)]);
        assert_eq!(targets(Some(&[]), &configured), (vec![], vec![]));
    }

    #[test]
    fn the_token_is_trusted_for_ten_minutes() {
        let read = Instant::now();
        assert!(!token_is_stale(read, read));
        assert!(!token_is_stale(read, read + Duration::from_secs(599)));
        assert!(token_is_stale(read, read + TOKEN_MAX_AGE));
        assert!(!token_is_stale(read + Duration::from_secs(1), read), "a clock that went back is not stale");
    }
}
