//! The Hello API: `SayHello` and hot reconfiguration through Lifecycle.

use std::sync::Arc;

use layotto_core::Metadata;
use layotto_hello::{Hello, HelloRequest, HelloResponse};

use super::{ApiResult, Named};

#[derive(Default)]
pub struct HelloApi {
    pub components: Named<Arc<dyn Hello>>,
}

impl HelloApi {
    pub async fn say_hello(&self, service: &str, req: HelloRequest) -> ApiResult<HelloResponse> {
        Ok(self.components.get(service)?.say_hello(req).await?)
    }

    pub async fn apply_config(&self, name: &str, metadata: Metadata) -> ApiResult<()> {
        Ok(self.components.get(name)?.apply_config(metadata).await?)
    }
}
