//! The secret store conformance suite (after components-contrib's): each
//! store holds `conftestsecret = abcd` and `secondsecret = efgh`; `get`
//! returns the one asked for, `bulk_get` a superset of both, and a missing
//! secret is NotFound naming the store and the key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use layotto_core::{ComponentContext, ErrorKind, Metadata};
use layotto_secrets::SecretStore;
use layotto_secrets::components::{env::EnvSecrets, file::FileSecrets};

struct Subject {
    store: Arc<dyn SecretStore>,
    _dir: Option<tempfile::TempDir>,
}

fn ctx(kind: &str, metadata: Metadata) -> ComponentContext {
    ComponentContext {
        api: "secret_store".into(),
        name: "conf".into(),
        kind: kind.into(),
        metadata,
        ..Default::default()
    }
}

fn env() -> BoxFuture<'static, Subject> {
    Box::pin(async {
        for (k, v) in [("CONFTEST_conftestsecret", "abcd"), ("CONFTEST_secondsecret", "efgh")] {
            if std::env::var(k).as_deref() != Ok(v) {
                panic!("{k}={v} must be in the environment (.cargo/config.toml sets it)");
            }
        }
        let metadata = Metadata::from([("prefix".to_owned(), "CONFTEST_".to_owned())]);
        Subject { store: EnvSecrets::build(ctx("local.env", metadata)).await.unwrap(), _dir: None }
    })
}

fn file() -> BoxFuture<'static, Subject> {
    Box::pin(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        std::fs::write(&path, r#"{"conftestsecret": "abcd", "secondsecret": "efgh", "nested": {"a": "b"}}"#)
            .unwrap();
        let metadata = Metadata::from([("secretsFile".to_owned(), path.display().to_string())]);
        Subject { store: FileSecrets::build(ctx("local.file", metadata)).await.unwrap(), _dir: Some(dir) }
    })
}

layotto_testkit::conformance! {
    subject: Subject;
    components {
        local_env: env(), [];
        local_file: file(), [];
    }
    cases {
        async fn get_returns_the_secret(s) {
            let secret = s.store.get("conftestsecret").await.unwrap();
            assert_eq!(secret, BTreeMap::from([("conftestsecret".to_owned(), "abcd".to_owned())]));
        }

        async fn bulk_get_returns_a_superset(s) {
            let all = s.store.bulk_get().await.unwrap();
            assert_eq!(all["conftestsecret"]["conftestsecret"], "abcd");
            assert_eq!(all["secondsecret"]["secondsecret"], "efgh");
        }

        async fn a_missing_secret_is_not_found_naming_store_and_key(s) {
            let err = s.store.get("no-such-secret").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound);
            assert!(err.to_string().contains("conf") && err.to_string().contains("no-such-secret"), "{err}");
        }
    }
}

#[tokio::test]
async fn a_missing_or_bad_secrets_file_stops_startup_naming_it() {
    let missing = Metadata::from([("secretsFile".to_owned(), "/nonexistent/secrets.json".to_owned())]);
    let err = FileSecrets::build(ctx("local.file", missing)).await.err().unwrap();
    assert!(err.to_string().contains("/nonexistent/secrets.json"), "{err}");
    let err = FileSecrets::build(ctx("local.file", Metadata::new())).await.err().unwrap();
    assert!(err.to_string().contains("secretsFile"), "{err}");
}

#[tokio::test]
async fn runtime_tokens_are_never_secrets() {
    let store = EnvSecrets::new("env", "");
    assert!(store.get("LAYOTTO_API_TOKEN").await.is_err());
    let all = store.bulk_get().await.unwrap();
    assert!(all.keys().all(|k| !k.starts_with("DAPR_") && !k.starts_with("LAYOTTO_")), "{:?}", all.keys());
}
