//! The connector against real sockets: a TLS server with the test CA's certificate
//! (`testdata/tls`, for `localhost` and 127.0.0.1), a closed port, a server that never answers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
use aws_smithy_types::byte_stream::ByteStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::config::MapEnv;
use crate::tls;

const CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tls/ca.pem");
const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tls/server.pem");
const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tls/server.key");

/// A TLS server on `ip` answering every request `200 ok`; it counts the handshakes that completed.
async fn tls_server(ip: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let certs = CertificateDer::pem_file_iter(CERT).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(KEY).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = handshakes.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                // One request a connection is enough: every request here is a bodyless GET.
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                    }
                }
            });
        }
    });
    (addr, handshakes)
}

fn get(url: &str) -> HttpRequest {
    let mut request = HttpRequest::new(SdkBody::empty());
    request.set_uri(url).unwrap();
    request
}

fn connector(env: &[(&str, &str)], timeouts: Timeouts) -> Connector {
    Connector::new(&Arc::new(tls::build(&MapEnv::new(env)).unwrap()), timeouts)
}

#[tokio::test]
async fn https_to_a_server_whose_ca_is_in_the_bundle() {
    let (addr, handshakes) = tls_server("127.0.0.1").await;
    let connector = connector(&[(tls::CA_BUNDLE, CA)], (Some(Duration::from_secs(2)), Some(Duration::from_secs(2))));

    for _ in 0..2 {
        let response = connector.call(get(&format!("https://localhost:{}/", addr.port()))).await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let body = ByteStream::new(response.into_body()).collect().await.unwrap().into_bytes();
        assert_eq!(&body[..], b"ok");
    }
    assert_eq!(handshakes.load(Ordering::SeqCst), 1, "the second request reuses the pooled connection");
}

#[tokio::test]
async fn a_certificate_no_root_vouches_for_is_refused_and_not_retried() {
    let (addr, handshakes) = tls_server("127.0.0.1").await;
    let connector = connector(&[], (Some(Duration::from_secs(2)), None));

    let err = connector.call(get(&format!("https://localhost:{}/", addr.port()))).await.unwrap_err();
    assert!(err.is_other() && err.as_other().is_none(), "{err:?}");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    // The certificate names localhost and 127.0.0.1, not 127.0.0.2 (a loopback address on Linux).
    let (addr, handshakes) = tls_server("127.0.0.2").await;
    let connector = connector(&[(tls::CA_BUNDLE, CA)], (Some(Duration::from_secs(2)), None));

    let err = connector.call(get(&format!("https://{addr}/"))).await.unwrap_err();
    assert!(err.is_other() && err.as_other().is_none(), "{err:?}");
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let connector = connector(&[], (Some(Duration::from_secs(2)), None));

    let err = connector.call(get(&format!("http://127.0.0.1:{port}/"))).await.unwrap_err();
    assert!(err.is_io(), "{err:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_read_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            open.push(tcp);
        }
    });
    let connector = connector(&[], (Some(Duration::from_secs(2)), Some(Duration::from_millis(200))));

    let err = connector.call(get(&format!("http://{addr}/"))).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

#[test]
fn one_connector_per_pair_of_timeouts() {
    let client = Client { tls: Arc::new(tls::build(&MapEnv::new(&[])).unwrap()), connectors: Mutex::default() };
    let components = RuntimeComponentsBuilder::for_tests().build().unwrap();
    let short = HttpConnectorSettings::builder().connect_timeout(Duration::from_secs(1)).build();
    let long = HttpConnectorSettings::builder().connect_timeout(Duration::from_secs(9)).build();

    client.http_connector(&short, &components);
    client.http_connector(&short, &components);
    client.http_connector(&long, &components);

    assert_eq!(client.connectors.lock().unwrap().len(), 2);
}
