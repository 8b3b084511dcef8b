//! The lock conformance suite: every case runs against every component
//! (in-memory always, also through `PrefixedLock`; Redis at
//! `LAYOTTO_TEST_REDIS`, default redis://127.0.0.1:6379; PostgreSQL at
//! `LAYOTTO_TEST_POSTGRES`, default postgres://postgres@127.0.0.1:5432/test;
//! etcd at `LAYOTTO_TEST_ETCD`, default 127.0.0.1:2379; ZooKeeper at
//! `LAYOTTO_TEST_ZOOKEEPER`, default 127.0.0.1:2181).
//! A backend that cannot be reached fails its cases loudly; nothing is skipped.
//! Each PostgreSQL case uses its own table and drops it afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use layotto_core::{ComponentContext, ErrorKind, Metadata};
use layotto_lock::components::memory::MemoryLock;
use layotto_lock::{KeepAliveRequest, LockStatus, LockStore, PrefixedLock, TryLockRequest, UnlockRequest};

/// A fresh resource id per test, so cases can share one backend and run in parallel.
fn resource() -> String {
    format!("conf-{}", uuid::Uuid::new_v4().simple())
}

fn owner() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn try_req(resource_id: &str, lock_owner: &str, expire: Duration) -> TryLockRequest {
    TryLockRequest { resource_id: resource_id.to_owned(), lock_owner: lock_owner.to_owned(), expire }
}

fn unlock_req(resource_id: &str, lock_owner: &str) -> UnlockRequest {
    UnlockRequest { resource_id: resource_id.to_owned(), lock_owner: lock_owner.to_owned() }
}

fn keep_req(resource_id: &str, lock_owner: &str, expire: Duration) -> KeepAliveRequest {
    KeepAliveRequest { resource_id: resource_id.to_owned(), lock_owner: lock_owner.to_owned(), expire }
}

const LONG: Duration = Duration::from_secs(30);

/// Lease lengths a case can rely on, from the store's lease step.
struct Timing {
    /// A lease that ends soon.
    short: Duration,
    /// How long past its end a lease may still hold: etcd rounds short leases
    /// up (its minimum TTL) and ends expired ones every half second.
    grace: Duration,
}

impl Timing {
    fn of(lock: &dyn LockStore) -> Self {
        let step = lock.features().lease_step;
        if step >= Duration::from_secs(1) {
            Self { short: step, grace: step * 2 }
        } else {
            Self { short: Duration::from_millis(300), grace: Duration::from_millis(150) }
        }
    }
}

/// What a case's lock store needs kept alive until it ends (a table to drop).
type Guard = Option<Box<dyn Send + Sync>>;

layotto_testkit::conformance! {
    subject: (Arc<dyn LockStore>, Guard);
    components {
        in_memory: memory(), ["raw", "keep-alive"];
        /// The whole suite again through the layer the runtime puts on every store.
        in_memory_prefixed: memory_prefixed(), ["keep-alive"];
        #[cfg(feature = "redis")]
        redis: redis_backend::redis(), ["raw", "keep-alive"];
        /// Redlock over three private redis-servers.
        #[cfg(feature = "redis")]
        redis_cluster: redlock_backend::redlock(), ["raw", "keep-alive"];
        /// The `redis` lock on a Redis Cluster (`redisType: cluster`).
        #[cfg(feature = "redis")]
        redis_in_cluster: redis_backend::in_cluster(), ["raw", "keep-alive"];
        #[cfg(feature = "postgresql")]
        postgresql: postgresql_backend::postgresql(), ["raw", "keep-alive"];
        #[cfg(feature = "etcd")]
        etcd: etcd_backend::etcd(), ["raw", "keep-alive"];
        #[cfg(feature = "zookeeper")]
        zookeeper: zookeeper_backend::zookeeper(), ["raw", "keep-alive"];
    }
    cases {

        async fn acquire_and_second_owner_fails((lock, _guard)) {
            let (res, a, b) = (resource(), owner(), owner());
            assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap(), "free lock is acquired");
            assert!(!lock.try_lock(try_req(&res, &b, LONG)).await.unwrap(), "held lock is not acquired");
            assert!(!lock.try_lock(try_req(&res, &a, LONG)).await.unwrap(), "locks are not reentrant");
            assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
            assert!(lock.try_lock(try_req(&res, &b, LONG)).await.unwrap(), "released lock is acquired");
            assert_eq!(lock.unlock(unlock_req(&res, &b)).await.unwrap(), LockStatus::Success);
        }

        async fn unlock_statuses((lock, _guard)) {
            let (res, a, b) = (resource(), owner(), owner());
            assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::LockUnexist);
            assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap());
            assert_eq!(lock.unlock(unlock_req(&res, &b)).await.unwrap(), LockStatus::LockBelongToOthers);
            assert!(!lock.try_lock(try_req(&res, &b, LONG)).await.unwrap(), "a refused unlock releases nothing");
            assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
            assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::LockUnexist);
        }

        async fn expiry_frees_the_lock((lock, _guard)) {
            let (res, a, b) = (resource(), owner(), owner());
            let timing = Timing::of(lock.as_ref());
            let short = timing.short;
            let start = Instant::now();
            assert!(lock.try_lock(try_req(&res, &a, short)).await.unwrap());
            if start.elapsed() < short * 2 / 3 {
                assert!(!lock.try_lock(try_req(&res, &b, LONG)).await.unwrap(), "held before expiry");
            }
            tokio::time::sleep(short + timing.grace).await;
            assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::LockUnexist, "expired");
            assert!(lock.try_lock(try_req(&res, &a, short)).await.unwrap());
            tokio::time::sleep(short + timing.grace).await;
            assert!(lock.try_lock(try_req(&res, &b, LONG)).await.unwrap(), "an expired lock is taken over");
            assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::LockBelongToOthers);
            assert_eq!(lock.unlock(unlock_req(&res, &b)).await.unwrap(), LockStatus::Success);
        }

        #[needs("keep-alive")]
        async fn keep_alive_extends_the_lease((lock, _guard)) {
            let (res, a, b) = (resource(), owner(), owner());
            let timing = Timing::of(lock.as_ref());
            let lease = timing.short * 2;
            assert_eq!(lock.keep_alive(keep_req(&res, &a, lease)).await.unwrap(), LockStatus::LockUnexist);
            assert!(lock.try_lock(try_req(&res, &a, lease)).await.unwrap());
            // Renew every third of the lease for over two leases.
            for _ in 0..7 {
                tokio::time::sleep(lease / 3).await;
                assert_eq!(lock.keep_alive(keep_req(&res, &a, lease)).await.unwrap(), LockStatus::Success);
            }
            assert!(!lock.try_lock(try_req(&res, &b, LONG)).await.unwrap(), "renewed lease still held");
            assert_eq!(lock.keep_alive(keep_req(&res, &b, lease)).await.unwrap(), LockStatus::LockBelongToOthers);
            tokio::time::sleep(lease + timing.grace).await;
            assert_eq!(lock.keep_alive(keep_req(&res, &a, lease)).await.unwrap(), LockStatus::LockUnexist);
            assert!(lock.try_lock(try_req(&res, &b, LONG)).await.unwrap(), "lease ended without renewal");
            assert_eq!(lock.keep_alive(keep_req(&res, &a, lease)).await.unwrap(), LockStatus::LockBelongToOthers);
            assert_eq!(lock.keep_alive(keep_req(&res, &b, LONG)).await.unwrap(), LockStatus::Success, "a longer lease");
            tokio::time::sleep(lease + timing.grace).await;
            assert!(!lock.try_lock(try_req(&res, &a, LONG)).await.unwrap(), "held on the longer lease");
            assert_eq!(lock.unlock(unlock_req(&res, &b)).await.unwrap(), LockStatus::Success);
        }

        /// 32 tasks contend for one lock; at most one holds it at any time.
        async fn mutual_exclusion((lock, _guard)) {
            const TASKS: usize = 32;
            const ROUNDS: usize = 4;
            let res = resource();
            let holders = Arc::new(AtomicUsize::new(0));
            let acquisitions = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (lock, res, holders, acquisitions) =
                        (lock.clone(), res.clone(), holders.clone(), acquisitions.clone());
                    tokio::spawn(async move {
                        for _ in 0..ROUNDS {
                            let me = owner();
                            let deadline = Instant::now() + Duration::from_secs(60);
                            while !lock.try_lock(try_req(&res, &me, LONG)).await.unwrap() {
                                assert!(Instant::now() < deadline, "starved for 60 s");
                                tokio::time::sleep(Duration::from_millis(3)).await;
                            }
                            let before = holders.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(before, 0, "two owners held the lock at once");
                            acquisitions.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            holders.fetch_sub(1, Ordering::SeqCst);
                            assert_eq!(lock.unlock(unlock_req(&res, &me)).await.unwrap(), LockStatus::Success);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            assert_eq!(acquisitions.load(Ordering::SeqCst), TASKS * ROUNDS);
        }

        async fn odd_resource_ids((lock, _guard)) {
            let base = resource();
            for suffix in ["ключ-🔑-鍵", "with space", "slash/and:colon", "quote'\"", "|single|pipes|"] {
                let (res, a, b) = (format!("{base}-{suffix}"), owner(), owner());
                assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap(), "{suffix}");
                assert!(!lock.try_lock(try_req(&res, &b, LONG)).await.unwrap(), "{suffix}");
                assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success, "{suffix}");
            }
        }

        async fn reports_healthy((lock, _guard)) {
            let health = lock.health().await;
            assert!(health.is_up(), "{health:?}");
        }

        /// Layotto §3.4: the stored key and the request checks of `PrefixedLock`.
        #[needs("raw")]
        async fn prefixed_keys_and_validation((inner, _guard)) {
            let (res, a, b) = (resource(), owner(), owner());
            let lock = PrefixedLock::new(inner.clone(), "locks", Some("app1".into()));
            assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap());
            let stored = format!("lock|||app1||{res}");
            assert!(!inner.try_lock(try_req(&stored, &b, LONG)).await.unwrap(), "held under {stored}");
            assert_eq!(inner.unlock(unlock_req(&stored, &b)).await.unwrap(), LockStatus::LockBelongToOthers);
            assert!(inner.try_lock(try_req(&res, &b, LONG)).await.unwrap(), "the bare id is another lock");
            assert_eq!(inner.unlock(unlock_req(&res, &b)).await.unwrap(), LockStatus::Success);
            // Another app id is another lock.
            let other_app = PrefixedLock::new(inner.clone(), "locks", Some("app2".into()));
            assert!(other_app.try_lock(try_req(&res, &b, LONG)).await.unwrap());
            assert_eq!(other_app.unlock(unlock_req(&res, &b)).await.unwrap(), LockStatus::Success);
            let unprefixed = PrefixedLock::new(inner.clone(), "locks", None);
            assert!(unprefixed.try_lock(try_req(&res, &b, LONG)).await.unwrap());
            assert!(!inner.try_lock(try_req(&format!("lock|||{res}"), &a, LONG)).await.unwrap());
            assert_eq!(unprefixed.unlock(unlock_req(&res, &b)).await.unwrap(), LockStatus::Success);
            assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);

            let cases = [
                (try_req("", &a, LONG), "ResourceId is empty in lock store locks"),
                (try_req(&res, "", LONG), "LockOwner is empty in lock store locks"),
                (try_req(&res, &a, Duration::ZERO), "Expire is not positive in lock store locks"),
                (try_req("a||b", &a, LONG), "lock store locks: resource_id 'a||b' must not contain '||'"),
            ];
            for (req, message) in cases {
                let err = lock.try_lock(req).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
                assert_eq!(err.to_string(), message);
            }
            let err = lock.unlock(unlock_req("", &a)).await.unwrap_err();
            assert_eq!(err.to_string(), "ResourceId is empty in lock store locks");
            let err = lock.unlock(unlock_req(&res, "")).await.unwrap_err();
            assert_eq!(err.to_string(), "LockOwner is empty in lock store locks");
            let err = lock.unlock(unlock_req("x||y", &a)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            let err = lock.keep_alive(keep_req(&res, &a, Duration::ZERO)).await.unwrap_err();
            assert_eq!(err.to_string(), "Expire is not positive in lock store locks");
            let err = lock.keep_alive(keep_req("x||y", &a, LONG)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        }

        /// `keyPrefix` strategies read from component metadata (default: app id).
        #[needs("raw")]
        async fn prefix_from_context((inner, _guard)) {
            let res = resource();
            let cases = [
                (None, format!("lock|||app1||{res}")),
                (Some("appid"), format!("lock|||app1||{res}")),
                (Some("name"), format!("lock|||locks||{res}")),
                (Some("none"), format!("lock|||{res}")),
                (Some("Team"), format!("lock|||team||{res}")),
            ];
            for (strategy, stored) in cases {
                let mut metadata = Metadata::new();
                if let Some(s) = strategy {
                    metadata.insert("keyPrefix".into(), s.into());
                }
                let ctx = ComponentContext {
                    api: "lock".into(),
                    name: "locks".into(),
                    kind: "x".into(),
                    metadata,
                    app_id: "app1".into(),
                    ..Default::default()
                };
                let lock = PrefixedLock::from_context(inner.clone(), &ctx).unwrap();
                let a = owner();
                assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap(), "{strategy:?}");
                assert_eq!(
                    inner.unlock(unlock_req(&stored, &a)).await.unwrap(),
                    LockStatus::Success,
                    "{strategy:?} stores {stored}"
                );
            }
        }
    }
}

async fn memory() -> (Arc<dyn LockStore>, Guard) {
    (Arc::new(MemoryLock::new()), None)
}

/// The whole suite again through the layer the runtime puts on every store.
async fn memory_prefixed() -> (Arc<dyn LockStore>, Guard) {
    (Arc::new(PrefixedLock::new(Arc::new(MemoryLock::new()), "conformance", Some("app1".into()))), None)
}

#[test]
fn registry_builds_in_memory() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registry = layotto_lock::registry();
    let ctx = ComponentContext {
        api: "lock".into(),
        name: "l".into(),
        kind: "in-memory".into(),
        ..Default::default()
    };
    let lock = rt.block_on(registry.build(ctx)).unwrap();
    assert!(rt.block_on(lock.try_lock(try_req("r", "o", LONG))).unwrap());
    let err = registry.check("l", "nope").unwrap_err().to_string();
    assert!(err.contains("lock component 'l'") && err.contains("in-memory"), "{err}");
}

#[cfg(feature = "redis")]
mod redis_backend {
    use super::*;
    use layotto_lock::components::redis::RedisLock;
    use layotto_redis::fred::prelude::{Builder, Client, ClientLike, Config, KeysInterface};

    pub fn url() -> String {
        std::env::var("LAYOTTO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    pub async fn connect(name: &str) -> RedisLock {
        let meta = Metadata::from([("redisHost".to_owned(), url())]);
        RedisLock::connect(name, &meta)
            .await
            .unwrap_or_else(|e| panic!("Redis conformance needs a Redis at {}: {e}", url()))
    }

    pub async fn redis() -> (Arc<dyn LockStore>, Guard) {
        (Arc::new(connect("conformance").await), None)
    }

    pub async fn in_cluster() -> (Arc<dyn LockStore>, Guard) {
        let hosts = layotto_testkit::redis_cluster_hosts();
        let meta = Metadata::from([
            ("redisHost".to_owned(), hosts.clone()),
            ("redisType".to_owned(), "cluster".to_owned()),
        ]);
        let lock = RedisLock::connect("conformance", &meta)
            .await
            .unwrap_or_else(|e| panic!("Redis Cluster conformance needs a cluster at {hosts}: {e}"));
        (Arc::new(lock), None)
    }

    async fn raw_client(url: &str) -> Client {
        let client = Builder::from_config(Config::from_url(url).unwrap()).build().unwrap();
        client.init().await.unwrap();
        client
    }

    /// Go Layotto's layout: a string key `lock|||<app>||<id>` holding the owner, with a TTL.
    #[tokio::test]
    async fn stores_layotto_layout() {
        let (res, a) = (resource(), owner());
        let lock = PrefixedLock::new(Arc::new(connect("layout").await), "locks", Some("app1".into()));
        assert!(lock.try_lock(try_req(&res, &a, Duration::from_secs(10))).await.unwrap());
        let client = raw_client(&url()).await;
        let key = format!("lock|||app1||{res}");
        let value: String = client.get(&key).await.unwrap();
        assert_eq!(value, a);
        let ttl: i64 = client.pttl(&key).await.unwrap();
        assert!(ttl > 8_000 && ttl <= 10_000, "{ttl}");
        assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
        let exists: i64 = client.exists(&key).await.unwrap();
        assert_eq!(exists, 0);
    }

    /// A lock taken through one client is held for a new client (a restarted runtime).
    #[tokio::test]
    async fn locks_survive_a_new_client() {
        let (res, a, b) = (resource(), owner(), owner());
        let before = connect("before").await;
        assert!(before.try_lock(try_req(&res, &a, LONG)).await.unwrap());
        drop(before);
        let after = connect("after").await;
        assert!(!after.try_lock(try_req(&res, &b, LONG)).await.unwrap());
        assert_eq!(after.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
    }

    #[tokio::test]
    async fn unreachable_redis_fails_to_start_naming_the_component() {
        let meta = Metadata::from([("redisHost".to_owned(), "127.0.0.1:1".to_owned())]);
        let err = RedisLock::connect("locks", &meta).await.err().expect("connect must fail");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.to_string().contains("lock store 'locks' (redis)"), "{err}");
    }

    /// Redis going away is UNAVAILABLE (never "not acquired"), and the
    /// component recovers by itself when Redis is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_unavailable_and_recovers() {
        let mut server = layotto_testkit::PrivateRedis::start();
        let meta = Metadata::from([
            ("redisHost".to_owned(), format!("127.0.0.1:{}", server.port)),
            ("timeout".to_owned(), "1s".to_owned()),
        ]);
        let lock = RedisLock::connect("outage", &meta).await.unwrap();
        let (res, a) = (resource(), owner());
        assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap());
        server.kill();
        for _ in 0..3 {
            let err = lock.try_lock(try_req(&resource(), &a, LONG)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
            assert!(err.to_string().contains("outage"), "{err}");
            let err = lock.unlock(unlock_req(&res, &a)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        }
        assert!(!lock.health().await.is_up());
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match lock.try_lock(try_req(&resource(), &a, LONG)).await {
                Ok(acquired) => {
                    assert!(acquired, "a fresh Redis has no locks");
                    break;
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
                    assert!(Instant::now() < deadline, "no recovery within 10 s: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        assert!(lock.health().await.is_up());
    }
}

#[cfg(feature = "postgresql")]
mod postgresql_backend {
    use super::*;
    use layotto_lock::components::postgresql::PostgresLock;

    pub fn url() -> String {
        std::env::var("LAYOTTO_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// Drops the test's table when the test ends, also when it fails.
    pub struct DropTable(pub String);

    impl Drop for DropTable {
        fn drop(&mut self) {
            let table = self.0.clone();
            // A fresh runtime on its own thread: this can run inside a test's runtime.
            let done = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&url()).await.unwrap();
                    let sql = format!("DROP TABLE IF EXISTS {table}");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
                });
            });
            let _ = done.join();
        }
    }

    pub fn table() -> String {
        format!("lock_test_{}", uuid::Uuid::new_v4().simple())
    }

    pub fn metadata(table: &str) -> Metadata {
        Metadata::from([("connectionString".to_owned(), url()), ("tableName".to_owned(), table.to_owned())])
    }

    pub async fn postgresql() -> (Arc<dyn LockStore>, Guard) {
        let table = table();
        let guard = DropTable(table.clone());
        let lock = PostgresLock::connect("conformance", &metadata(&table))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL conformance needs PostgreSQL at {}: {e}", url()));
        (Arc::new(lock), Some(Box::new(guard)))
    }

    /// Leases live in the table: a new component (a restarted runtime) sees them.
    #[tokio::test]
    async fn locks_survive_a_new_component() {
        let (res, a, b) = (resource(), owner(), owner());
        let table = table();
        let _guard = DropTable(table.clone());
        let before = PostgresLock::connect("before", &metadata(&table)).await.unwrap();
        assert!(before.try_lock(try_req(&res, &a, LONG)).await.unwrap());
        drop(before);
        let after = PostgresLock::connect("after", &metadata(&table)).await.unwrap();
        assert!(!after.try_lock(try_req(&res, &b, LONG)).await.unwrap());
        assert_eq!(after.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
    }

    /// The database goes away mid-run: calls answer UNAVAILABLE (never a
    /// false "success" or "not held"), and once it is back the lock taken
    /// before the outage is still held and calls succeed again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_unavailable_then_recovers() {
        let url = url();
        let upstream = layotto_testkit::upstream_of(&url, "127.0.0.1:5432");
        let proxy = layotto_testkit::TcpProxy::start(&upstream).await;
        let through_proxy = proxy.via(&url, &upstream);
        let table = table();
        let _guard = DropTable(table.clone());
        let meta = Metadata::from([
            ("connectionString".to_owned(), through_proxy),
            ("tableName".to_owned(), table.clone()),
            ("timeout".to_owned(), "2s".to_owned()),
        ]);
        let lock = PostgresLock::connect("outage", &meta).await.unwrap();
        let (res, a, b) = (resource(), owner(), owner());
        assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap());

        proxy.set(false);
        for attempt in 0..3 {
            let err = lock
                .try_lock(try_req(&res, &b, LONG))
                .await
                .expect_err("no answer while the database is away");
            assert_eq!(err.kind(), ErrorKind::Unavailable, "attempt {attempt}: {err}");
            assert!(err.to_string().contains("lock store 'outage' (postgresql)"), "{err}");
        }
        let err = lock.unlock(unlock_req(&res, &a)).await.expect_err("no unlock while away");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(!lock.health().await.is_up());

        proxy.set(true);
        let started = Instant::now();
        let held = loop {
            match lock.try_lock(try_req(&res, &b, LONG)).await {
                Ok(acquired) => break acquired,
                Err(e) => {
                    assert!(started.elapsed() < Duration::from_secs(15), "never recovered: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert!(!held, "the lock taken before the outage must still be held");
        assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
        assert!(lock.health().await.is_up());
    }

    #[tokio::test]
    async fn unreachable_database_fails_to_start_naming_the_component() {
        let meta = Metadata::from([
            ("connectionString".to_owned(), "postgres://postgres@127.0.0.1:1/test".to_owned()),
            ("timeout".to_owned(), "2s".to_owned()),
        ]);
        let started = Instant::now();
        let err = PostgresLock::connect("locks", &meta).await.err().expect("connect must fail");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("lock store 'locks' (postgresql)"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn bad_metadata_is_a_config_error() {
        let err = PostgresLock::connect("locks", &Metadata::new()).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("connectionString"), "{err}");
        let mut meta = metadata("x; DROP TABLE y");
        let err = PostgresLock::connect("locks", &meta).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("tableName"), "{err}");
        meta.insert("tableName".into(), table());
        meta.insert("timeout".into(), "soon".into());
        let err = PostgresLock::connect("locks", &meta).await.err().unwrap();
        assert!(err.to_string().contains("timeout"), "{err}");
    }
}

#[cfg(not(all(feature = "redis", feature = "postgresql")))]
#[test]
fn backend_cases_not_compiled() {
    eprintln!("NOTE: layotto-lock was built without `redis` or `postgresql`: those cases did not run");
}

#[cfg(feature = "etcd")]
mod etcd_backend {
    use super::*;
    use layotto_etcd::{Etcd, EtcdSettings};

    pub fn endpoint() -> String {
        std::env::var("LAYOTTO_TEST_ETCD").unwrap_or_else(|_| "127.0.0.1:2379".to_owned())
    }

    pub async fn build(name: &str, pairs: &[(&str, &str)]) -> layotto_core::Result<Arc<dyn LockStore>> {
        let ctx = ComponentContext {
            api: "lock".into(),
            name: name.into(),
            kind: "etcd".into(),
            metadata: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Default::default()
        };
        layotto_lock::components::etcd::EtcdLock::build(ctx).await
    }

    pub async fn connect(name: &str) -> Arc<dyn LockStore> {
        build(name, &[("endpoints", &endpoint())])
            .await
            .unwrap_or_else(|e| panic!("etcd conformance needs etcd at {}: {e}", endpoint()))
    }

    pub async fn etcd() -> (Arc<dyn LockStore>, Guard) {
        (connect("conformance").await, None)
    }

    async fn raw() -> Etcd {
        let settings = EtcdSettings { endpoints: Some(endpoint()), ..Default::default() };
        Etcd::connect("raw", &settings).await.unwrap()
    }

    /// Go Layotto's layout: `<keyPrefixPath>lock|||<app>||<id>` holding the owner, on a lease.
    #[tokio::test]
    async fn stores_layotto_layout() {
        let (res, a) = (resource(), owner());
        for (pairs, prefix) in [(vec![], "/layotto/"), (vec![("keyPrefixPath", "/lock")], "/lock/")] {
            let mut pairs = pairs;
            let endpoint = endpoint();
            pairs.push(("endpoints", endpoint.as_str()));
            let lock =
                PrefixedLock::new(build("layout", &pairs).await.unwrap(), "locks", Some("app1".into()));
            assert!(lock.try_lock(try_req(&res, &a, Duration::from_secs(10))).await.unwrap());
            let etcd = raw().await;
            let kv = etcd.get(&format!("{prefix}lock|||app1||{res}")).await.unwrap().expect("the lock's key");
            assert_eq!(kv.value, a.as_bytes());
            let granted = etcd.lease_granted_ttl(kv.lease).await.unwrap();
            assert_eq!(granted, Some(10), "the lease is the lock's expire");
            assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
            assert!(etcd.get(&format!("{prefix}lock|||app1||{res}")).await.unwrap().is_none());
        }
    }

    /// A lock taken through one component is held for a new one (a restarted runtime).
    #[tokio::test]
    async fn locks_survive_a_new_component() {
        let (res, a, b) = (resource(), owner(), owner());
        let before = connect("before").await;
        assert!(before.try_lock(try_req(&res, &a, LONG)).await.unwrap());
        drop(before);
        let after = connect("after").await;
        assert!(!after.try_lock(try_req(&res, &b, LONG)).await.unwrap());
        assert_eq!(after.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
    }

    #[tokio::test]
    async fn unreachable_etcd_fails_to_start_naming_the_component_and_address() {
        let pairs = [("endpoints", "127.0.0.1:1"), ("dialTimeout", "1"), ("timeout", "1")];
        let err = build("locks", &pairs).await.err().expect("connect must fail");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let text = err.to_string();
        assert!(text.contains("lock store 'locks' (etcd)") && text.contains("127.0.0.1:1"), "{text}");
        let err = build("locks", &[("endpoints", "not a host:x")]).await.err().expect("bad endpoints");
        assert!(err.to_string().contains("endpoints"), "{err}");
    }

    /// etcd going away is UNAVAILABLE (never "not acquired"); after it is back
    /// the component recovers by itself and the lock taken before is still held.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_unavailable_and_recovers() {
        let mut server = layotto_testkit::PrivateEtcd::start();
        let endpoint = server.endpoint();
        let lock = build("outage", &[("endpoints", &endpoint), ("timeout", "1"), ("dialTimeout", "1")])
            .await
            .unwrap();
        let (res, a, b) = (resource(), owner(), owner());
        assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap());
        server.kill();
        for _ in 0..3 {
            let err = lock.try_lock(try_req(&res, &b, LONG)).await.unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{err}");
            assert!(err.to_string().contains("outage"), "{err}");
            let err = lock.unlock(unlock_req(&res, &a)).await.unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{err}");
        }
        assert!(!lock.health().await.is_up());
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match lock.try_lock(try_req(&res, &b, LONG)).await {
                Ok(acquired) => {
                    assert!(!acquired, "the lock taken before the outage is still held");
                    break;
                }
                Err(e) => {
                    assert!(matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{e}");
                    assert!(Instant::now() < deadline, "no recovery within 15 s: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
        assert!(lock.health().await.is_up());
    }
}

#[cfg(feature = "zookeeper")]
mod zookeeper_backend {
    use super::*;
    use layotto_zookeeper::{Zookeeper, ZookeeperSettings};

    pub fn endpoint() -> String {
        std::env::var("LAYOTTO_TEST_ZOOKEEPER").unwrap_or_else(|_| "127.0.0.1:2181".to_owned())
    }

    pub async fn build(name: &str, pairs: &[(&str, &str)]) -> layotto_core::Result<Arc<dyn LockStore>> {
        let ctx = ComponentContext {
            api: "lock".into(),
            name: name.into(),
            kind: "zookeeper".into(),
            metadata: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Default::default()
        };
        layotto_lock::components::zookeeper::ZookeeperLock::build(ctx).await
    }

    pub async fn connect(name: &str) -> Arc<dyn LockStore> {
        build(name, &[("zookeeperHosts", &endpoint())])
            .await
            .unwrap_or_else(|e| panic!("ZooKeeper conformance needs ZooKeeper at {}: {e}", endpoint()))
    }

    pub async fn zookeeper() -> (Arc<dyn LockStore>, Guard) {
        (connect("conformance").await, None)
    }

    async fn raw() -> layotto_zookeeper::zk::Client {
        let settings = ZookeeperSettings { hosts: Some(endpoint()), ..Default::default() };
        let zk = Zookeeper::new("raw", &settings).unwrap();
        zk.session(Duration::from_secs(5)).await.unwrap()
    }

    /// Go Layotto's layout: the ephemeral node `/lock|||<app>||<id>` holding the owner.
    #[tokio::test]
    async fn stores_layotto_layout() {
        let (res, a) = (resource(), owner());
        let lock = PrefixedLock::new(connect("layout").await, "locks", Some("app1".into()));
        assert!(lock.try_lock(try_req(&res, &a, Duration::from_secs(10))).await.unwrap());
        let zk = raw().await;
        let path = format!("/lock|||app1||{res}");
        let (data, stat) = zk.get_data(&path).await.unwrap();
        assert_eq!(data, a.as_bytes());
        assert_ne!(stat.ephemeral_owner, 0, "the node is ephemeral");
        assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
        assert!(zk.check_stat(&path).await.unwrap().is_none());
    }

    /// A node that disappears under a held lock (its session ended on the
    /// server, or an operator removed it) is a lost lock: never held twice.
    #[tokio::test]
    async fn a_lock_whose_node_vanished_is_reported_lost() {
        let (res, a, b) = (resource(), owner(), owner());
        let lock = connect("lost").await;
        assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap());
        raw().await.delete(&format!("/{res}"), None).await.unwrap();
        assert_eq!(lock.keep_alive(keep_req(&res, &a, LONG)).await.unwrap(), LockStatus::LockUnexist);
        assert!(lock.try_lock(try_req(&res, &b, LONG)).await.unwrap(), "the next owner gets it");
        assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::LockBelongToOthers);
        assert_eq!(lock.unlock(unlock_req(&res, &b)).await.unwrap(), LockStatus::Success);
    }

    /// A lock taken through one component is held for another (a second runtime).
    #[tokio::test]
    async fn locks_are_seen_by_another_component() {
        let (res, a, b) = (resource(), owner(), owner());
        let first = connect("first").await;
        let second = connect("second").await;
        assert!(first.try_lock(try_req(&res, &a, LONG)).await.unwrap());
        assert!(!second.try_lock(try_req(&res, &b, LONG)).await.unwrap());
        let err = second.keep_alive(keep_req(&res, &a, LONG)).await.unwrap_err();
        assert!(err.to_string().contains("another runtime"), "{err}");
        assert_eq!(second.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
        assert!(second.try_lock(try_req(&res, &b, LONG)).await.unwrap());
        assert_eq!(first.unlock(unlock_req(&res, &b)).await.unwrap(), LockStatus::Success);
    }

    #[tokio::test]
    async fn unreachable_zookeeper_fails_to_start_naming_the_component_and_address() {
        let err = build("locks", &[("zookeeperHosts", "127.0.0.1:1"), ("sessionTimeout", "1")])
            .await
            .err()
            .expect("connect must fail");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        let text = err.to_string();
        assert!(text.contains("lock store 'locks' (zookeeper)") && text.contains("127.0.0.1:1"), "{text}");
        let err = build("locks", &[("zookeeperHosts", "localhost")]).await.err().expect("bad hosts");
        assert!(err.to_string().contains("zookeeperHosts"), "{err}");
    }

    /// ZooKeeper going away is UNAVAILABLE (never "not acquired"); the
    /// component recovers by itself when it is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_unavailable_and_recovers() {
        let mut server = layotto_testkit::PrivateZookeeper::start();
        let endpoint = server.endpoint();
        let lock = build("outage", &[("zookeeperHosts", &endpoint), ("sessionTimeout", "2")]).await.unwrap();
        let (res, a, b) = (resource(), owner(), owner());
        assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap());
        server.kill();
        let err = lock.try_lock(try_req(&resource(), &b, LONG)).await.unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{err}");
        assert!(err.to_string().contains("outage"), "{err}");
        let err = tokio::time::timeout(Duration::from_secs(20), lock.unlock(unlock_req(&res, &a)))
            .await
            .expect("an unlock while ZooKeeper is down must fail, not hang")
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{err}");
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match lock.try_lock(try_req(&resource(), &b, LONG)).await {
                Ok(acquired) => {
                    assert!(acquired, "a free lock is acquired after the outage");
                    break;
                }
                Err(e) => {
                    assert!(matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{e}");
                    assert!(Instant::now() < deadline, "no recovery within 30 s: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        // The component holds several sessions; each one comes back on its own
        // turn, so health (which probes the next) is up a little later.
        loop {
            let health = lock.health().await;
            if health.is_up() {
                break;
            }
            assert!(Instant::now() < deadline, "health not up within 30 s: {health:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(feature = "redis")]
mod redlock_backend {
    use super::*;
    use layotto_testkit::PrivateRedis;

    pub async fn build(name: &str, nodes: &[&PrivateRedis]) -> layotto_core::Result<Arc<dyn LockStore>> {
        let hosts: Vec<String> = nodes.iter().map(|n| n.host()).collect();
        let ctx = ComponentContext {
            api: "lock".into(),
            name: name.into(),
            kind: "redis_cluster".into(),
            metadata: Metadata::from([
                ("redisHosts".to_owned(), hosts.join(",")),
                ("timeout".to_owned(), "1s".to_owned()),
            ]),
            ..Default::default()
        };
        layotto_lock::components::redis_cluster::RedisClusterLock::build(ctx).await
    }

    fn three() -> [PrivateRedis; 3] {
        [PrivateRedis::start(), PrivateRedis::start(), PrivateRedis::start()]
    }

    pub async fn redlock() -> (Arc<dyn LockStore>, Guard) {
        let nodes = three();
        let lock = build("conformance", &[&nodes[0], &nodes[1], &nodes[2]]).await.unwrap();
        (lock, Some(Box::new(nodes)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_node_of_three_down_still_grants_locks() {
        let mut nodes = three();
        let lock = build("redlock", &[&nodes[0], &nodes[1], &nodes[2]]).await.unwrap();
        nodes[2].kill();
        let (res, a, b) = (resource(), owner(), owner());
        assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap());
        assert!(!lock.try_lock(try_req(&res, &b, LONG)).await.unwrap());
        assert_eq!(lock.keep_alive(keep_req(&res, &a, LONG)).await.unwrap(), LockStatus::Success);
        assert_eq!(lock.unlock(unlock_req(&res, &b)).await.unwrap(), LockStatus::LockBelongToOthers);
        assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
        assert!(lock.health().await.is_up(), "two of three is a majority");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_of_three_down_refuse_locks() {
        let mut nodes = three();
        let lock = build("redlock", &[&nodes[0], &nodes[1], &nodes[2]]).await.unwrap();
        nodes[1].kill();
        nodes[2].kill();
        let (res, a) = (resource(), owner());
        let err = lock.try_lock(try_req(&res, &a, LONG)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("majority") && err.to_string().contains("redlock"), "{err}");
        assert!(!lock.health().await.is_up());
        // The one node that answered gave its part back.
        nodes[1].restart();
        nodes[2].restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match lock.try_lock(try_req(&res, &owner(), LONG)).await {
                Ok(acquired) => {
                    assert!(acquired, "nothing is left of the refused attempt");
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "no recovery within 10 s: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// A node that was down while the lock was taken comes back empty: a
    /// second owner still cannot gather a majority.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_that_comes_back_does_not_make_two_owners() {
        let mut nodes = three();
        let lock = build("redlock", &[&nodes[0], &nodes[1], &nodes[2]]).await.unwrap();
        let (res, a, b) = (resource(), owner(), owner());
        nodes[2].kill();
        assert!(lock.try_lock(try_req(&res, &a, LONG)).await.unwrap());
        nodes[2].restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lock.health().await.is_up() || lock.try_lock(try_req(&resource(), &b, LONG)).await.is_err() {
            assert!(Instant::now() < deadline, "node 3 did not come back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for _ in 0..5 {
            assert!(!lock.try_lock(try_req(&res, &b, LONG)).await.unwrap(), "two owners at once");
        }
        assert_eq!(lock.unlock(unlock_req(&res, &a)).await.unwrap(), LockStatus::Success);
        assert!(lock.try_lock(try_req(&res, &b, LONG)).await.unwrap());
    }

    #[tokio::test]
    async fn bad_or_unreachable_nodes_fail_startup_naming_them() {
        let ctx = ComponentContext {
            api: "lock".into(),
            name: "l".into(),
            kind: "redis_cluster".into(),
            ..Default::default()
        };
        let err = layotto_lock::components::redis_cluster::RedisClusterLock::build(ctx).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("redisHosts"), "{err}");
        let node = PrivateRedis::start();
        let ctx = ComponentContext {
            api: "lock".into(),
            name: "l".into(),
            kind: "redis_cluster".into(),
            metadata: Metadata::from([("redisHosts".to_owned(), format!("{},127.0.0.1:1", node.host()))]),
            ..Default::default()
        };
        let err = layotto_lock::components::redis_cluster::RedisClusterLock::build(ctx).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        let text = err.to_string();
        assert!(text.contains("lock store 'l' (redis_cluster)") && text.contains("127.0.0.1:1"), "{text}");
    }
}
