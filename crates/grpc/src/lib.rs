//! The wire side of layotto-rs: protobuf/tonic types generated from
//! `proto/` (compiled by protox, so no `protoc` is needed), the shared API
//! layer ([`api`]) and the services that convert messages around it
//! ([`layotto`]; Dapr's later), the request size limit ([`limit`]), and the
//! AppCallback client ([`pubsub`]).
//!
//! This is the only crate that knows both protobuf and the API traits, and
//! [`status::to_status`] is the one place where error kinds become gRPC codes.

pub mod api;
pub mod codec;
pub mod dapr;
pub mod layotto;
pub mod limit;
pub mod metrics;
pub mod pb;
pub mod pubsub;
pub mod ratelimit;
pub mod status;
pub mod token;

pub use api::Apis;
pub use layotto::{
    DelayQueueService, EmailServiceImpl, LifecycleService, ObjectStorage, Reconfigure, ReconfigureError,
    RuntimeService,
};
pub use pubsub::{AppCallback, PubSubComponent};

/// Encoded `FileDescriptorSet` of every proto we serve, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/layotto_descriptor.bin"));

/// Largest request the gRPC services accept by default (grpc-go's default, as Layotto).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Resolves once `closing` turns true (the runtime shuts down) or its sender is gone.
pub(crate) async fn closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}
