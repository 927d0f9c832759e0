//! The Telegram Bot API's `sendMessage`, and how its answers are read. The bot token is part of the
//! URL, so every error is stripped of its URL before it can reach a log line or a response.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

/// A chat, optionally a forum topic in it (`chat_id[:thread_id]` in `TELEGRAM_CHATS`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Chat {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<i64>,
}

impl Chat {
    pub fn parse_list(raw: &str) -> Result<Vec<Chat>, String> {
        let chats: Vec<Chat> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|entry| {
                let (id, thread) = match entry.rsplit_once(':') {
                    Some((id, thread)) => {
                        (id, Some(thread.parse::<i64>().map_err(|_| format!("{entry:?}: thread id must be a number"))?))
                    }
                    None => (entry, None),
                };
                let valid_id = id.parse::<i64>().is_ok() || (id.starts_with('@') && id.len() > 1);
                if !valid_id {
                    return Err(format!("{entry:?}: chat id must be a number or @channel"));
                }
                Ok(Chat { id: id.to_owned(), thread })
            })
            .collect::<Result<_, String>>()?;
        if chats.is_empty() {
            return Err("no chats".into());
        }
        Ok(chats)
    }

    pub fn label(&self) -> String {
        match self.thread {
            Some(t) => format!("{}:{t}", self.id),
            None => self.id.clone(),
        }
    }
}

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// 429: wait this many seconds.
    RetryAfter(u64),
    /// The group became a supergroup with this id.
    Migrated(String),
    /// 400 "can't parse entities": our HTML was refused.
    Entities(String),
    /// 401: the token was refused (rotated, or revoked by @BotFather).
    Unauthorized(String),
    /// 5xx, a timeout or a connection error: worth another try.
    Transient(String),
    /// Anything else (403 bot blocked, 400 chat not found...): another try will not help.
    Permanent(String),
}

#[derive(Debug, Deserialize)]
struct ApiAnswer {
    ok: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ApiParameters>,
}

#[derive(Debug, Deserialize)]
struct ApiParameters {
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

#[derive(Clone)]
pub struct Telegram {
    http: reqwest::Client,
    base_url: String,
    token: String,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram").field("base_url", &self.base_url).field("token", &"<redacted>").finish()
    }
}

/// One HTTP client per container: the process's TLS configuration (the SDK's,
/// [`openclaw_ops_shared::tls`]),
/// connection reuse, bounded waits.
pub fn http_client(tls: &rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .expect("the HTTP client builds with static settings")
}

/// [`http_client`] with Mozilla's roots only, for tests.
#[cfg(test)]
pub(crate) fn test_http_client() -> reqwest::Client {
    use openclaw_ops_shared::{config::MapEnv, tls};
    http_client(&tls::build(&MapEnv::new(&[])).expect("the TLS configuration builds"))
}

impl Telegram {
    pub fn new(http: reqwest::Client, base_url: &str, token: String) -> Self {
        Telegram { http, base_url: base_url.trim_end_matches('/').to_owned(), token }
    }

    /// Sends one message; answers Telegram's message id.
    pub async fn send(&self, chat: &Chat, text: &str, html: bool, silent: bool) -> Result<i64, SendError> {
        let mut body = json!({
            "chat_id": chat.id,
            "text": text,
            "disable_notification": silent,
            "link_preview_options": {"is_disabled": true},
        });
        if html {
            body["parse_mode"] = json!("HTML");
        }
        if let Some(thread) = chat.thread {
            body["message_thread_id"] = json!(thread);
        }
        let url = format!("{}/bot{}/sendMessage", self.base_url, self.token);
        let response = self.http.post(url).json(&body).send().await.map_err(|e| self.transient(e))?;
        let status = response.status();
        let answer: ApiAnswer = match response.json().await {
            Ok(answer) => answer,
            Err(_) if status.is_server_error() => return Err(SendError::Transient(format!("HTTP {status}"))),
            Err(e) => {
                return Err(SendError::Permanent(format!("HTTP {status}: unreadable answer: {}", e.without_url())));
            }
        };
        if answer.ok {
            return Ok(answer.result.get("message_id").and_then(Value::as_i64).unwrap_or_default());
        }
        let code = answer.error_code.unwrap_or(status.as_u16());
        let description = self.redact(answer.description.unwrap_or_default());
        let params = answer.parameters.unwrap_or(ApiParameters { retry_after: None, migrate_to_chat_id: None });
        Err(match (code, params.retry_after, params.migrate_to_chat_id) {
            (429, retry_after, _) => SendError::RetryAfter(retry_after.unwrap_or(1)),
            (401, _, _) => SendError::Unauthorized(format!("{code}: {description}")),
            (_, _, Some(new_id)) => SendError::Migrated(new_id.to_string()),
            (400, _, _) if description.contains("can't parse entities") => SendError::Entities(description),
            (500..=599, _, _) => SendError::Transient(format!("{code}: {description}")),
            _ => SendError::Permanent(format!("{code}: {description}")),
        })
    }

    fn transient(&self, err: reqwest::Error) -> SendError {
        SendError::Transient(self.redact(err.without_url().to_string()))
    }

    /// Belt and braces: the token never leaves in a message.
    fn redact(&self, text: String) -> String {
        if self.token.is_empty() { text } else { text.replace(&self.token, "<token>") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chats_with_and_without_topics() {
        let chats = Chat::parse_list(" -1001234567890:42 , 12345, @ops_channel ").unwrap();
        assert_eq!(chats[0], Chat { id: "-1001234567890".into(), thread: Some(42) });
        assert_eq!(chats[1], Chat { id: "12345".into(), thread: None });
        assert_eq!(chats[2].id, "@ops_channel");
        assert_eq!(chats[0].label(), "-1001234567890:42");
        assert!(Chat::parse_list("").is_err());
        assert!(Chat::parse_list("abc").is_err());
        assert!(Chat::parse_list("123:topic").is_err());
    }

    #[test]
    fn debug_output_hides_the_token() {
        let t = Telegram::new(test_http_client(), "http://x/", "123:SECRET".into());
        assert!(!format!("{t:?}").contains("SECRET"));
        assert_eq!(t.redact("bad 123:SECRET here".into()), "bad <token> here");
    }
}
