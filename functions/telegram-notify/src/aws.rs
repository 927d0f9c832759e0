//! The clients the function uses, built once per container, and its plain AWS calls: the bot
//! token (Secrets Manager) and the dead-letter queue (SQS). The delivery records' S3 protocol is
//! [`crate::ledger`].

use std::time::Duration;

use openclaw_ops_shared::Error;
use openclaw_ops_shared::error::sdk;
use serde_json::Value;
use tokio::time::Instant;

/// Secrets Manager (the bot token), SQS (the dead-letter queue) and S3 (the delivery records).
pub struct Clients {
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Clients {
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            s3: aws_sdk_s3::Client::new(sdk),
        }
    }
}

/// How long a container trusts the bot token it read: a rotated secret reaches every warm container
/// within this time even when the old token still works (a revoked one is read again at once, on
/// Telegram's 401). Ten minutes is ~150 reads a day per warm container, a few cents a month.
pub const TOKEN_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// Is a token read at `fetched` too old to trust at `now`?
pub fn token_is_stale(fetched: Instant, now: Instant) -> bool {
    now.saturating_duration_since(fetched) >= TOKEN_MAX_AGE
}

/// The bot token from the secret `{"bot_token": "..."}`.
#[tracing::instrument(skip_all, fields(secret_arn = %secret_arn))]
pub async fn bot_token(secrets: &aws_sdk_secretsmanager::Client, secret_arn: &str) -> Result<String, Error> {
    let secret =
        secrets.get_secret_value().secret_id(secret_arn).send().await.map_err(sdk("secretsmanager:GetSecretValue"))?;
    let raw = secret.secret_string().unwrap_or_default();
    serde_json::from_str::<Value>(raw)
        .ok()
        .and_then(|v| v.get("bot_token").and_then(Value::as_str).map(str::to_owned))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Config("the Telegram secret must be JSON {\"bot_token\": \"...\"}".into()))
}

/// Puts an undelivered remainder on the dead-letter queue (its alarm e-mails `ops-fallback`).
#[tracing::instrument(skip_all, fields(queue_url = %queue_url))]
pub async fn dead_letter(sqs: &aws_sdk_sqs::Client, queue_url: &str, body: String) -> Result<(), Error> {
    sqs.send_message().queue_url(queue_url).message_body(body).send().await.map_err(sdk("sqs:SendMessage"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_trusted_for_ten_minutes() {
        let read = Instant::now();
        assert!(!token_is_stale(read, read));
        assert!(!token_is_stale(read, read + Duration::from_secs(599)));
        assert!(token_is_stale(read, read + TOKEN_MAX_AGE));
        assert!(!token_is_stale(read + Duration::from_secs(1), read), "a clock that went back is not stale");
    }
}
