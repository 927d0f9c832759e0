//! Getting one rendered message into one chat: Telegram's pace, its 429s, its hiccups, a group that
//! moved, and HTML it could not parse, all within the time the invocation has left; and, around it,
//! one message's delivery to every chat that has not had it (claimed in the ledger, remembered in
//! the container, its undelivered remainder dead-lettered).

use std::collections::HashMap;
use std::time::Duration;

use openclaw_ops_shared::Error;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::event::{Event, Undelivered};
use crate::ledger::Taken;
use crate::message::Message;
use crate::render::{self, InsufficientData, Rendered};
use crate::report::{self, DeadLettered, ForChat, Report, Skipped};
use crate::telegram::{Chat, SendError, Telegram};
use crate::{Handler, REMEMBERED, Session, alarm, aws};

/// Telegram allows about one message a second per chat; sending at that pace avoids 429s in a burst.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1000);
const MAX_TRANSIENT_TRIES: u32 = 5;

/// What the container remembers across invocations about chats.
#[derive(Debug, Default)]
pub struct Pacer {
    last_sent: Mutex<HashMap<String, Instant>>,
    migrated: Mutex<HashMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message_id: i64,
    /// The chat it went to (a migrated group's new id).
    pub chat: Chat,
    pub as_plain_text: bool,
    pub waited_429: u32,
}

/// Why a message did not reach a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// Telegram refused the bot token: read it again and retry.
    TokenRejected(String),
    /// Anything else, already retried as far as it could be.
    Other(String),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::TokenRejected(e) => write!(f, "the bot token was refused ({e})"),
            Failed::Other(e) => f.write_str(e),
        }
    }
}

impl Pacer {
    /// Waits for the chat's next slot; `false` when that slot comes after `deadline`.
    async fn wait_turn(&self, chat: &str, deadline: Instant) -> bool {
        let next = self.last_sent.lock().await.get(chat).map(|t| *t + MIN_INTERVAL);
        let at = next.map_or_else(Instant::now, |next| next.max(Instant::now()));
        if at >= deadline {
            return false;
        }
        tokio::time::sleep_until(at).await;
        true
    }

    async fn sent(&self, chat: &str) {
        self.last_sent.lock().await.insert(chat.to_owned(), Instant::now());
    }

    /// Sends, retrying what can be retried before `deadline`.
    pub async fn deliver(
        &self,
        telegram: &Telegram,
        chat: &Chat,
        message: &Rendered,
        deadline: Instant,
    ) -> Result<Sent, Failed> {
        let mut chat = chat.clone();
        if let Some(moved) = self.migrated.lock().await.get(&chat.id) {
            chat.id = moved.clone();
        }
        let mut html = true;
        let mut transient = 0;
        let mut migrations = 0;
        let mut waited_429 = 0;
        loop {
            if !self.wait_turn(&chat.id, deadline).await {
                return Err(Failed::Other("no time left before the invocation's deadline".into()));
            }
            let text = if html { &message.html } else { &message.plain };
            // A send cut off at the deadline may still have arrived: written down as undelivered, it
            // can reach the chat twice, which is better than the whole batch dying unreported.
            let result = tokio::time::timeout_at(deadline, telegram.send(&chat, text, html, message.silent)).await;
            self.sent(&chat.id).await;
            let Ok(result) = result else {
                return Err(Failed::Other("Telegram had not answered by the invocation's deadline".into()));
            };
            match result {
                Ok(message_id) => return Ok(Sent { message_id, chat, as_plain_text: !html, waited_429 }),
                Err(SendError::RetryAfter(seconds)) => {
                    let wait = Duration::from_secs(seconds);
                    if Instant::now() + wait >= deadline {
                        return Err(Failed::Other(format!(
                            "429: retry after {seconds} s is past the invocation's deadline"
                        )));
                    }
                    waited_429 += 1;
                    tokio::time::sleep(wait).await;
                }
                Err(SendError::Migrated(new_id)) if migrations < 2 => {
                    tracing::warn!(from = %chat.id, to = %new_id, "chat migrated to a supergroup; update TELEGRAM_CHATS");
                    self.migrated.lock().await.insert(chat.id.clone(), new_id.clone());
                    chat.id = new_id;
                    migrations += 1;
                }
                Err(SendError::Entities(description)) if html => {
                    tracing::warn!(%description, "Telegram could not parse our HTML; resending as plain text");
                    html = false;
                }
                Err(SendError::Transient(error)) if transient + 1 < MAX_TRANSIENT_TRIES => {
                    transient += 1;
                    let backoff = Duration::from_millis(500 * 2u64.pow(transient - 1)).min(Duration::from_secs(8));
                    if Instant::now() + backoff >= deadline {
                        return Err(Failed::Other(format!("{error} (no time left to retry)")));
                    }
                    tokio::time::sleep(backoff).await;
                }
                Err(SendError::Unauthorized(e)) => return Err(Failed::TokenRejected(e)),
                Err(SendError::Transient(e) | SendError::Permanent(e) | SendError::Entities(e)) => {
                    return Err(Failed::Other(e));
                }
                Err(SendError::Migrated(id)) => {
                    return Err(Failed::Other(format!("chat keeps migrating (last to {id})")));
                }
            }
        }
    }
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

impl Handler {
    /// Delivers one message to each chat that has not had it; writes down what could not be sent.
    pub(crate) async fn deliver_one(
        &self,
        session: &mut Session,
        item: &Event,
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
        aws::dead_letter(&self.clients.sqs, queue, remainder.to_json()).await?;
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
    fn chat_in(id: &str, thread: Option<i64>) -> Chat {
        Chat { id: id.into(), thread }
    }

    #[test]
    fn a_replay_goes_only_to_configured_chats_the_rest_is_refused() {
        let configured = [chat_in("111", None), chat_in("-100222", Some(7))];
        assert_eq!(targets(None, &configured), (configured.to_vec(), vec![]));
        let only =
            [chat_in("-100222", Some(7)), chat_in("999", None), chat_in("-100222", None), chat_in("@elsewhere", None)];
        let (send, refused) = targets(Some(&only), &configured);
        assert_eq!(send, [chat_in("-100222", Some(7))]);
        assert_eq!(refused, [chat_in("999", None), chat_in("-100222", None), chat_in("@elsewhere", None)]);
        assert_eq!(targets(Some(&[]), &configured), (vec![], vec![]));
    }

    use serde_json::json;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    fn message() -> Rendered {
        Rendered { html: "<b>hi</b>".into(), plain: "hi".into(), silent: false }
    }

    fn chat() -> Chat {
        Chat { id: "111".into(), thread: None }
    }

    async fn telegram_answering_after(delay: Duration) -> (MockServer, Telegram) {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": true, "result": {"message_id": 7}}))
                    .set_delay(delay),
            )
            .mount(&server)
            .await;
        let telegram = Telegram::new(crate::telegram::test_http_client(), &server.uri(), "1:token".into());
        (server, telegram)
    }

    /// A Telegram slower than the time left: the send is given up at the deadline, not at the HTTP
    /// client's own 10-second limit, which would outlast the invocation.
    #[tokio::test]
    async fn a_send_that_outlasts_the_deadline_is_given_up_at_the_deadline() {
        let (_server, telegram) = telegram_answering_after(Duration::from_secs(5)).await;
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        let error = Pacer::default().deliver(&telegram, &chat(), &message(), deadline).await.unwrap_err();
        assert_eq!(error, Failed::Other("Telegram had not answered by the invocation's deadline".into()));
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    /// The chat's next slot (one message a second) lies past the deadline: no send is started.
    #[tokio::test]
    async fn a_turn_that_comes_after_the_deadline_is_not_waited_for() {
        let (server, telegram) = telegram_answering_after(Duration::ZERO).await;
        let pacer = Pacer::default();
        let far = Instant::now() + Duration::from_secs(30);
        pacer.deliver(&telegram, &chat(), &message(), far).await.unwrap();
        let started = Instant::now();
        let error =
            pacer.deliver(&telegram, &chat(), &message(), started + Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(error, Failed::Other("no time left before the invocation's deadline".into()));
        assert!(started.elapsed() < Duration::from_millis(200));
        assert_eq!(server.received_requests().await.unwrap().len(), 1, "the second message was not sent");
    }
}
