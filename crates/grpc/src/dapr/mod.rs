//! Dapr's gRPC API (`dapr.proto.runtime.v1.Dapr`) on the same port as
//! Layotto's: message conversions and Dapr's wording of errors around the
//! shared API layer ([`crate::api`]), so both services call the same code.

mod app_channel;
mod info;
mod service;
pub mod unimplemented;

pub use app_channel::DaprGrpcApp;
pub use info::{DaprInfo, RegisteredComponent, SubscriptionInfo, SubscriptionKind, dapr_type};
pub use service::{DaprService, binding_follow_up};
