//! The state conformance suite: every case runs against every component
//! (in-memory always; Redis at `LAYOTTO_TEST_REDIS`, default
//! redis://127.0.0.1:6379, which `cargo xtask test` starts). A Redis that
//! cannot be reached fails the Redis cases loudly; nothing is skipped.
//!
//! Cases mirror Dapr's components-contrib state conformance tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use layotto_core::{ErrorKind, KeyPrefix, Metadata};
use layotto_state::components::memory::MemoryStore;
use layotto_state::{
    Concurrency, DeleteRequest, GetRequest, Operation, PrefixedStore, SetRequest, StateStore,
    TTL_EXPIRE_TIME_KEY, TTL_METADATA_KEY,
};

/// A fresh namespace per test, so cases can share one Redis and run in
/// parallel. It is a hash tag, so in a Redis Cluster a case's keys share a
/// slot (a transaction must) while different cases spread over the nodes.
fn ns() -> String {
    format!("{{conf-{}}}", uuid::Uuid::new_v4().simple())
}

async fn get(store: &dyn StateStore, key: &str) -> Option<layotto_state::StateValue> {
    store.get(GetRequest::new(key)).await.unwrap()
}

async fn etag(store: &dyn StateStore, key: &str) -> String {
    get(store, key).await.expect("item exists").etag.expect("item has an etag")
}

layotto_testkit::conformance! {
    subject: Arc<dyn StateStore>;
    components {
        in_memory: memory(), ["raw", "etag", "ttl", "transactions", "first-write", "large-values"];
        /// The whole suite again through the key-prefix layer the runtime puts on every store.
        in_memory_prefixed: memory_with_app_prefix(), ["etag", "ttl", "transactions", "first-write", "large-values"];
        #[cfg(feature = "redis")]
        redis: redis_backend::redis(), ["raw", "etag", "ttl", "transactions", "first-write", "large-values"];
        /// Redis Cluster at `LAYOTTO_TEST_REDIS_CLUSTER` (six nodes `cargo xtask test` starts).
        #[cfg(feature = "redis")]
        redis_in_cluster: redis_cluster_backend::redis_cluster(), ["raw", "etag", "ttl", "transactions", "first-write", "large-values"];
        /// No TTL: ZooKeeper's TTL nodes are off unless the server enables them;
        /// no value of 1 MiB: a node holds less (its `jute.maxbuffer`).
        #[cfg(feature = "zookeeper")]
        zookeeper: zookeeper_backend::zookeeper(), ["raw", "etag", "transactions", "first-write"];
    }
    cases {

        async fn set_get_value_matrix(store) {
            let ns = ns();
            let binary: Vec<u8> = (0..=255u8).collect();
            let values: Vec<(&str, Vec<u8>)> = vec![
                ("empty", vec![]),
                ("binary", binary),
                ("json", br#"{"name":"layotto","n":1,"nested":{"a":[1,2]}}"#.to_vec()),
                ("string", b"hello world".to_vec()),
                ("int", b"42".to_vec()),
                ("bool", b"true".to_vec()),
            ];
            for (name, value) in values {
                let key = format!("{ns}-{name}");
                store.set(SetRequest::new(&key, value.clone())).await.unwrap();
                let got = get(&*store, &key).await.unwrap_or_else(|| panic!("{name}: value missing"));
                assert_eq!(got.data, value, "{name}: value differs");
                assert!(got.etag.is_some_and(|e| !e.is_empty()), "{name}: no etag");
                // Keep the shared Redis small across runs.
                store.delete(DeleteRequest::new(&key)).await.unwrap();
            }
        }

        #[needs("large-values")]
        async fn a_one_mib_value_round_trips(store) {
            let key = format!("{}-one-mib", ns());
            let value = vec![0xAB; 1024 * 1024];
            store.set(SetRequest::new(&key, value.clone())).await.unwrap();
            assert_eq!(get(&*store, &key).await.expect("value missing").data, value);
            store.delete(DeleteRequest::new(&key)).await.unwrap();
        }

        async fn missing_key_is_none(store) {
            assert_eq!(get(&*store, &format!("{}-never-written", ns())).await, None);
        }

        async fn delete_removes_and_missing_delete_succeeds(store) {
            let key = format!("{}-del", ns());
            store.set(SetRequest::new(&key, "v")).await.unwrap();
            store.delete(DeleteRequest::new(&key)).await.unwrap();
            assert_eq!(get(&*store, &key).await, None);
            store.delete(DeleteRequest::new(&key)).await.unwrap();
        }

        async fn bulk_set_get_delete(store) {
            let ns = ns();
            let keys: Vec<String> = (0..3).map(|i| format!("{ns}-bulk-{i}")).collect();
            let sets = keys.iter().map(|k| SetRequest::new(k, format!("value of {k}"))).collect();
            store.bulk_set(sets).await.unwrap();
            let missing = format!("{ns}-bulk-missing");
            let mut asked = keys.clone();
            asked.push(missing.clone());
            let items = store.bulk_get(asked, Metadata::new()).await.unwrap();
            assert_eq!(items.len(), 4);
            for item in &items {
                assert_eq!(item.error, None, "{}", item.key);
                if item.key == missing {
                    assert_eq!(item.value, None);
                } else {
                    let value = item.value.as_ref().unwrap_or_else(|| panic!("{} missing", item.key));
                    assert_eq!(value.data, format!("value of {}", item.key).into_bytes());
                }
            }
            store.bulk_delete(keys.iter().map(DeleteRequest::new).collect()).await.unwrap();
            for item in store.bulk_get(keys, Metadata::new()).await.unwrap() {
                assert_eq!(item.value, None, "{} survived bulk delete", item.key);
            }
        }

        #[needs("etag")]
        async fn etag_checks(store) {
            let key = format!("{}-etag", ns());
            store.set(SetRequest::new(&key, "v1")).await.unwrap();
            let first = etag(&*store, &key).await;
            store.set(SetRequest::new(&key, "v2").with_etag(&first)).await.unwrap();
            let second = etag(&*store, &key).await;
            assert_ne!(first, second, "a write must change the etag");
            let err = store.set(SetRequest::new(&key, "v3").with_etag(&first)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::EtagMismatch, "{err}");
            assert!(err.to_string().contains(&key), "message names the key: {err}");
            assert_eq!(get(&*store, &key).await.unwrap().data, b"v2");
            let err = store.delete(DeleteRequest::new(&key).with_etag(&first)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::EtagMismatch);
            store.delete(DeleteRequest::new(&key).with_etag(&second)).await.unwrap();
            assert_eq!(get(&*store, &key).await, None);
            // An etag for an item that does not exist cannot match.
            let err = store.set(SetRequest::new(&key, "v").with_etag(&second)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::EtagMismatch);
        }

        #[needs("etag")]
        async fn invalid_etag(store) {
            let key = format!("{}-bad-etag", ns());
            store.set(SetRequest::new(&key, "v")).await.unwrap();
            let err = store.set(SetRequest::new(&key, "x").with_etag("not-an-etag")).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidEtag, "{err}");
            let err = store.delete(DeleteRequest::new(&key).with_etag("not-an-etag")).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidEtag, "{err}");
            assert_eq!(get(&*store, &key).await.unwrap().data, b"v");
        }

        async fn bulk_set_with_one_bad_etag_is_partial(store) {
            let ns = ns();
            let (good, bad) = (format!("{ns}-good"), format!("{ns}-bad"));
            store.bulk_set(vec![SetRequest::new(&good, "g1"), SetRequest::new(&bad, "b1")]).await.unwrap();
            let stale = etag(&*store, &bad).await;
            store.set(SetRequest::new(&bad, "b2")).await.unwrap();
            let err = store
                .bulk_set(vec![SetRequest::new(&good, "g2"), SetRequest::new(&bad, "b3").with_etag(stale)])
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::EtagMismatch);
            assert!(err.to_string().contains(&bad) && !err.to_string().contains(&good), "{err}");
            assert_eq!(get(&*store, &good).await.unwrap().data, b"g2");
            assert_eq!(get(&*store, &bad).await.unwrap().data, b"b2");
        }

        async fn bulk_delete_with_one_bad_etag_is_partial(store) {
            let ns = ns();
            let (good, bad) = (format!("{ns}-good"), format!("{ns}-bad"));
            store.bulk_set(vec![SetRequest::new(&good, "g"), SetRequest::new(&bad, "b1")]).await.unwrap();
            let stale = etag(&*store, &bad).await;
            store.set(SetRequest::new(&bad, "b2")).await.unwrap();
            let err = store
                .bulk_delete(vec![DeleteRequest::new(&good), DeleteRequest::new(&bad).with_etag(stale)])
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::EtagMismatch);
            assert!(err.to_string().contains(&bad) && !err.to_string().contains(&good), "{err}");
            assert_eq!(get(&*store, &good).await, None);
            assert_eq!(get(&*store, &bad).await.unwrap().data, b"b2");
        }

        #[needs("first-write")]
        async fn first_write(store) {
            let key = format!("{}-fw", ns());
            let fw = |v: &str| SetRequest::new(&key, v.to_owned()).with_concurrency(Concurrency::FirstWrite);
            store.set(fw("first")).await.unwrap();
            let err = store.set(fw("second")).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::EtagMismatch, "{err}");
            let current = etag(&*store, &key).await;
            store.set(fw("third").with_etag(&current)).await.unwrap();
            let err = store.set(fw("fourth").with_etag(&current)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::EtagMismatch);
            assert_eq!(get(&*store, &key).await.unwrap().data, b"third");
        }

        async fn last_write_ignores_etag(store) {
            let key = format!("{}-lw", ns());
            store.set(SetRequest::new(&key, "v1")).await.unwrap();
            let stale = etag(&*store, &key).await;
            store.set(SetRequest::new(&key, "v2")).await.unwrap();
            let lw = SetRequest::new(&key, "v3").with_etag(stale).with_concurrency(Concurrency::LastWrite);
            store.set(lw).await.unwrap();
            assert_eq!(get(&*store, &key).await.unwrap().data, b"v3");
        }

        #[needs("transactions")]
        async fn transaction_all_or_nothing(store) {
            assert!(store.features().transactions);
            let ns = ns();
            let (a, b, c) = (format!("{ns}-a"), format!("{ns}-b"), format!("{ns}-c"));
            store.set(SetRequest::new(&b, "b0")).await.unwrap();
            store.set(SetRequest::new(&c, "c0")).await.unwrap();
            let stale = etag(&*store, &b).await;
            store.set(SetRequest::new(&b, "b1")).await.unwrap();
            let ops = vec![
                Operation::Upsert(SetRequest::new(&a, "a1")),
                Operation::Delete(DeleteRequest::new(&c)),
                Operation::Upsert(SetRequest::new(&b, "b2").with_etag(stale)),
            ];
            let err = store.transact(ops, Metadata::new()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::EtagMismatch, "{err}");
            assert!(err.to_string().contains(&b), "the failing key is named: {err}");
            assert_eq!(get(&*store, &a).await, None, "nothing of a failed transaction is applied");
            assert_eq!(get(&*store, &b).await.unwrap().data, b"b1");
            assert_eq!(get(&*store, &c).await.unwrap().data, b"c0");

            let current = etag(&*store, &b).await;
            let ops = vec![
                Operation::Upsert(SetRequest::new(&a, "a1")),
                Operation::Delete(DeleteRequest::new(&c)),
                Operation::Upsert(SetRequest::new(&b, "b2").with_etag(current)),
                Operation::Delete(DeleteRequest::new(format!("{ns}-never-existed"))),
            ];
            store.transact(ops, Metadata::new()).await.unwrap();
            assert_eq!(get(&*store, &a).await.unwrap().data, b"a1");
            assert_eq!(get(&*store, &b).await.unwrap().data, b"b2");
            assert_eq!(get(&*store, &c).await, None);
        }

        #[needs("transactions")]
        async fn transaction_order(store) {
            let ns = ns();
            let (k, n) = (format!("{ns}-existing"), format!("{ns}-new"));
            store.set(SetRequest::new(&k, "old")).await.unwrap();
            let ops = vec![
                Operation::Delete(DeleteRequest::new(&k)),
                Operation::Upsert(SetRequest::new(&n, "n1")),
                Operation::Delete(DeleteRequest::new(&n)),
                Operation::Upsert(SetRequest::new(&n, "n2")),
                Operation::Upsert(SetRequest::new(&k, "k1")),
                Operation::Upsert(SetRequest::new(&k, "k2")),
            ];
            store.transact(ops, Metadata::new()).await.unwrap();
            assert_eq!(get(&*store, &n).await.unwrap().data, b"n2");
            assert_eq!(get(&*store, &k).await.unwrap().data, b"k2");
        }

        #[needs("ttl")]
        async fn ttl_expires(store) {
            assert!(store.features().ttl);
            let key = format!("{}-ttl", ns());
            store.set(SetRequest::new(&key, "short-lived").with_metadata(TTL_METADATA_KEY, "1")).await.unwrap();
            let item = get(&*store, &key).await.expect("present before expiry");
            let expiry = item.metadata.get(TTL_EXPIRE_TIME_KEY).expect("ttlExpireTime is set");
            let at = humantime::parse_rfc3339(expiry).expect("ttlExpireTime is RFC 3339");
            let now = std::time::SystemTime::now();
            assert!(at > now - Duration::from_secs(2) && at < now + Duration::from_secs(3), "{expiry}");
            let deadline = Instant::now() + Duration::from_secs(4);
            while get(&*store, &key).await.is_some() {
                assert!(Instant::now() < deadline, "item with a 1 s TTL still there after 4 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        #[needs("ttl")]
        async fn ttl_removed_by_minus_one_and_by_plain_set(store) {
            let ns = ns();
            let (a, b) = (format!("{ns}-ttl-a"), format!("{ns}-ttl-b"));
            for key in [&a, &b] {
                store.set(SetRequest::new(key, "v").with_metadata(TTL_METADATA_KEY, "1")).await.unwrap();
            }
            store.set(SetRequest::new(&a, "v").with_metadata(TTL_METADATA_KEY, "-1")).await.unwrap();
            store.set(SetRequest::new(&b, "v")).await.unwrap();
            let item = get(&*store, &a).await.unwrap();
            assert!(!item.metadata.contains_key(TTL_EXPIRE_TIME_KEY), "no TTL means no ttlExpireTime");
            tokio::time::sleep(Duration::from_millis(1600)).await;
            assert!(get(&*store, &a).await.is_some(), "ttlInSeconds=-1 removes the TTL");
            assert!(get(&*store, &b).await.is_some(), "a set without TTL removes the TTL");
        }

        #[needs("ttl")]
        async fn ttl_invalid(store) {
            let key = format!("{}-ttl-bad", ns());
            // The last two once overflowed the expiry and panicked every later read.
            for bad in ["foo", "-5", "0", "1.5", "99999999999999", "9223372036854775807"] {
                let err =
                    store.set(SetRequest::new(&key, "v").with_metadata(TTL_METADATA_KEY, bad)).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidArgument, "ttl {bad}: {err}");
                assert!(err.to_string().contains(&key) && err.to_string().contains(TTL_METADATA_KEY), "{err}");
            }
            assert_eq!(get(&*store, &key).await, None);
        }

        async fn unicode_and_odd_keys(store) {
            let ns = ns();
            for suffix in ["ключ-🔑-鍵", "with space", "slash/and:colon", "emoji-👍🏽"] {
                let key = format!("{ns}-{suffix}");
                store.set(SetRequest::new(&key, suffix)).await.unwrap();
                assert_eq!(get(&*store, &key).await.unwrap().data, suffix.as_bytes());
            }
        }

        /// Read-modify-write with etags from many tasks: no increment is lost.
        #[needs("etag")]
        async fn concurrent_etag_increments(store) {
            let key = format!("{}-counter", ns());
            store.set(SetRequest::new(&key, "0")).await.unwrap();
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (store, key) = (store.clone(), key.clone());
                    tokio::spawn(async move {
                        for _ in 0..10 {
                            loop {
                                let item = get(&*store, &key).await.unwrap();
                                let n: u64 = String::from_utf8(item.data).unwrap().parse().unwrap();
                                let set =
                                    SetRequest::new(&key, (n + 1).to_string()).with_etag(item.etag.unwrap());
                                match store.set(set).await {
                                    Ok(()) => break,
                                    Err(e) if e.kind() == ErrorKind::EtagMismatch => continue,
                                    Err(e) => panic!("{e}"),
                                }
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(get(&*store, &key).await.unwrap().data, b"80");
        }

        /// Layotto §3.4: how each `keyPrefix` strategy stores a key.
        #[needs("raw")]
        async fn key_prefix_strategies(inner) {
            let ns = ns();
            let app = format!("{ns}app");
            let cases = [
                ("none", None),
                ("appid", Some(app.clone())),
                ("name", Some("store-name".to_owned())),
                ("custom-team", Some("custom-team".to_owned())),
            ];
            for (strategy, expected_prefix) in cases {
                let meta = Metadata::from([("keyPrefix".to_owned(), strategy.to_owned())]);
                let prefix = KeyPrefix::from_metadata("test", &meta, KeyPrefix::None).unwrap();
                let resolved = prefix.resolve(&app, "store-name");
                assert_eq!(resolved, expected_prefix, "{strategy}");
                let store = PrefixedStore::new("store-name", resolved, inner.clone());
                let key = format!("{ns}-{strategy}");
                store.set(SetRequest::new(&key, strategy)).await.unwrap();
                let stored = match &expected_prefix {
                    Some(p) => format!("{p}||{key}"),
                    None => key.clone(),
                };
                assert_eq!(
                    get(&*inner, &stored).await.expect("stored under the prefixed key").data,
                    strategy.as_bytes()
                );
                let items = store.bulk_get(vec![key.clone()], Metadata::new()).await.unwrap();
                assert_eq!(items[0].key, key, "bulk get returns keys without prefix");
                assert_eq!(items[0].value.as_ref().unwrap().data, strategy.as_bytes());
                for bad in ["a||b", ""] {
                    let err = store.set(SetRequest::new(bad, "v")).await.unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "key {bad:?}");
                    assert!(err.to_string().contains("store-name"), "{err}");
                }
                let err =
                    store.transact(vec![Operation::Delete(DeleteRequest::new("x||y"))], Metadata::new()).await;
                assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidArgument);
            }
        }

        async fn reports_healthy(store) {
            let health = store.health().await;
            assert!(health.is_up(), "{health:?}");
        }
    }
}

async fn memory() -> Arc<dyn StateStore> {
    Arc::new(MemoryStore::new("conformance"))
}

/// The whole suite again through the key-prefix layer the runtime puts on every store.
async fn memory_with_app_prefix() -> Arc<dyn StateStore> {
    Arc::new(PrefixedStore::new("conformance", Some("app1".into()), memory().await))
}

#[cfg(feature = "redis")]
mod redis_backend {
    use super::*;
    use layotto_state::components::redis::RedisStore;

    pub fn url() -> String {
        std::env::var("LAYOTTO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    pub async fn connect(name: &str) -> RedisStore {
        let meta = Metadata::from([("redisHost".to_owned(), url())]);
        RedisStore::connect(name, &meta).await.unwrap_or_else(|e| {
            panic!("Redis conformance needs a Redis at {} (cargo xtask test starts one): {e}", url())
        })
    }

    pub async fn redis() -> Arc<dyn StateStore> {
        Arc::new(connect("conformance").await)
    }

    /// Etags live in Redis, so a restarted runtime (a new client) can use them.
    #[tokio::test]
    async fn etags_survive_a_new_client() {
        let key = format!("{}-restart", ns());
        let before = connect("before").await;
        before.set(SetRequest::new(&key, "v1")).await.unwrap();
        let tag = etag(&before, &key).await;
        drop(before);
        let after = connect("after").await;
        assert_eq!(etag(&after, &key).await, tag);
        after.set(SetRequest::new(&key, "v2").with_etag(&tag)).await.unwrap();
        assert_eq!(get(&after, &key).await.unwrap().data, b"v2");
    }

    /// Dapr's Redis layout: a hash with `data` and `version`, readable by Go Layotto.
    #[tokio::test]
    async fn stores_dapr_hash_layout() {
        use layotto_redis::fred::prelude::*;
        let key = format!("{}-layout", ns());
        connect("layout").await.set(SetRequest::new(&key, "payload")).await.unwrap();
        let client = Builder::from_config(Config::from_url(&url()).unwrap()).build().unwrap();
        client.init().await.unwrap();
        let data: String = client.hget(&key, "data").await.unwrap();
        let version: String = client.hget(&key, "version").await.unwrap();
        assert_eq!((data.as_str(), version.as_str()), ("payload", "1"));
    }

    /// A key another client wrote (Go Layotto, Dapr: `data`, `version`,
    /// EXPIRE) has no expiry field of ours, or one left from an older value:
    /// its ttlExpireTime then comes from Redis, never from the stale field.
    #[tokio::test]
    async fn foreign_writes_report_the_ttl_redis_holds() {
        use layotto_redis::fred::prelude::*;
        let store = connect("foreign").await;
        let client = Builder::from_config(Config::from_url(&url()).unwrap()).build().unwrap();
        client.init().await.unwrap();
        let expiry_secs = |item: &layotto_state::StateValue| {
            item.metadata.get(TTL_EXPIRE_TIME_KEY).map(|at| {
                let at = humantime::parse_rfc3339(at).expect("ttlExpireTime is RFC 3339");
                at.duration_since(std::time::SystemTime::now()).map_or(0, |d| d.as_secs())
            })
        };

        let key = format!("{}-foreign", ns());
        let _: () = client.hset(&key, [("data", "go"), ("version", "7")]).await.unwrap();
        let _: () = client.expire(&key, 500, None).await.unwrap();
        let item = get(&store, &key).await.expect("a foreign key is read");
        assert_eq!((item.data.as_slice(), item.etag.as_deref()), (&b"go"[..], Some("7")));
        assert!(matches!(expiry_secs(&item), Some(490..=500)), "{:?}", item.metadata);

        // Ours without a TTL, then rewritten by another client with one.
        let key = format!("{}-rewritten", ns());
        store.set(SetRequest::new(&key, "ours")).await.unwrap();
        assert_eq!(expiry_secs(&get(&store, &key).await.unwrap()), None);
        let _: () = client.hset(&key, ("data", "theirs")).await.unwrap();
        let _: i64 = client.hincrby(&key, "version", 1).await.unwrap();
        let _: () = client.expire(&key, 300, None).await.unwrap();
        let item = get(&store, &key).await.unwrap();
        assert_eq!((item.data.as_slice(), item.etag.as_deref()), (&b"theirs"[..], Some("2")));
        assert!(matches!(expiry_secs(&item), Some(290..=300)), "{:?}", item.metadata);

        // Ours with a TTL: read from the field, no PTTL needed.
        let key = format!("{}-ours-ttl", ns());
        let req = SetRequest::new(&key, "v").with_metadata(TTL_METADATA_KEY, "200");
        store.set(req).await.unwrap();
        assert!(matches!(expiry_secs(&get(&store, &key).await.unwrap()), Some(190..=200)));
        let field: String = client.hget(&key, "expiresAt").await.unwrap();
        assert!(field.starts_with("1:") && field.len() > 10, "{field}");
    }

    #[tokio::test]
    async fn unreachable_redis_fails_to_start_naming_the_component() {
        // Port 1 on loopback is closed: nothing listens there.
        let meta = Metadata::from([("redisHost".to_owned(), "127.0.0.1:1".to_owned())]);
        let err = RedisStore::connect("cache", &meta).await.err().expect("connect must fail");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let msg = err.to_string();
        assert!(msg.contains("cache") && msg.contains("127.0.0.1:1"), "{msg}");
    }

    #[tokio::test]
    async fn bad_metadata_is_a_config_error() {
        for (key, value) in
            [("redisDB", "many"), ("redisHost", "host:notaport"), ("enableTLS", "maybe"), ("timeout", "soon")]
        {
            let meta = Metadata::from([(key.to_owned(), value.to_owned())]);
            let err = RedisStore::connect("cache", &meta).await.err().expect("must fail");
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }
}

#[cfg(feature = "redis")]
mod redis_cluster_backend {
    use super::*;
    use layotto_state::components::redis::RedisStore;
    use layotto_testkit::PrivateRedisCluster;

    use layotto_testkit::redis_cluster_hosts as hosts;

    async fn connect(name: &str, hosts: &str) -> RedisStore {
        let meta = Metadata::from([
            ("redisHost".to_owned(), hosts.to_owned()),
            ("redisType".to_owned(), "cluster".to_owned()),
        ]);
        RedisStore::connect(name, &meta).await.unwrap_or_else(|e| {
            panic!("Redis Cluster conformance needs a cluster at {hosts} (cargo xtask test starts one): {e}")
        })
    }

    pub async fn redis_cluster() -> Arc<dyn StateStore> {
        Arc::new(connect("conformance", &hosts()).await)
    }

    /// A script runs on one node: a transaction across slots is refused
    /// whole, naming its keys, and nothing of it is written.
    #[tokio::test]
    async fn a_transaction_across_hash_slots_is_refused_whole() {
        let store = connect("cluster", &hosts()).await;
        let id = uuid::Uuid::new_v4().simple();
        let (a, b) = (format!("{{a}}-{id}"), format!("{{b}}-{id}"));
        assert_ne!(
            layotto_redis::fred::util::redis_keyslot(a.as_bytes()),
            layotto_redis::fred::util::redis_keyslot(b.as_bytes())
        );
        let ops =
            vec![Operation::Upsert(SetRequest::new(&a, "1")), Operation::Upsert(SetRequest::new(&b, "2"))];
        let err = store.transact(ops, Metadata::new()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&a) && msg.contains(&b) && msg.contains("hash tag"), "{msg}");
        assert_eq!(get(&store, &a).await, None);
    }

    /// Keys spread over every master; each one reads back through a new client.
    #[tokio::test]
    async fn keys_spread_over_the_masters_and_read_back() {
        let store = connect("spread", &hosts()).await;
        let keys: Vec<String> =
            (0..64).map(|i| format!("spread-{}-{i}", uuid::Uuid::new_v4().simple())).collect();
        let slots: std::collections::HashSet<u16> =
            keys.iter().map(|k| layotto_redis::fred::util::redis_keyslot(k.as_bytes()) / 5462).collect();
        assert_eq!(slots.len(), 3, "64 random keys fall in all three masters' slot ranges");
        store.bulk_set(keys.iter().map(|k| SetRequest::new(k, k.clone())).collect()).await.unwrap();
        let other = connect("spread-reader", &hosts()).await;
        for item in other.bulk_get(keys.clone(), Metadata::new()).await.unwrap() {
            assert_eq!(item.value.map(|v| v.data), Some(item.key.clone().into_bytes()), "{}", item.key);
        }
        store.bulk_delete(keys.iter().map(DeleteRequest::new).collect()).await.unwrap();
    }

    /// A master fails over to its replica (CLUSTER FAILOVER) while writes go
    /// on: every write the store acknowledged is there afterwards, and
    /// writes work again after the failover.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failover_loses_no_acknowledged_write() {
        let cluster = PrivateRedisCluster::start();
        let store = Arc::new(connect("failover", &cluster.hosts()).await);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("failover-{i}");
                    if store.set(SetRequest::new(&key, i.to_string())).await.is_ok() {
                        acknowledged.push((key, i));
                    }
                    i += 1;
                }
                acknowledged
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let promoted = tokio::task::spawn_blocking(move || {
            let port = cluster.failover();
            (cluster, port)
        });
        let (cluster, promoted) = promoted.await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let acknowledged = writer.await.unwrap();
        assert!(acknowledged.len() > 100, "writes went on: {}", acknowledged.len());
        // Every acknowledged write is there, read through a new client.
        let reader = connect("failover-reader", &cluster.hosts()).await;
        for (key, i) in &acknowledged {
            let value = get(&reader, key).await.unwrap_or_else(|| panic!("acknowledged {key} was lost"));
            assert_eq!(value.data, i.to_string().into_bytes());
        }
        // The promoted node serves its slots, and the store writes there.
        let on_promoted = (0..10_000)
            .map(|i| format!("after-{i}"))
            .find(|k| owns(promoted, layotto_redis::fred::util::redis_keyslot(k.as_bytes())))
            .expect("some key maps to the promoted master");
        store.set(SetRequest::new(&on_promoted, "after")).await.unwrap();
        assert_eq!(PrivateRedisCluster::cli(promoted, &["hget", &on_promoted, "data"]).trim(), "after");
    }

    /// Whether the node on `port` serves `slot`, by its own CLUSTER NODES line.
    fn owns(port: u16, slot: u16) -> bool {
        let nodes = PrivateRedisCluster::cli(port, &["cluster", "nodes"]);
        nodes.lines().filter(|l| l.contains("myself")).any(|l| {
            l.split_whitespace().skip(8).any(|range| match range.split_once('-') {
                Some((lo, hi)) => {
                    lo.parse::<u16>().is_ok_and(|lo| lo <= slot)
                        && hi.parse::<u16>().is_ok_and(|hi| slot <= hi)
                }
                None => range.parse::<u16>() == Ok(slot),
            })
        })
    }

    #[tokio::test]
    async fn bad_cluster_metadata_is_a_config_error() {
        let cases = [
            (vec![("redisType", "node"), ("redisHost", "127.0.0.1:1,127.0.0.1:2")], "redisType"),
            (vec![("redisType", "ring")], "redisType"),
            (vec![("redisType", "cluster"), ("redisHost", "127.0.0.1:x")], "redisHost"),
            (vec![("redisHosts", "127.0.0.1:7101"), ("redisDB", "3")], "redisDB"),
        ];
        for (pairs, key) in cases {
            let meta: Metadata = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let err = RedisStore::connect("cache", &meta).await.err().expect("must fail");
            assert_eq!(err.kind(), ErrorKind::Config, "{pairs:?}: {err}");
            assert!(err.to_string().contains(key) && err.to_string().contains("cache"), "{key}: {err}");
        }
    }
}

#[cfg(not(feature = "redis"))]
#[test]
fn redis_cases_not_compiled() {
    eprintln!(
        "NOTE: layotto-state was built without its `redis` feature: the Redis conformance cases did not run"
    );
}

#[cfg(feature = "zookeeper")]
mod zookeeper_backend {
    use super::*;
    use layotto_core::ComponentContext;
    use layotto_state::components::zookeeper::ZookeeperStore;
    use layotto_zookeeper::{Zookeeper, ZookeeperSettings};
    use std::time::{Duration, Instant};

    pub fn endpoint() -> String {
        std::env::var("LAYOTTO_TEST_ZOOKEEPER").unwrap_or_else(|_| "127.0.0.1:2181".to_owned())
    }

    pub async fn build(name: &str, pairs: &[(&str, &str)]) -> layotto_core::Result<Arc<dyn StateStore>> {
        let ctx = ComponentContext {
            api: "state".into(),
            name: name.into(),
            kind: "zookeeper".into(),
            metadata: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Default::default()
        };
        ZookeeperStore::build(ctx).await
    }

    pub async fn zookeeper() -> Arc<dyn StateStore> {
        build(
            "conformance",
            &[
                ("servers", &endpoint()),
                ("sessionTimeout", "5s"),
                ("keyPrefixPath", "/layotto-state-conformance"),
            ],
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "ZooKeeper conformance needs ZooKeeper at {} (cargo xtask test starts one): {e}",
                endpoint()
            )
        })
    }

    /// Dapr's layout: the node `<keyPrefixPath>/<key>` holds the value, its data version is the etag.
    #[tokio::test]
    async fn stores_dapr_layout() {
        let store = build("layout", &[("zookeeperHosts", &endpoint()), ("keyPrefixPath", "dapr-state")])
            .await
            .unwrap();
        let key = format!("{}-layout", ns());
        store.set(SetRequest::new(&key, "payload")).await.unwrap();
        let settings = ZookeeperSettings { hosts: Some(endpoint()), ..Default::default() };
        let zk = Zookeeper::new("raw", &settings).unwrap().session(Duration::from_secs(5)).await.unwrap();
        let (data, stat) = zk.get_data(&format!("/dapr-state/{key}")).await.unwrap();
        assert_eq!(data, b"payload");
        assert_eq!(etag(store.as_ref(), &key).await, stat.version.to_string());
        zk.set_data(&format!("/dapr-state/{key}"), b"by another process", None).await.unwrap();
        assert_eq!(get(store.as_ref(), &key).await.unwrap().data, b"by another process");
    }

    /// What ZooKeeper cannot hold is refused with a clear error, and the session stays up.
    #[tokio::test]
    async fn a_value_over_a_node_s_limit_is_refused_clearly() {
        let store = zookeeper().await;
        let key = format!("{}-big", ns());
        let err = store.set(SetRequest::new(&key, vec![0; 1024 * 1024])).await.unwrap_err();
        assert_eq!(err.kind(), layotto_core::ErrorKind::ResourceExhausted, "{err}");
        assert!(err.to_string().contains("jute.maxbuffer"), "{err}");
        let many = (0..4)
            .map(|i| {
                layotto_state::Operation::Upsert(SetRequest::new(format!("{key}-{i}"), vec![0; 400 * 1024]))
            })
            .collect();
        let err = store.transact(many, Metadata::new()).await.unwrap_err();
        assert_eq!(err.kind(), layotto_core::ErrorKind::ResourceExhausted, "{err}");
        store.set(SetRequest::new(&key, vec![1; 512 * 1024])).await.unwrap();
        assert_eq!(get(store.as_ref(), &key).await.unwrap().data.len(), 512 * 1024);
    }

    #[tokio::test]
    async fn missing_or_unreachable_servers_fail_startup_naming_them() {
        let err = build("s", &[]).await.err().unwrap();
        assert!(err.to_string().contains("servers"), "{err}");
        let err = build("s", &[("servers", "127.0.0.1:1"), ("sessionTimeout", "1s")]).await.err().unwrap();
        assert_eq!(err.kind(), layotto_core::ErrorKind::Unavailable, "{err}");
        assert!(
            err.to_string().contains("state store 's' (zookeeper)")
                && err.to_string().contains("127.0.0.1:1"),
            "{err}"
        );
    }

    /// ZooKeeper going away is UNAVAILABLE; what was acknowledged is there after it is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_unavailable_and_loses_no_acknowledged_write() {
        let mut server = layotto_testkit::PrivateZookeeper::start();
        let endpoint = server.endpoint();
        let store = build("outage", &[("servers", &endpoint), ("sessionTimeout", "2s")]).await.unwrap();
        let key = format!("{}-outage", ns());
        store.set(SetRequest::new(&key, "acknowledged")).await.unwrap();
        server.kill();
        let err = tokio::time::timeout(Duration::from_secs(20), store.set(SetRequest::new(&key, "during")))
            .await
            .expect("a write while ZooKeeper is down must fail, not hang")
            .unwrap_err();
        assert!(
            matches!(err.kind(), layotto_core::ErrorKind::Unavailable | layotto_core::ErrorKind::Timeout),
            "{err}"
        );
        assert!(err.to_string().contains("outage"), "{err}");
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(30);
        let value = loop {
            match store.get(layotto_state::GetRequest::new(&key)).await {
                Ok(value) => break value,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no recovery within 30 s: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        assert_eq!(value.unwrap().data, b"acknowledged");
    }
}
