//! The wire side of layotto-rs: protobuf/tonic types generated from
//! `proto/`, and the tonic services that map them onto the API crates.
//!
//! This is the only crate that knows both protobuf and the API traits, and
//! [`status::to_status`] is the one place where error kinds become gRPC codes.

mod lifecycle_service;
pub mod pb;
pub mod pubsub;
mod runtime_service;
pub mod status;

pub use lifecycle_service::LifecycleService;
pub use pubsub::{AppCallback, PubSubComponent};
pub use runtime_service::{Components, RuntimeService};

/// Encoded `FileDescriptorSet` of every proto we serve, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/layotto_descriptor.bin"));

/// Largest request the Runtime service accepts by default (grpc-go's default, as Layotto).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
