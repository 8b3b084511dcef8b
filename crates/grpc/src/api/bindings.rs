//! Output bindings: the operation must be one the binding has.

use std::sync::Arc;

use layotto_bindings::{InputBinding, InvokeRequest, InvokeResponse, OutputBinding};
use layotto_core::{Error, clip};

use super::{ApiResult, Limits, Named};

#[derive(Default)]
pub struct BindingsApi {
    pub components: Named<Arc<dyn OutputBinding>>,
    /// Input bindings: read by the runtime for the app, never called by it.
    pub inputs: Named<Arc<dyn InputBinding>>,
    pub limits: Limits,
}

impl BindingsApi {
    pub async fn invoke(&self, name: &str, req: InvokeRequest) -> ApiResult<InvokeResponse> {
        let binding = self.components.get(name)?;
        let operations = binding.operations();
        if req.operation.is_empty() {
            return Err(Error::invalid_argument(format!(
                "binding '{name}': operation is required; use one of {}",
                operations.join(", ")
            ))
            .into());
        }
        if !operations.contains(&req.operation.as_str()) {
            return Err(Error::invalid_argument(format!(
                "binding '{name}': operation '{}' is not supported; use one of {}",
                clip(&req.operation),
                operations.join(", ")
            ))
            .into());
        }
        Ok(self
            .limits
            .deadline("bindings", name, || format!("binding '{name}'"), binding.invoke(req))
            .await?)
    }
}
