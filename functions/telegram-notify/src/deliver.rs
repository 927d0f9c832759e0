//! Getting one rendered message into one chat: Telegram's pace, its 429s, its hiccups, a group that
//! moved, and HTML it could not parse, all within the time the invocation has left.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::render::Rendered;
use crate::telegram::{Chat, SendError, Telegram};

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

#[cfg(test)]
mod tests {
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
        let telegram = Telegram::new(crate::telegram::http_client(), &server.uri(), "1:token".into());
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
