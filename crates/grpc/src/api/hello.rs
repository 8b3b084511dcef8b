//! The Hello API: `SayHello`.

use std::sync::Arc;

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
}
