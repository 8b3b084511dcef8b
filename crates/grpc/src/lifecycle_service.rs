//! `spec.proto.runtime.v1.Lifecycle`: hot reconfiguration of one component
//! (Layotto §11.4). Today the `hellos` components can be reconfigured.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::Components;
use crate::pb::runtime as pb;
use crate::pb::runtime::lifecycle_server::Lifecycle;
use crate::status::to_status;

#[derive(Clone)]
pub struct LifecycleService {
    components: Arc<Components>,
}

impl LifecycleService {
    pub fn new(components: Arc<Components>) -> Self {
        Self { components }
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
        let component = match config.kind.as_str() {
            "hellos" => self.components.hellos.get(&config.name).ok_or_else(not_found)?,
            _ => return Err(not_found()),
        };
        component.apply_config(config.metadata).await.map_err(to_status)?;
        Ok(Response::new(pb::ApplyConfigurationResponse {}))
    }
}
