//! The one layer stack around every listener. Cross-cutting concerns plug
//! in here, in this order, so every service (Layotto's, its extensions',
//! Dapr's later) and the actuator get them alike:
//! 1. request size limit (every gRPC method; RESOURCE_EXHAUSTED naming the method and the limit);
//! 2. API token (`dapr-api-token`, when `LAYOTTO_API_TOKEN` or `DAPR_API_TOKEN` is set;
//!    health is exempt);
//! 3. metrics and tracing (later issue);
//! 4. rate limits (later issue).
//!
//! (A request that does not decode answers INVALID_ARGUMENT in the codec,
//! `layotto_grpc::codec`, where decoding happens.)

use layotto_grpc::dapr::unimplemented::NameUnimplementedLayer;
use layotto_grpc::limit::RequestSizeLimitLayer;
use layotto_grpc::token::{ApiToken, ApiTokenLayer};
use tonic::transport::Server;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};

use crate::config::ServerConfig;
use crate::server::StartError;

type GrpcStack = Stack<
    Stack<NameUnimplementedLayer, Stack<ApiTokenLayer, Stack<RequestSizeLimitLayer, Identity>>>,
    Identity,
>;

/// The gRPC server with TLS (when configured) and the stack applied;
/// services are added by the caller.
pub fn grpc_server(server: &ServerConfig) -> Result<Server<GrpcStack>, StartError> {
    let mut builder = Server::builder().max_concurrent_streams(server.max_concurrent_streams);
    if let Some(tls) = &server.tls {
        builder = builder.tls_config(tls.grpc()?).map_err(|e| StartError(format!("gRPC TLS: {e}")))?;
    }
    let stack = ServiceBuilder::new()
        .layer(RequestSizeLimitLayer::new(server.max_request_bytes))
        .layer(ApiTokenLayer::new(server.api_token.clone()))
        .layer(NameUnimplementedLayer)
        .into_inner();
    Ok(builder.layer(stack))
}

/// Dapr's HTTP API with the token check (its health routes exempt, as daprd's).
pub fn dapr_http(router: axum::Router, token: Option<ApiToken>) -> axum::Router {
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

/// The actuator's router with the stack applied.
pub fn http(router: axum::Router) -> axum::Router {
    // The actuator takes no request bodies; axum's own limit bounds them anyway.
    router.layer(ServiceBuilder::new().layer(axum::extract::DefaultBodyLimit::max(64 * 1024)))
}
