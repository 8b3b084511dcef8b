//! Layotto's actuator over HTTP: `/actuator/health/{liveness,readiness}`,
//! `/actuator/info` and `/actuator/logger`, with Layotto's JSON shapes
//! (reference §6), and Prometheus' `/metrics`. Unhealthy answers 503, as
//! Layotto's docs and Kubernetes probes expect.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::json;

use crate::health::{self, ComponentProbe, Report, Startup};

pub struct Actuator {
    pub startup: Arc<Startup>,
    pub probes: Arc<Vec<ComponentProbe>>,
}

pub fn router(actuator: Arc<Actuator>) -> Router {
    Router::new()
        .route("/actuator/health/{kind}", any(health))
        .route("/actuator/health", any(overall))
        .route("/actuator/info", any(info))
        .route("/actuator/logger", any(logger))
        .route("/metrics", get(metrics))
        .with_state(actuator)
}

/// `GET /metrics` alone, for a listener of its own (MOSN's Prometheus sink).
pub fn metrics_router() -> Router {
    Router::new().route("/metrics", get(metrics))
}

fn report(report: Report) -> Response {
    let code = if report.is_up() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(report)).into_response()
}

async fn health(State(actuator): State<Arc<Actuator>>, Path(kind): Path<String>) -> Response {
    match kind.as_str() {
        "liveness" => report(health::liveness(&actuator.startup)),
        "readiness" => report(health::readiness(&actuator.startup, &actuator.probes).await),
        // Layotto answers 500 `{}` here; an unknown path is the client's mistake, not ours.
        other => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!(
                "unknown health type '{}': use /actuator/health/liveness or /actuator/health/readiness",
                layotto_core::clip(other)
            )})),
        )
            .into_response(),
    }
}

/// `/actuator/health` alone: readiness, which includes liveness's startup indicator.
async fn overall(State(actuator): State<Arc<Actuator>>) -> Response {
    report(health::readiness(&actuator.startup, &actuator.probes).await)
}

async fn metrics() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        layotto_core::metrics::render(),
    )
        .into_response()
}

/// Layotto's body `{"component": "lock/redis", "level": "debug"}`; `{}` when
/// done, 500 with the reason otherwise (as Layotto).
async fn logger(body: axum::body::Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Change {
        #[serde(default)]
        component: String,
        level: String,
    }
    let change: Change = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": format!("the body must be {{\"component\": …, \"level\": …}}: {e}")})),
            )
                .into_response();
        }
    };
    match layotto_core::log_control::set_level(&change.component, &change.level) {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": e}))).into_response(),
    }
}

/// Names and types only: component metadata can hold secrets.
async fn info(State(actuator): State<Arc<Actuator>>) -> Response {
    let components: Vec<_> =
        actuator.probes.iter().map(|p| json!({"api": p.api, "name": p.name, "type": p.kind})).collect();
    Json(json!({
        "app": {
            "name": "Layotto",
            "version": env!("CARGO_PKG_VERSION"),
            "compiled": crate::COMPILED,
        },
        "components": components,
    }))
    .into_response()
}
