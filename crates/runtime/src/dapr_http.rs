//! Dapr's HTTP API (reference/dapr.md §2) on its own listener: health, the
//! metadata, state, publish, bindings, secrets, configuration, lock and
//! shutdown routes, with Dapr's status codes and `{"errorCode","message"}`
//! bodies. Each route is a conversion around the shared API layer.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use layotto_core::{ErrorKind, Metadata};
use layotto_grpc::api::pubsub::Publish;
use layotto_grpc::api::{ApiError, Apis, Lookup};
use layotto_grpc::dapr::DaprInfo;
use layotto_lock::{LockStatus, TryLockRequest, UnlockRequest};
use layotto_state::{Concurrency, Consistency, DeleteRequest, GetRequest, Operation, SetRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use layotto_actuator::Startup;

pub struct DaprHttp {
    pub apis: Arc<Apis>,
    pub info: Arc<DaprInfo>,
    pub startup: Arc<Startup>,
    /// Largest request body, in bytes (Dapr's `--max-body-size`, 4 MiB).
    pub max_body_bytes: usize,
    /// The app, when it speaks HTTP: configuration changes are POSTed to it.
    pub app: Option<crate::http_app::HttpSubscriber>,
    /// Open configuration subscriptions by id, each stopped by its sender.
    pub config_subscriptions: parking_lot::Mutex<BTreeMap<String, tokio::sync::oneshot::Sender<()>>>,
}

pub fn router(dapr: Arc<DaprHttp>) -> Router {
    let limit = dapr.max_body_bytes;
    Router::new()
        .route("/v1.0/healthz", get(healthz))
        .route("/v1.0/healthz/outbound", get(healthz_outbound))
        .route("/v1.0/metadata", get(metadata))
        .route("/v1.0/metadata/{key}", put(set_metadata))
        .route("/v1.0/shutdown", post(shutdown))
        .route("/v1.0/state/{store}", post(save_state).put(save_state))
        .route("/v1.0/state/{store}/bulk", post(bulk_state).put(bulk_state))
        .route("/v1.0/state/{store}/transaction", post(transaction).put(transaction))
        .route("/v1.0/state/{store}/{key}", get(get_state).delete(delete_state))
        .route("/v1.0/publish/bulk/{pubsub}/{*topic}", post(bulk_publish).put(bulk_publish))
        .route("/v1.0-alpha1/publish/bulk/{pubsub}/{*topic}", post(bulk_publish).put(bulk_publish))
        .route("/v1.0/publish/{pubsub}/{*topic}", post(publish).put(publish))
        .route("/v1.0-alpha1/state/{store}/query", post(query_state).put(query_state))
        .route("/v1.0/bindings/{name}", post(invoke_binding).put(invoke_binding))
        .route("/v1.0/secrets/{store}/bulk", get(bulk_secret))
        .route("/v1.0/secrets/{store}/{key}", get(get_secret))
        .route("/v1.0/configuration/{store}", get(get_configuration))
        .route("/v1.0-alpha1/configuration/{store}", get(get_configuration))
        .route("/v1.0/configuration/{store}/subscribe", get(subscribe_configuration))
        .route("/v1.0-alpha1/configuration/{store}/subscribe", get(subscribe_configuration))
        .route("/v1.0/configuration/{store}/{id}/unsubscribe", get(unsubscribe_configuration))
        .route("/v1.0-alpha1/configuration/{store}/{id}/unsubscribe", get(unsubscribe_configuration))
        .route("/v1.0-alpha1/lock/{store}", post(try_lock))
        .route("/v1.0-alpha1/unlock/{store}", post(unlock))
        .route("/v1.0/invoke/{app}/method/{*method}", any(invoke))
        .fallback(invoke_by_header)
        .with_state(dapr)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
}

/// Dapr's error body.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({"errorCode": code, "message": message.into()}))).into_response()
}

fn malformed(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST", message)
}

/// How one building block words a failed call (Dapr's codes per block).
struct Block {
    not_found: (StatusCode, &'static str),
    not_configured: &'static str,
    failed: &'static str,
    noun: &'static str,
}

const STATE: Block = Block {
    not_found: (StatusCode::BAD_REQUEST, "ERR_STATE_STORE_NOT_FOUND"),
    not_configured: "ERR_STATE_STORE_NOT_CONFIGURED",
    failed: "ERR_STATE_GET",
    noun: "state store",
};

impl Block {
    fn with_failed(&self, failed: &'static str) -> Block {
        Block { failed, ..*self }
    }

    fn answer(&self, e: ApiError) -> Response {
        match e {
            ApiError::Lookup(Lookup::NotConfigured) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                self.not_configured,
                format!("{} is not configured", self.noun),
            ),
            ApiError::Lookup(Lookup::NoName) => malformed(format!("{} name is empty", self.noun)),
            ApiError::Lookup(Lookup::NotFound { name, .. }) => error(
                self.not_found.0,
                self.not_found.1,
                format!("{} {} is not found", self.noun, layotto_core::clip(&name)),
            ),
            ApiError::Call(e) => {
                let message = e.to_string();
                match e.kind() {
                    ErrorKind::EtagMismatch => error(StatusCode::CONFLICT, self.failed, message),
                    ErrorKind::InvalidEtag | ErrorKind::InvalidArgument => {
                        error(StatusCode::BAD_REQUEST, self.failed, message)
                    }
                    ErrorKind::ResourceExhausted => {
                        error(StatusCode::PAYLOAD_TOO_LARGE, self.failed, message)
                    }
                    ErrorKind::Unsupported => {
                        error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_STORE_NOT_SUPPORTED", message)
                    }
                    ErrorKind::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, self.failed, message),
                    ErrorKind::Timeout => error(StatusCode::GATEWAY_TIMEOUT, self.failed, message),
                    _ => error(StatusCode::INTERNAL_SERVER_ERROR, self.failed, message),
                }
            }
        }
    }
}

/// The body as `T`, or why not (answered as ERR_MALFORMED_REQUEST).
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("{what}: the body is not valid JSON for it: {e}"))
}

/// `metadata.<key>` query parameters, as Dapr passes metadata on HTTP.
fn query_metadata(query: &[(String, String)]) -> Metadata {
    query.iter().filter_map(|(k, v)| k.strip_prefix("metadata.").map(|k| (k.to_owned(), v.clone()))).collect()
}

async fn healthz(State(dapr): State<Arc<DaprHttp>>) -> Response {
    if dapr.startup.is_started() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_HEALTH_NOT_READY", "dapr is not ready")
    }
}

/// Ready once components are loaded, never waiting on the app: SDKs poll it
/// before their first call.
async fn healthz_outbound(State(dapr): State<Arc<DaprHttp>>) -> Response {
    if dapr.startup.is_started() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_OUTBOUND_HEALTH_NOT_READY",
            "dapr outbound is not ready",
        )
    }
}

async fn metadata(State(dapr): State<Arc<DaprHttp>>) -> Response {
    let info = &dapr.info;
    let components: Vec<Value> = info
        .components
        .iter()
        .map(
            |c| json!({"name": c.name, "type": c.kind, "version": c.version, "capabilities": c.capabilities}),
        )
        .collect();
    let extended = info.extended.lock().clone();
    let subscriptions: Vec<Value> = info
        .subscriptions
        .lock()
        .iter()
        .map(|s| {
            let kind = match s.kind {
                layotto_grpc::dapr::SubscriptionKind::Declarative => "DECLARATIVE",
                layotto_grpc::dapr::SubscriptionKind::Programmatic => "PROGRAMMATIC",
                layotto_grpc::dapr::SubscriptionKind::Streaming => "STREAMING",
            };
            json!({"pubsubname": s.pubsub_name, "topic": s.topic, "deadLetterTopic": s.dead_letter_topic, "type": kind})
        })
        .collect();
    Json(json!({
        "id": info.app_id,
        "runtimeVersion": info.runtime_version,
        "enabledFeatures": [],
        "actors": [],
        "components": components,
        "extended": extended,
        "subscriptions": subscriptions,
        "httpEndpoints": [],
    }))
    .into_response()
}

async fn set_metadata(State(dapr): State<Arc<DaprHttp>>, Path(key): Path<String>, body: Bytes) -> Response {
    let value = String::from_utf8_lossy(&body).into_owned();
    dapr.info.extended.lock().insert(key, value);
    StatusCode::NO_CONTENT.into_response()
}

async fn shutdown(State(dapr): State<Arc<DaprHttp>>) -> Response {
    dapr.info.shutdown.notify_one();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StateOptions {
    concurrency: String,
    consistency: String,
}

#[derive(Deserialize)]
struct StateItem {
    key: String,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    options: StateOptions,
    #[serde(default)]
    metadata: Metadata,
}

fn concurrency(value: &str) -> Concurrency {
    match value {
        "first-write" => Concurrency::FirstWrite,
        "last-write" => Concurrency::LastWrite,
        _ => Concurrency::Unspecified,
    }
}

fn consistency(value: &str) -> Consistency {
    match value {
        "eventual" => Consistency::Eventual,
        "strong" => Consistency::Strong,
        _ => Consistency::Unspecified,
    }
}

/// Dapr stores the JSON of `value`; a JSON string is stored as its text.
fn value_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

/// What was stored, back as JSON when it is JSON, else as a string.
fn stored_json(data: &[u8]) -> Value {
    serde_json::from_slice(data).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(data).into_owned()))
}

fn set_request(item: StateItem) -> SetRequest {
    SetRequest {
        value: value_bytes(&item.value),
        key: item.key,
        etag: item.etag.filter(|e| !e.is_empty()),
        metadata: item.metadata,
        concurrency: concurrency(&item.options.concurrency),
        consistency: consistency(&item.options.consistency),
    }
}

async fn save_state(State(dapr): State<Arc<DaprHttp>>, Path(store): Path<String>, body: Bytes) -> Response {
    let items: Vec<StateItem> = match json_body(&body, "SaveState") {
        Ok(items) => items,
        Err(message) => return malformed(message),
    };
    if let Some(i) = items.iter().position(|item| item.key.is_empty()) {
        return malformed(format!("state store {store}: item {i} has no key"));
    }
    let sets = items.into_iter().map(set_request).collect();
    match dapr.apis.state.bulk_set(&store, sets).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => STATE.with_failed("ERR_STATE_SAVE").answer(e),
    }
}

async fn get_state(
    State(dapr): State<Arc<DaprHttp>>,
    Path((store, key)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let consistency = consistency(query.iter().find(|(k, _)| k == "consistency").map_or("", |(_, v)| v));
    let req = GetRequest { key, consistency, metadata: query_metadata(&query) };
    match dapr.apis.state.get(&store, req).await {
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Ok(Some(value)) => {
            let mut headers = HeaderMap::new();
            if let Some(etag) = value.etag.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
                headers.insert("etag", etag);
            }
            for (k, v) in &value.metadata {
                if let (Ok(name), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(format!("metadata.{k}").as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    headers.insert(name, v);
                }
            }
            (StatusCode::OK, headers, value.data).into_response()
        }
        Err(e) => STATE.answer(e),
    }
}

async fn delete_state(
    State(dapr): State<Arc<DaprHttp>>,
    Path((store, key)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str());
    let etag = headers.get("if-match").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let req = DeleteRequest {
        key,
        etag,
        metadata: query_metadata(&query),
        concurrency: concurrency(param("concurrency")),
        consistency: consistency(param("consistency")),
    };
    match dapr.apis.state.delete(&store, req).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => STATE.with_failed("ERR_STATE_DELETE").answer(e),
    }
}

#[derive(Deserialize)]
struct BulkGet {
    keys: Vec<String>,
    #[serde(default, rename = "parallelism")]
    _parallelism: Option<u32>,
}

async fn bulk_state(
    State(dapr): State<Arc<DaprHttp>>,
    Path(store): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let req: BulkGet = match json_body(&body, "GetBulkState") {
        Ok(req) => req,
        Err(message) => return malformed(message),
    };
    match dapr.apis.state.bulk_get(&store, req.keys, query_metadata(&query)).await {
        Ok(items) => {
            let items: Vec<Value> = items
                .into_iter()
                .map(|item| {
                    let mut out = json!({"key": item.key});
                    if let Some(value) = item.value {
                        out["data"] = stored_json(&value.data);
                        if let Some(etag) = value.etag {
                            out["etag"] = Value::String(etag);
                        }
                        if !value.metadata.is_empty() {
                            out["metadata"] = json!(value.metadata);
                        }
                    }
                    if let Some(error) = item.error {
                        out["error"] = Value::String(error);
                    }
                    out
                })
                .collect();
            Json(items).into_response()
        }
        Err(e) => STATE.with_failed("ERR_STATE_BULK_GET").answer(e),
    }
}

#[derive(Deserialize)]
struct Transaction {
    operations: Vec<TransactionOperation>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize)]
struct TransactionOperation {
    operation: String,
    request: StateItem,
}

async fn transaction(State(dapr): State<Arc<DaprHttp>>, Path(store): Path<String>, body: Bytes) -> Response {
    let req: Transaction = match json_body(&body, "ExecuteStateTransaction") {
        Ok(req) => req,
        Err(message) => return malformed(message),
    };
    let mut ops = Vec::with_capacity(req.operations.len());
    for op in req.operations {
        match op.operation.as_str() {
            "upsert" => ops.push(Operation::Upsert(set_request(op.request))),
            "delete" => {
                let item = op.request;
                ops.push(Operation::Delete(DeleteRequest {
                    key: item.key,
                    etag: item.etag.filter(|e| !e.is_empty()),
                    metadata: item.metadata,
                    concurrency: concurrency(&item.options.concurrency),
                    consistency: consistency(&item.options.consistency),
                }))
            }
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "ERR_NOT_SUPPORTED_STATE_OPERATION",
                    format!(
                        "state store {store}: operation type '{other}' is not supported (upsert or delete)"
                    ),
                );
            }
        }
    }
    match dapr.apis.state.transact(&store, ops, req.metadata).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => STATE.with_failed("ERR_STATE_TRANSACTION").answer(e),
    }
}

async fn publish(
    State(dapr): State<Arc<DaprHttp>>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let publish = Publish {
        pubsub_name: pubsub,
        topic,
        data: body.to_vec(),
        data_content_type: content_type.to_owned(),
        metadata: query_metadata(&query),
        traceparent,
    };
    let block = Block {
        not_found: (StatusCode::NOT_FOUND, "ERR_PUBSUB_NOT_FOUND"),
        not_configured: "ERR_PUBSUB_NOT_CONFIGURED",
        failed: "ERR_PUBSUB_PUBLISH_MESSAGE",
        noun: "pubsub",
    };
    match dapr.apis.pubsub.publish(publish).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(ApiError::Lookup(Lookup::NotConfigured)) => {
            error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_NOT_CONFIGURED", "no pubsub is configured")
        }
        Err(e) => block.answer(e),
    }
}

#[derive(Deserialize)]
struct BindingRequest {
    #[serde(default)]
    data: Value,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    operation: String,
}

async fn invoke_binding(
    State(dapr): State<Arc<DaprHttp>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let req: BindingRequest = match json_body(&body, "InvokeBinding") {
        Ok(req) => req,
        Err(message) => return malformed(message),
    };
    let data = if req.data.is_null() { Vec::new() } else { value_bytes(&req.data) };
    let invoke = layotto_bindings::InvokeRequest { operation: req.operation, data, metadata: req.metadata };
    let block = Block {
        not_found: (StatusCode::BAD_REQUEST, "ERR_INVOKE_OUTPUT_BINDING"),
        not_configured: "ERR_INVOKE_OUTPUT_BINDING",
        failed: "ERR_INVOKE_OUTPUT_BINDING",
        noun: "binding",
    };
    match dapr.apis.bindings.invoke(&name, invoke).await {
        Ok(response) => {
            let mut headers = HeaderMap::new();
            for (k, v) in &response.metadata {
                if let (Ok(name), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(format!("metadata.{k}").as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    headers.insert(name, v);
                }
            }
            if response.data.is_empty() {
                (StatusCode::NO_CONTENT, headers).into_response()
            } else {
                (StatusCode::OK, headers, response.data).into_response()
            }
        }
        Err(e) => block.answer(e),
    }
}

const SECRETS: Block = Block {
    // Dapr answers 401 for an unknown secret store (sic, reference §2).
    not_found: (StatusCode::UNAUTHORIZED, "ERR_SECRET_STORE_NOT_FOUND"),
    not_configured: "ERR_SECRET_STORES_NOT_CONFIGURED",
    failed: "ERR_SECRET_GET",
    noun: "secret store",
};

async fn get_secret(
    State(dapr): State<Arc<DaprHttp>>,
    Path((store, key)): Path<(String, String)>,
) -> Response {
    match dapr.apis.secrets.get(&store, &key).await {
        Ok(secret) => Json(secret).into_response(),
        Err(e) => SECRETS.answer(e),
    }
}

async fn bulk_secret(State(dapr): State<Arc<DaprHttp>>, Path(store): Path<String>) -> Response {
    match dapr.apis.secrets.bulk_get(&store).await {
        Ok(secrets) => Json(secrets).into_response(),
        Err(e) => SECRETS.answer(e),
    }
}

/// Dapr's words for the configuration routes; `failed` names the operation.
fn configuration_block(failed: &'static str) -> Block {
    Block {
        not_found: (StatusCode::BAD_REQUEST, "ERR_CONFIGURATION_STORE_NOT_FOUND"),
        not_configured: "ERR_CONFIGURATION_STORE_NOT_CONFIGURED",
        failed,
        noun: "configuration store",
    }
}

async fn get_configuration(
    State(dapr): State<Arc<DaprHttp>>,
    Path(store): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let keys: Vec<String> = query.iter().filter(|(k, _)| k == "key").map(|(_, v)| v.clone()).collect();
    let block = configuration_block("ERR_CONFIGURATION_GET");
    let api = &dapr.apis.configuration;
    let items = match api.scope(&store, "", "", "", keys) {
        Ok(scope) => api.get(&store, scope).await,
        Err(e) => Err(e),
    };
    match items {
        Ok(items) if items.is_empty() => StatusCode::NO_CONTENT.into_response(),
        Ok(items) => Json(config_json(items)).into_response(),
        Err(e) => block.answer(e),
    }
}

fn config_json(items: Vec<layotto_configuration::ConfigurationItem>) -> BTreeMap<String, Value> {
    items
        .into_iter()
        .map(|item| {
            let version = item.metadata.get("version").cloned().unwrap_or_default();
            (item.key, json!({"value": item.content, "version": version, "metadata": item.metadata}))
        })
        .collect()
}

/// Dapr's HTTP configuration subscription: answers `{"id"}`; each change is
/// POSTed to the app at `/configuration/{store}/{key}` as
/// `{"id", "items": {key: {value, version, metadata}}}`.
async fn subscribe_configuration(
    State(dapr): State<Arc<DaprHttp>>,
    Path(store): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let keys: Vec<String> = query.iter().filter(|(k, _)| k == "key").map(|(_, v)| v.clone()).collect();
    let block = configuration_block("ERR_CONFIGURATION_SUBSCRIBE");
    let Some(app) = dapr.app.clone() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_CONFIGURATION_SUBSCRIBE",
            "configuration changes go to the app over HTTP: start the runtime with an HTTP app (--app-protocol http and --app-port)",
        );
    };
    let api = &dapr.apis.configuration;
    let subscription = match api.scope(&store, "", "", "", keys) {
        Ok(scope) => api.subscribe(&store, scope).await,
        Err(e) => Err(e),
    };
    let mut subscription = match subscription {
        Ok(subscription) => subscription,
        Err(e) => return block.answer(e),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
    dapr.config_subscriptions.lock().insert(id.clone(), stop_tx);
    let (task_id, task_dapr) = (id.clone(), dapr.clone());
    tokio::spawn(async move {
        loop {
            let items = tokio::select! {
                _ = &mut stop_rx => break,
                items = subscription.changes.recv() => items,
            };
            let Some(items) = items else { break };
            let keys: Vec<String> = items.iter().map(|item| item.key.clone()).collect();
            let body = json!({"id": task_id, "items": config_json(items)});
            for key in keys {
                let path = format!("configuration/{store}/{key}");
                if let Err(e) = app.post_json(&path, &body).await {
                    tracing::warn!(%store, %key, error = %e, "the app did not take the configuration change");
                }
            }
        }
        task_dapr.config_subscriptions.lock().remove(&task_id);
    });
    Json(json!({"id": id})).into_response()
}

async fn unsubscribe_configuration(
    State(dapr): State<Arc<DaprHttp>>,
    Path((_store, id)): Path<(String, String)>,
) -> Response {
    match dapr.config_subscriptions.lock().remove(&id) {
        Some(stop) => {
            let _ = stop.send(());
            Json(json!({"ok": true})).into_response()
        }
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_CONFIGURATION_UNSUBSCRIBE",
            format!("subscription {} is not found", layotto_core::clip(&id)),
        ),
    }
}

const LOCK: Block = Block {
    not_found: (StatusCode::BAD_REQUEST, "ERR_LOCK_STORE_NOT_FOUND"),
    not_configured: "ERR_LOCK_STORE_NOT_CONFIGURED",
    failed: "ERR_TRY_LOCK",
    noun: "lock store",
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockBody {
    #[serde(default)]
    resource_id: String,
    #[serde(default)]
    lock_owner: String,
    #[serde(default)]
    expiry_in_seconds: i64,
}

async fn try_lock(State(dapr): State<Arc<DaprHttp>>, Path(store): Path<String>, body: Bytes) -> Response {
    let req: LockBody = match json_body(&body, "TryLock") {
        Ok(req) => req,
        Err(message) => return malformed(message),
    };
    if req.expiry_in_seconds <= 0 {
        return malformed(format!("lock store {store}: expiryInSeconds must be positive"));
    }
    let try_lock = TryLockRequest {
        resource_id: req.resource_id,
        lock_owner: req.lock_owner,
        expire: std::time::Duration::from_secs(req.expiry_in_seconds.unsigned_abs()),
    };
    match dapr.apis.lock.try_lock(&store, try_lock).await {
        Ok(success) => Json(json!({"success": success})).into_response(),
        Err(ApiError::Call(e)) if e.kind() == ErrorKind::InvalidArgument => malformed(e.to_string()),
        Err(e) => LOCK.answer(e),
    }
}

async fn unlock(State(dapr): State<Arc<DaprHttp>>, Path(store): Path<String>, body: Bytes) -> Response {
    let req: LockBody = match json_body(&body, "Unlock") {
        Ok(req) => req,
        Err(message) => return malformed(message),
    };
    let unlock = UnlockRequest { resource_id: req.resource_id, lock_owner: req.lock_owner };
    match dapr.apis.lock.unlock(&store, unlock).await {
        Ok(status) => {
            let status = match status {
                LockStatus::Success => 0,
                LockStatus::LockUnexist => 1,
                LockStatus::LockBelongToOthers => 2,
            };
            Json(json!({"status": status})).into_response()
        }
        Err(ApiError::Call(e)) if e.kind() == ErrorKind::InvalidArgument => malformed(e.to_string()),
        Err(e) => LOCK.with_failed("ERR_UNLOCK").answer(e),
    }
}

/// `{verb} /v1.0/invoke/{app}/method/{method}`: the target's status,
/// headers and body come back as they are.
async fn invoke(
    State(dapr): State<Arc<DaprHttp>>,
    Path((app, method)): Path<(String, String)>,
    verb: axum::http::Method,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type =
        headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let forwarded = headers
        .iter()
        .filter(|(name, _)| *name != axum::http::header::CONTENT_TYPE)
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let req = layotto_invoke::InvokeRequest {
        method,
        verb: verb.as_str().to_owned(),
        query: query.unwrap_or_default(),
        headers: forwarded,
        content_type,
        body,
        timeout: std::time::Duration::ZERO,
    };
    match dapr.apis.invoke.invoke(&app, req).await {
        Ok(response) => {
            let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut headers = HeaderMap::new();
            for (name, value) in &response.headers {
                if let (Ok(name), Ok(value)) =
                    (axum::http::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
                {
                    headers.append(name, value);
                }
            }
            if let Ok(content_type) = HeaderValue::from_str(&response.content_type) {
                headers.insert(axum::http::header::CONTENT_TYPE, content_type);
            }
            (status, headers, response.body).into_response()
        }
        Err(ApiError::Call(e)) => {
            let status = match e.kind() {
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, "ERR_DIRECT_INVOKE", e.to_string())
        }
        Err(ApiError::Lookup(_)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_DIRECT_INVOKE",
            "service invocation is not configured",
        ),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkEntry {
    entry_id: String,
    event: Value,
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    metadata: Metadata,
}

/// Every entry is published; 204 when all were, else 500 listing the failed ones.
async fn bulk_publish(
    State(dapr): State<Arc<DaprHttp>>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let entries: Vec<BulkEntry> = match json_body(&body, "BulkPublishEvent") {
        Ok(entries) => entries,
        Err(message) => return malformed(message),
    };
    if let Err(e) = dapr.apis.pubsub.component(&pubsub, &topic) {
        return Block {
            not_found: (StatusCode::NOT_FOUND, "ERR_PUBSUB_NOT_FOUND"),
            not_configured: "ERR_PUBSUB_NOT_CONFIGURED",
            failed: "ERR_PUBSUB_PUBLISH_MESSAGE",
            noun: "pubsub",
        }
        .answer(e);
    }
    let common = query_metadata(&query);
    let mut failed = Vec::new();
    for entry in entries {
        let mut metadata = common.clone();
        metadata.extend(entry.metadata);
        let publish = Publish {
            pubsub_name: pubsub.clone(),
            topic: topic.clone(),
            data: value_bytes(&entry.event),
            data_content_type: entry.content_type,
            metadata,
            traceparent: None,
        };
        if let Err(e) = dapr.apis.pubsub.publish(publish).await {
            let error = match e {
                ApiError::Call(e) => e.to_string(),
                ApiError::Lookup(_) => format!("pubsub {pubsub} is not found"),
            };
            failed.push(json!({"entryId": entry.entry_id, "error": error}));
        }
    }
    if failed.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE", "message": "some entries were not published", "failedEntries": failed})),
        )
            .into_response()
    }
}

/// No store of this build can query.
async fn query_state(State(dapr): State<Arc<DaprHttp>>, Path(store): Path<String>) -> Response {
    if let Err(lookup) = dapr.apis.state.components.get(&store) {
        return STATE.answer(ApiError::Lookup(lookup));
    }
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_STATE_STORE_NOT_SUPPORTED",
        format!("state store {store} doesn't support query: no store of this build can query"),
    )
}

/// Dapr's other way to invoke: any path with a `dapr-app-id` header is
/// method `path` of that app.
async fn invoke_by_header(
    state: State<Arc<DaprHttp>>,
    uri: axum::http::Uri,
    verb: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(app) = headers.get("dapr-app-id").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
        return error(StatusCode::NOT_FOUND, "ERR_NOT_FOUND", format!("no route {}", uri.path()));
    };
    let method = uri.path().trim_start_matches('/').to_owned();
    let query = axum::extract::RawQuery(uri.query().map(str::to_owned));
    invoke(state, Path((app, method)), verb, query, headers, body).await
}
