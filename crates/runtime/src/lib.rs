//! Assembles the runtime: walks the API list ([`apis`]), building every
//! configured component through its API's registry, then serves the gRPC
//! services and the actuator behind one layer stack.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = layotto_runtime::Config::embedded_defaults();
//! let running = layotto_runtime::start(config, layotto_runtime::Registries::builtin()).await?;
//! println!("gRPC on {}", running.grpc_addr());
//! running.shutdown().await;
//! # Ok(()) }
//! ```

pub mod apis;
pub mod config;
mod dapr_http;
pub mod dapr_resources;
pub mod dump;
mod http_app;
mod input_bindings;
pub mod layotto_json;
mod listen;
mod server;
mod services;
mod stack;
mod subscriber;
pub mod tls;
#[cfg(feature = "wasm")]
mod wasm;

pub use apis::{Api, ApiSpec, DEFAULT_CONSUMER_ID, Registries};
pub use config::{ComponentConfig, Config, ConfigError, ListenAddr, UnknownKeys};
pub use server::{Running, StartError, start};
