//! The sequencer conformance suite: every case runs against every component,
//! directly and through `PrefixedSequencer` (in-memory always; Redis at
//! `LAYOTTO_TEST_REDIS`, default redis://127.0.0.1:6379; PostgreSQL at
//! `LAYOTTO_TEST_POSTGRES`, default postgres://postgres@127.0.0.1:5432/test;
//! MySQL/MariaDB at `LAYOTTO_TEST_MYSQL`, default mysql://root@127.0.0.1:3306/test).
//! A backend that cannot be reached fails its cases loudly; nothing is skipped.
//! Each SQL case uses its own table and drops it afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use layotto_core::{ComponentContext, ErrorKind};
use layotto_sequencer::components::memory::MemorySequencer;
use layotto_sequencer::{Increment, PrefixedSequencer, Sequencer};

type Make = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn Sequencer>> + Send>> + Send + Sync>;

/// How a case gets components of one backend; each call is a new component
/// (a new "runtime") on the same storage, except in-memory, which has one.
pub struct Backend {
    make: Make,
    /// Ids survive a new component (false for in-memory).
    persistent: bool,
    /// Cleans up what the backend created (a table), also when the case fails.
    _guard: Option<Box<dyn Send + Sync>>,
}

impl Backend {
    async fn component(&self) -> Arc<dyn Sequencer> {
        (self.make)().await
    }
}

/// A fresh key per test, so cases can share one backend and run in parallel.
fn key() -> String {
    format!("conf-{}", uuid::Uuid::new_v4().simple())
}

fn ctx(name: &str, pairs: &[(&str, &str)]) -> ComponentContext {
    ComponentContext {
        api: "sequencer".into(),
        name: name.into(),
        kind: "test".into(),
        metadata: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        app_id: "app1".into(),
        ..Default::default()
    }
}

async fn service(inner: Arc<dyn Sequencer>, pairs: &[(&str, &str)]) -> PrefixedSequencer {
    PrefixedSequencer::new(inner, &ctx("ids", pairs), &BTreeMap::new()).await.unwrap()
}

fn assert_increasing(ids: &[i64], what: &str) {
    for pair in ids.windows(2) {
        assert!(pair[0] < pair[1], "{what}: {} then {}", pair[0], pair[1]);
    }
}

async fn collect(svc: &PrefixedSequencer, k: &str, increment: Increment, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(svc.next_id(k, increment).await.unwrap());
    }
    ids
}

/// 16 tasks × 200 ids through one service: all unique, each task's increasing.
async fn concurrent(backend: Backend, increment: Increment) {
    let svc = Arc::new(service(backend.component().await, &[("segmentStep", "50")]).await);
    let k = key();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (svc, k) = (svc.clone(), k.clone());
            tokio::spawn(async move { collect(&svc, &k, increment, 200).await })
        })
        .collect();
    let mut all = HashSet::new();
    for task in tasks {
        let ids = task.await.unwrap();
        assert_increasing(&ids, "one task's ids");
        for id in ids {
            assert!(all.insert(id), "{increment:?}: id {id} handed out twice");
        }
    }
    assert_eq!(all.len(), 3200);
}

layotto_testkit::conformance! {
    subject: Backend;
    components {
        in_memory: memory(), [];
        #[cfg(feature = "redis")]
        redis: redis_backend::redis(), ["persistent"];
        #[cfg(feature = "postgresql")]
        postgresql: postgresql_backend::postgresql(), ["persistent"];
        #[cfg(feature = "mysql")]
        mysql: mysql_backend::mysql(), ["persistent"];
    }
    cases {

        async fn component_ids_start_at_one_and_increase(backend) {
            let seq = backend.component().await;
            let k = key();
            assert_eq!(seq.next_id(&k).await.unwrap(), 1);
            assert_eq!(seq.next_id(&k).await.unwrap(), 2);
            assert_eq!(seq.segment(&k, 10).await.unwrap(), Some(3..=12));
            assert_eq!(seq.next_id(&k).await.unwrap(), 13);
            assert_eq!(seq.segment(&key(), 5).await.unwrap(), Some(1..=5), "a segment of a new key");
        }

        async fn keys_are_independent(backend) {
            let seq = backend.component().await;
            let (a, b) = (key(), key());
            assert_eq!(seq.next_id(&a).await.unwrap(), 1);
            assert_eq!(seq.next_id(&a).await.unwrap(), 2);
            assert_eq!(seq.next_id(&b).await.unwrap(), 1);
            let svc = service(seq, &[]).await;
            assert_eq!(svc.next_id(&a, Increment::Strong).await.unwrap(), 1, "prefixed: another key");
        }

        async fn service_weak_and_strong_increase(backend) {
            let svc = service(backend.component().await, &[]).await;
            let k = key();
            let weak: Vec<i64> = collect(&svc, &k, Increment::Weak, 50).await;
            assert_eq!(weak[0], 1, "WEAK starts at 1");
            assert_increasing(&weak, "WEAK");
            let strong: Vec<i64> = collect(&svc, &k, Increment::Strong, 50).await;
            assert_increasing(&strong, "STRONG");
            assert!(strong[0] > *weak.last().unwrap(), "STRONG ids come after the reserved segment");
            let more_weak = collect(&svc, &k, Increment::Weak, 50).await;
            let all: HashSet<i64> = weak.iter().chain(&strong).chain(&more_weak).copied().collect();
            assert_eq!(all.len(), 150, "no id twice");
        }

        async fn concurrent_weak_unique_and_increasing(backend) {
            concurrent(backend, Increment::Weak).await;
        }

        async fn concurrent_strong_unique_and_increasing(backend) {
            concurrent(backend, Increment::Strong).await;
        }

        /// Two runtimes with small segments over one backend never hand out one id twice.
        async fn two_runtimes_share_a_backend(backend) {
            let step = [("segmentStep", "50")];
            let first = Arc::new(service(backend.component().await, &step).await);
            let second = Arc::new(service(backend.component().await, &step).await);
            let k = key();
            let mut tasks = Vec::new();
            for svc in [first, second] {
                for _ in 0..4 {
                    let (svc, k) = (svc.clone(), k.clone());
                    tasks.push(tokio::spawn(async move { collect(&svc, &k, Increment::Weak, 500).await }));
                }
            }
            let mut all = HashSet::new();
            for task in tasks {
                let ids = task.await.unwrap();
                assert_increasing(&ids, "one task's WEAK ids");
                for id in ids {
                    assert!(all.insert(id), "id {id} handed out twice");
                }
            }
            assert_eq!(all.len(), 4000);
        }

        async fn strong_survives_a_restart(backend) {
            if !backend.persistent {
                return;
            }
            let k = key();
            let svc = service(backend.component().await, &[]).await;
            let before = collect(&svc, &k, Increment::Strong, 5).await;
            let weak_before = svc.next_id(&k, Increment::Weak).await.unwrap();
            drop(svc);
            let svc = service(backend.component().await, &[]).await;
            let after = svc.next_id(&k, Increment::Strong).await.unwrap();
            assert!(after > *before.last().unwrap() && after > weak_before, "{before:?} then {after}");
            let weak_after = svc.next_id(&k, Increment::Weak).await.unwrap();
            assert!(weak_after > after, "a new runtime's segment is above every earlier id");
        }

        async fn bigger_than_is_respected(backend) {
            let (k, other) = (key(), key());
            let bigger = BTreeMap::from([(k.clone(), 1000), (other.clone(), 7)]);
            let svc = PrefixedSequencer::new(backend.component().await, &ctx("ids", &[]), &bigger).await.unwrap();
            let weak = svc.next_id(&k, Increment::Weak).await.unwrap();
            assert!(weak > 1000, "{weak}");
            let strong = svc.next_id(&k, Increment::Strong).await.unwrap();
            assert!(strong > weak, "{strong}");
            assert_eq!(svc.next_id(&other, Increment::Strong).await.unwrap(), 8);
            drop(svc);
            // A later start with a smaller minimum does not lower the counter.
            let smaller = BTreeMap::from([(k.clone(), 5)]);
            let svc = PrefixedSequencer::new(backend.component().await, &ctx("ids", &[]), &smaller).await.unwrap();
            assert!(svc.next_id(&k, Increment::Strong).await.unwrap() > strong);

            let seq = backend.component().await;
            let raw = key();
            seq.ensure_bigger_than(&raw, 100).await.unwrap();
            assert_eq!(seq.next_id(&raw).await.unwrap(), 101);
            seq.ensure_bigger_than(&raw, 50).await.unwrap();
            assert_eq!(seq.next_id(&raw).await.unwrap(), 102);
            seq.ensure_bigger_than(&raw, 200).await.unwrap();
            assert_eq!(seq.segment(&raw, 3).await.unwrap(), Some(201..=203));
        }

        /// Layotto §3.4: the stored key is `sequencer|||<app id>||<key>` by default.
        async fn prefixed_keys(backend) {
            let seq = backend.component().await;
            let k = key();
            let svc = service(seq.clone(), &[]).await;
            assert_eq!(svc.next_id(&k, Increment::Strong).await.unwrap(), 1);
            assert_eq!(seq.next_id(&format!("sequencer|||app1||{k}")).await.unwrap(), 2);
            let by_name = service(seq.clone(), &[("keyPrefix", "name")]).await;
            assert_eq!(by_name.next_id(&k, Increment::Strong).await.unwrap(), 1);
            assert_eq!(seq.next_id(&format!("sequencer|||ids||{k}")).await.unwrap(), 2);
            let bare = service(seq.clone(), &[("keyPrefix", "none")]).await;
            assert_eq!(bare.next_id(&k, Increment::Strong).await.unwrap(), 1);
            assert_eq!(seq.next_id(&format!("sequencer|||{k}")).await.unwrap(), 2);
        }

        async fn validation_names_store_and_field(backend) {
            let seq = backend.component().await;
            let svc = service(seq.clone(), &[]).await;
            let err = svc.next_id("", Increment::Weak).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert_eq!(err.to_string(), "Key is empty in sequencer store ids");
            let err = svc.next_id("a||b", Increment::Strong).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(err.to_string().contains("ids") && err.to_string().contains("a||b"), "{err}");

            let err =
                PrefixedSequencer::new(seq.clone(), &ctx("ids", &[("segmentStep", "0")]), &BTreeMap::new()).await;
            let err = err.err().unwrap();
            assert!(err.to_string().contains("segmentStep") && err.to_string().contains("'ids'"), "{err}");
            let err =
                PrefixedSequencer::new(seq.clone(), &ctx("ids", &[("segmentStep", "x")]), &BTreeMap::new()).await;
            assert!(err.err().unwrap().to_string().contains("segmentStep"));
            let err = PrefixedSequencer::new(
                seq.clone(),
                &ctx("ids", &[("segmentCacheEnable", "maybe")]),
                &BTreeMap::new(),
            )
            .await;
            assert!(err.err().unwrap().to_string().contains("segmentCacheEnable"));
            let bad = BTreeMap::from([("x||y".to_owned(), 10)]);
            let err = PrefixedSequencer::new(seq, &ctx("ids", &[]), &bad).await.err().unwrap();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(err.to_string().contains("biggerThan") && err.to_string().contains("x||y"), "{err}");
        }

        /// With `segmentCacheEnable: false`, WEAK asks the component for every id.
        async fn cache_can_be_disabled(backend) {
            let seq = backend.component().await;
            let svc = service(seq.clone(), &[("segmentCacheEnable", "false")]).await;
            let k = key();
            assert_eq!(svc.next_id(&k, Increment::Weak).await.unwrap(), 1);
            assert_eq!(seq.next_id(&format!("sequencer|||app1||{k}")).await.unwrap(), 2);
            assert_eq!(svc.next_id(&k, Increment::Weak).await.unwrap(), 3);
        }

        async fn reports_healthy(backend) {
            let svc = service(backend.component().await, &[]).await;
            let health = svc.health().await;
            assert!(health.is_up(), "{health:?}");
        }
    }
}

async fn memory() -> Backend {
    let shared: Arc<dyn Sequencer> = Arc::new(MemorySequencer::new());
    Backend {
        make: Arc::new(move || Box::pin(std::future::ready(shared.clone()))),
        persistent: false,
        _guard: None,
    }
}

/// A component without segments: WEAK falls back to one `next_id` per id.
#[tokio::test]
async fn weak_without_segment_support_uses_next_id() {
    struct NoSegments(MemorySequencer);
    #[async_trait::async_trait]
    impl Sequencer for NoSegments {
        async fn next_id(&self, key: &str) -> layotto_core::Result<i64> {
            self.0.next_id(key).await
        }
        async fn segment(
            &self,
            _: &str,
            _: u32,
        ) -> layotto_core::Result<Option<std::ops::RangeInclusive<i64>>> {
            Ok(None)
        }
        async fn ensure_bigger_than(&self, key: &str, min: i64) -> layotto_core::Result<()> {
            self.0.ensure_bigger_than(key, min).await
        }
    }
    let seq = Arc::new(NoSegments(MemorySequencer::new()));
    let svc = service(seq.clone(), &[]).await;
    let k = key();
    assert_eq!(collect(&svc, &k, Increment::Weak, 3).await, vec![1, 2, 3]);
    assert_eq!(seq.next_id(&format!("sequencer|||app1||{k}")).await.unwrap(), 4);
}

/// A slow backend whose segment calls fail now and then: the cache still
/// never hands out an id twice, each caller's ids still increase, and the
/// errors reach the callers unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_cache_with_a_slow_flaky_backend() {
    use std::sync::atomic::{AtomicU64, Ordering};
    struct Flaky {
        inner: MemorySequencer,
        calls: AtomicU64,
    }
    #[async_trait::async_trait]
    impl Sequencer for Flaky {
        async fn next_id(&self, key: &str) -> layotto_core::Result<i64> {
            self.inner.next_id(key).await
        }
        async fn segment(
            &self,
            key: &str,
            size: u32,
        ) -> layotto_core::Result<Option<std::ops::RangeInclusive<i64>>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_micros(200 + (n * 7919) % 1500)).await;
            if n % 3 == 1 {
                return Err(layotto_core::Error::unavailable("flaky backend is down"));
            }
            self.inner.segment(key, size).await
        }
        async fn ensure_bigger_than(&self, key: &str, min: i64) -> layotto_core::Result<()> {
            self.inner.ensure_bigger_than(key, min).await
        }
    }
    let seq = Arc::new(Flaky { inner: MemorySequencer::new(), calls: AtomicU64::new(0) });
    let svc = Arc::new(service(seq.clone(), &[("segmentStep", "10")]).await);
    let k = key();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (svc, k) = (svc.clone(), k.clone());
            tokio::spawn(async move {
                let (mut ids, mut errors) = (Vec::new(), 0);
                while ids.len() < 300 {
                    match svc.next_id(&k, Increment::Weak).await {
                        Ok(id) => ids.push(id),
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
                            errors += 1;
                        }
                    }
                }
                (ids, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (HashSet::new(), 0);
    for task in tasks {
        let (ids, task_errors) = task.await.unwrap();
        errors += task_errors;
        assert_increasing(&ids, "one task's WEAK ids");
        for id in ids {
            assert!(all.insert(id), "id {id} handed out twice");
        }
    }
    assert_eq!(all.len(), 16 * 300);
    assert!(errors > 0, "some synchronous fetches failed");
}

#[test]
fn registry_builds_in_memory() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registry = layotto_sequencer::registry();
    let ctx = ComponentContext {
        api: "sequencer".into(),
        name: "s".into(),
        kind: "in-memory".into(),
        ..Default::default()
    };
    let seq = rt.block_on(registry.build(ctx)).unwrap();
    assert_eq!(rt.block_on(seq.next_id("k")).unwrap(), 1);
    let err = registry.check("s", "nope").unwrap_err().to_string();
    assert!(err.contains("sequencer component 's'") && err.contains("in-memory"), "{err}");
}

#[cfg(feature = "redis")]
mod redis_backend {
    use super::*;
    use layotto_core::Metadata;
    use layotto_redis::fred::prelude::{Builder, ClientLike, Config, KeysInterface};
    use layotto_sequencer::components::redis::RedisSequencer;
    use std::time::{Duration, Instant};

    pub fn url() -> String {
        std::env::var("LAYOTTO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    async fn connect(meta: Metadata) -> Arc<dyn Sequencer> {
        let seq = RedisSequencer::connect("conformance", &meta)
            .await
            .unwrap_or_else(|e| panic!("Redis conformance needs a Redis at {}: {e}", url()));
        Arc::new(seq)
    }

    pub async fn redis() -> Backend {
        let meta = Metadata::from([("redisHost".to_owned(), url())]);
        Backend { make: Arc::new(move || Box::pin(connect(meta.clone()))), persistent: true, _guard: None }
    }

    /// Go Layotto's layout: a string counter at `sequencer|||<app id>||<key>`.
    #[tokio::test]
    async fn stores_layotto_layout() {
        let svc = service(redis().await.component().await, &[]).await;
        let k = key();
        assert_eq!(svc.next_id(&k, Increment::Strong).await.unwrap(), 1);
        let client = Builder::from_config(Config::from_url(&url()).unwrap()).build().unwrap();
        client.init().await.unwrap();
        let stored = format!("sequencer|||app1||{k}");
        let value: String = client.get(&stored).await.unwrap();
        assert_eq!(value, "1");
        let _: i64 = client.del(&stored).await.unwrap();
    }

    #[tokio::test]
    async fn unreachable_redis_fails_to_start_naming_the_component() {
        let meta = Metadata::from([("redisHost".to_owned(), "127.0.0.1:1".to_owned())]);
        let err = RedisSequencer::connect("ids", &meta).await.err().expect("connect must fail");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.to_string().contains("sequencer store 'ids' (redis)"), "{err}");
    }

    /// Redis going away is UNAVAILABLE through the service, WEAK and STRONG,
    /// and the component recovers by itself when Redis is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_unavailable_and_recovers() {
        let mut server = layotto_testkit::PrivateRedis::start();
        let meta = Metadata::from([
            ("redisHost".to_owned(), format!("127.0.0.1:{}", server.port)),
            ("timeout".to_owned(), "1s".to_owned()),
        ]);
        let seq: Arc<dyn Sequencer> = Arc::new(RedisSequencer::connect("outage", &meta).await.unwrap());
        let svc = service(seq.clone(), &[("segmentStep", "5")]).await;
        let k = key();
        assert_eq!(svc.next_id(&k, Increment::Weak).await.unwrap(), 1);
        server.kill();
        // The cached segment still serves a few WEAK ids; then the backend is needed.
        let mut unavailable = 0;
        for _ in 0..12 {
            match svc.next_id(&k, Increment::Weak).await {
                Ok(id) => assert!(id <= 10, "only cached ids while Redis is down: {id}"),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
                    assert!(e.to_string().contains("outage"), "{e}");
                    unavailable += 1;
                }
            }
        }
        assert!(unavailable > 0);
        let err = svc.next_id(&key(), Increment::Strong).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(!svc.health().await.is_up());
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match svc.next_id(&key(), Increment::Strong).await {
                Ok(id) => {
                    assert_eq!(id, 1, "a fresh Redis starts over");
                    break;
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
                    assert!(Instant::now() < deadline, "no recovery within 10 s: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        assert!(svc.health().await.is_up());
    }
}

/// Drops a test's table when the test ends, also when it fails.
#[cfg(any(feature = "postgresql", feature = "mysql"))]
struct DropTable {
    url: String,
    table: String,
}

#[cfg(any(feature = "postgresql", feature = "mysql"))]
impl Drop for DropTable {
    fn drop(&mut self) {
        let (url, table) = (self.url.clone(), self.table.clone());
        // A fresh runtime on its own thread: this can run inside a test's runtime.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                let sql = sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}"));
                if url.starts_with("mysql") {
                    let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap();
                    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                } else {
                    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                }
            });
        });
        let _ = done.join();
    }
}

#[cfg(any(feature = "postgresql", feature = "mysql"))]
fn table() -> String {
    format!("seq_test_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(feature = "postgresql")]
mod postgresql_backend {
    use super::*;
    use layotto_core::Metadata;
    use layotto_sequencer::components::postgresql::PostgresSequencer;

    pub fn url() -> String {
        std::env::var("LAYOTTO_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    async fn connect(meta: Metadata) -> Arc<dyn Sequencer> {
        let seq = PostgresSequencer::connect("conformance", &meta)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL conformance needs PostgreSQL at {}: {e}", url()));
        Arc::new(seq)
    }

    pub async fn postgresql() -> Backend {
        let table = table();
        let guard = DropTable { url: url(), table: table.clone() };
        let meta = Metadata::from([("connectionString".to_owned(), url()), ("tableName".to_owned(), table)]);
        Backend {
            make: Arc::new(move || Box::pin(connect(meta.clone()))),
            persistent: true,
            _guard: Some(Box::new(guard)),
        }
    }

    #[tokio::test]
    async fn unreachable_database_fails_to_start_naming_the_component() {
        let meta = Metadata::from([
            ("connectionString".to_owned(), "postgres://postgres@127.0.0.1:1/test".to_owned()),
            ("timeout".to_owned(), "2s".to_owned()),
        ]);
        let err = PostgresSequencer::connect("ids", &meta).await.err().expect("connect must fail");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("sequencer store 'ids' (postgresql)"), "{err}");
    }

    #[tokio::test]
    async fn bad_metadata_is_a_config_error() {
        let err = PostgresSequencer::connect("ids", &Metadata::new()).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("connectionString"), "{err}");
        let meta = Metadata::from([
            ("connectionString".to_owned(), url()),
            ("tableName".to_owned(), "x-y".to_owned()),
        ]);
        let err = PostgresSequencer::connect("ids", &meta).await.err().unwrap();
        assert!(err.to_string().contains("tableName"), "{err}");
    }
}

#[cfg(feature = "mysql")]
mod mysql_backend {
    use super::*;
    use layotto_core::Metadata;
    use layotto_sequencer::components::mysql::MySqlSequencer;

    pub fn url() -> String {
        std::env::var("LAYOTTO_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
    }

    async fn connect(meta: Metadata) -> Arc<dyn Sequencer> {
        let seq = MySqlSequencer::connect("conformance", &meta)
            .await
            .unwrap_or_else(|e| panic!("MySQL conformance needs MySQL at {}: {e}", url()));
        Arc::new(seq)
    }

    pub async fn mysql() -> Backend {
        let table = table();
        let guard = DropTable { url: url(), table: table.clone() };
        let meta = Metadata::from([("mysqlUrl".to_owned(), url()), ("tableName".to_owned(), table)]);
        Backend {
            make: Arc::new(move || Box::pin(connect(meta.clone()))),
            persistent: true,
            _guard: Some(Box::new(guard)),
        }
    }

    /// Go Layotto's columns: sequencer_key, sequencer_value (the last id), version.
    #[tokio::test]
    async fn stores_layotto_layout() {
        use sqlx::{Connection, Row};
        let table = table();
        let _guard = DropTable { url: url(), table: table.clone() };
        let meta = Metadata::from([("mysqlUrl".to_owned(), url()), ("tableName".to_owned(), table.clone())]);
        let svc = service(connect(meta).await, &[]).await;
        let k = key();
        svc.next_id(&k, Increment::Strong).await.unwrap();
        svc.next_id(&k, Increment::Strong).await.unwrap();
        let mut conn = sqlx::MySqlConnection::connect(&url()).await.unwrap();
        let sql = format!("SELECT sequencer_value, version FROM {table} WHERE sequencer_key = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(format!("sequencer|||app1||{k}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!((row.get::<i64, _>(0), row.get::<i64, _>(1)), (2, 2));
    }

    /// Host-only `mysqlUrl` with Layotto's `userName` and `dataBaseName`.
    #[tokio::test]
    async fn layotto_metadata_keys() {
        let table = table();
        let _guard = DropTable { url: url(), table: table.clone() };
        let meta = Metadata::from([
            ("mysqlUrl".to_owned(), "127.0.0.1:3306".to_owned()),
            ("userName".to_owned(), "root".to_owned()),
            ("dataBaseName".to_owned(), "test".to_owned()),
            ("tableName".to_owned(), table),
        ]);
        let seq = MySqlSequencer::connect("ids", &meta).await.unwrap();
        assert_eq!(seq.next_id("k").await.unwrap(), 1);
        let long = "k".repeat(256);
        assert_eq!(seq.next_id(&long).await.unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(seq.next_id("K").await.unwrap(), 1, "keys are case-sensitive");
    }

    #[tokio::test]
    async fn unreachable_database_fails_to_start_naming_the_component() {
        let meta = Metadata::from([
            ("mysqlUrl".to_owned(), "mysql://root@127.0.0.1:1/test".to_owned()),
            ("timeout".to_owned(), "2s".to_owned()),
        ]);
        let err = MySqlSequencer::connect("ids", &meta).await.err().expect("connect must fail");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("sequencer store 'ids' (mysql)"), "{err}");
    }
}

#[cfg(not(all(feature = "redis", feature = "postgresql", feature = "mysql")))]
#[test]
fn backend_cases_not_compiled() {
    eprintln!("NOTE: layotto-sequencer was built without some backends: their cases did not run");
}
