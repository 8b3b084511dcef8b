//! TLS for the listeners: a certificate and key from PEM files, and
//! optionally client certificates verified against a CA (mutual TLS).
//! gRPC uses tonic's rustls acceptor; the actuator a tokio-rustls one built
//! from the same files. Both use the ring provider, the one in this build.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::server::StartError;

/// `[server.tls]` (gRPC) or `[server.actuator_tls]` (actuator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, PEM.
    pub cert_file: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// When set, clients must present a certificate signed by this CA (PEM).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

fn read(what: &str, listener: &str, path: &Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(path)
        .map_err(|e| StartError(format!("{listener} TLS: cannot read the {what} {}: {e}", path.display())))
}

impl TlsConfig {
    /// The tonic TLS settings of the gRPC listener.
    pub(crate) fn grpc(&self) -> Result<tonic::transport::ServerTlsConfig, StartError> {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        // Parsed here too, so a bad file fails naming the file, not inside tonic.
        self.certified_key("gRPC")?;
        let identity = Identity::from_pem(
            read("certificate", "gRPC", &self.cert_file)?,
            read("key", "gRPC", &self.key_file)?,
        );
        let mut tls = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca_file {
            self.client_roots("gRPC", ca)?;
            tls = tls.client_ca_root(Certificate::from_pem(read("client CA", "gRPC", ca)?));
        }
        Ok(tls)
    }

    /// The acceptor of the actuator's HTTP/1 listener.
    pub(crate) fn actuator(&self) -> Result<tokio_rustls::TlsAcceptor, StartError> {
        let fail = |e: rustls::Error| StartError(format!("actuator TLS: {e}"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(fail)?;
        let builder = match &self.client_ca_file {
            Some(ca) => {
                let roots = self.client_roots("actuator", ca)?;
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| StartError(format!("actuator TLS: client CA {}: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let (certs, key) = self.certified_key("actuator")?;
        let mut config = builder.with_single_cert(certs, key).map_err(fail)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    fn certified_key(
        &self,
        listener: &str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), StartError> {
        let certs = certificates(listener, "certificate", &self.cert_file)?;
        let key = PrivateKeyDer::from_pem_slice(&read("key", listener, &self.key_file)?).map_err(|e| {
            StartError(format!("{listener} TLS: no private key in {}: {e}", self.key_file.display()))
        })?;
        Ok((certs, key))
    }

    fn client_roots(&self, listener: &str, ca: &Path) -> Result<rustls::RootCertStore, StartError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(listener, "client CA", ca)? {
            roots
                .add(cert)
                .map_err(|e| StartError(format!("{listener} TLS: client CA {}: {e}", ca.display())))?;
        }
        Ok(roots)
    }
}

fn certificates(listener: &str, what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, StartError> {
    let pem = read(what, listener, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| StartError(format!("{listener} TLS: {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(StartError(format!("{listener} TLS: no certificate in the {what} {}", path.display())));
    }
    Ok(certs)
}
