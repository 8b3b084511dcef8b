//! WebAssembly functions end to end: the C functions of examples/faas,
//! built here with clang (build.sh), served by the whole runtime in-process
//! and called over HTTP: Layotto's inventory demo from its own JSON config
//! on Redis, the admin endpoints, hot reload, traps, deadlines, memory caps
//! and concurrent calls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use layotto_runtime::{Config, Registries, Running};
use serde_json::json;

fn redis_host() -> String {
    let url = std::env::var("LAYOTTO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    url.trim_start_matches("redis://").trim_end_matches('/').to_owned()
}

/// The example functions, compiled into a fresh directory.
fn build_functions() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/faas/build.sh");
    let output = std::process::Command::new("sh").arg(&script).arg(dir.path()).output().unwrap_or_else(|e| {
        panic!("cannot run {}: {e}", script.display());
    });
    assert!(
        output.status.success(),
        "building the example functions failed (clang and lld installed? `cargo xtask services` installs them):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

fn toml_config(text: &str, dir: &Path) -> Config {
    let mut config = Config::from_text(&dir.join("layotto.toml").display().to_string(), text).unwrap();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config
}

async fn start(config: Config) -> Running {
    layotto_runtime::start(config, Registries::builtin()).await.expect("runtime starts")
}

/// A TOML config serving `functions` (a TOML fragment) with an in-memory `state_demo`.
fn config_with(dir: &Path, extra: &str, functions: &str) -> Config {
    let text = format!(
        r#"
[state.state_demo]
type = "in-memory"

[pub_subs.pubsub_demo]
type = "in-memory"

[wasm]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"
{extra}

{functions}
"#
    );
    toml_config(&text, dir)
}

fn function(name: &str, path: &Path, instances: usize) -> String {
    format!(
        "[wasm.functions.{name}]\ninstance_num = {instances}\nvm_config = {{ engine = \"wasmtime\", path = \"{}\" }}\n",
        path.display()
    )
}

async fn call(running: &Running, id: &str, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/", running.wasm_addr().unwrap()))
        .header("id", id)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn admin(running: &Running, endpoint: &str, body: serde_json::Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/wasm/{endpoint}", running.wasm_admin_addr().unwrap()))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn layotto_inventory_demo_runs_from_its_json_config_on_redis() {
    // examples/faas/config.json (Layotto's demo config) as it is, its functions built into examples/faas/out.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/faas");
    let built = std::process::Command::new("sh").arg(examples.join("build.sh")).output().unwrap();
    assert!(built.status.success(), "build.sh failed: {}", String::from_utf8_lossy(&built.stderr));
    let mut config = Config::load(Some(&examples.join("config.json"))).unwrap();
    let wasm = config.wasm.as_mut().expect("the Layotto filter becomes [wasm]");
    assert_eq!(wasm.functions.len(), 2);
    assert!(wasm.admin.is_some(), "the wasm_filter listener serves the admin endpoints");
    // Free ports and the test's Redis instead of the demo's fixed ones.
    wasm.listen = "127.0.0.1:0".parse().unwrap();
    wasm.admin = Some("127.0.0.1:0".parse().unwrap());
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    let state = config.section_mut("state").get_mut("state_demo").unwrap();
    state.metadata.insert("redisHost".into(), redis_host());
    let running = start(config).await;

    // The book's stock, saved through the state API as the demo's README does.
    let book = format!("book-{}", uuid::Uuid::new_v4().simple());
    let mut client = RuntimeClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    let item = pb::StateItem { key: book.clone(), value: b"100".to_vec(), ..Default::default() };
    client
        .save_state(pb::SaveStateRequest { store_name: "state_demo".into(), states: vec![item] })
        .await
        .unwrap();

    // As in Layotto's test/wasm: a GET with the query string and `id: id_1`.
    let response = reqwest::Client::new()
        .get(format!("http://{}/?name={book}", running.wasm_addr().unwrap()))
        .header("id", "id_1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), format!("There are 100 inventories for {book}."));

    // Function 2 alone, with the book in the body.
    assert_eq!(call(&running, "id_2", &book).await, (200, "100".to_owned()));
    // A book with no stock: function 2 answers an empty body, function 1 says so.
    let (status, body) = call(&running, "id_1", "name=unknown-book").await;
    assert_eq!((status, body.as_str()), (200, "There are  inventories for unknown-book."));
    running.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_install_update_and_uninstall_at_run_time() {
    let dir = build_functions();
    let running = start(config_with(dir.path(), "", "")).await;
    let echo = dir.path().join("echo.wasm");

    let (status, _) = call(&running, "echo", "hi").await;
    assert_eq!(status, 404, "nothing installed yet");
    let (status, body) = admin(
        &running,
        "install",
        json!({"name": "echo_fn", "instance_num": 2,
        "vm_config": {"engine": "wasmtime", "path": echo}}),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(call(&running, "echo", "hi").await, (200, "v1:hi".to_owned()));

    // The same code under a second name shares the id; other code may not.
    let (status, _) =
        admin(&running, "install", json!({"name": "echo_twin", "vm_config": {"path": echo}})).await;
    assert_eq!(status, 200);
    let (status, body) = admin(
        &running,
        "install",
        json!({"name": "echo_other",
        "vm_config": {"path": dir.path().join("echo_v2.wasm")}}),
    )
    .await;
    assert_eq!(status, 500);
    assert!(body.contains("echo_other") && body.contains("different code"), "{body}");

    let (status, body) = admin(&running, "update", json!({"name": "echo_fn", "instance_num": 4})).await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = admin(&running, "update", json!({"name": "echo_fn", "instance_num": 0})).await;
    assert_eq!(status, 500);
    assert!(body.contains("instance_num must be greater than 0"), "{body}");
    let (status, body) =
        admin(&running, "update", json!({"name": "echo_fn", "instance_num": i64::MAX})).await;
    assert_eq!(status, 500);
    assert!(body.contains("over the cap"), "{body}");

    // Uninstalling by id removes both plugins serving it.
    let (status, _) = admin(&running, "uninstall", json!({"name": "echo"})).await;
    assert_eq!(status, 200);
    let (status, body) = call(&running, "echo", "hi").await;
    assert_eq!(status, 404);
    assert!(body.contains("no wasm function answers to id 'echo'"), "{body}");
    let (status, body) = admin(&running, "uninstall", json!({"name": "echo_fn"})).await;
    assert_eq!(status, 500);
    assert!(body.contains("not installed"), "{body}");

    // Bad input: each a clear error naming the function, never a panic.
    let cases = [
        (json!({"vm_config": {"path": echo}}), "no 'name'"),
        (json!({"name": "twice", "vm_config": {"path": echo}}), ""),
        (json!({"name": "twice", "vm_config": {"path": echo}}), "already installed"),
        (json!({"name": "outside", "vm_config": {"path": "/etc/hostname"}}), "outside the modules directory"),
        (json!({"name": "missing", "vm_config": {"path": dir.path().join("nope.wasm")}}), "missing"),
        (
            json!({"name": "no_id", "vm_config": {"path": dir.path().join("no_id.wasm")}}),
            "exports no proxy_get_id",
        ),
        (json!({"name": "wasmer3", "vm_config": {"engine": "v8", "path": echo}}), "engine 'v8' is unknown"),
        (json!({"name": "plugin", "from_wasm_plugin": "p"}), "from_wasm_plugin"),
        (
            json!({"name": "huge", "instance_num": 1_000_000, "vm_config": {"path": echo}}),
            "over the cap of 256",
        ),
    ];
    std::fs::write(dir.path().join("garbage.wasm"), b"not wasm at all").unwrap();
    let garbage = (
        json!({"name": "garbage", "vm_config": {"path": dir.path().join("garbage.wasm")}}),
        "not a valid WebAssembly module",
    );
    for (body, expected) in cases.into_iter().chain([garbage]) {
        let (status, answer) = admin(&running, "install", body.clone()).await;
        if expected.is_empty() {
            assert_eq!(status, 200, "{body}: {answer}");
            continue;
        }
        assert_eq!(status, 500, "{body}: {answer}");
        let error: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let error = error["error"].as_str().unwrap();
        assert!(error.contains(expected), "{body}: {error}");
    }
    let (status, _) = admin(&running, "reboot", json!({})).await;
    assert_eq!(status, 404);
    let (status, body) = admin(&running, "install", json!("not an object")).await;
    assert_eq!(status, 500, "{body}");
    running.shutdown().await;
}

#[tokio::test]
async fn a_changed_module_file_is_reloaded_while_serving() {
    let dir = build_functions();
    let live = dir.path().join("live.wasm");
    std::fs::copy(dir.path().join("echo.wasm"), &live).unwrap();
    let config = config_with(dir.path(), "reload_poll_ms = 100", &function("echo", &live, 1));
    let running = start(config).await;
    assert_eq!(call(&running, "echo", "x").await, (200, "v1:x".to_owned()));

    // A broken file leaves the old code serving.
    std::fs::write(&live, b"half-written").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(call(&running, "echo", "x").await, (200, "v1:x".to_owned()));

    std::fs::copy(dir.path().join("echo_v2.wasm"), &live).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = call(&running, "echo", "x").await;
        if answer == (200, "v2:x".to_owned()) {
            break;
        }
        assert_eq!(answer, (200, "v1:x".to_owned()));
        assert!(Instant::now() < deadline, "the new code never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.shutdown().await;
}

#[tokio::test]
async fn traps_deadlines_and_memory_overruns_fail_one_call_and_nothing_else() {
    let dir = build_functions();
    let functions = function("faulty", &dir.path().join("faulty.wasm"), 2)
        + &function("echo", &dir.path().join("echo.wasm"), 1);
    let config = config_with(dir.path(), "call_timeout_ms = 2000\nmax_memory_bytes = 4194304", &functions);
    let running = start(config).await;

    let (status, body) = call(&running, "faulty", "trap").await;
    assert_eq!(status, 500);
    assert!(body.contains("'faulty'") && body.contains("trapped") && body.contains("unreachable"), "{body}");

    let (status, body) = call(&running, "faulty", "grow").await;
    assert_eq!(status, 500);
    assert!(body.contains("past its cap of 4194304 bytes"), "{body}");

    // While one call spins, another function answers at once.
    let looping = {
        let url = format!("http://{}/", running.wasm_addr().unwrap());
        tokio::spawn(async move {
            let started = Instant::now();
            let response =
                reqwest::Client::new().post(url).header("id", "faulty").body("loop").send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(call(&running, "echo", "meanwhile").await, (200, "v1:meanwhile".to_owned()));
    assert!(!looping.is_finished(), "echo answered only after the spinning call ended");
    assert!(started.elapsed() < Duration::from_secs(1), "echo waited for the spinning call");
    let (status, body, took) = looping.await.unwrap();
    assert_eq!(status, 500);
    assert!(body.contains("deadline of 2000 ms"), "{body}");
    assert!(took < Duration::from_secs(6), "the deadline stopped the loop late: {took:?}");

    // The failed instances were replaced: the function serves on.
    assert_eq!(call(&running, "faulty", "fine").await, (200, "v1:fine".to_owned()));

    // Other answers: a local response, a paused request, a missing or unknown id.
    assert_eq!(call(&running, "echo", "local").await, (418, "teapot".to_owned()));
    let (status, body) = call(&running, "echo", "pause").await;
    assert_eq!(status, 500);
    assert!(body.contains("stopped the request"), "{body}");
    let response =
        reqwest::Client::new().get(format!("http://{}/", running.wasm_addr().unwrap())).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.text().await.unwrap().contains("'id' header"));
    let (status, body) = call(&running, "nobody", "x").await;
    assert_eq!(status, 404);
    assert!(body.contains("installed ids: echo, faulty"), "{body}");

    // Each outcome is counted.
    let metrics = reqwest::get(format!("http://{}/metrics", running.actuator_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["trap", "memory", "deadline", "ok"] {
        let line = format!("layotto_wasm_calls_total{{id=\"faulty\",outcome=\"{outcome}\"}}");
        assert!(metrics.contains(&line), "{line} missing from /metrics");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn sixty_four_concurrent_calls_get_their_own_answers() {
    let dir = build_functions();
    let config = config_with(dir.path(), "", &function("echo", &dir.path().join("echo.wasm"), 4));
    let running = start(config).await;
    let url = format!("http://{}/", running.wasm_addr().unwrap());
    let client = reqwest::Client::new();
    let calls = (0..64).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let body = format!("call-{i}-{}", "x".repeat(i * 37));
            let response = client.post(url).header("id", "echo").body(body.clone()).send().await.unwrap();
            let function = response.headers().get("x-function").map(|v| v.to_str().unwrap().to_owned());
            (body, response.status().as_u16(), function, response.text().await.unwrap())
        })
    });
    for call in futures::future::join_all(calls).await {
        let (body, status, function, answer) = call.unwrap();
        assert_eq!(status, 200);
        assert_eq!(function.as_deref(), Some("echo"));
        assert_eq!(answer, format!("v1:{body}"));
    }
    // Functions write state through proxy_save_state, read back through the API.
    assert_eq!(call(&running, "echo", "save:counted=64").await, (200, "saved".to_owned()));
    let mut client = RuntimeClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    let got = client
        .get_state(pb::GetStateRequest {
            store_name: "state_demo".into(),
            key: "counted".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.into_inner().data, b"64");
    // … and publish through proxy_publish_event; a topic name the broker refuses fails the call.
    assert_eq!(call(&running, "echo", "publish:orders=1").await, (200, "published".to_owned()));
    let (status, body) = call(&running, "echo", &format!("publish:{}=1", "t".repeat(20_000))).await;
    assert_eq!(status, 500, "{body}");
    running.shutdown().await;
}

#[tokio::test]
async fn a_function_that_does_not_load_stops_startup_naming_it() {
    let dir = build_functions();
    let missing: PathBuf = dir.path().join("absent.wasm");
    let config = config_with(dir.path(), "", &function("broken", &missing, 1));
    let error = layotto_runtime::start(config, Registries::builtin()).await.err().expect("startup fails");
    assert!(error.0.contains("wasm function 'broken'") && error.0.contains("absent.wasm"), "{error}");

    let bad_key = "[wasm.functions.f]\nvm_config = { path = \"x.wasm\", size = 3 }\n";
    let text = format!("[wasm]\n{bad_key}");
    let error = Config::from_text("bad.toml", &text).unwrap_err();
    assert!(error.0.contains("size"), "{error:?}");
}
