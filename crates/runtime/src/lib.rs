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
mod subscriber;

pub use config::{ComponentConfig, Config, ConfigError};
pub use server::{DEFAULT_CONSUMER_ID, Running, StartError, start};

use layotto_core::Registry;
use layotto_hello::{Hello, HelloWorld};
use layotto_lock::LockStore;
use layotto_pubsub::PubSub;
use layotto_sequencer::Sequencer;
use layotto_state::StateStore;

/// The component types this build can construct, per API.
pub struct Registries {
    pub hellos: Registry<dyn Hello>,
    pub state: Registry<dyn StateStore>,
    pub pub_subs: Registry<dyn PubSub>,
    pub lock: Registry<dyn LockStore>,
    pub sequencer: Registry<dyn Sequencer>,
}

impl Registries {
    /// No component types at all.
    pub fn empty() -> Self {
        Self {
            hellos: Registry::new("hellos"),
            state: Registry::new("state"),
            pub_subs: Registry::new("pub_subs"),
            lock: Registry::new("lock"),
            sequencer: Registry::new("sequencer"),
        }
    }

    /// The components every build has: the in-memory ones and `helloworld`,
    /// plus those the API crates were compiled with (their cargo features).
    pub fn builtin() -> Self {
        let mut registries = Self::empty();
        registries.hellos.register(HelloWorld::TYPE, HelloWorld::build);
        registries.state = layotto_state::registry();
        registries.pub_subs = layotto_pubsub::registry();
        registries.lock = layotto_lock::registry();
        registries.sequencer = layotto_sequencer::registry();
        registries
    }
}
