//! telegram-notify: CloudWatch alarms and the suite's notifications, rendered for a phone and sent
//! to Telegram.
//!
//! observe (parse the event; the bot token, once per container) → plan (render; which chats, minus
//! those that already got it) → apply (send, paced and retried) → report (response, log line, EMF;
//! an undelivered remainder goes to the dead-letter queue, whose alarm e-mails `ops-fallback`).

pub mod alarm;
pub mod config;
pub mod deliver;
pub mod input;
pub mod message;
pub mod render;
pub mod telegram;

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use chrono::Utc;
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::Error;
use openclaw_ops_shared::error::SdkErrorDisplay;
use openclaw_ops_shared::metrics::Metrics;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex, OnceCell};

pub use crate::config::Config;
use crate::deliver::Pacer;
use crate::input::{Incoming, Undelivered};
use crate::message::Message;
use crate::render::InsufficientData;
use crate::telegram::Telegram;

pub const FUNCTION: &str = "telegram-notify";
/// Kept back from the invocation's deadline to write the undelivered remainder down.
const RESERVE: Duration = Duration::from_secs(3);
/// (message id, chat) pairs remembered per container, to drop duplicate deliveries.
const REMEMBERED: usize = 4096;

pub struct Handler {
    config: Config,
    secrets: aws_sdk_secretsmanager::Client,
    sqs: aws_sdk_sqs::Client,
    http: reqwest::Client,
    telegram: OnceCell<Telegram>,
    pacer: Pacer,
    delivered: Mutex<Remembered>,
}

/// Recently delivered (message id, chat) pairs, oldest first out.
type Remembered = (HashSet<(String, String)>, VecDeque<(String, String)>);

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub sent: Vec<Value>,
    pub duplicates: Vec<Value>,
    pub skipped: Vec<Value>,
    pub dead_lettered: Vec<Value>,
}

impl Handler {
    pub fn new(config: Config, secrets: aws_sdk_secretsmanager::Client, sqs: aws_sdk_sqs::Client) -> Self {
        Handler {
            config,
            secrets,
            sqs,
            http: telegram::http_client(),
            telegram: OnceCell::new(),
            pacer: Pacer::default(),
            delivered: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    /// The bot token, from Secrets Manager on first use, then cached for the container's life.
    async fn telegram(&self) -> Result<&Telegram, Error> {
        self.telegram
            .get_or_try_init(|| async {
                let secret =
                    self.secrets.get_secret_value().secret_id(&self.config.secret_arn).send().await.map_err(|e| {
                        Error::Aws {
                            operation: "secretsmanager:GetSecretValue",
                            message: SdkErrorDisplay(&e).to_string(),
                        }
                    })?;
                let raw = secret.secret_string().unwrap_or_default();
                let token = serde_json::from_str::<Value>(raw)
                    .ok()
                    .and_then(|v| v.get("bot_token").and_then(Value::as_str).map(str::to_owned))
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| Error::Config("the Telegram secret must be JSON {\"bot_token\": \"...\"}".into()))?;
                Ok(Telegram::new(self.http.clone(), &self.config.api_url, token))
            })
            .await
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let from_sqs = event.payload["Records"][0]["eventSource"] == "aws:sqs";
        let incoming = input::parse(event.payload)?;
        let telegram = self.telegram().await?;
        let remaining = event.context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + remaining.saturating_sub(RESERVE);

        let mut report = Report::default();
        let mut batch_failures = Vec::new();
        for item in incoming {
            if let Err(e) = self.deliver_one(telegram, &item, deadline, &mut report).await {
                match &item.sqs_message_id {
                    Some(id) if from_sqs => batch_failures.push(json!({"itemIdentifier": id})),
                    _ => return Err(e),
                }
            }
        }

        Metrics::new(FUNCTION)
            .count("MessagesSent", report.sent.len())
            .count("MessagesDuplicate", report.duplicates.len())
            .count("MessagesUndelivered", report.dead_lettered.len())
            .emit(Utc::now());
        let json = serde_json::to_value(&report).expect("serialisable");
        tracing::info!(
            sent = report.sent.len(),
            duplicates = report.duplicates.len(),
            skipped = report.skipped.len(),
            dead_lettered = report.dead_lettered.len(),
            batch_failures = batch_failures.len(),
            report = %json,
            "telegram-notify delivered"
        );
        let mut response = json;
        if from_sqs {
            response["batchItemFailures"] = Value::Array(batch_failures);
        }
        Ok(response)
    }

    /// Delivers one message to each chat that has not had it; writes down what could not be sent.
    async fn deliver_one(
        &self,
        telegram: &Telegram,
        item: &Incoming,
        deadline: tokio::time::Instant,
        report: &mut Report,
    ) -> Result<(), Error> {
        if let Message::Alarm(a) = &item.message
            && a.state == alarm::State::InsufficientData
            && self.config.insufficient_data == InsufficientData::Skip
        {
            report.skipped.push(json!({"id": item.id, "reason": "INSUFFICIENT_DATA is configured to skip"}));
            return Ok(());
        }
        let rendered = render::render(&item.message, self.config.insufficient_data);
        let chats = item.only_chats.clone().unwrap_or_else(|| self.config.chats.clone());
        let mut undelivered = Vec::new();
        let mut errors = Vec::new();
        for chat in chats {
            let key = (item.id.clone(), chat.label());
            if self.delivered.lock().await.0.contains(&key) {
                report.duplicates.push(json!({"id": item.id, "chat": chat.label()}));
                continue;
            }
            match self.pacer.deliver(telegram, &chat, &rendered, deadline).await {
                Ok(sent) => {
                    self.remember(key).await;
                    report.sent.push(json!({
                        "id": item.id, "chat": sent.chat.label(), "message_id": sent.message_id,
                        "plain_text": sent.as_plain_text, "waited_429": sent.waited_429,
                    }));
                }
                Err(error) => {
                    tracing::warn!(id = %item.id, chat = %chat.label(), %error, "not delivered");
                    errors.push(format!("{}: {error}", chat.label()));
                    undelivered.push(chat);
                }
            }
        }
        if undelivered.is_empty() {
            return Ok(());
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
        report.dead_lettered.push(json!({"id": remainder.id, "chats": remainder.chats, "errors": remainder.errors}));
        Ok(())
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
