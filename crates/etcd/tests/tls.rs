//! Layotto's `tlsCert` / `tlsCertKey` / `tlsCa` against a private etcd that
//! serves TLS only and requires a client certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use layotto_core::ErrorKind;
use layotto_etcd::{Etcd, EtcdSettings};
use layotto_testkit::{PrivateEtcd, TestCerts};

fn settings(endpoint: &str, ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> EtcdSettings {
    EtcdSettings {
        endpoints: Some(endpoint.to_owned()),
        dial_timeout: Some(Duration::from_secs(2)),
        timeout: Some(Duration::from_secs(2)),
        tls_ca: ca.map(str::to_owned),
        tls_cert: cert.map(str::to_owned),
        tls_cert_key: key.map(str::to_owned),
        ..Default::default()
    }
}

/// Connects, retrying while the new etcd finishes starting.
async fn connect_retrying(settings: &EtcdSettings) -> layotto_core::Result<Etcd> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Etcd::connect("lock store 'tls' (etcd)", settings).await {
            Ok(etcd) => return Ok(etcd),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn tls_with_a_client_certificate_works_and_without_one_is_refused() {
    let certs = TestCerts::generate();
    let etcd = PrivateEtcd::start_tls(&certs);
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (ca, cert, key) = (path(&certs.ca), path(&certs.client_cert), path(&certs.client_key));

    let good = settings(&etcd.endpoint(), Some(&ca), Some(&cert), Some(&key));
    let client = connect_retrying(&good).await.expect("TLS with a client certificate connects");
    client.put("/layotto/tls", b"ok", 0).await.unwrap();
    assert_eq!(client.get("/layotto/tls").await.unwrap().unwrap().value, b"ok");

    // etcd asks for a client certificate: the CA alone is not enough.
    let no_identity = settings(&etcd.endpoint(), Some(&ca), None, None);
    assert!(Etcd::connect("tls", &no_identity).await.is_err(), "no client certificate must be refused");
    // Plain text to a TLS port gets nowhere.
    let plain = settings(&etcd.endpoint(), None, None, None);
    assert!(Etcd::connect("tls", &plain).await.is_err(), "plain text must not connect");
}

#[tokio::test]
async fn bad_tls_settings_are_config_errors_naming_the_key() {
    let certs = TestCerts::generate();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let cases = [
        (settings("127.0.0.1:1", None, Some(&path(&certs.client_cert)), None), "tlsCertKey"),
        (settings("127.0.0.1:1", None, None, Some(&path(&certs.client_key))), "tlsCert"),
        (settings("127.0.0.1:1", Some("/nonexistent/ca.pem"), None, None), "tlsCa"),
    ];
    for (settings, key) in cases {
        let err = Etcd::connect("lock store 'tls' (etcd)", &settings).await.err().expect("must fail");
        assert_eq!(err.kind(), ErrorKind::Config, "{key}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(key) && msg.contains("lock store 'tls'"), "{key}: {msg}");
    }
}
