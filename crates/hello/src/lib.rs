//! The Hello API (`SayHello`) and its `helloworld` component: the smallest
//! API, used by Layotto's quickstarts and load tests.

use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, ErrorKind, Metadata, Result};
use parking_lot::RwLock;

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

    /// Replaces the component's configuration while it runs (Layotto's
    /// Lifecycle API). Components that cannot do this say so.
    async fn apply_config(&self, _metadata: Metadata) -> Result<()> {
        Err(Error::new(ErrorKind::Unsupported, "this hello component cannot be reconfigured"))
    }
}

#[derive(serde::Deserialize)]
struct HelloSettings {
    #[serde(default)]
    hello: Option<String>,
}

/// Answers the configured greeting, followed by `, <name>` when a name is given.
pub struct HelloWorld {
    greeting: RwLock<String>,
}

impl HelloWorld {
    pub const TYPE: &'static str = "helloworld";
    /// Metadata key (or Layotto's `hello` config field) with the greeting.
    pub const GREETING_KEY: &'static str = "hello";

    pub fn new(greeting: impl Into<String>) -> Self {
        Self { greeting: RwLock::new(greeting.into()) }
    }

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn Hello>> {
        let settings: HelloSettings = ctx.settings()?;
        Ok(Arc::new(Self::new(settings.hello.unwrap_or_else(|| "greeting".to_owned()))))
    }
}

#[async_trait]
impl Hello for HelloWorld {
    async fn say_hello(&self, req: HelloRequest) -> Result<HelloResponse> {
        let greeting = self.greeting.read().clone();
        let hello = if req.name.is_empty() { greeting } else { format!("{greeting}, {}", req.name) };
        Ok(HelloResponse { hello })
    }

    async fn apply_config(&self, metadata: Metadata) -> Result<()> {
        let greeting = metadata.get(Self::GREETING_KEY).ok_or_else(|| {
            Error::invalid_argument(format!("helloworld: metadata '{}' is missing", Self::GREETING_KEY))
        })?;
        *self.greeting.write() = greeting.clone();
        Ok(())
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
        h.apply_config(Metadata::from([("hello".to_owned(), "goodbye".to_owned())])).await.unwrap();
        assert_eq!(h.say_hello(HelloRequest::default()).await.unwrap().hello, "goodbye");
        assert!(h.apply_config(Metadata::new()).await.is_err());
    }
}
