//! Generated protobuf and tonic code.

#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used, missing_docs)]
pub mod runtime {
    //! `spec.proto.runtime.v1`: Runtime, AppCallback and Lifecycle.
    tonic::include_proto!("spec.proto.runtime.v1");
}
