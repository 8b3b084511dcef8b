//! `spec.proto.runtime.v1.Lifecycle`: hot reconfiguration of one component
//! (Layotto §11.4). Today the `hellos` components can be reconfigured.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::{ApiError, Apis};
use crate::pb::runtime as pb;
use crate::pb::runtime::lifecycle_server::Lifecycle;
use crate::status::to_status;

#[derive(Clone)]
pub struct LifecycleService {
    apis: Arc<Apis>,
}

impl LifecycleService {
    pub fn new(apis: Arc<Apis>) -> Self {
        Self { apis }
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
        let not_found = || {
            Status::invalid_argument(format!(
                "component not found. kind: {} , name: {}",
                config.kind, config.name
            ))
        };
        let applied = match config.kind.as_str() {
            "hellos" => self.apis.hello.apply_config(&config.name, config.metadata.clone()).await,
            _ => return Err(not_found()),
        };
        match applied {
            Ok(()) => Ok(Response::new(pb::ApplyConfigurationResponse {})),
            Err(ApiError::Lookup(_)) => Err(not_found()),
            Err(ApiError::Call(e)) => Err(to_status(e)),
        }
    }
}
