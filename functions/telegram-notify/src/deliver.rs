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
    async fn wait_turn(&self, chat: &str) {
        let next = self.last_sent.lock().await.get(chat).map(|t| *t + MIN_INTERVAL);
        if let Some(next) = next {
            tokio::time::sleep_until(next).await;
        }
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
            self.wait_turn(&chat.id).await;
            let text = if html { &message.html } else { &message.plain };
            let result = telegram.send(&chat, text, html, message.silent).await;
            self.sent(&chat.id).await;
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
