//! One TLS configuration per process, for every HTTPS client in it: the AWS SDK's ([`crate::http`])
//! and telegram-notify's own.
//!
//! The trust roots are Mozilla's, compiled in (`webpki-roots`): nothing is read or parsed at init.
//! The SDK's default client loads the platform's store instead, for every client it builds: on a
//! Debian host that is `ca-certificates.crt` and then each of the ~290 files in `/etc/ssl/certs`,
//! 4 ms of a 7 ms init. An operator whose AWS traffic passes a TLS-inspecting proxy, or who reaches
//! AWS through an endpoint with a private CA, adds that CA with `AWS_CA_BUNDLE`: a PEM file, the
//! variable the AWS CLI and the other SDKs read. Its certificates are trusted besides Mozilla's; an
//! unreadable file or one without a certificate stops the container at init.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::Error;
use crate::config::{Env, ProcessEnv};

/// The environment variable naming extra trusted CA certificates (PEM), as `env.get` reads it.
pub const CA_BUNDLE: &str = "AWS_CA_BUNDLE";

/// The process's TLS configuration, built on first use from the process environment.
pub fn shared() -> Result<Arc<ClientConfig>, Error> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| build(&ProcessEnv).map(Arc::new).map_err(|err| err.to_string()))
        .clone()
        .map_err(Error::Config)
}

/// A client configuration trusting Mozilla's roots and those of `AWS_CA_BUNDLE`, with the
/// SDK's crypto provider (aws-lc-rs) and its default protocol versions (TLS 1.2 and 1.3).
pub fn build(env: &impl Env) -> Result<ClientConfig, Error> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = env.get("AWS_CA_BUNDLE").filter(|path| !path.is_empty()) {
        for cert in extra_roots(&path)? {
            roots
                .add(cert)
                .map_err(|err| Error::Config(format!("{CA_BUNDLE} {path}: a certificate is not a CA: {err}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Config(format!("TLS: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The certificates of a PEM file; at least one.
fn extra_roots(path: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| Error::Config(format!("{CA_BUNDLE} {path}: {err}")))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("{CA_BUNDLE} {path}: no PEM certificate in it")));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    #[test]
    fn without_a_bundle_the_configuration_builds() {
        let config = build(&MapEnv::new(&[])).unwrap();
        assert!(config.alpn_protocols.is_empty(), "HTTP/1.1 without ALPN, as the connector speaks");
    }

    #[test]
    fn a_missing_bundle_is_a_configuration_error() {
        let err = build(&MapEnv::new(&[(CA_BUNDLE, "/nonexistent/ca.pem")])).unwrap_err();
        assert!(matches!(&err, Error::Config(m) if m.contains("/nonexistent/ca.pem")), "{err}");
    }

    #[test]
    fn a_bundle_without_certificates_is_a_configuration_error() {
        let dir = std::env::temp_dir().join(format!("tls-empty-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let err = build(&MapEnv::new(&[(CA_BUNDLE, dir.to_str().unwrap())])).unwrap_err();
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(&err, Error::Config(m) if m.contains("no PEM certificate")), "{err}");
    }

    #[test]
    fn an_empty_variable_is_no_bundle() {
        assert!(build(&MapEnv::new(&[(CA_BUNDLE, "")])).is_ok());
    }
}
