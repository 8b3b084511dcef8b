//! Layotto's shipped JSON configs load as they are: each test keeps the shape
//! of one file from Layotto's `configs/` folder (written here, with backend
//! addresses pointed at the test's servers) and asserts that the runtime
//! starts, skips no section, is ready, and serves every section.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::Command;

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;

mod common;
use common::{BIN, Runtime, etcd_endpoint, readiness, redis_host, zookeeper_endpoint};

fn start(json: &str) -> (Runtime, tempfile::NamedTempFile) {
    let mut file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    file.write_all(json.as_bytes()).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("start").arg("-c").arg(file.path());
    let runtime = Runtime::start(cmd);
    assert!(
        !runtime.startup.contains("skipping config section"),
        "a section was skipped:\n{}",
        runtime.startup
    );
    (runtime, file)
}

/// `configs/runtime_config.json`, the config Layotto's docs start with: etcd
/// for configuration, sequencer and lock, and a flow-control stream filter.
#[tokio::test]
async fn runtime_config_json_on_etcd() {
    let etcd = etcd_endpoint();
    let json = format!(
        r#"{{
      "servers": [{{
        "default_log_path": "stdout",
        "default_log_level": "DEBUG",
        "routers": [{{"router_config_name": "actuator_dont_need_router"}}],
        "listeners": [
          {{"name": "grpc", "address": "127.0.0.1:0", "bind_port": true,
            "filter_chains": [{{"filters": [{{"type": "grpc", "config": {{"server_name": "runtime", "grpc_config": {{
              "hellos": {{"quick_start_demo": {{"type": "helloworld", "hello": "greeting"}}}},
              "config_store": {{"config_demo": {{"type": "etcd", "address": ["{etcd}"], "timeout": "10"}}}},
              "sequencer": {{"sequencer_demo": {{"type": "etcd", "metadata": {{
                "endpoints": "{etcd}", "segmentCacheEnable": "false", "segmentStep": "1", "dialTimeout": "5"}}}}}},
              "lock": {{"lock_demo": {{"type": "etcd", "metadata": {{
                "endpoints": "{etcd}", "dialTimeout": "5", "keyPrefixPath": "/lock"}}}}}},
              "app": {{"app_id": "app1", "grpc_callback_port": 9999}}
            }}}}}}]}}],
            "stream_filters": [{{"type": "flowControlFilter", "config": {{"global_switch": true, "limit_key_type": "PATH",
              "rules": [{{"resource": "/spec.proto.runtime.v1.Runtime/SayHello", "grade": 1, "threshold": 5}}]}}}}]}},
          {{"name": "actuator", "address": "127.0.0.1:0", "bind_port": true,
            "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http1", "upstream_protocol": "Http1", "router_config_name": "actuator_dont_need_router"}}}}]}}],
            "stream_filters": [{{"type": "actuator_filter"}}]}}
        ]
      }}]
    }}"#
    );
    let (rt, _file) = start(&json);
    let health = readiness(rt.actuator).await;
    assert_eq!(health.status(), 200);
    let health: serde_json::Value = health.json().await.unwrap();
    for component in ["lock/lock_demo", "sequencer/sequencer_demo", "config_store/config_demo"] {
        assert_eq!(health["components"][component]["status"], "UP", "{component}: {health}");
    }

    let mut client = RuntimeClient::connect(format!("http://127.0.0.1:{}", rt.grpc)).await.unwrap();
    let resource = format!("order-{}", std::process::id());
    let try_lock = |owner: &str| pb::TryLockRequest {
        store_name: "lock_demo".into(),
        resource_id: resource.clone(),
        lock_owner: owner.into(),
        expire: 10,
    };
    assert!(client.try_lock(try_lock("a")).await.unwrap().into_inner().success);
    assert!(!client.try_lock(try_lock("b")).await.unwrap().into_inner().success);
    let unlock =
        pb::UnlockRequest { store_name: "lock_demo".into(), resource_id: resource, lock_owner: "a".into() };
    assert_eq!(client.unlock(unlock).await.unwrap().into_inner().status, 0, "SUCCESS");

    let key = format!("ids-{}", std::process::id());
    let next = |key: &str| pb::GetNextIdRequest {
        store_name: "sequencer_demo".into(),
        key: key.into(),
        ..Default::default()
    };
    let first = client.get_next_id(next(&key)).await.unwrap().into_inner().next_id;
    let second = client.get_next_id(next(&key)).await.unwrap().into_inner().next_id;
    assert!(second > first, "{first} then {second}");

    let get = pb::GetConfigurationRequest {
        store_name: "config_demo".into(),
        app_id: "app1".into(),
        keys: vec!["no-such-key".into()],
        ..Default::default()
    };
    assert!(client.get_configuration(get).await.unwrap().into_inner().items.is_empty());
}

/// `configs/config_zookeeper.json`: ZooKeeper for sequencer and lock, with
/// Layotto's keys (`zookeeperHosts`, `zookeeperPassword`, `sessionTimeout`, `logInfo`).
#[tokio::test]
async fn config_zookeeper_json() {
    let zk = zookeeper_endpoint();
    let json = format!(
        r#"{{
      "servers": [{{
        "default_log_path": "stdout",
        "default_log_level": "DEBUG",
        "routers": [{{"router_config_name": "actuator_dont_need_router"}}],
        "listeners": [
          {{"name": "grpc", "address": "127.0.0.1:0", "bind_port": true,
            "filter_chains": [{{"filters": [{{"type": "grpc", "config": {{"server_name": "runtime", "grpc_config": {{
              "hellos": {{"quick_start_demo": {{"type": "helloworld", "hello": "greeting"}}}},
              "sequencer": {{"sequencer_demo": {{"type": "zookeeper", "metadata": {{
                "zookeeperHosts": "{zk}", "zookeeperPassword": "", "sessionTimeout": "3", "logInfo": "false"}}}}}},
              "lock": {{"lock_demo": {{"type": "zookeeper", "metadata": {{
                "zookeeperHosts": "{zk}", "zookeeperPassword": "", "sessionTimeout": "3", "logInfo": "false"}}}}}},
              "app": {{"app_id": "app1", "grpc_callback_port": 9999}}
            }}}}}}]}}]}},
          {{"name": "actuator", "address": "127.0.0.1:0", "bind_port": true,
            "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http1", "upstream_protocol": "Http1", "router_config_name": "actuator_dont_need_router"}}}}]}}],
            "stream_filters": [{{"type": "actuator_filter"}}]}}
        ]
      }}]
    }}"#
    );
    let (rt, _file) = start(&json);
    let health: serde_json::Value = readiness(rt.actuator).await.json().await.unwrap();
    for component in ["lock/lock_demo", "sequencer/sequencer_demo"] {
        assert_eq!(health["components"][component]["status"], "UP", "{component}: {health}");
    }
    let mut client = RuntimeClient::connect(format!("http://127.0.0.1:{}", rt.grpc)).await.unwrap();
    let resource = format!("zk-order-{}", std::process::id());
    let try_lock = |owner: &str| pb::TryLockRequest {
        store_name: "lock_demo".into(),
        resource_id: resource.clone(),
        lock_owner: owner.into(),
        expire: 10,
    };
    assert!(client.try_lock(try_lock("a")).await.unwrap().into_inner().success);
    assert!(!client.try_lock(try_lock("b")).await.unwrap().into_inner().success);
    let unlock =
        pb::UnlockRequest { store_name: "lock_demo".into(), resource_id: resource, lock_owner: "a".into() };
    assert_eq!(client.unlock(unlock).await.unwrap().into_inner().status, 0, "SUCCESS");
    let next = pb::GetNextIdRequest {
        store_name: "sequencer_demo".into(),
        key: format!("zk-ids-{}", std::process::id()),
        ..Default::default()
    };
    let first = client.get_next_id(next.clone()).await.unwrap().into_inner().next_id;
    let second = client.get_next_id(next).await.unwrap().into_inner().next_id;
    assert!(second > first, "{first} then {second}");
}

/// `configs/config_integrate_test.json`, Layotto's integration-test set: an
/// etcd config store; Redis and ZooKeeper state; Redis, etcd and ZooKeeper
/// locks and sequencers; Redis pub/sub; `local.file` secrets.
#[tokio::test]
async fn config_integrate_test_json() {
    let (etcd, zk, redis) = (etcd_endpoint(), zookeeper_endpoint(), redis_host());
    let mut secrets = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    secrets.write_all(br#"{"db-user": "admin", "db-password": "s3cr3t"}"#).unwrap();
    let secrets_path = secrets.path().display().to_string();
    let json = format!(
        r#"{{
      "servers": [{{
        "default_log_path": "stdout",
        "default_log_level": "DEBUG",
        "routers": [{{"router_config_name": "actuator_dont_need_router"}}],
        "listeners": [
          {{"name": "grpc", "address": "127.0.0.1:0", "bind_port": true,
            "filter_chains": [{{"filters": [{{"type": "grpc", "config": {{"server_name": "runtime", "grpc_config": {{
              "hellos": {{"quick_start_demo": {{"type": "helloworld", "hello": "greeting"}}}},
              "config_store": {{"config_demo": {{"type": "etcd", "address": ["{etcd}"], "timeout": "10"}}}},
              "state": {{
                "redis": {{"type": "redis", "metadata": {{"redisHost": "{redis}", "redisPassword": ""}}}},
                "zookeeper": {{"type": "zookeeper", "metadata": {{"servers": "{zk}", "zookeeperPassword": "",
                  "sessionTimeout": "3s", "logInfo": "false", "keyPrefixPath": "/"}}}}
              }},
              "lock": {{
                "redis": {{"type": "redis", "metadata": {{"redisHost": "{redis}", "redisPassword": ""}}}},
                "etcd": {{"type": "etcd", "metadata": {{"endpoints": "{etcd}", "dialTimeout": "5", "keyPrefixPath": "/lock"}}}},
                "zookeeper": {{"type": "zookeeper", "metadata": {{"zookeeperHosts": "{zk}", "zookeeperPassword": "",
                  "sessionTimeout": "3", "logInfo": "false"}}}}
              }},
              "sequencer": {{
                "redis": {{"type": "redis", "metadata": {{"redisHost": "{redis}", "redisPassword": ""}}}},
                "etcd": {{"type": "etcd", "metadata": {{"endpoints": "{etcd}", "segmentCacheEnable": "false",
                  "segmentStep": "1", "dialTimeout": "5"}}}},
                "zookeeper": {{"type": "zookeeper", "metadata": {{"zookeeperHosts": "{zk}", "zookeeperPassword": "",
                  "sessionTimeout": "3", "logInfo": "false"}}}}
              }},
              "pub_subs": {{"redis": {{"type": "redis", "metadata": {{"redisHost": "{redis}", "redisPassword": ""}}}}}},
              "secret_store": {{"secret_demo": {{"type": "local.file", "metadata": {{"secretsFile": "{secrets_path}"}}}}}},
              "app": {{"app_id": "app1", "grpc_callback_port": 9999}}
            }}}}}}]}}]}},
          {{"name": "actuator", "address": "127.0.0.1:0", "bind_port": true,
            "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http1", "upstream_protocol": "Http1", "router_config_name": "actuator_dont_need_router"}}}}]}}],
            "stream_filters": [{{"type": "actuator_filter"}}]}}
        ]
      }}]
    }}"#
    );
    let (rt, _file) = start(&json);
    let health = readiness(rt.actuator).await;
    assert_eq!(health.status(), 200);
    let mut client = RuntimeClient::connect(format!("http://127.0.0.1:{}", rt.grpc)).await.unwrap();
    let key = format!("integrate-{}", std::process::id());
    for store in ["redis", "zookeeper"] {
        let item = pb::StateItem { key: key.clone(), value: store.as_bytes().to_vec(), ..Default::default() };
        client
            .save_state(pb::SaveStateRequest { store_name: store.into(), states: vec![item] })
            .await
            .unwrap();
        let got = client
            .get_state(pb::GetStateRequest {
                store_name: store.into(),
                key: key.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.data, store.as_bytes(), "{store}");
        assert!(!got.etag.is_empty(), "{store}: an etag");
    }
    for store in ["redis", "etcd", "zookeeper"] {
        let request = pb::TryLockRequest {
            store_name: store.into(),
            resource_id: key.clone(),
            lock_owner: "owner".into(),
            expire: 10,
        };
        assert!(client.try_lock(request).await.unwrap().into_inner().success, "{store}");
        let unlock = pb::UnlockRequest {
            store_name: store.into(),
            resource_id: key.clone(),
            lock_owner: "owner".into(),
        };
        assert_eq!(client.unlock(unlock).await.unwrap().into_inner().status, 0, "{store}");
        let next = pb::GetNextIdRequest { store_name: store.into(), key: key.clone(), ..Default::default() };
        assert!(client.get_next_id(next).await.unwrap().into_inner().next_id > 0, "{store}");
    }
    let secret = pb::GetSecretRequest {
        store_name: "secret_demo".into(),
        key: "db-user".into(),
        ..Default::default()
    };
    assert_eq!(client.get_secret(secret).await.unwrap().into_inner().data["db-user"], "admin");
}
