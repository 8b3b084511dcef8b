//! TLS on the gRPC listener and the actuator, with and without client
//! certificates, spoken to by real TLS clients (tonic over rustls, and a
//! raw HTTP/1.1 request over tokio-rustls).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use layotto_runtime::tls::TlsConfig;
use layotto_runtime::{Config, Registries};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A CA, a server certificate for `localhost`, and a client certificate, as PEM.
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
    /// A client certificate from a CA the server does not trust.
    stranger: (String, String),
    /// That other CA.
    other_ca: String,
}

fn ca() -> (Issuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (Issuer::new(params, key), cert.pem())
}

fn leaf(issuer: &Issuer<'static, KeyPair>, name: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_owned()]).unwrap().signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let (issuer, ca) = ca();
    let (other, other_ca) = self::ca();
    Pki {
        ca,
        server: leaf(&issuer, "localhost"),
        client: leaf(&issuer, "app"),
        stranger: leaf(&other, "app"),
        other_ca,
    }
}

fn write(dir: &Path, name: &str, pem: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

fn tls_config(dir: &Path, pki: &Pki, mutual: bool) -> TlsConfig {
    TlsConfig {
        cert_file: write(dir, "server.pem", &pki.server.0),
        key_file: write(dir, "server.key", &pki.server.1),
        client_ca_file: mutual.then(|| write(dir, "ca.pem", &pki.ca)),
    }
}

async fn start(tls: TlsConfig) -> layotto_runtime::Running {
    let mut config = Config::embedded_defaults();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.server.tls = Some(tls.clone());
    config.server.actuator_tls = Some(tls);
    layotto_runtime::start(config, Registries::builtin()).await.unwrap()
}

async fn say_hello(
    running: &layotto_runtime::Running,
    tls: Option<ClientTlsConfig>,
) -> Result<String, String> {
    let mut endpoint = Channel::from_shared(format!("https://localhost:{}", running.grpc_addr().port()))
        .unwrap()
        .connect_timeout(std::time::Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    let request =
        pb::SayHelloRequest { service_name: "quick_start_demo".into(), name: "tls".into(), data: None };
    let reply = RuntimeClient::new(channel).say_hello(request).await.map_err(|e| format!("{e:?}"))?;
    Ok(reply.into_inner().hello)
}

/// GET over HTTPS with an optional client certificate; the status line, or why it failed.
async fn https_get(
    port: u16,
    ca: &str,
    client: Option<&(String, String)>,
    path: &str,
) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.map_err(|e| e.to_string())?;
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn grpc_and_actuator_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let running = start(tls_config(dir.path(), &pki, false)).await;

    let trusted =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca)).domain_name("localhost");
    assert_eq!(say_hello(&running, Some(trusted)).await.unwrap(), "greeting, tls");
    // A plaintext client cannot talk to a TLS listener.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{}", running.grpc_addr().port())).unwrap();
    let plain = plain.connect().await.unwrap();
    let request =
        pb::SayHelloRequest { service_name: "quick_start_demo".into(), name: "x".into(), data: None };
    assert!(RuntimeClient::new(plain).say_hello(request).await.is_err());
    // A client that does not trust the server's CA refuses it.
    let stranger_ca =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.other_ca)).domain_name("localhost");
    assert!(say_hello(&running, Some(stranger_ca)).await.is_err());

    let port = running.actuator_addr().port();
    let status = https_get(port, &pki.ca, None, "/actuator/health/liveness").await.unwrap();
    assert!(status.contains("200"), "{status}");
    // Plain HTTP on the TLS actuator gets no HTTP answer.
    let mut tcp = tokio::net::TcpStream::connect(running.actuator_addr()).await.unwrap();
    tcp.write_all(b"GET /actuator/health/liveness HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    running.shutdown().await;
}

#[tokio::test]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let running = start(tls_config(dir.path(), &pki, true)).await;
    let base =
        || ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca)).domain_name("localhost");

    let with_cert = base().identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    assert_eq!(say_hello(&running, Some(with_cert)).await.unwrap(), "greeting, tls");
    assert!(say_hello(&running, Some(base())).await.is_err(), "no client certificate must be refused");
    let stranger = base().identity(Identity::from_pem(&pki.stranger.0, &pki.stranger.1));
    assert!(
        say_hello(&running, Some(stranger)).await.is_err(),
        "an untrusted client certificate must be refused"
    );

    let port = running.actuator_addr().port();
    let ok = https_get(port, &pki.ca, Some(&pki.client), "/actuator/health/readiness").await.unwrap();
    assert!(ok.contains("200"), "{ok}");
    let refused = https_get(port, &pki.ca, None, "/actuator/health/readiness").await;
    assert!(!refused.as_deref().unwrap_or_default().contains("200"), "{refused:?}");
    let refused = https_get(port, &pki.ca, Some(&pki.stranger), "/actuator/health/readiness").await;
    assert!(!refused.as_deref().unwrap_or_default().contains("200"), "{refused:?}");
    running.shutdown().await;
}

#[tokio::test]
async fn bad_tls_files_stop_startup_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let mut tls = tls_config(dir.path(), &pki, false);
    tls.key_file = dir.path().join("missing.key");
    let mut config = Config::embedded_defaults();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.server.tls = Some(tls);
    let err = layotto_runtime::start(config.clone(), Registries::builtin()).await.err().unwrap().to_string();
    assert!(err.contains("missing.key") && err.contains("gRPC TLS"), "{err}");

    let garbage = write(dir.path(), "garbage.pem", "not a certificate");
    let mut tls = tls_config(dir.path(), &pki, false);
    tls.cert_file = garbage;
    config.server.tls = None;
    config.server.actuator_tls = Some(tls);
    let err = layotto_runtime::start(config, Registries::builtin()).await.err().unwrap().to_string();
    assert!(err.contains("garbage.pem") && err.contains("actuator TLS"), "{err}");
}
