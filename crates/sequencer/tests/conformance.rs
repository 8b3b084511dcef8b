//! The sequencer conformance suite: every case runs against every component,
//! directly and through `PrefixedSequencer` (in-memory always; Redis at
//! `LAYOTTO_TEST_REDIS`, default redis://127.0.0.1:6379; PostgreSQL at
//! `LAYOTTO_TEST_POSTGRES`, default postgres://postgres@127.0.0.1:5432/test;
//! MySQL/MariaDB at `LAYOTTO_TEST_MYSQL`, default mysql://root@127.0.0.1:3306/test;
//! etcd at `LAYOTTO_TEST_ETCD`, default 127.0.0.1:2379; ZooKeeper at
//! `LAYOTTO_TEST_ZOOKEEPER`, default 127.0.0.1:2181; snowflake's tables in that MySQL).
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
        in_memory: memory(), ["dense"];
        #[cfg(feature = "redis")]
        redis: redis_backend::redis(), ["persistent", "dense"];
        /// On a Redis Cluster (`redisType: cluster`).
        #[cfg(feature = "redis")]
        redis_in_cluster: redis_backend::in_cluster(), ["persistent", "dense"];
        #[cfg(feature = "postgresql")]
        postgresql: postgresql_backend::postgresql(), ["persistent", "dense"];
        #[cfg(feature = "mysql")]
        mysql: mysql_backend::mysql(), ["persistent", "dense"];
        #[cfg(feature = "etcd")]
        etcd: etcd_backend::etcd(), ["persistent", "dense"];
        #[cfg(feature = "zookeeper")]
        zookeeper: zookeeper_backend::zookeeper(), ["persistent", "dense"];
        /// Snowflake ids are unique and increasing, not dense: cases that
        /// expect ids 1, 2, 3 … report as skipped on it.
        #[cfg(feature = "snowflake")]
        snowflake: snowflake_backend::snowflake(), ["persistent"];
    }
    cases {

        #[needs("dense")]
        async fn component_ids_start_at_one_and_increase(backend) {
            let seq = backend.component().await;
            let k = key();
            assert_eq!(seq.next_id(&k).await.unwrap(), 1);
            assert_eq!(seq.next_id(&k).await.unwrap(), 2);
            if seq.features().segments {
                assert_eq!(seq.segment(&k, 10).await.unwrap(), Some(3..=12));
                assert_eq!(seq.next_id(&k).await.unwrap(), 13);
                assert_eq!(seq.segment(&key(), 5).await.unwrap(), Some(1..=5), "a segment of a new key");
            } else {
                assert_eq!(seq.segment(&k, 10).await.unwrap(), None);
                assert_eq!(seq.next_id(&k).await.unwrap(), 3, "no segment, no ids used");
            }
        }

        #[needs("dense")]
        async fn keys_are_independent(backend) {
            let seq = backend.component().await;
            let (a, b) = (key(), key());
            assert_eq!(seq.next_id(&a).await.unwrap(), 1);
            assert_eq!(seq.next_id(&a).await.unwrap(), 2);
            assert_eq!(seq.next_id(&b).await.unwrap(), 1);
            let svc = service(seq, &[]).await;
            assert_eq!(svc.next_id(&a, Increment::Strong).await.unwrap(), 1, "prefixed: another key");
        }

        #[needs("dense")]
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

        #[needs("dense")]
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
            if seq.features().segments {
                assert_eq!(seq.segment(&raw, 3).await.unwrap(), Some(201..=203));
            } else {
                assert_eq!(seq.next_id(&raw).await.unwrap(), 201);
            }
        }

        /// Layotto §3.4: the stored key is `sequencer|||<app id>||<key>` by default.
        #[needs("dense")]
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
        #[needs("dense")]
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

    pub async fn in_cluster() -> Backend {
        let meta = Metadata::from([
            ("redisHost".to_owned(), layotto_testkit::redis_cluster_hosts()),
            ("redisType".to_owned(), "cluster".to_owned()),
        ]);
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
#[cfg(any(feature = "postgresql", feature = "mysql", feature = "snowflake"))]
struct DropTable {
    url: String,
    table: String,
}

#[cfg(any(feature = "postgresql", feature = "mysql", feature = "snowflake"))]
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

#[cfg(any(feature = "postgresql", feature = "mysql", feature = "snowflake"))]
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

#[cfg(feature = "etcd")]
mod etcd_backend {
    use super::*;
    use layotto_etcd::{Etcd, EtcdSettings};
    use layotto_sequencer::components::etcd::EtcdSequencer;
    use std::time::{Duration, Instant};

    pub fn endpoint() -> String {
        std::env::var("LAYOTTO_TEST_ETCD").unwrap_or_else(|_| "127.0.0.1:2379".to_owned())
    }

    async fn build(name: &str, pairs: Vec<(String, String)>) -> layotto_core::Result<Arc<dyn Sequencer>> {
        let ctx = ComponentContext {
            api: "sequencer".into(),
            name: name.into(),
            kind: "etcd".into(),
            metadata: pairs.into_iter().collect(),
            ..Default::default()
        };
        EtcdSequencer::build(ctx).await
    }

    fn pairs(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut pairs = vec![("endpoints".to_owned(), endpoint())];
        pairs.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        pairs
    }

    pub async fn etcd() -> Backend {
        let make = || async {
            build("conformance", pairs(&[]))
                .await
                .unwrap_or_else(|e| panic!("etcd conformance needs etcd at {}: {e}", endpoint()))
        };
        Backend { make: Arc::new(move || Box::pin(make())), persistent: true, _guard: None }
    }

    /// Go Layotto's layout: the id is the version of `<keyPrefixPath>sequencer|||<app id>||<key>`.
    #[tokio::test]
    async fn stores_layotto_layout() {
        let etcd = Etcd::connect("raw", &EtcdSettings { endpoints: Some(endpoint()), ..Default::default() })
            .await
            .unwrap();
        for (extra, prefix) in [(vec![], "/layotto/"), (vec![("keyPrefixPath", "seq")], "/seq/")] {
            let svc = service(build("layout", pairs(&extra)).await.unwrap(), &[]).await;
            let k = key();
            let stored = format!("{prefix}sequencer|||app1||{k}");
            assert_eq!(svc.next_id(&k, Increment::Strong).await.unwrap(), 1);
            // Another runtime (Go Layotto) putting the key takes the next id.
            etcd.put(&stored, b"", 0).await.unwrap();
            assert_eq!(svc.next_id(&k, Increment::Strong).await.unwrap(), 3);
            assert_eq!(etcd.get(&stored).await.unwrap().unwrap().version, 3);
        }
    }

    #[tokio::test]
    async fn a_bigger_than_out_of_reach_fails_startup_naming_the_key() {
        let seq = build("ids", pairs(&[])).await.unwrap();
        let err = seq.ensure_bigger_than(&key(), 1_000_000_000).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let text = err.to_string();
        assert!(text.contains("sequencer store 'ids' (etcd)") && text.contains("biggerThan"), "{text}");
    }

    #[tokio::test]
    async fn unreachable_etcd_fails_to_start_naming_the_component_and_address() {
        let err = build(
            "ids",
            vec![("endpoints".into(), "127.0.0.1:1".into()), ("dialTimeout".into(), "1".into())],
        )
        .await
        .err()
        .expect("connect must fail");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let text = err.to_string();
        assert!(text.contains("sequencer store 'ids' (etcd)") && text.contains("127.0.0.1:1"), "{text}");
    }

    /// etcd going away is UNAVAILABLE, WEAK and STRONG; no id repeats after it is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_unavailable_and_recovers_without_repeating_ids() {
        let mut server = layotto_testkit::PrivateEtcd::start();
        let metadata = vec![
            ("endpoints".to_owned(), server.endpoint()),
            ("timeout".to_owned(), "1".to_owned()),
            ("dialTimeout".to_owned(), "1".to_owned()),
        ];
        let seq = build("outage", metadata).await.unwrap();
        let svc = service(seq, &[]).await;
        let k = key();
        let before = collect(&svc, &k, Increment::Weak, 5).await;
        server.kill();
        for increment in [Increment::Weak, Increment::Strong] {
            let err = svc.next_id(&k, increment).await.unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{err}");
            assert!(err.to_string().contains("outage"), "{err}");
        }
        assert!(!svc.health().await.is_up());
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(15);
        let after = loop {
            match svc.next_id(&k, Increment::Strong).await {
                Ok(id) => break id,
                Err(e) => {
                    assert!(matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{e}");
                    assert!(Instant::now() < deadline, "no recovery within 15 s: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert!(after > *before.last().unwrap(), "{before:?} then {after}");
        assert!(svc.health().await.is_up());
    }
}

#[cfg(feature = "snowflake")]
mod snowflake_backend {
    use super::*;
    use layotto_sequencer::components::snowflake::{Layout, SnowflakeSequencer};

    /// `mysqlHost` and friends pointing at the test MySQL, with tables of the test's own.
    fn metadata(tables: &(String, String), extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let url = mysql_backend::url();
        let host = url.trim_start_matches("mysql://").split('@').next_back().unwrap_or("127.0.0.1:3306");
        let host = host.split('/').next().unwrap_or(host).to_owned();
        let mut pairs = vec![
            ("mysqlHost".to_owned(), host),
            ("databaseName".to_owned(), "test".to_owned()),
            ("userName".to_owned(), "root".to_owned()),
            ("tableName".to_owned(), tables.0.clone()),
            ("keyTableName".to_owned(), tables.1.clone()),
        ];
        pairs.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        pairs
    }

    async fn build(name: &str, pairs: Vec<(String, String)>) -> layotto_core::Result<Arc<dyn Sequencer>> {
        let ctx = ComponentContext {
            api: "sequencer".into(),
            name: name.into(),
            kind: "snowflake".into(),
            metadata: pairs.into_iter().collect(),
            ..Default::default()
        };
        SnowflakeSequencer::build(ctx).await
    }

    /// Dropped (so both tables are) when the test ends.
    struct Tables(#[allow(dead_code)] DropTable, #[allow(dead_code)] DropTable);

    fn tables() -> ((String, String), Tables) {
        let names = (table(), table());
        let url = mysql_backend::url();
        let guard = Tables(
            DropTable { url: url.clone(), table: names.0.clone() },
            DropTable { url, table: names.1.clone() },
        );
        (names, guard)
    }

    pub async fn snowflake() -> Backend {
        let (names, guard) = tables();
        let pairs = metadata(&names, &[]);
        let make = move || {
            let pairs = pairs.clone();
            async move {
                build("conformance", pairs).await.unwrap_or_else(|e| {
                    panic!("snowflake conformance needs MySQL at {}: {e}", mysql_backend::url())
                })
            }
        };
        Backend { make: Arc::new(move || Box::pin(make())), persistent: true, _guard: Some(Box::new(guard)) }
    }

    const LAYOUT: Layout = Layout { time_bits: 28, worker_bits: 22, seq_bits: 13 };

    /// Each start takes a new worker id from the table; ids carry it and the
    /// seconds since 2022-01-01.
    #[tokio::test]
    async fn every_start_takes_its_own_worker_id() {
        let (names, _guard) = tables();
        let first = build("a", metadata(&names, &[])).await.unwrap();
        let second = build("b", metadata(&names, &[])).await.unwrap();
        let (a, b) = (first.next_id("k").await.unwrap(), second.next_id("k").await.unwrap());
        let (ts_a, worker_a, seq_a) = LAYOUT.split(a);
        let (ts_b, worker_b, _) = LAYOUT.split(b);
        assert_ne!(worker_a, worker_b, "two runtimes never share a worker id");
        assert_eq!(seq_a, 0);
        let since_2022 =
            (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
                - 1_640_995_200) as i64;
        for ts in [ts_a, ts_b] {
            assert!(
                (since_2022 - ts).abs() <= 2,
                "timestamp {ts} is not seconds since 2022-01-01 ({since_2022})"
            );
        }
        use sqlx::{Connection, Row};
        let mut conn = sqlx::MySqlConnection::connect(&mysql_backend::url()).await.unwrap();
        let sql = format!("SELECT COUNT(*) FROM {}", names.0);
        let rows: i64 = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await.unwrap().get(0);
        assert_eq!(rows, 2, "one row per start in Layotto's worker table");
    }

    /// More ids in one second than the sequence holds: the key borrows the next second.
    #[tokio::test]
    async fn a_used_up_second_moves_on_and_ids_stay_unique() {
        let (names, _guard) = tables();
        let seq =
            build("burst", metadata(&names, &[("timeBits", "40"), ("workerBits", "20"), ("seqBits", "3")]))
                .await
                .unwrap();
        let mut ids = Vec::new();
        for _ in 0..100 {
            ids.push(seq.next_id("k").await.unwrap());
        }
        assert_increasing(&ids, "snowflake ids of one key");
        let layout = Layout { time_bits: 40, worker_bits: 20, seq_bits: 3 };
        let seconds: HashSet<i64> = ids.iter().map(|id| layout.split(*id).0).collect();
        assert!(seconds.len() >= 100 / 8, "8 ids a second: {} seconds used", seconds.len());
    }

    #[tokio::test]
    async fn a_full_worker_table_is_a_clear_error() {
        let (names, _guard) = tables();
        let small = [("timeBits", "40"), ("workerBits", "2"), ("seqBits", "21")];
        for _ in 0..3 {
            build("ids", metadata(&names, &small)).await.unwrap();
        }
        let err =
            build("ids", metadata(&names, &small)).await.err().expect("a fourth worker does not fit 2 bits");
        assert_eq!(err.kind(), ErrorKind::Config);
        let text = err.to_string();
        assert!(text.contains("sequencer store 'ids' (snowflake)") && text.contains("full"), "{text}");
        assert!(text.contains("workerBits") && text.contains(&names.0), "{text}");
    }

    #[tokio::test]
    async fn bad_metadata_names_the_key() {
        let (names, _guard) = tables();
        for (extra, key) in [
            (vec![("timeBits", "30")], "timeBits"),
            (vec![("startTime", "2022/01/01")], "startTime"),
            (vec![("seqBits", "many")], "seqBits"),
        ] {
            let err = build("ids", metadata(&names, &extra)).await.err().expect("bad metadata");
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        let err = build("ids", vec![("databaseName".into(), "test".into())]).await.err().unwrap();
        assert!(err.to_string().contains("mysqlHost"), "{err}");
        let seq = build("ids", metadata(&names, &[])).await.unwrap();
        let err = seq.ensure_bigger_than("k", i64::MAX).await.unwrap_err();
        assert!(err.to_string().contains("biggerThan"), "{err}");
        seq.ensure_bigger_than("k", 1000).await.unwrap();
    }

    #[tokio::test]
    async fn unreachable_mysql_fails_to_start_naming_the_component() {
        let pairs = vec![
            ("mysqlHost".to_owned(), "127.0.0.1:1".to_owned()),
            ("databaseName".to_owned(), "test".to_owned()),
            ("timeout".to_owned(), "2s".to_owned()),
        ];
        let err = build("ids", pairs).await.err().expect("connect must fail");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("sequencer store 'ids' (snowflake)"), "{err}");
    }
}

#[cfg(feature = "zookeeper")]
mod zookeeper_backend {
    use super::*;
    use layotto_sequencer::components::zookeeper::ZookeeperSequencer;
    use layotto_zookeeper::{Zookeeper, ZookeeperSettings};
    use std::time::{Duration, Instant};

    pub fn endpoint() -> String {
        std::env::var("LAYOTTO_TEST_ZOOKEEPER").unwrap_or_else(|_| "127.0.0.1:2181".to_owned())
    }

    async fn build(name: &str, pairs: &[(&str, &str)]) -> layotto_core::Result<Arc<dyn Sequencer>> {
        let ctx = ComponentContext {
            api: "sequencer".into(),
            name: name.into(),
            kind: "zookeeper".into(),
            metadata: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Default::default()
        };
        ZookeeperSequencer::build(ctx).await
    }

    pub async fn zookeeper() -> Backend {
        let make = || async {
            build("conformance", &[("zookeeperHosts", &endpoint())])
                .await
                .unwrap_or_else(|e| panic!("ZooKeeper conformance needs ZooKeeper at {}: {e}", endpoint()))
        };
        Backend { make: Arc::new(move || Box::pin(make())), persistent: true, _guard: None }
    }

    /// Go Layotto's layout: the id is the data version of `/sequencer|||<app id>||<key>`,
    /// and the node is persistent, so ids survive every session.
    #[tokio::test]
    async fn stores_layotto_layout() {
        let svc = service(build("layout", &[("zookeeperHosts", &endpoint())]).await.unwrap(), &[]).await;
        let k = key();
        assert_eq!(svc.next_id(&k, Increment::Strong).await.unwrap(), 1);
        let settings = ZookeeperSettings { hosts: Some(endpoint()), ..Default::default() };
        let zk = Zookeeper::new("raw", &settings).unwrap().session(Duration::from_secs(5)).await.unwrap();
        let path = format!("/sequencer|||app1||{k}");
        let stat = zk.set_data(&path, b"", None).await.unwrap();
        assert_eq!(stat.version, 2, "another runtime's write takes an id");
        assert_eq!(stat.ephemeral_owner, 0, "persistent");
        assert_eq!(svc.next_id(&k, Increment::Strong).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_bigger_than_out_of_reach_fails_startup_naming_the_key() {
        let seq = build("ids", &[("zookeeperHosts", &endpoint())]).await.unwrap();
        let err = seq.ensure_bigger_than(&key(), 5_000_000_000).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("sequencer store 'ids' (zookeeper)"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_zookeeper_fails_to_start_naming_the_component_and_address() {
        let err = build("ids", &[("zookeeperHosts", "127.0.0.1:1"), ("sessionTimeout", "1")])
            .await
            .err()
            .expect("connect must fail");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        let text = err.to_string();
        assert!(text.contains("sequencer store 'ids' (zookeeper)") && text.contains("127.0.0.1:1"), "{text}");
    }

    /// ZooKeeper going away is UNAVAILABLE; no id repeats after it is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_unavailable_and_recovers_without_repeating_ids() {
        let mut server = layotto_testkit::PrivateZookeeper::start();
        let endpoint = server.endpoint();
        let seq = build("outage", &[("zookeeperHosts", &endpoint), ("sessionTimeout", "2")]).await.unwrap();
        let svc = service(seq, &[]).await;
        let k = key();
        let before = collect(&svc, &k, Increment::Strong, 5).await;
        server.kill();
        let err = tokio::time::timeout(Duration::from_secs(20), svc.next_id(&k, Increment::Strong))
            .await
            .expect("a call while ZooKeeper is down must fail, not hang")
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{err}");
        assert!(err.to_string().contains("outage"), "{err}");
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(30);
        let after = loop {
            match svc.next_id(&k, Increment::Strong).await {
                Ok(id) => break id,
                Err(e) => {
                    assert!(matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{e}");
                    assert!(Instant::now() < deadline, "no recovery within 30 s: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        assert!(after > *before.last().unwrap(), "{before:?} then {after}");
    }
}
