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
use common::{BIN, Runtime, etcd_endpoint, readiness, zookeeper_endpoint};

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
