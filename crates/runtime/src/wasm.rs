//! WebAssembly functions in the runtime: `[wasm]` (or Layotto's `Layotto`
//! and `wasm_filter` filters) to [`layotto_wasm::Functions`], the runtime's
//! APIs as their host, the functions' HTTP listener (routed by the `id`
//! header), the admin endpoints and the hot-reload poll.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use layotto_core::{Error, ErrorKind};
use layotto_grpc::Apis;
use layotto_grpc::api::ApiError;
use layotto_wasm::{FunctionSpec, Functions, HttpCall, Limits};

use crate::config::{Config, UnknownKeys, WasmConfig, WasmFunctionConfig};

/// The runtime's APIs as functions see them.
struct RuntimeHost {
    apis: Arc<Apis>,
}

fn api_error(api: &str, name: &str, e: ApiError) -> Error {
    match e {
        ApiError::Call(e) => e,
        ApiError::Lookup(lookup) => {
            Error::new(ErrorKind::NotFound, format!("{api} '{name}' is not configured ({lookup:?})"))
        }
    }
}

#[async_trait]
impl layotto_wasm::Host for RuntimeHost {
    async fn get_state(&self, store: &str, key: &str) -> layotto_core::Result<Option<Vec<u8>>> {
        let got = self.apis.state.get(store, layotto_state::GetRequest::new(key)).await;
        Ok(got.map_err(|e| api_error("state store", store, e))?.map(|v| v.data))
    }

    async fn save_state(&self, store: &str, key: &str, value: Vec<u8>) -> layotto_core::Result<()> {
        let request = layotto_state::SetRequest { key: key.to_owned(), value, ..Default::default() };
        self.apis.state.bulk_set(store, vec![request]).await.map_err(|e| api_error("state store", store, e))
    }

    async fn publish(&self, pubsub: &str, topic: &str, data: Vec<u8>) -> layotto_core::Result<()> {
        let publish = layotto_grpc::api::pubsub::Publish {
            pubsub_name: pubsub.to_owned(),
            topic: topic.to_owned(),
            data,
            data_content_type: "text/plain".into(),
            ..Default::default()
        };
        self.apis.pubsub.publish(publish).await.map_err(|e| api_error("pubsub", pubsub, e))
    }

    async fn invoke(&self, id: &str, method: &str, data: Vec<u8>) -> layotto_core::Result<Vec<u8>> {
        let request = layotto_invoke::InvokeRequest {
            method: method.to_owned(),
            verb: "POST".into(),
            body: data.into(),
            timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let answer = self.apis.invoke.invoke(id, request).await.map_err(|e| api_error("app", id, e))?;
        if answer.status >= 400 {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("app '{id}' answered HTTP {}", answer.status),
            ));
        }
        Ok(answer.body.to_vec())
    }
}

/// Loads the configured functions; fails naming the first that does not load.
pub(crate) async fn start(config: &Config, wasm: &WasmConfig, apis: Arc<Apis>) -> Result<Functions, String> {
    let limits = Limits {
        call_timeout: Duration::from_millis(wasm.call_timeout_ms.max(1)),
        max_memory_bytes: wasm.max_memory_bytes,
        max_instances: wasm.max_instances.max(1),
        ..Limits::default()
    };
    let functions = Functions::new(limits, Arc::new(RuntimeHost { apis })).map_err(|e| e.to_string())?;
    for (key, function) in &wasm.functions {
        let spec = spec(key, function, config.base_dir.as_deref(), config.unknown_keys)?;
        let path = spec.path.display().to_string();
        match functions.install(spec).await {
            Ok(id) => tracing::info!(function = %key, %id, %path, "wasm function ok"),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(functions)
}

/// A function entry as the engine takes it. `base` resolves relative paths
/// that do not exist from the working directory (Layotto resolves from there).
fn spec(
    key: &str,
    function: &WasmFunctionConfig,
    base: Option<&Path>,
    unknown_keys: UnknownKeys,
) -> Result<FunctionSpec, String> {
    let name = function.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| key.to_owned());
    if function.from_wasm_plugin.is_some() {
        return Err(format!(
            "wasm function '{name}': from_wasm_plugin (a MOSN wasm plugin) is not supported; give vm_config.path"
        ));
    }
    let vm = function
        .vm_config
        .as_ref()
        .ok_or_else(|| format!("wasm function '{name}': vm_config.path is missing"))?;
    match vm.engine.as_deref().unwrap_or("wasmtime") {
        "wasmtime" | "" => {}
        "wasmer" => {
            tracing::warn!(function = %name, "vm_config.engine 'wasmer': this runtime runs functions on wasmtime")
        }
        other => {
            return Err(format!(
                "wasm function '{name}': vm_config.engine '{other}' is unknown; use 'wasmtime'"
            ));
        }
    }
    let mut plugin_config = Vec::new();
    for (key, value) in &function.plugin_config {
        match value {
            serde_json::Value::String(text) => plugin_config.push((key.clone(), text.clone())),
            other => {
                let message = format!(
                    "wasm function '{name}': key '{key}' is neither a known key (name, instance_num, vm_config, \
                     root_context_id) nor a string of the plugin configuration (it is {other})"
                );
                match unknown_keys {
                    UnknownKeys::Deny => return Err(message),
                    UnknownKeys::Warn => tracing::warn!("{message}; ignored"),
                }
            }
        }
    }
    Ok(FunctionSpec {
        name,
        instance_num: usize::try_from(function.instance_num.unwrap_or(1)).unwrap_or(0),
        path: resolve(&vm.path, base),
        plugin_config,
        vm_config: Vec::new(),
        root_context_id: function.root_context_id.unwrap_or(1),
    })
}

fn resolve(path: &Path, base: Option<&Path>) -> PathBuf {
    match base {
        Some(base) if path.is_relative() && !path.exists() => base.join(path),
        _ => path.to_owned(),
    }
}

/// Polls the functions' files and reloads what changed, until `stop`.
pub(crate) async fn watch_files(
    functions: Functions,
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => { functions.reload_changed().await; }
            _ = stop.changed() => return,
        }
    }
}

/// The functions' listener: any method and path; the `id` header picks the
/// function, the body (or, with none, the query string) is its input.
pub(crate) fn router(functions: Functions, max_body_bytes: usize) -> axum::Router {
    axum::Router::new()
        .fallback(move |request: Request<Body>| call(functions.clone(), max_body_bytes, request))
}

async fn call(functions: Functions, max_body_bytes: usize, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let Some(id) = parts.headers.get("id").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
        return (StatusCode::BAD_REQUEST, "a function call needs an 'id' header naming the function\n")
            .into_response();
    };
    let body = match axum::body::to_bytes(body, max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            let message = format!("function '{id}': the body is over the limit of {max_body_bytes} bytes\n");
            return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
        }
    };
    let body = if body.is_empty() {
        parts.uri.query().unwrap_or_default().as_bytes().to_vec()
    } else {
        body.to_vec()
    };
    let mut headers = vec![
        (":method".to_owned(), parts.method.to_string()),
        (":path".to_owned(), parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default()),
    ];
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            headers.push((name.as_str().to_owned(), value.to_owned()));
        }
    }
    match functions.call(&id, HttpCall { headers, body, trailers: Vec::new() }).await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (status, answer.body).into_response();
            for (name, value) in answer.headers {
                if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                    response.headers_mut().append(name, value);
                }
            }
            response
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, format!("{}\n", e.message)).into_response()
        }
    }
}

/// What the admin endpoints need.
#[derive(Clone)]
pub(crate) struct Admin {
    pub functions: Functions,
    /// Installs load files only from under here.
    pub modules_dir: PathBuf,
}

/// `POST /wasm/install|uninstall|update` (reference §7.2): 200 with an
/// empty body, 500 with `{"error": …}`, 404 for another path.
pub(crate) fn admin_router(admin: Admin) -> axum::Router {
    axum::Router::new()
        .route("/wasm/{endpoint}", axum::routing::any(admin_call))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(Arc::new(admin))
}

async fn admin_call(
    State(admin): State<Arc<Admin>>,
    UrlPath(endpoint): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    let result = match endpoint.as_str() {
        "install" => install(&admin, &body).await,
        "uninstall" => {
            named(&body).and_then(|(name, _)| admin.functions.uninstall(&name).map(drop).map_err(|e| e.0))
        }
        "update" => named(&body).and_then(|(name, value)| {
            let instance_num = value.get("instance_num").and_then(serde_json::Value::as_i64).unwrap_or(0);
            let instance_num = usize::try_from(instance_num).unwrap_or(0);
            admin.functions.update(&name, instance_num).map_err(|e| e.0)
        }),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(message) => {
            tracing::warn!(%endpoint, error = %message, "wasm admin call failed");
            let body = serde_json::json!({ "error": message }).to_string();
            (StatusCode::INTERNAL_SERVER_ERROR, [("content-type", "application/json")], body).into_response()
        }
    }
}

/// The body's JSON and its `name`.
fn named(body: &[u8]) -> Result<(String, serde_json::Value), String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not a JSON object: {e}"))?;
    let name = value.get("name").and_then(serde_json::Value::as_str).filter(|n| !n.is_empty());
    let name = name.ok_or("the body has no 'name'")?.to_owned();
    Ok((name, value))
}

async fn install(admin: &Admin, body: &[u8]) -> Result<(), String> {
    let (name, value) = named(body)?;
    let function: WasmFunctionConfig =
        serde_json::from_value(value).map_err(|e| format!("wasm function '{name}': {e}"))?;
    let spec = spec(&name, &function, Some(&admin.modules_dir), UnknownKeys::Warn)?;
    let allowed = admin.modules_dir.canonicalize().map_err(|e| {
        format!(
            "wasm function '{name}': the modules directory {} is unusable: {e}",
            admin.modules_dir.display()
        )
    })?;
    let path = spec
        .path
        .canonicalize()
        .map_err(|e| format!("wasm function '{name}': {}: {e}", spec.path.display()))?;
    if !path.starts_with(&allowed) {
        return Err(format!(
            "wasm function '{name}': {} is outside the modules directory {} (wasm.modules_dir)",
            spec.path.display(),
            allowed.display()
        ));
    }
    let id = admin.functions.install(FunctionSpec { path, ..spec }).await.map_err(|e| e.0)?;
    tracing::info!(function = %name, %id, "wasm function installed through the admin endpoint");
    Ok(())
}
