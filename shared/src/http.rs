//! The AWS SDK's HTTP client: hyper over rustls with the process's one TLS configuration
//! ([`crate::tls`]), HTTP/1.1, one connection pool per timeout setting.
//!
//! Why not the SDK's default client: it builds a connector, and with it a root store from the
//! platform's certificates, for every SDK client at construction (`validate_base_client_config`)
//! and again at each one's first request. Here a connector costs an `Arc` clone, and building the
//! clients reads nothing. What the default has and this lacks: HTTP/2 (the services the suite calls
//! answer HTTP/1.1) and `HTTPS_PROXY` (a Lambda function reaches AWS without one).
//!
//! Errors are classified as the SDK's client does, so its retry strategy sees the same kinds:
//! a timeout, an I/O error (refused, reset, closed early: retried), a user error (a request that
//! cannot be sent), or another error (a certificate that does not verify: not retried).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

type BoxError = Box<dyn StdError + Send + Sync>;

/// An [`HttpClient`] for `aws_config`'s loader: every SDK client built from its configuration
/// shares the connectors (and their connection pools).
pub fn client(tls: Arc<ClientConfig>) -> SharedHttpClient {
    SharedHttpClient::new(Client { tls, connectors: Mutex::default() })
}

/// The timeouts a connector is built for: the SDK asks for one per operation's settings.
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug)]
struct Client {
    tls: Arc<ClientConfig>,
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl HttpClient for Client {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        connectors
            .entry(timeouts)
            .or_insert_with(|| SharedHttpConnector::new(Connector::new(&self.tls, timeouts)))
            .clone()
    }
}

/// One connection pool, for one pair of timeouts.
#[derive(Debug, Clone)]
struct Connector {
    client: HyperClient<HttpsConnector<TcpConnector>, SdkBody>,
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new(tls: &Arc<ClientConfig>, (connect_timeout, read_timeout): Timeouts) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.set_connect_timeout(connect_timeout);
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        // `https_or_http`: the endpoint's scheme decides (the local emulator is plain HTTP).
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(ClientConfig::clone(tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = HyperClient::builder(TokioExecutor::new()).pool_timer(TokioTimer::new()).build(https);
        Connector { client, read_timeout }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(limit) => match tokio::time::timeout(limit, response).await {
                    Ok(response) => response,
                    Err(elapsed) => return Err(ConnectorError::timeout(elapsed.into())),
                },
                None => response.await,
            };
            match response {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|err| ConnectorError::other(err.into(), None)),
                Err(err) => Err(classify(err.into())),
            }
        })
    }
}

/// The kind of a failed request, as the SDK's own client tells them apart.
fn classify(err: BoxError) -> ConnectorError {
    match kind(err.as_ref()) {
        Kind::Timeout => ConnectorError::timeout(err),
        Kind::User => ConnectorError::user(err),
        Kind::Io => ConnectorError::io(err),
        Kind::Transient => ConnectorError::other(err, Some(ErrorKind::TransientError)),
        Kind::Other => ConnectorError::other(err, None),
    }
}

enum Kind {
    Timeout,
    User,
    Io,
    Transient,
    Other,
}

fn kind(err: &(dyn StdError + 'static)) -> Kind {
    let timed_out = chain(err)
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut));
    if timed_out {
        return Kind::Timeout;
    }
    // A certificate that does not verify will not verify on a retry.
    if chain(err).any(|e| e.is::<rustls::Error>()) {
        return Kind::Other;
    }
    if let Some(hyper) = chain(err).find_map(|e| e.downcast_ref::<hyper::Error>()) {
        if hyper.is_timeout() {
            return Kind::Timeout;
        }
        if hyper.is_user() {
            return Kind::User;
        }
        if hyper.is_incomplete_message() {
            return Kind::Transient;
        }
        if hyper.is_closed() || hyper.is_canceled() {
            return Kind::Io;
        }
    }
    let connect =
        chain(err).find_map(|e| e.downcast_ref::<hyper_util::client::legacy::Error>()).is_some_and(|e| e.is_connect());
    if connect || chain(err).any(|e| e.is::<std::io::Error>()) {
        return Kind::Io;
    }
    Kind::Other
}

/// `error`, then each error after it: after an `io::Error` its payload (`get_ref`), whose own
/// `source` `io::Error::source` skips; after any other error its `source`.
fn chain<'a>(error: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&error| match error.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => error.source(),
    })
}

#[cfg(test)]
mod tests;
