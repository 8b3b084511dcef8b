//! The Hello API (`SayHello`) and its `helloworld` component: the smallest
//! API, used by Layotto's quickstarts and load tests.

use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Result};

#[derive(Debug, Clone, Default)]
pub struct HelloRequest {
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelloResponse {
    pub hello: String,
}

#[async_trait]
pub trait Hello: Send + Sync {
    async fn say_hello(&self, req: HelloRequest) -> Result<HelloResponse>;
}

#[derive(serde::Deserialize)]
struct HelloSettings {
    #[serde(default)]
    hello: Option<String>,
}

/// Answers the configured greeting, followed by `, <name>` when a name is given.
pub struct HelloWorld {
    greeting: String,
}

impl HelloWorld {
    pub const TYPE: &'static str = "helloworld";
    /// Metadata key (or Layotto's `hello` config field) with the greeting.
    pub const GREETING_KEY: &'static str = "hello";

    pub fn new(greeting: impl Into<String>) -> Self {
        Self { greeting: greeting.into() }
    }

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn Hello>> {
        let settings: HelloSettings = ctx.settings()?;
        Ok(Arc::new(Self::new(settings.hello.unwrap_or_else(|| "greeting".to_owned()))))
    }
}

#[async_trait]
impl Hello for HelloWorld {
    async fn say_hello(&self, req: HelloRequest) -> Result<HelloResponse> {
        let greeting = &self.greeting;
        let hello = if req.name.is_empty() { greeting.clone() } else { format!("{greeting}, {}", req.name) };
        Ok(HelloResponse { hello })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn greets_with_and_without_name() {
        let h = HelloWorld::new("greeting");
        let named = h.say_hello(HelloRequest { name: "eva".into() }).await.unwrap();
        assert_eq!(named.hello, "greeting, eva");
        assert_eq!(h.say_hello(HelloRequest::default()).await.unwrap().hello, "greeting");
    }
}
