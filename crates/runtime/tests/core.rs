//! What every API gets from the core: typed settings that name an unknown
//! metadata key and its nearest known key (an error in our TOML, a warning
//! in Layotto's JSON), the request size limit on every unary rpc, and the
//! Unix-domain-socket listener.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::lifecycle_client::LifecycleClient;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use layotto_runtime::{Config, ListenAddr, Registries};
use tonic::Code;
use tonic::transport::Channel;

/// One in-memory component per API with a misspelled key, and the key it meant.
const TYPOS: &[(&str, &str, &str, &str)] = &[
    ("hellos", "helloworld", "helo", "hello"),
    ("state", "in-memory", "keyPrefx", "keyPrefix"),
    ("pub_subs", "in-memory", "maxBacklg", "maxBacklog"),
    ("lock", "in-memory", "keyPrefixx", "keyPrefix"),
    ("sequencer", "in-memory", "segmentStpe", "segmentStep"),
    ("secret_store", "local.env", "prefx", "prefix"),
    ("config_store", "redis", "redisPasword", "redisPassword"),
    ("bindings", "redis", "redisHostt", "redisHost"),
];

fn file(ext: &str, text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn free_ports(config: &mut Config) {
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
}

#[tokio::test]
async fn unknown_metadata_key_in_toml_fails_startup_with_a_suggestion() {
    for (section, kind, typo, meant) in TYPOS {
        let toml = format!("[{section}.c1]\ntype = \"{kind}\"\nmetadata = {{ {typo} = \"1\" }}\n");
        let f = file(".toml", &toml);
        let mut config = Config::load(Some(f.path())).unwrap();
        free_ports(&mut config);
        let err =
            layotto_runtime::start(config, Registries::builtin()).await.err().expect("must fail").to_string();
        assert!(err.contains(&format!("'{typo}'")), "{section}: {err}");
        assert!(err.contains(&format!("did you mean {meant}?")), "{section}: {err}");
        assert!(err.contains(&format!("{section} component 'c1'")), "{section}: {err}");
    }
}

/// A tracing writer the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn unknown_metadata_key_in_layotto_json_warns_and_starts() {
    let mut grpc_config = serde_json::Map::new();
    for (section, kind, typo, _) in TYPOS {
        grpc_config.insert(
            (*section).to_owned(),
            serde_json::json!({ "c1": { "type": kind, "metadata": { *typo: "1" } } }),
        );
    }
    let json = serde_json::json!({"servers": [{"listeners": [{
        "name": "grpc", "address": "127.0.0.1:0",
        "filter_chains": [{"filters": [{"type": "grpc", "config": {
            "server_name": "runtime", "grpc_config": grpc_config}}]}]
    }]}]});
    let f = file(".json", &json.to_string());
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut config = Config::load(Some(f.path())).unwrap();
    free_ports(&mut config);
    let running = layotto_runtime::start(config, Registries::builtin()).await.expect("starts with warnings");
    running.shutdown().await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for (section, _, typo, meant) in TYPOS {
        let line = logs
            .lines()
            .find(|l| l.contains(&format!("'{typo}'")))
            .unwrap_or_else(|| panic!("{section}: no warning for {typo} in:\n{logs}"));
        assert!(line.contains("WARN") && line.contains(&format!("did you mean {meant}?")), "{line}");
    }
}

async fn limited_runtime(limit: usize) -> (layotto_runtime::Running, Channel) {
    let mut config = Config::embedded_defaults();
    free_ports(&mut config);
    config.server.max_request_bytes = limit;
    let running = layotto_runtime::start(config, Registries::builtin()).await.unwrap();
    let channel =
        Channel::from_shared(format!("http://{}", running.grpc_addr())).unwrap().connect().await.unwrap();
    (running, channel)
}

#[tokio::test]
async fn oversized_request_to_every_unary_rpc_is_resource_exhausted() {
    let (running, channel) = limited_runtime(1024).await;
    let mut c = RuntimeClient::new(channel.clone());
    let big = "x".repeat(2048);
    let item = || pb::StateItem { key: "k".into(), value: big.clone().into_bytes(), ..Default::default() };
    let mut results: Vec<(&str, Result<(), tonic::Status>)> = Vec::new();
    macro_rules! call {
        ($rpc:literal, $call:expr) => {
            results.push(($rpc, $call.await.map(drop)));
        };
    }
    call!("SayHello", c.say_hello(pb::SayHelloRequest { service_name: big.clone(), ..Default::default() }));
    call!(
        "InvokeService",
        c.invoke_service(pb::InvokeServiceRequest { id: big.clone(), ..Default::default() })
    );
    call!(
        "GetConfiguration",
        c.get_configuration(pb::GetConfigurationRequest { app_id: big.clone(), ..Default::default() })
    );
    call!(
        "SaveConfiguration",
        c.save_configuration(pb::SaveConfigurationRequest { app_id: big.clone(), ..Default::default() })
    );
    call!(
        "DeleteConfiguration",
        c.delete_configuration(pb::DeleteConfigurationRequest { app_id: big.clone(), ..Default::default() })
    );
    call!("GetState", c.get_state(pb::GetStateRequest { key: big.clone(), ..Default::default() }));
    call!(
        "GetBulkState",
        c.get_bulk_state(pb::GetBulkStateRequest { keys: vec![big.clone()], ..Default::default() })
    );
    call!(
        "SaveState",
        c.save_state(pb::SaveStateRequest { store_name: "state_demo".into(), states: vec![item()] })
    );
    call!("DeleteState", c.delete_state(pb::DeleteStateRequest { key: big.clone(), ..Default::default() }));
    call!(
        "DeleteBulkState",
        c.delete_bulk_state(pb::DeleteBulkStateRequest { states: vec![item()], ..Default::default() })
    );
    let op = pb::TransactionalStateOperation { operation_type: "upsert".into(), request: Some(item()) };
    call!(
        "ExecuteStateTransaction",
        c.execute_state_transaction(pb::ExecuteStateTransactionRequest {
            operations: vec![op],
            ..Default::default()
        })
    );
    call!(
        "PublishEvent",
        c.publish_event(pb::PublishEventRequest { data: big.clone().into_bytes(), ..Default::default() })
    );
    call!("GetFile", c.get_file(pb::GetFileRequest { name: big.clone(), ..Default::default() }));
    let file = || Some(pb::FileRequest { name: big.clone(), ..Default::default() });
    call!("ListFile", c.list_file(pb::ListFileRequest { request: file(), ..Default::default() }));
    call!("DelFile", c.del_file(pb::DelFileRequest { request: file() }));
    call!("GetFileMeta", c.get_file_meta(pb::GetFileMetaRequest { request: file() }));
    call!(
        "InvokeBinding",
        c.invoke_binding(pb::InvokeBindingRequest { name: big.clone(), ..Default::default() })
    );
    call!("GetSecret", c.get_secret(pb::GetSecretRequest { key: big.clone(), ..Default::default() }));
    call!(
        "GetBulkSecret",
        c.get_bulk_secret(pb::GetBulkSecretRequest { store_name: big.clone(), ..Default::default() })
    );
    call!("TryLock", c.try_lock(pb::TryLockRequest { resource_id: big.clone(), ..Default::default() }));
    call!("Unlock", c.unlock(pb::UnlockRequest { resource_id: big.clone(), ..Default::default() }));
    call!(
        "LockKeepAlive",
        c.lock_keep_alive(pb::LockKeepAliveRequest { resource_id: big.clone(), ..Default::default() })
    );
    call!("GetNextId", c.get_next_id(pb::GetNextIdRequest { key: big.clone(), ..Default::default() }));
    let mut lifecycle = LifecycleClient::new(channel);
    let component = pb::ComponentConfig { name: big.clone(), ..Default::default() };
    call!(
        "ApplyConfiguration",
        lifecycle.apply_configuration(pb::DynamicConfiguration { component_config: Some(component) })
    );
    for (rpc, result) in results {
        let err = result.expect_err(rpc);
        assert_eq!(err.code(), Code::ResourceExhausted, "{rpc}: {err:?}");
        assert!(err.message().starts_with(&format!("{rpc}: request of ")), "{rpc}: {}", err.message());
        assert!(err.message().contains("limit of 1024 bytes"), "{rpc}: {}", err.message());
        assert!(err.message().len() < 400, "{rpc}: the message echoes too much: {}", err.message());
    }
    // Within the limit, calls go through on the same connection.
    c.save_state(pb::SaveStateRequest { store_name: "state_demo".into(), states: vec![] }).await.unwrap();
    running.shutdown().await;
}

#[tokio::test]
async fn grpc_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layotto.sock");
    let toml = format!(
        "[server]\ngrpc = \"unix:{}\"\nactuator = \"127.0.0.1:0\"\n[hellos.quick_start_demo]\ntype = \"helloworld\"\n",
        path.display()
    );
    let f = file(".toml", &toml);
    let config = Config::load(Some(f.path())).unwrap();
    assert_eq!(config.server.grpc, ListenAddr::Unix(path.clone()));
    let running = layotto_runtime::start(config, Registries::builtin()).await.unwrap();
    let socket = path.clone();
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap();
    let reply = RuntimeClient::new(channel)
        .say_hello(pb::SayHelloRequest {
            service_name: "quick_start_demo".into(),
            name: "uds".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().hello, "greeting, uds");
    running.shutdown().await;
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

#[test]
fn layotto_uds_listener_loads() {
    let json = r#"{"servers": [{"listeners": [{"name": "grpc", "address": "/tmp/layotto-test.sock", "network": "unix",
        "filter_chains": [{"filters": [{"type": "grpc", "config": {"server_name": "runtime", "grpc_config": {}}}]}]}]}]}"#;
    let f = file(".json", json);
    let config = Config::load(Some(f.path())).unwrap();
    assert_eq!(config.server.grpc, ListenAddr::Unix("/tmp/layotto-test.sock".into()));
}

/// A 15 000-character store name once came back whole in the error, so the
/// client saw its metadata limit (RESOURCE_EXHAUSTED) instead of the error.
#[tokio::test]
async fn errors_never_echo_huge_input() {
    let (running, channel) = limited_runtime(4 * 1024 * 1024).await;
    let mut c = RuntimeClient::new(channel);
    let huge = "s".repeat(15_000);
    let err = c
        .get_state(pb::GetStateRequest { store_name: huge.clone(), key: "k".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", &err.message()[..err.message().len().min(300)]);
    assert!(err.message().len() < 600 && err.message().contains("15000 bytes"), "{}", err.message());
    let item = pb::StateItem { key: format!("{huge}||x"), value: b"v".to_vec(), ..Default::default() };
    let err = c
        .save_state(pb::SaveStateRequest { store_name: "state_demo".into(), states: vec![item] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 600, "{}", err.message().len());
    let err = c
        .try_lock(pb::TryLockRequest {
            store_name: "lock_demo".into(),
            resource_id: format!("{huge}||x"),
            lock_owner: "o".into(),
            expire: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 600, "{}", err.message().len());
    running.shutdown().await;
}

/// Sends bytes as they are, so a test can send a request that is not protobuf.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let bytes = src.chunk().to_vec();
        src.advance(bytes.len());
        Ok(Some(bytes))
    }
}

/// A request that is not protobuf is INVALID_ARGUMENT, as Layotto and Dapr
/// answer (tonic's codec said INTERNAL).
#[tokio::test]
async fn malformed_protobuf_is_invalid_argument() {
    let (running, channel) = limited_runtime(4 * 1024 * 1024).await;
    for method in ["GetState", "SaveState", "SayHello", "TryLock", "PublishEvent"] {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let path: http::uri::PathAndQuery =
            format!("/spec.proto.runtime.v1.Runtime/{method}").parse().unwrap();
        let err = grpc.unary(tonic::Request::new(vec![0xff, 0xff, 0xff]), path, RawCodec).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{method}: {err:?}");
    }
    // The server keeps serving well-formed calls.
    let reply = RuntimeClient::new(channel)
        .say_hello(pb::SayHelloRequest { service_name: "quick_start_demo".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().hello, "greeting");
    running.shutdown().await;
}

/// One 1 MiB key asked for 300 times once built a 300 MiB answer (a 4 MiB
/// key, 1.26 GB): keys are now asked once, and an answer over
/// `server.max_response_bytes` is RESOURCE_EXHAUSTED naming the limit.
#[tokio::test]
async fn bulk_get_deduplicates_keys_and_caps_the_answer() {
    let mut config = Config::embedded_defaults();
    free_ports(&mut config);
    config.server.max_response_bytes = 3 << 20;
    let running = layotto_runtime::start(config, Registries::builtin()).await.unwrap();
    let mut c = RuntimeClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    for key in ["big1", "big2", "big3"] {
        let item = pb::StateItem { key: key.into(), value: vec![1; 1 << 20], ..Default::default() };
        c.save_state(pb::SaveStateRequest { store_name: "state_demo".into(), states: vec![item] })
            .await
            .unwrap();
    }
    let keys = vec!["big1".to_owned(); 300];
    let bulk = pb::GetBulkStateRequest { store_name: "state_demo".into(), keys, ..Default::default() };
    let items = c.get_bulk_state(bulk).await.unwrap().into_inner().items;
    assert_eq!(items.len(), 1, "each key once");
    assert_eq!(items[0].data.len(), 1 << 20);
    let keys = ["big1", "big2", "big3", "big1"].map(str::to_owned).to_vec();
    let bulk = pb::GetBulkStateRequest { store_name: "state_demo".into(), keys, ..Default::default() };
    let err = c.get_bulk_state(bulk).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(
        err.message().contains("limit of 3145728 bytes (server.max_response_bytes)"),
        "{}",
        err.message()
    );
    running.shutdown().await;
}

/// A 5 MiB sequencer key was once stored for ever (20 of them held 236 MB):
/// keys of every API are capped by `server.max_key_bytes` (16 KiB by default).
#[tokio::test]
async fn keys_over_the_limit_are_invalid_argument() {
    let (running, channel) = limited_runtime(4 * 1024 * 1024).await;
    let mut c = RuntimeClient::new(channel);
    let long = "k".repeat(1 << 20);
    let mut results = Vec::new();
    results.push(
        c.get_next_id(pb::GetNextIdRequest {
            store_name: "sequencer_demo".into(),
            key: long.clone(),
            ..Default::default()
        })
        .await
        .map(drop),
    );
    results.push(
        c.get_state(pb::GetStateRequest {
            store_name: "state_demo".into(),
            key: long.clone(),
            ..Default::default()
        })
        .await
        .map(drop),
    );
    let item = pb::StateItem { key: long.clone(), value: b"v".to_vec(), ..Default::default() };
    results.push(
        c.save_state(pb::SaveStateRequest { store_name: "state_demo".into(), states: vec![item] })
            .await
            .map(drop),
    );
    results.push(
        c.try_lock(pb::TryLockRequest {
            store_name: "lock_demo".into(),
            resource_id: long.clone(),
            lock_owner: "o".into(),
            expire: 5,
        })
        .await
        .map(drop),
    );
    results.push(
        c.publish_event(pb::PublishEventRequest {
            pubsub_name: "pub_subs_demo".into(),
            topic: long.clone(),
            ..Default::default()
        })
        .await
        .map(drop),
    );
    for result in results {
        let err = result.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(err.message().contains("limit of 16384 bytes (server.max_key_bytes)"), "{}", err.message());
        assert!(err.message().len() < 600, "{}", err.message().len());
    }
    // Keys within the limit still work.
    let id = c
        .get_next_id(pb::GetNextIdRequest {
            store_name: "sequencer_demo".into(),
            key: "k".repeat(16384),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(id.into_inner().next_id > 0);
    running.shutdown().await;
}

/// 372 silent TCP connections once starved real clients: a connection that
/// sends nothing is closed after `server.handshake_timeout_seconds`, and at
/// most `server.max_connections` are open at once.
#[tokio::test]
async fn silent_connections_are_closed_and_capped() {
    use tokio::io::AsyncReadExt;
    let mut config = Config::embedded_defaults();
    free_ports(&mut config);
    config.server.max_connections = 2;
    config.server.handshake_timeout_seconds = 1;
    let running = layotto_runtime::start(config, Registries::builtin()).await.unwrap();
    let addr = running.grpc_addr();
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let hello = || async move {
        let mut c = RuntimeClient::connect(format!("http://{addr}")).await?;
        let req = pb::SayHelloRequest { service_name: "quick_start_demo".into(), ..Default::default() };
        c.say_hello(req).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    };
    let blocked = tokio::time::timeout(std::time::Duration::from_millis(300), hello()).await;
    assert!(blocked.is_err(), "with both connections taken by silent clients, a third waits: {blocked:?}");
    for mut stream in silent {
        // The server's own SETTINGS frame comes first; then the connection must end.
        let mut sink = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut sink)).await;
        read.expect("a silent connection is closed within the handshake timeout").ok();
    }
    tokio::time::timeout(std::time::Duration::from_secs(10), hello())
        .await
        .expect("once the silent ones are gone, a real client gets in")
        .unwrap();
    running.shutdown().await;
}

/// The actuator once held a connection with half a request head for 40 s
/// and more; now it closes it after `server.handshake_timeout_seconds`.
#[tokio::test]
async fn the_actuator_closes_connections_that_never_finish_their_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = Config::embedded_defaults();
    free_ports(&mut config);
    config.server.handshake_timeout_seconds = 1;
    let running = layotto_runtime::start(config, Registries::builtin()).await.unwrap();
    let addr = running.actuator_addr();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /actuator/health/liveness HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    read.expect("the half-sent request is cut within the timeout").ok();
    // A whole request is still answered.
    let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"GET /actuator/health/liveness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    ok.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    running.shutdown().await;
}

/// Bulk calls and transactions are capped in items (`server.max_bulk_items`).
#[tokio::test]
async fn bulk_calls_and_transactions_are_capped_in_items() {
    let mut config = Config::embedded_defaults();
    free_ports(&mut config);
    config.server.max_bulk_items = 10;
    let running = layotto_runtime::start(config, Registries::builtin()).await.unwrap();
    let mut c = RuntimeClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    let op = |i: usize| pb::TransactionalStateOperation {
        operation_type: "upsert".into(),
        request: Some(pb::StateItem { key: format!("k{i}"), value: b"v".to_vec(), ..Default::default() }),
    };
    let tx = |n: usize| pb::ExecuteStateTransactionRequest {
        store_name: "state_demo".into(),
        operations: (0..n).map(op).collect(),
        ..Default::default()
    };
    c.execute_state_transaction(tx(10)).await.unwrap();
    let err = c.execute_state_transaction(tx(11)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(
        err.message().contains("11 operations exceed the limit of 10 per call (server.max_bulk_items)"),
        "{}",
        err.message()
    );
    let keys: Vec<String> = (0..11).map(|i| format!("k{i}")).collect();
    let bulk = pb::GetBulkStateRequest { store_name: "state_demo".into(), keys, ..Default::default() };
    let err = c.get_bulk_state(bulk).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    running.shutdown().await;
}

/// A backend that hangs (a private redis-server stopped with SIGSTOP) answers
/// DEADLINE_EXCEEDED after `server.call_timeout_seconds`, naming the store,
/// while the rest keeps serving; once it runs again, calls succeed.
#[tokio::test]
async fn a_hanging_backend_hits_the_call_deadline() {
    let redis = layotto_testkit::PrivateRedis::start();
    let pid = redis.pid().unwrap().to_string();
    let mut config = Config::embedded_defaults();
    free_ports(&mut config);
    config.server.call_timeout_seconds = 1;
    config.section_mut("state").insert(
        "slow".into(),
        layotto_runtime::ComponentConfig::new("redis")
            .with("redisHost", &redis.host())
            .with("timeout", "60s"),
    );
    let running = layotto_runtime::start(config, Registries::builtin()).await.unwrap();
    let mut c = RuntimeClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    let get =
        |store: &str| pb::GetStateRequest { store_name: store.into(), key: "k".into(), ..Default::default() };
    c.get_state(get("slow")).await.unwrap();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let started = std::time::Instant::now();
    let err = c.get_state(get("slow")).await.unwrap_err();
    let waited = started.elapsed();
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    assert_eq!(err.code(), Code::DeadlineExceeded, "{}", err.message());
    assert!(
        err.message().contains("state store 'slow'") && err.message().contains("call_timeout_seconds"),
        "{}",
        err.message()
    );
    assert!(
        waited < std::time::Duration::from_secs(30),
        "the deadline, not the component's 60 s, ended the call"
    );
    c.get_state(get("state_demo")).await.unwrap();
    c.get_state(get("slow")).await.unwrap();
    running.shutdown().await;
}
