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

#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used, missing_docs)]
pub mod dapr {
    //! Dapr's `dapr.proto.*` packages, nested as prost refers to them.
    pub mod common {
        pub mod v1 {
            //! `dapr.proto.common.v1`.
            tonic::include_proto!("dapr.proto.common.v1");
        }
    }
    pub mod runtime {
        pub mod v1 {
            //! `dapr.proto.runtime.v1`: Dapr, AppCallback and AppCallbackHealthCheck.
            tonic::include_proto!("dapr.proto.runtime.v1");
        }
    }
}
