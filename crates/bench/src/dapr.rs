//! Dapr's API under load: GetState over Dapr's gRPC service and over its
//! HTTP API, and service invocation through two runtimes against the same
//! HTTP app called directly (an echo server this process can serve).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use layotto_grpc::pb::dapr::common::v1 as common;
use layotto_grpc::pb::dapr::runtime::v1 as pb;
use layotto_grpc::pb::dapr::runtime::v1::dapr_client::DaprClient;
use tonic::transport::Endpoint;

use crate::{Load, Report, SETUP_TIMEOUT, check, drive, key_names};

/// Dapr's GetState of pre-populated keys.
pub async fn grpc_get(target: &str, store: &str, load: &Load) -> Result<Report> {
    check(load)?;
    let endpoint =
        Endpoint::from_shared(target.to_owned())?.tcp_nodelay(true).timeout(Duration::from_secs(10));
    let mut clients = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let channel =
            tokio::time::timeout(SETUP_TIMEOUT, endpoint.connect()).await.context("connect timed out")??;
        clients.push(DaprClient::new(channel));
    }
    let keys = key_names("bench-dapr-", load.keys);
    let payload = vec![b'x'; load.payload];
    for (i, key) in keys.iter().enumerate() {
        let item = common::StateItem { key: key.clone(), value: payload.clone(), ..Default::default() };
        clients[i % clients.len()]
            .clone()
            .save_state(pb::SaveStateRequest { store_name: store.to_owned(), states: vec![item] })
            .await
            .with_context(|| format!("pre-populating {key}"))?;
    }
    let store = Arc::new(store.to_owned());
    drive(load, clients, keys, move |mut client: DaprClient<tonic::transport::Channel>, key: String| {
        let store = store.clone();
        async move {
            let req = pb::GetStateRequest { store_name: (*store).clone(), key, ..Default::default() };
            client.get_state(req).await.map(drop).map_err(|e| e.to_string())
        }
    })
    .await
}

/// GETs of `url` (with a key appended when `state_store` names the store
/// whose keys are populated first through Dapr's HTTP state route).
pub async fn http_get(
    url: &str,
    state_store: Option<&str>,
    headers: &[String],
    load: &Load,
) -> Result<Report> {
    check(load)?;
    let mut default_headers = reqwest::header::HeaderMap::new();
    for header in headers {
        let (name, value) =
            header.split_once(':').with_context(|| format!("header '{header}' is not name: value"))?;
        default_headers.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())?,
            reqwest::header::HeaderValue::from_str(value.trim())?,
        );
    }
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .default_headers(default_headers)
        .build()?;
    let keys = key_names("bench-http-", load.keys);
    if let Some(store) = state_store {
        let value = String::from_utf8(vec![b'x'; load.payload])?;
        let base = url.split("/v1.0/").next().unwrap_or(url);
        let items: Vec<serde_json::Value> =
            keys.iter().map(|k| serde_json::json!({"key": k, "value": value})).collect();
        let saved = client.post(format!("{base}/v1.0/state/{store}")).json(&items).send().await?;
        anyhow::ensure!(saved.status().is_success(), "pre-populating answered {}", saved.status());
    }
    let (url, append_key) = (Arc::new(url.to_owned()), state_store.is_some());
    drive(load, vec![client], keys, move |client: reqwest::Client, key: String| {
        let url = url.clone();
        async move {
            let target = if append_key { format!("{url}{key}") } else { (*url).clone() };
            let response = client.get(target).send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            response.bytes().await.map_err(|e| e.to_string())?;
            if status.is_success() { Ok(()) } else { Err(format!("status {status}")) }
        }
    })
    .await
}

/// An HTTP app that answers every request with a small JSON body.
pub async fn echo_server(addr: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app =
        axum::Router::new().fallback(|| async { ([("content-type", "application/json")], r#"{"ok":true}"#) });
    axum::serve(listener, app).await?;
    Ok(())
}

/// Answers every OTLP/HTTP export with an empty `ExportTraceServiceResponse`
/// (an empty protobuf message), so the exporter counts it as delivered.
pub async fn otlp_sink(addr: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = axum::Router::new().fallback(|| async { ([("content-type", "application/x-protobuf")], "") });
    axum::serve(listener, app).await?;
    Ok(())
}
