//! telegram-notify's configuration (docs/ARCHITECTURE.md, "Configuration").

use openclaw_ops_shared::Error;
use openclaw_ops_shared::config::{self, Env};

use crate::render::InsufficientData;
use crate::telegram::Chat;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub secret_arn: String,
    pub chats: Vec<Chat>,
    pub api_url: String,
    pub insufficient_data: InsufficientData,
    /// Where an undelivered remainder goes (with only the chats that did not get it).
    pub dead_letter_queue_url: Option<String>,
    /// The bucket of delivery records shared by every container (ledger.rs); without it, duplicates
    /// are dropped only within one container (a run outside the stack, say).
    pub delivery_bucket: Option<String>,
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, Error> {
        let chats = config::required(env, "TELEGRAM_CHATS")?;
        let insufficient_data = match config::optional(env, "TELEGRAM_INSUFFICIENT_DATA").as_deref() {
            None | Some("silent") => InsufficientData::Silent,
            Some("send") => InsufficientData::Send,
            Some("skip") => InsufficientData::Skip,
            Some(other) => {
                return Err(Error::Config(format!(
                    "TELEGRAM_INSUFFICIENT_DATA={other:?}: expected send, silent or skip"
                )));
            }
        };
        Ok(Config {
            secret_arn: config::required(env, "TELEGRAM_SECRET_ARN")?,
            chats: Chat::parse_list(&chats).map_err(|e| Error::Config(format!("TELEGRAM_CHATS: {e}")))?,
            api_url: config::optional(env, "TELEGRAM_API_URL").unwrap_or_else(|| "https://api.telegram.org".into()),
            insufficient_data,
            dead_letter_queue_url: config::optional(env, "TELEGRAM_DLQ_URL"),
            delivery_bucket: config::optional(env, "TELEGRAM_DELIVERY_BUCKET"),
        })
    }
}

#[cfg(test)]
mod tests {
    use openclaw_ops_shared::config::MapEnv;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> MapEnv {
        MapEnv::new(pairs)
    }

    #[test]
    fn reads_the_documented_variables() {
        let c = Config::from_env(&env(&[("TELEGRAM_SECRET_ARN", "arn:s"), ("TELEGRAM_CHATS", "1,2:7")])).unwrap();
        assert_eq!(c.chats.len(), 2);
        assert_eq!(c.api_url, "https://api.telegram.org");
        assert_eq!(c.insufficient_data, InsufficientData::Silent);
        assert!(c.dead_letter_queue_url.is_none());
        assert!(c.delivery_bucket.is_none());
        let shared = Config::from_env(&env(&[
            ("TELEGRAM_SECRET_ARN", "s"),
            ("TELEGRAM_CHATS", "1"),
            ("TELEGRAM_DELIVERY_BUCKET", "records"),
        ]));
        assert_eq!(shared.unwrap().delivery_bucket.as_deref(), Some("records"));
        let bad = Config::from_env(&env(&[
            ("TELEGRAM_SECRET_ARN", "s"),
            ("TELEGRAM_CHATS", "1"),
            ("TELEGRAM_INSUFFICIENT_DATA", "loud"),
        ]));
        assert!(bad.unwrap_err().to_string().contains("TELEGRAM_INSUFFICIENT_DATA"));
        assert!(
            Config::from_env(&env(&[("TELEGRAM_SECRET_ARN", "s")])).unwrap_err().to_string().contains("TELEGRAM_CHATS")
        );
    }
}
