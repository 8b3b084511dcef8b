//! The configuration conformance suite (after components-contrib's): every
//! case runs against every component: in-memory always; etcd at
//! `LAYOTTO_TEST_ETCD` (default 127.0.0.1:2379), Redis at `LAYOTTO_TEST_REDIS`,
//! PostgreSQL at `LAYOTTO_TEST_POSTGRES`. Each case uses its own app id, so
//! cases share the backends and run in parallel. A backend that cannot be
//! reached fails its cases loudly; nothing is skipped for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use layotto_configuration::components::memory::MemoryConfigStore;
use layotto_configuration::{ConfigStore, ConfigurationItem, SaveRequest, Scope, Subscription};

/// Writes straight into the backend, as another process would.
type External = Arc<dyn Fn(String, ConfigurationItem) -> BoxFuture<'static, ()> + Send + Sync>;

struct Subject {
    store: Arc<dyn ConfigStore>,
    app: String,
    /// Changes the backend behind the component's back (none for in-memory).
    external: Option<External>,
}

fn app() -> String {
    format!("conf-{}", uuid::Uuid::new_v4().simple())
}

fn item(group: &str, label: &str, key: &str, content: &str) -> ConfigurationItem {
    ConfigurationItem::new(group, label, key, content)
}

fn keys(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

async fn save(s: &Subject, items: Vec<ConfigurationItem>) {
    s.store.set(SaveRequest { app_id: s.app.clone(), items }).await.unwrap();
}

async fn get(s: &Subject, group: &str, label: &str, wanted: &[&str]) -> BTreeMap<String, String> {
    let items = s.store.get(&Scope::new(&s.app, group, label, keys(wanted))).await.unwrap();
    items.into_iter().map(|i| (i.key, i.content)).collect()
}

/// The next push, within 10 s.
async fn next(sub: &mut Subscription) -> Vec<ConfigurationItem> {
    tokio::time::timeout(Duration::from_secs(10), sub.changes.recv())
        .await
        .expect("no push within 10 s")
        .expect("the subscription ended")
}

/// Pushes until `key` has `content` (a backend may push an item twice).
async fn until(sub: &mut Subscription, key: &str, content: &str) -> ConfigurationItem {
    loop {
        if let Some(found) = next(sub).await.into_iter().find(|i| i.key == key && i.content == content) {
            return found;
        }
    }
}

async fn until_deleted(sub: &mut Subscription, key: &str) {
    loop {
        if next(sub).await.iter().any(|i| i.key == key && i.is_deleted()) {
            return;
        }
    }
}

/// Nothing pushed for a while.
async fn quiet(sub: &mut Subscription) {
    if let Ok(Some(items)) = tokio::time::timeout(Duration::from_millis(700), sub.changes.recv()).await {
        panic!("unexpected push: {items:?}");
    }
}

fn memory() -> BoxFuture<'static, Subject> {
    Box::pin(async {
        Subject { store: Arc::new(MemoryConfigStore::new("conf")), app: app(), external: None }
    })
}

layotto_testkit::conformance! {
    subject: Subject;
    components {
        in_memory: memory(), [];
        #[cfg(feature = "etcd")]
        etcd: etcd_backend::subject(), ["external"];
        #[cfg(feature = "redis")]
        redis: redis_backend::subject(), ["external"];
        #[cfg(feature = "postgresql")]
        postgresql: postgresql_backend::subject(), ["external"];
    }
    cases {
        async fn save_get_delete_with_and_without_group_and_label(s) {
            save(&s, vec![item("default", "default", "k1", "v1"), item("g1", "l1", "k1", "other")]).await;
            assert_eq!(get(&s, "default", "default", &["k1"]).await, BTreeMap::from([("k1".into(), "v1".into())]));
            assert_eq!(get(&s, "g1", "l1", &["k1"]).await, BTreeMap::from([("k1".into(), "other".into())]));
            save(&s, vec![item("default", "default", "k1", "v2")]).await;
            assert_eq!(get(&s, "default", "default", &["k1"]).await["k1"], "v2", "a save replaces");
            s.store.delete(&Scope::new(&s.app, "default", "default", keys(&["k1"]))).await.unwrap();
            assert!(get(&s, "default", "default", &["k1"]).await.is_empty());
            assert_eq!(get(&s, "g1", "l1", &[]).await.len(), 1, "another group and label are untouched");
        }

        async fn empty_keys_return_all_and_missing_keys_nothing(s) {
            save(&s, vec![item("g", "l", "a", "1"), item("g", "l", "b", "2"), item("g", "other", "c", "3")]).await;
            assert_eq!(get(&s, "g", "l", &[]).await, BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]));
            assert!(get(&s, "g", "l", &["nope"]).await.is_empty());
            assert_eq!(get(&s, "g", "l", &["a", "nope"]).await.len(), 1);
        }

        async fn wildcards_match_any_group_label_or_key(s) {
            save(&s, vec![item("g1", "l1", "a", "1"), item("g2", "l2", "b", "2")]).await;
            assert_eq!(get(&s, "*", "*", &[]).await.len(), 2);
            assert_eq!(get(&s, "g1", "*", &["*"]).await, BTreeMap::from([("a".into(), "1".into())]));
            assert_eq!(get(&s, "*", "l2", &["b"]).await, BTreeMap::from([("b".into(), "2".into())]));
            s.store.delete(&Scope::new(&s.app, "*", "*", keys(&["a"]))).await.unwrap();
            assert_eq!(get(&s, "*", "*", &[]).await.len(), 1);
        }

        async fn tags_round_trip_and_are_replaced(s) {
            let mut tagged = item("default", "default", "t", "v");
            tagged.tags = BTreeMap::from([("env".into(), "prod".into()), ("team".into(), "pay".into())]);
            save(&s, vec![tagged.clone()]).await;
            let got = s.store.get(&Scope::new(&s.app, "default", "default", keys(&["t"]))).await.unwrap();
            assert_eq!(got[0].tags, tagged.tags);
            tagged.tags = BTreeMap::from([("env".into(), "dev".into())]);
            save(&s, vec![tagged.clone()]).await;
            let got = s.store.get(&Scope::new(&s.app, "default", "default", keys(&["t"]))).await.unwrap();
            assert_eq!(got[0].tags, tagged.tags, "tags are replaced, not merged");
        }

        async fn updates_and_deletes_reach_every_subscriber(s) {
            save(&s, vec![item("g", "l", "k1", "0"), item("g", "l", "k2", "0")]).await;
            let mut one = s.store.subscribe(Scope::new(&s.app, "g", "l", keys(&["k1"]))).await.unwrap();
            let mut two = s.store.subscribe(Scope::new(&s.app, "g", "l", keys(&["k1", "k2"]))).await.unwrap();
            let mut all = s.store.subscribe(Scope::new(&s.app, "g", "l", vec![])).await.unwrap();
            let mut other_app = s.store.subscribe(Scope::new(&format!("{}-x", s.app), "g", "l", vec![])).await.unwrap();
            save(&s, vec![item("g", "l", "k1", "1")]).await;
            for sub in [&mut one, &mut two, &mut all] {
                let pushed = until(sub, "k1", "1").await;
                assert_eq!((pushed.group.as_str(), pushed.label.as_str()), ("g", "l"));
            }
            save(&s, vec![item("g", "l", "k3", "new")]).await;
            until(&mut all, "k3", "new").await;
            s.store.delete(&Scope::new(&s.app, "g", "l", keys(&["k1"]))).await.unwrap();
            for sub in [&mut one, &mut two, &mut all] {
                until_deleted(sub, "k1").await;
            }
            quiet(&mut one).await;
            quiet(&mut other_app).await;
        }

        async fn an_unsubscribed_scope_gets_nothing_and_others_keep_theirs(s) {
            let gone = s.store.subscribe(Scope::new(&s.app, "g", "l", keys(&["k"]))).await.unwrap();
            let mut stays = s.store.subscribe(Scope::new(&s.app, "g", "l", keys(&["k"]))).await.unwrap();
            drop(gone);
            save(&s, vec![item("g", "l", "k", "after")]).await;
            until(&mut stays, "k", "after").await;
        }

        #[needs("external")]
        async fn a_change_made_in_the_backend_is_pushed(s) {
            let mut sub = s.store.subscribe(Scope::new(&s.app, "default", "default", vec![])).await.unwrap();
            let external = s.external.clone().unwrap();
            external(s.app.clone(), item("default", "default", "outside", "by-another-process")).await;
            until(&mut sub, "outside", "by-another-process").await;
            assert_eq!(get(&s, "default", "default", &["outside"]).await["outside"], "by-another-process");
        }
    }
}

#[cfg(feature = "etcd")]
mod etcd_backend {
    use super::*;
    use layotto_core::{ComponentContext, Metadata};
    use layotto_etcd::{Etcd, EtcdSettings};

    pub fn endpoint() -> String {
        std::env::var("LAYOTTO_TEST_ETCD").unwrap_or_else(|_| "127.0.0.1:2379".to_owned())
    }

    pub async fn store(endpoint: &str) -> Arc<dyn ConfigStore> {
        let ctx = ComponentContext {
            api: "config_store".into(),
            name: "conf".into(),
            kind: "etcd".into(),
            metadata: Metadata::from([("endpoints".to_owned(), endpoint.to_owned())]),
            ..Default::default()
        };
        layotto_configuration::components::etcd::EtcdConfigStore::build(ctx).await.unwrap()
    }

    pub fn subject() -> BoxFuture<'static, Subject> {
        Box::pin(async {
            let settings = EtcdSettings { endpoints: Some(endpoint()), ..Default::default() };
            let raw = Etcd::connect("test", &settings).await.unwrap();
            let external: External = Arc::new(move |app, item| {
                let raw = raw.clone();
                Box::pin(async move {
                    let key = format!("/{app}/{}/{}/{}", item.group, item.label, item.key);
                    raw.put(&key, item.content.as_bytes(), 0).await.unwrap();
                })
            });
            Subject { store: store(&endpoint()).await, app: app(), external: Some(external) }
        })
    }

    /// Layotto's layout, readable by Go Layotto and etcdctl.
    #[tokio::test]
    async fn stores_layottos_key_layout() {
        let store = store(&endpoint()).await;
        let app = app();
        let mut tagged = item("g", "l", "k", "content");
        tagged.tags.insert("env".into(), "prod".into());
        store.set(SaveRequest { app_id: app.clone(), items: vec![tagged] }).await.unwrap();
        let raw = Etcd::connect("test", &EtcdSettings { endpoints: Some(endpoint()), ..Default::default() })
            .await
            .unwrap();
        let value = raw.get(&format!("/{app}/g/l/k")).await.unwrap().unwrap().value;
        assert_eq!(value, b"content");
        let tag = raw.get(&format!("/{app}/g/l/k/env")).await.unwrap().unwrap().value;
        assert_eq!(tag, b"prod");
    }

    /// The runtime keeps its watch across an etcd restart: a change made
    /// after the restart is pushed without resubscribing.
    #[tokio::test]
    async fn pushes_resume_after_an_etcd_restart() {
        let mut etcd = layotto_testkit::PrivateEtcd::start();
        let store = store(&etcd.endpoint()).await;
        let app = app();
        let mut sub = store.subscribe(Scope::new(&app, "default", "default", vec![])).await.unwrap();
        store
            .set(SaveRequest { app_id: app.clone(), items: vec![item("default", "default", "k", "before")] })
            .await
            .unwrap();
        until(&mut sub, "k", "before").await;
        etcd.kill();
        let err = store.get(&Scope::new(&app, "default", "default", vec![])).await.unwrap_err();
        assert_eq!(err.kind(), layotto_core::ErrorKind::Unavailable, "{err}");
        etcd.restart();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while store
            .set(SaveRequest { app_id: app.clone(), items: vec![item("default", "default", "k", "after")] })
            .await
            .is_err()
        {
            assert!(std::time::Instant::now() < deadline, "etcd never came back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        until(&mut sub, "k", "after").await;
    }

    #[tokio::test]
    async fn unreachable_etcd_fails_to_start_naming_the_component_and_address() {
        let ctx = ComponentContext {
            api: "config_store".into(),
            name: "conf".into(),
            kind: "etcd".into(),
            metadata: Metadata::from([
                ("endpoints".to_owned(), "127.0.0.1:1".to_owned()),
                ("dialTimeout".to_owned(), "1".to_owned()),
            ]),
            ..Default::default()
        };
        let err = layotto_configuration::components::etcd::EtcdConfigStore::build(ctx).await.err().unwrap();
        assert_eq!(err.kind(), layotto_core::ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("conf") && err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}

#[cfg(feature = "redis")]
mod redis_backend {
    use super::*;
    use layotto_core::{ComponentContext, Metadata};
    use layotto_redis::fred::prelude::*;

    fn host() -> String {
        std::env::var("LAYOTTO_TEST_REDIS")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
            .trim_start_matches("redis://")
            .to_owned()
    }

    pub async fn store(host: &str) -> Arc<dyn ConfigStore> {
        let ctx = ComponentContext {
            api: "config_store".into(),
            name: "conf".into(),
            kind: "redis".into(),
            metadata: Metadata::from([("redisHost".to_owned(), host.to_owned())]),
            ..Default::default()
        };
        layotto_configuration::components::redis::RedisConfigStore::build(ctx).await.unwrap()
    }

    async fn raw(host: &str) -> layotto_redis::fred::clients::Client {
        let client =
            Builder::from_config(Config::from_url(&format!("redis://{host}")).unwrap()).build().unwrap();
        client.init().await.unwrap();
        client
    }

    pub fn subject() -> BoxFuture<'static, Subject> {
        Box::pin(async {
            let client = raw(&host()).await;
            let external: External = Arc::new(move |app, item| {
                let client = client.clone();
                Box::pin(async move {
                    let hash = format!("configuration|||{app}||{}||{}", item.group, item.label);
                    let _: () = client.hset(hash, (item.key.as_str(), item.content.as_str())).await.unwrap();
                })
            });
            Subject { store: store(&host()).await, app: app(), external: Some(external) }
        })
    }

    /// After a Redis restart (which forgets the notification flags), pushes
    /// resume, and a change made while the runtime was cut off is pushed too.
    #[tokio::test]
    async fn pushes_resume_after_a_redis_restart() {
        let mut redis = layotto_testkit::PrivateRedis::durable();
        let store = store(&redis.host()).await;
        let app = app();
        let mut sub = store.subscribe(Scope::new(&app, "default", "default", vec![])).await.unwrap();
        store
            .set(SaveRequest { app_id: app.clone(), items: vec![item("default", "default", "k", "before")] })
            .await
            .unwrap();
        until(&mut sub, "k", "before").await;
        redis.restart();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while store
            .set(SaveRequest { app_id: app.clone(), items: vec![item("default", "default", "k", "after")] })
            .await
            .is_err()
        {
            assert!(std::time::Instant::now() < deadline, "redis never came back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        until(&mut sub, "k", "after").await;
        // Written by another client: pushed although Redis forgot its flags on restart.
        let client = raw(&redis.host()).await;
        let hash = format!("configuration|||{app}||default||default");
        let _: () = client.hset(hash, ("k2", "outside")).await.unwrap();
        until(&mut sub, "k2", "outside").await;
    }
}

#[cfg(feature = "postgresql")]
mod postgresql_backend {
    use super::*;
    use layotto_core::{ComponentContext, Metadata};

    fn url() -> String {
        std::env::var("LAYOTTO_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    pub async fn store(url: &str) -> Arc<dyn ConfigStore> {
        let ctx = ComponentContext {
            api: "config_store".into(),
            name: "conf".into(),
            kind: "postgresql".into(),
            metadata: Metadata::from([
                ("connectionString".to_owned(), url.to_owned()),
                ("tableName".to_owned(), "layotto_configuration_conformance".to_owned()),
            ]),
            ..Default::default()
        };
        layotto_configuration::components::postgresql::PostgresConfigStore::build(ctx).await.unwrap()
    }

    pub fn subject() -> BoxFuture<'static, Subject> {
        Box::pin(async {
            let store = store(&url()).await;
            let pool = sqlx::PgPool::connect(&url()).await.unwrap();
            let external: External = Arc::new(move |app, item| {
                let pool = pool.clone();
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO layotto_configuration_conformance (app_id, grp, label, key, content) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, grp, label, key) \
                         DO UPDATE SET content = EXCLUDED.content",
                    )
                    .bind(app)
                    .bind(&item.group)
                    .bind(&item.label)
                    .bind(&item.key)
                    .bind(&item.content)
                    .execute(&pool)
                    .await
                    .unwrap();
                })
            });
            Subject { store, app: app(), external: Some(external) }
        })
    }

    /// Connections cut (a proxy in front of the shared server): pushes
    /// resume, and what changed while cut off is pushed too.
    #[tokio::test]
    async fn pushes_resume_after_the_connection_is_cut() {
        let upstream = layotto_testkit::upstream_of(&url(), "127.0.0.1:5432");
        let proxy = layotto_testkit::TcpProxy::start(&upstream).await;
        let store = store(&proxy.via(&url(), &upstream)).await;
        let app = app();
        let mut sub = store.subscribe(Scope::new(&app, "default", "default", vec![])).await.unwrap();
        store
            .set(SaveRequest { app_id: app.clone(), items: vec![item("default", "default", "k", "before")] })
            .await
            .unwrap();
        until(&mut sub, "k", "before").await;
        proxy.set(false);
        let direct = sqlx::PgPool::connect(&url()).await.unwrap();
        sqlx::query(
            "INSERT INTO layotto_configuration_conformance (app_id, grp, label, key, content) \
             VALUES ($1, 'default', 'default', 'k2', 'while-cut')",
        )
        .bind(&app)
        .execute(&direct)
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.set(true);
        until(&mut sub, "k2", "while-cut").await;
        store
            .set(SaveRequest { app_id: app.clone(), items: vec![item("default", "default", "k", "after")] })
            .await
            .unwrap();
        until(&mut sub, "k", "after").await;
    }
}
