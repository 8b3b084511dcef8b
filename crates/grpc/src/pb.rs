//! Generated protobuf and tonic code.

#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used, missing_docs)]
pub mod runtime {
    //! `spec.proto.runtime.v1`: Runtime, AppCallback and Lifecycle.
    tonic::include_proto!("spec.proto.runtime.v1");
}

#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used, missing_docs)]
pub mod email {
    //! `spec.proto.extension.v1.email`: EmailService.
    tonic::include_proto!("spec.proto.extension.v1.email");
}

#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used, missing_docs)]
pub mod delay_queue {
    //! `spec.proto.extension.v1.delay_queue`: DelayQueue.
    tonic::include_proto!("spec.proto.extension.v1.delay_queue");
}

#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used, missing_docs)]
pub mod s3 {
    //! `spec.proto.extension.v1.s3`: ObjectStorageService.
    tonic::include_proto!("spec.proto.extension.v1.s3");
}
