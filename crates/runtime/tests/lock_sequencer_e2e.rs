//! Lock and sequencer end to end over gRPC, on every backend: in-memory,
//! Redis (`LAYOTTO_TEST_REDIS`), PostgreSQL (`LAYOTTO_TEST_POSTGRES`) and,
//! for the sequencer, MySQL/MariaDB (`LAYOTTO_TEST_MYSQL`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use layotto_redis::fred::prelude::{ClientLike, KeysInterface};
use layotto_runtime::{ComponentConfig, Config, Registries, Running};
use tonic::Code;
use tonic::transport::Channel;

fn env(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

fn redis_url() -> String {
    env("LAYOTTO_TEST_REDIS", "redis://127.0.0.1:6379")
}

fn postgres_url() -> String {
    env("LAYOTTO_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
}

fn etcd_endpoint() -> String {
    env("LAYOTTO_TEST_ETCD", "127.0.0.1:2379")
}

fn zookeeper_endpoint() -> String {
    env("LAYOTTO_TEST_ZOOKEEPER", "127.0.0.1:2181")
}

fn mysql_url() -> String {
    env("LAYOTTO_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
}

fn unique(what: &str) -> String {
    format!("e2e-{what}-{}", uuid::Uuid::new_v4().simple())
}

fn config(app_id: &str) -> Config {
    let mut config = Config::embedded_defaults();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.app.id = app_id.into();
    config.section_mut("lock").insert("mem".into(), ComponentConfig::new("in-memory"));
    config
        .section_mut("lock")
        .insert("redis".into(), ComponentConfig::new("redis").with("redisHost", &redis_url()));
    config
        .section_mut("lock")
        .insert("pg".into(), ComponentConfig::new("postgresql").with("connectionString", &postgres_url()));
    config
        .section_mut("lock")
        .insert("etcd".into(), ComponentConfig::new("etcd").with("endpoints", &etcd_endpoint()));
    config
        .section_mut("lock")
        .insert("zk".into(), ComponentConfig::new("zookeeper").with("zookeeperHosts", &zookeeper_endpoint()));
    config.section_mut("sequencer").insert("mem".into(), ComponentConfig::new("in-memory"));
    config
        .section_mut("sequencer")
        .insert("zk".into(), ComponentConfig::new("zookeeper").with("zookeeperHosts", &zookeeper_endpoint()));
    let mysql_host =
        mysql_url().trim_start_matches("mysql://").trim_start_matches("root@").replace("/test", "");
    config.section_mut("sequencer").insert(
        "snowflake".into(),
        ComponentConfig::new("snowflake")
            .with("mysqlHost", &mysql_host)
            .with("databaseName", "test")
            .with("userName", "root"),
    );
    config
        .section_mut("sequencer")
        .insert("etcd".into(), ComponentConfig::new("etcd").with("endpoints", &etcd_endpoint()));
    config
        .section_mut("sequencer")
        .insert("redis".into(), ComponentConfig::new("redis").with("redisHost", &redis_url()));
    config
        .section_mut("sequencer")
        .insert("pg".into(), ComponentConfig::new("postgresql").with("connectionString", &postgres_url()));
    config
        .section_mut("sequencer")
        .insert("mysql".into(), ComponentConfig::new("mysql").with("mysqlUrl", &mysql_url()));
    config
}

async fn start(config: Config) -> (Running, RuntimeClient<Channel>) {
    let running = layotto_runtime::start(config, Registries::builtin()).await.expect("runtime starts");
    let client = RuntimeClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    (running, client)
}

fn try_lock(store: &str, resource: &str, owner: &str, expire: i32) -> pb::TryLockRequest {
    pb::TryLockRequest {
        store_name: store.into(),
        resource_id: resource.into(),
        lock_owner: owner.into(),
        expire,
    }
}

fn unlock(store: &str, resource: &str, owner: &str) -> pb::UnlockRequest {
    pb::UnlockRequest { store_name: store.into(), resource_id: resource.into(), lock_owner: owner.into() }
}

fn keep_alive(store: &str, resource: &str, owner: &str, expire: i32) -> pb::LockKeepAliveRequest {
    pb::LockKeepAliveRequest {
        store_name: store.into(),
        resource_id: resource.into(),
        lock_owner: owner.into(),
        expire,
    }
}

fn next_id(store: &str, key: &str, strong: bool) -> pb::GetNextIdRequest {
    pb::GetNextIdRequest {
        store_name: store.into(),
        key: key.into(),
        options: Some(pb::SequencerOptions { increment: i32::from(strong) }),
        metadata: HashMap::new(),
    }
}

#[tokio::test]
async fn lock_api_on_every_backend() {
    use pb::lock_keep_alive_response::Status as K;
    use pb::unlock_response::Status as U;
    let (running, mut c) = start(config(&unique("app"))).await;
    for store in ["mem", "redis", "pg", "etcd", "zk"] {
        let res = unique("res");
        assert!(c.try_lock(try_lock(store, &res, "a", 10)).await.unwrap().into_inner().success, "{store}");
        assert!(!c.try_lock(try_lock(store, &res, "b", 10)).await.unwrap().into_inner().success, "{store}");
        let by_other = c.unlock(unlock(store, &res, "b")).await.unwrap().into_inner().status;
        assert_eq!(by_other, U::LockBelongToOthers as i32, "{store}");
        let kept = c.lock_keep_alive(keep_alive(store, &res, "a", 10)).await.unwrap().into_inner().status;
        assert_eq!(kept, K::Success as i32, "{store}");
        let other = c.lock_keep_alive(keep_alive(store, &res, "b", 10)).await.unwrap().into_inner().status;
        assert_eq!(other, K::LockBelongToOthers as i32, "{store}");
        assert_eq!(c.unlock(unlock(store, &res, "a")).await.unwrap().into_inner().status, U::Success as i32);
        assert_eq!(
            c.unlock(unlock(store, &res, "a")).await.unwrap().into_inner().status,
            U::LockUnexist as i32
        );
        let gone = c.lock_keep_alive(keep_alive(store, &res, "a", 10)).await.unwrap().into_inner().status;
        assert_eq!(gone, K::LockUnexist as i32, "{store}: keep-alive must not claim a lock that is gone");
        assert!(c.try_lock(try_lock(store, &res, "b", 10)).await.unwrap().into_inner().success, "{store}");
        c.unlock(unlock(store, &res, "b")).await.unwrap();
    }
    running.shutdown().await;
}

#[tokio::test]
async fn lock_bad_input_names_store_and_field() {
    let (running, mut c) = start(config("app1")).await;
    let cases = [
        (try_lock("redis", "", "o", 5), "ResourceId is empty in lock store redis"),
        (try_lock("redis", "r", "", 5), "LockOwner is empty in lock store redis"),
        (try_lock("redis", "r", "o", 0), "Expire is not positive in lock store redis"),
        (try_lock("redis", "r", "o", -3), "Expire is not positive in lock store redis"),
        (try_lock("redis", "a||b", "o", 5), "a||b"),
        (try_lock("nope", "r", "o", 5), "lock store nope not found"),
    ];
    for (req, expected) in cases {
        let err = c.try_lock(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{expected}: {}", err.message());
        assert!(err.message().contains(expected), "{} should contain {expected}", err.message());
    }
    let err = c.unlock(unlock("mem", "", "o")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c.lock_keep_alive(keep_alive("mem", "r", "o", 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    running.shutdown().await;

    let mut bare = config("app1");
    bare.section_mut("lock").clear();
    bare.section_mut("sequencer").clear();
    let (running, mut c) = start(bare).await;
    let err = c.try_lock(try_lock("mem", "r", "o", 5)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("lock store is not configured"));
    let err = c.get_next_id(next_id("mem", "k", false)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("Sequencer store is not configured"));
    running.shutdown().await;
}

/// Keys are stored as Go Layotto stores them, so both can share one Redis.
#[tokio::test]
async fn redis_keys_match_layotto() {
    let app = unique("app");
    let (running, mut c) = start(config(&app)).await;
    let res = unique("res");
    assert!(c.try_lock(try_lock("redis", &res, "owner-1", 30)).await.unwrap().into_inner().success);
    let key = unique("seq");
    let id = c.get_next_id(next_id("redis", &key, true)).await.unwrap().into_inner().next_id;

    let redis = layotto_redis::fred::prelude::Builder::from_config(
        layotto_redis::fred::prelude::Config::from_url(&redis_url()).unwrap(),
    )
    .build()
    .unwrap();
    redis.init().await.unwrap();
    let owner: Option<String> = redis.get(format!("lock|||{app}||{res}")).await.unwrap();
    assert_eq!(owner.as_deref(), Some("owner-1"));
    let counter: Option<i64> = redis.get(format!("sequencer|||{app}||{key}")).await.unwrap();
    assert!(counter.is_some_and(|v| v >= id), "sequencer key holds {counter:?}, id was {id}");
    let _: () =
        redis.del(vec![format!("lock|||{app}||{res}"), format!("sequencer|||{app}||{key}")]).await.unwrap();
    running.shutdown().await;
}

#[tokio::test]
async fn sequencer_on_every_backend() {
    let (running, mut c) = start(config(&unique("app"))).await;
    for store in ["mem", "redis", "pg", "mysql", "etcd", "zk", "snowflake"] {
        for strong in [false, true] {
            let key = unique("k");
            let mut last = 0;
            for _ in 0..50 {
                let id = c.get_next_id(next_id(store, &key, strong)).await.unwrap().into_inner().next_id;
                assert!(id > last, "{store} strong={strong}: {id} after {last}");
                last = id;
            }
        }
        let err = c.get_next_id(next_id(store, "", false)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains(&format!("Key is empty in sequencer store {store}")),
            "{}",
            err.message()
        );
        let err = c.get_next_id(next_id(store, "a||b", false)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
    let err = c.get_next_id(next_id("nope", "k", false)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("Sequencer store nope not found"));
    running.shutdown().await;
}

/// `bigger_than` from config, and STRONG ids keep increasing across a restart.
#[tokio::test]
async fn bigger_than_and_restart() {
    let app = unique("app");
    let key = unique("order");
    let mut cfg = config(&app);
    for store in ["mem", "redis", "pg", "mysql", "etcd", "zk", "snowflake"] {
        let c = cfg.section_mut("sequencer").get_mut(store).unwrap();
        c.options.insert("bigger_than".into(), serde_json::json!({ key.clone(): 1000 }));
    }
    let (running, mut c) = start(cfg.clone()).await;
    let mut before = HashMap::new();
    for store in ["mem", "redis", "pg", "mysql", "etcd", "zk", "snowflake"] {
        let weak = c.get_next_id(next_id(store, &key, false)).await.unwrap().into_inner().next_id;
        let strong = c.get_next_id(next_id(store, &key, true)).await.unwrap().into_inner().next_id;
        assert!(weak > 1000 && strong > 1000, "{store}: biggerThan 1000 gave {weak} and {strong}");
        before.insert(store, strong);
    }
    running.shutdown().await;
    let (running, mut c) = start(cfg).await;
    for store in ["redis", "pg", "mysql", "etcd", "zk", "snowflake"] {
        let strong = c.get_next_id(next_id(store, &key, true)).await.unwrap().into_inner().next_id;
        assert!(strong > before[store], "{store}: {strong} after restart, {} before", before[store]);
    }
    running.shutdown().await;
}
