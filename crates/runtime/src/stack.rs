//! The one layer stack around every listener. Cross-cutting concerns plug
//! in here, in this order, so every service (Layotto's, its extensions',
//! Dapr's later) and the actuator get them alike:
//! 1. request size limit (every gRPC method; RESOURCE_EXHAUSTED naming the method and the limit);
//! 2. API token (later issue);
//! 3. metrics and tracing (later issue);
//! 4. rate limits (later issue).
//!
//! (A request that does not decode answers INVALID_ARGUMENT in the codec,
//! `layotto_grpc::codec`, where decoding happens.)

use layotto_grpc::limit::RequestSizeLimitLayer;
use tonic::transport::Server;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};

use crate::config::ServerConfig;
use crate::server::StartError;

type GrpcStack = Stack<RequestSizeLimitLayer, Identity>;

/// The gRPC server with TLS (when configured) and the stack applied;
/// services are added by the caller.
pub fn grpc_server(server: &ServerConfig) -> Result<Server<GrpcStack>, StartError> {
    let mut builder = Server::builder().max_concurrent_streams(server.max_concurrent_streams);
    if let Some(tls) = &server.tls {
        builder = builder.tls_config(tls.grpc()?).map_err(|e| StartError(format!("gRPC TLS: {e}")))?;
    }
    Ok(builder.layer(RequestSizeLimitLayer::new(server.max_request_bytes)))
}

/// The actuator's router with the stack applied.
pub fn http(router: axum::Router) -> axum::Router {
    // The actuator takes no request bodies; axum's own limit bounds them anyway.
    router.layer(ServiceBuilder::new().layer(axum::extract::DefaultBodyLimit::max(64 * 1024)))
}
