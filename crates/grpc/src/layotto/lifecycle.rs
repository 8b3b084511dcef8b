//! `spec.proto.runtime.v1.Lifecycle`: hot reconfiguration of one component
//! (Layotto §11.4). The runtime rebuilds the component with the new
//! metadata and swaps it in; components of APIs that hold state (state,
//! pub/sub, lock, sequencer) cannot be reconfigured while running.

use std::sync::Arc;

use futures::future::BoxFuture;
use layotto_core::Metadata;
use tonic::{Request, Response, Status};

use crate::pb::runtime as pb;
use crate::pb::runtime::lifecycle_server::Lifecycle;
use crate::status::to_status;

/// Why a component was not reconfigured.
#[derive(Debug)]
pub enum ReconfigureError {
    /// No component of that kind and name.
    NotFound,
    /// The component's API cannot swap components while running.
    NotReconfigurable,
    /// The new configuration did not build.
    Failed(layotto_core::Error),
}

/// Rebuilds a component from new metadata (the runtime implements it).
pub trait Reconfigure: Send + Sync {
    fn apply<'a>(
        &'a self,
        kind: &'a str,
        name: &'a str,
        metadata: Metadata,
    ) -> BoxFuture<'a, Result<(), ReconfigureError>>;
}

#[derive(Clone)]
pub struct LifecycleService {
    reconfigure: Arc<dyn Reconfigure>,
}

impl LifecycleService {
    pub fn new(reconfigure: Arc<dyn Reconfigure>) -> Self {
        Self { reconfigure }
    }
}

#[tonic::async_trait]
impl Lifecycle for LifecycleService {
    async fn apply_configuration(
        &self,
        request: Request<pb::DynamicConfiguration>,
    ) -> Result<Response<pb::ApplyConfigurationResponse>, Status> {
        let config = request.into_inner().component_config.unwrap_or_default();
        for (field, empty) in [
            ("kind", config.kind.is_empty()),
            ("name", config.name.is_empty()),
            ("metadata", config.metadata.is_empty()),
        ] {
            if empty {
                return Err(Status::invalid_argument(format!("field {field} is not configured")));
            }
        }
        let not_found = |why: &str| {
            Status::invalid_argument(format!(
                "component not found. kind: {} , name: {}{why}",
                layotto_core::clip(&config.kind),
                layotto_core::clip(&config.name)
            ))
        };
        match self.reconfigure.apply(&config.kind, &config.name, config.metadata.clone()).await {
            Ok(()) => Ok(Response::new(pb::ApplyConfigurationResponse {})),
            Err(ReconfigureError::NotFound) => Err(not_found("")),
            Err(ReconfigureError::NotReconfigurable) => Err(not_found(&format!(
                " ({} components hold state and cannot be reconfigured while running)",
                layotto_core::clip(&config.kind)
            ))),
            Err(ReconfigureError::Failed(e)) => Err(to_status(e)),
        }
    }
}
