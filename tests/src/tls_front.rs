//! The emulator behind TLS, as a function on Lambda reaches AWS: an HTTPS front on 127.0.0.1 with
//! the test CA's certificate (`shared/testdata/tls`, trusted by a function through
//! `AWS_CA_BUNDLE`) that forwards each request unchanged (its `Host` too: the signature covers it)
//! to the emulator and counts the requests and the time the emulator took to answer them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::workspace_root;

/// What went through the front since the last [`TlsFront::take`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    pub requests: u64,
    pub handshakes: u64,
    /// From forwarding a request to the emulator's whole answer, summed over the requests.
    pub emulator: Duration,
}

pub struct TlsFront {
    /// `https://127.0.0.1:PORT`: an IP address, so S3 requests stay path-style as with the plain URL.
    pub url: String,
    traffic: Arc<Mutex<Traffic>>,
}

/// The PEM file of the CA that signed the front's certificate.
pub fn ca_bundle() -> PathBuf {
    workspace_root().join("shared/testdata/tls/ca.pem")
}

impl TlsFront {
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let dir = workspace_root().join("shared/testdata/tls");
        let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}", listener.local_addr()?);
        let traffic = Arc::new(Mutex::new(Traffic::default()));
        let forward = reqwest::Client::builder().no_proxy().build()?;
        let upstream = upstream.trim_end_matches('/').to_owned();
        let counted = traffic.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, forward, upstream, counted) =
                    (acceptor.clone(), forward.clone(), upstream.clone(), counted.clone());
                tokio::spawn(async move {
                    // As AWS's endpoints and the functions' own connector do: without it the
                    // handshake's small writes wait on the peer's delayed ACK (Nagle).
                    if tcp.set_nodelay(true).is_err() {
                        return;
                    }
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    counted.lock().unwrap().handshakes += 1;
                    let service = hyper::service::service_fn(move |request| {
                        relay(request, forward.clone(), upstream.clone(), counted.clone())
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        Ok(TlsFront { url, traffic })
    }

    /// The traffic since the last call, and a fresh count.
    pub fn take(&self) -> Traffic {
        std::mem::take(&mut *self.traffic.lock().unwrap())
    }
}

async fn relay(
    request: Request<Incoming>,
    forward: reqwest::Client,
    upstream: String,
    traffic: Arc<Mutex<Traffic>>,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let started = Instant::now();
    let answer = forward
        .request(parts.method, format!("{upstream}{path}"))
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .context("forwarding to the emulator")?;
    let mut response = Response::builder().status(answer.status());
    // Hop-by-hop headers are the connection's, not the answer's: the body goes back whole.
    for (name, value) in answer
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "transfer-encoding" | "connection" | "keep-alive"))
    {
        response = response.header(name, value);
    }
    let bytes = answer.bytes().await?;
    let mut traffic = traffic.lock().unwrap();
    traffic.requests += 1;
    traffic.emulator += started.elapsed();
    Ok(response.body(Full::new(bytes))?)
}
