//! The one layer stack around every listener. Cross-cutting concerns plug
//! in here, in this order, so every service (Layotto's, its extensions',
//! Dapr's later) and the actuator get them alike:
//! 1. request metrics (every call counted and timed, refused ones too);
//! 2. request size limit (every gRPC method; RESOURCE_EXHAUSTED naming the method and the limit);
//! 3. API token (`dapr-api-token`, when `LAYOTTO_API_TOKEN` or `DAPR_API_TOKEN` is set;
//!    health is exempt);
//! 4. rate limits (`[[rate_limits]]`, Layotto's `flowControlFilter`): RESOURCE_EXHAUSTED / 429;
//! 5. UNIMPLEMENTED naming a Dapr building block this runtime does not have.
//!
//! (A request that does not decode answers INVALID_ARGUMENT in the codec,
//! `layotto_grpc::codec`, where decoding happens.)

use layotto_grpc::dapr::unimplemented::NameUnimplementedLayer;
use std::sync::Arc;

use layotto_grpc::limit::RequestSizeLimitLayer;
use layotto_grpc::metrics::RequestMetricsLayer;
use layotto_grpc::ratelimit::{RateLimitLayer, RateLimits};
use layotto_grpc::token::{ApiToken, ApiTokenLayer};
use tonic::transport::Server;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};

use crate::config::ServerConfig;
use crate::server::StartError;

type GrpcStack = Stack<
    Stack<
        NameUnimplementedLayer,
        Stack<
            RateLimitLayer,
            Stack<ApiTokenLayer, Stack<RequestSizeLimitLayer, Stack<RequestMetricsLayer, Identity>>>,
        >,
    >,
    Identity,
>;

/// The gRPC server with TLS (when configured) and the stack applied;
/// services are added by the caller.
pub fn grpc_server(server: &ServerConfig, limits: Arc<RateLimits>) -> Result<Server<GrpcStack>, StartError> {
    let mut builder = Server::builder().max_concurrent_streams(server.max_concurrent_streams);
    if let Some(tls) = &server.tls {
        builder = builder.tls_config(tls.grpc()?).map_err(|e| StartError(format!("gRPC TLS: {e}")))?;
    }
    let stack = ServiceBuilder::new()
        .layer(RequestMetricsLayer)
        .layer(RequestSizeLimitLayer::new(server.max_request_bytes))
        .layer(ApiTokenLayer::new(server.api_token.clone()))
        .layer(RateLimitLayer::new(limits))
        .layer(NameUnimplementedLayer)
        .into_inner();
    Ok(builder.layer(stack))
}

/// Dapr's HTTP API with metrics, the rate limits and the token check (its
/// health routes exempt, as daprd's).
pub fn dapr_http(router: axum::Router, token: Option<ApiToken>, limits: Arc<RateLimits>) -> axum::Router {
    let router = with_rate_limits(router, limits);
    let router = with_metrics(router, "dapr");
    let Some(token) = token else { return router };
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let allowed =
                request.uri().path().starts_with("/v1.0/healthz") || token.allows(request.headers());
            async move {
                if allowed {
                    next.run(request).await
                } else {
                    use axum::response::IntoResponse;
                    (
                        axum::http::StatusCode::UNAUTHORIZED,
                        axum::Json(serde_json::json!({
                            "errorCode": "ERR_UNAUTHORIZED",
                            "message": "missing or invalid api token: send it in the 'dapr-api-token' header",
                        })),
                    )
                        .into_response()
                }
            }
        },
    ))
}

/// Counts and times every request by the route it matched (never the raw
/// path, so callers cannot grow the label set) and its status.
fn with_metrics(router: axum::Router, service: &'static str) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| async move {
            let route = request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or("unmatched", |p| p.as_str())
                .to_owned();
            let started = std::time::Instant::now();
            let span = if layotto_core::telemetry::enabled() {
                let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
                let name = format!("{} {route}", request.method());
                layotto_core::telemetry::server_span(
                    "http",
                    &name,
                    header("traceparent"),
                    header("tracestate"),
                )
            } else {
                tracing::Span::none()
            };
            let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
            let m = layotto_core::metrics::metrics();
            let status = response.status();
            if !span.is_none() {
                span.record("http.response.status_code", status.as_u16());
                if status.is_server_error() {
                    layotto_core::telemetry::record_error(&span);
                }
            }
            if layotto_core::metrics::recording() {
                m.requests.with_label_values(&["http", service, &route, status.as_str()]).inc();
                m.request_seconds
                    .with_label_values(&["http", service, &route])
                    .observe(started.elapsed().as_secs_f64());
            }
            response
        },
    ))
}

/// The rate limits on HTTP routes: 429 with Dapr's error body.
fn with_rate_limits(router: axum::Router, limits: Arc<RateLimits>) -> axum::Router {
    if limits.is_empty() {
        return router;
    }
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let peer = request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0);
            let refused = limits.check(request.uri().path(), peer).err().map(str::to_owned);
            async move {
                match refused {
                    None => next.run(request).await,
                    Some(message) => {
                        use axum::response::IntoResponse;
                        (
                            axum::http::StatusCode::TOO_MANY_REQUESTS,
                            axum::Json(
                                serde_json::json!({"errorCode": "ERR_TOO_MANY_REQUESTS", "message": message}),
                            ),
                        )
                            .into_response()
                    }
                }
            }
        },
    ))
}

/// The actuator's router with the stack applied.
pub fn http(router: axum::Router) -> axum::Router {
    // The actuator takes no request bodies; axum's own limit bounds them anyway.
    router.layer(ServiceBuilder::new().layer(axum::extract::DefaultBodyLimit::max(64 * 1024)))
}
