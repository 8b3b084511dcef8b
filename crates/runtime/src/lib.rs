//! Assembles the runtime: builds every configured component through the
//! registries, then serves Layotto's gRPC API and the actuator.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = layotto_runtime::Config::embedded_defaults();
//! let running = layotto_runtime::start(config, layotto_runtime::Registries::builtin()).await?;
//! println!("gRPC on {}", running.grpc_addr());
//! running.shutdown().await;
//! # Ok(()) }
//! ```

mod actuator;
pub mod config;
mod health;
pub mod layotto_json;
mod server;

pub use config::{ComponentConfig, Config, ConfigError};
pub use server::{Running, StartError, start};

use layotto_core::Registry;
use layotto_hello::{Hello, HelloWorld};
use layotto_state::StateStore;
use layotto_state::components::memory::MemoryStore;

/// The component types this build can construct, per API.
pub struct Registries {
    pub hellos: Registry<dyn Hello>,
    pub state: Registry<dyn StateStore>,
}

impl Registries {
    /// No component types at all.
    pub fn empty() -> Self {
        Self { hellos: Registry::new("hellos"), state: Registry::new("state") }
    }

    /// The components every build has: the in-memory ones and `helloworld`.
    pub fn builtin() -> Self {
        let mut registries = Self::empty();
        registries.hellos.register(HelloWorld::TYPE, HelloWorld::build);
        registries.state.register(MemoryStore::TYPE, MemoryStore::build);
        registries
    }
}
