//! telegram-notify: CloudWatch alarms and the suite's notifications, rendered for a phone and sent
//! to Telegram.
//!
//! observe (parse the event; the bot token, cached at most `TOKEN_MAX_AGE` and read again when
//! Telegram refuses it) → plan (render; which chats: a replay's own list only within
//! `TELEGRAM_CHATS`, minus those that already got it, in this container or any other: [`ledger`])
//! → apply (claim, send, paced and retried) → report (response, log line, EMF; an undelivered
//! remainder goes to the dead-letter queue, whose alarm e-mails `ops-fallback`).

pub mod alarm;
pub mod apply;
pub mod aws;
pub mod config;
pub mod event;
pub mod ledger;
pub mod message;
pub mod render;
pub mod report;
pub mod telegram;

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::config::Env;
use openclaw_ops_shared::invocation;
use openclaw_ops_shared::run;
use openclaw_ops_shared::tls;
use openclaw_ops_shared::{Error, Function};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::apply::Pacer;
pub use crate::apply::targets;
pub use crate::aws::{Clients, TOKEN_MAX_AGE, token_is_stale};
pub use crate::config::Config;
use crate::ledger::Ledger;
use crate::report::{Report, Response};
use crate::telegram::Telegram;

pub const FUNCTION: &str = "telegram-notify";
/// Kept back from the invocation's deadline to write the undelivered remainder down.
const RESERVE: Duration = Duration::from_secs(3);
/// (message id, chat) pairs remembered per container, to drop a duplicate without asking S3.
pub(crate) const REMEMBERED: usize = 4096;
pub struct Handler {
    config: Config,
    clients: Clients,
    http: reqwest::Client,
    /// The client with the last token read, and when it was read.
    telegram: Mutex<Option<(Telegram, Instant)>>,
    pacer: Pacer,
    delivered: Mutex<Remembered>,
    /// The delivery records shared by every container (`TELEGRAM_DELIVERY_BUCKET`).
    ledger: Option<Ledger>,
}

/// One invocation's client, and whether it already read the token again after a 401.
pub(crate) struct Session {
    pub(crate) telegram: Telegram,
    pub(crate) reread: bool,
}

/// Recently delivered (message id, chat) pairs, oldest first out.
type Remembered = (HashSet<(String, String)>, VecDeque<(String, String)>);

impl Handler {
    /// `http` is [`telegram::http_client`]'s.
    pub fn new(config: Config, clients: Clients, http: reqwest::Client) -> Self {
        let ledger = config.delivery_bucket.clone().map(|bucket| Ledger::new(clients.s3.clone(), bucket));
        Handler {
            config,
            clients,
            http,
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
        let token = aws::bot_token(&self.clients.secrets, &self.config.secret_arn).await?;
        let telegram = Telegram::new(self.http.clone(), &self.config.api_url, token);
        *cached = Some((telegram.clone(), Instant::now()));
        Ok(telegram)
    }
}

impl Function for Handler {
    type Output = Response;

    fn init(env: &impl Env, sdk: &SdkConfig) -> Result<Self, Error> {
        let config = Config::from_env(env)?;
        let clients = Clients::new(sdk);
        Ok(Handler::new(config, clients, telegram::http_client(&*tls::shared()?)))
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Response, Error> {
        let from_sqs = event.payload["Records"][0]["eventSource"] == "aws:sqs";
        let incoming = event::parse(event.payload)?;
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
}

#[cfg(test)]
mod tests;
