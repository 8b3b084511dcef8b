//! Configuration: our TOML format, Layotto's JSON (see [`crate::layotto_json`]),
//! `LAYOTTO_*` environment overrides, and the embedded defaults used when no
//! file is given. Everything ends up in one [`Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use layotto_core::Metadata;
use serde::{Deserialize, Deserializer, Serialize};

/// The whole runtime configuration. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub app: AppConfig,
    #[serde(default)]
    pub server: ServerConfig,
    /// `SayHello` components by name.
    #[serde(default)]
    pub hellos: BTreeMap<String, ComponentConfig>,
    /// State stores by name.
    #[serde(default)]
    pub state: BTreeMap<String, ComponentConfig>,
    /// Pub/sub brokers by name (Layotto's `pub_subs`).
    #[serde(default)]
    pub pub_subs: BTreeMap<String, ComponentConfig>,
    /// Lock stores by name.
    #[serde(default)]
    pub lock: BTreeMap<String, ComponentConfig>,
    /// Sequencers by name; only these take `bigger_than`.
    #[serde(default)]
    pub sequencer: BTreeMap<String, ComponentConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The app id, used by key prefixes (`keyPrefix = "appid"`).
    #[serde(default)]
    pub id: String,
    /// Where the app's AppCallback server listens; 0 means no callbacks.
    #[serde(default = "default_callback_host")]
    pub callback_host: String,
    #[serde(default)]
    pub callback_port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listen address (Layotto's port 34904).
    #[serde(default = "default_grpc")]
    pub grpc: SocketAddr,
    /// Actuator HTTP listen address (Layotto's port 34999).
    #[serde(default = "default_actuator")]
    pub actuator: SocketAddr,
    /// Largest request accepted, in bytes.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
}

/// One component: its type and its metadata, as in Layotto.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "scalar_map")]
    pub metadata: Metadata,
    /// Sequencers only: ids of each key start above this (Layotto's `biggerThan`).
    #[serde(default, alias = "biggerThan", skip_serializing_if = "BTreeMap::is_empty")]
    pub bigger_than: BTreeMap<String, i64>,
}

// Metadata can hold passwords: Debug shows only the keys.
impl fmt::Debug for ComponentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.metadata.keys().collect();
        keys.sort();
        f.debug_struct("ComponentConfig").field("kind", &self.kind).field("metadata_keys", &keys).finish()
    }
}

impl ComponentConfig {
    pub fn new(kind: impl Into<String>) -> Self {
        Self { kind: kind.into(), metadata: Metadata::new(), bigger_than: BTreeMap::new() }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }
}

fn default_callback_host() -> String {
    "127.0.0.1".to_owned()
}
fn default_grpc() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 34904))
}
fn default_actuator() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 34999))
}
fn default_max_request_bytes() -> usize {
    layotto_grpc::DEFAULT_MAX_REQUEST_BYTES
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc: default_grpc(),
            actuator: default_actuator(),
            max_request_bytes: default_max_request_bytes(),
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self { id: String::new(), callback_host: default_callback_host(), callback_port: 0 }
    }
}

impl Config {
    /// An empty configuration: default addresses, no components.
    pub fn empty() -> Self {
        Self {
            app: AppConfig::default(),
            server: ServerConfig::default(),
            hellos: BTreeMap::new(),
            state: BTreeMap::new(),
            pub_subs: BTreeMap::new(),
            lock: BTreeMap::new(),
            sequencer: BTreeMap::new(),
        }
    }

    /// What runs with no config file: every API on its in-memory component,
    /// under the names of Layotto's quickstart config.
    pub fn embedded_defaults() -> Self {
        let mut config = Self::empty();
        config
            .hellos
            .insert("quick_start_demo".into(), ComponentConfig::new("helloworld").with("hello", "greeting"));
        config.state.insert("state_demo".into(), ComponentConfig::new("in-memory"));
        config.pub_subs.insert("pub_subs_demo".into(), ComponentConfig::new("in-memory"));
        config.lock.insert("lock_demo".into(), ComponentConfig::new("in-memory"));
        config.sequencer.insert("sequencer_demo".into(), ComponentConfig::new("in-memory"));
        config
    }

    /// Loads `path` (TOML, or Layotto JSON), or the embedded defaults when
    /// `path` is `None`, then applies `LAYOTTO_*` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, Env::prefixed("LAYOTTO_"))
    }

    fn load_with_env(path: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let base = match path {
            None => Figment::from(Serialized::defaults(Self::embedded_defaults())),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
                if is_json(path, &text) {
                    let config = crate::layotto_json::parse(&text)
                        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
                    Figment::from(Serialized::defaults(config))
                } else {
                    Figment::from(Toml::string(&text))
                }
            }
        };
        base.merge(env_overrides(env)).extract().map_err(|e| ConfigError(describe(path, e)))
    }
}

fn is_json(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => true,
        Some("toml") => false,
        _ => text.trim_start().starts_with('{'),
    }
}

/// `LAYOTTO_SERVER__GRPC=…` sets `server.grpc`; `__` separates levels.
/// Keys under `metadata` keep their case (`redisHost`); others are lowercased.
fn env_overrides(env: Env) -> Env {
    // `lowercase(false)` goes last: figment's filter and map reset it.
    env.filter(|key| key.as_str().contains("__"))
        .map(|key| {
            let mut in_metadata = false;
            let parts: Vec<String> = key
                .as_str()
                .split("__")
                .map(|part| {
                    if in_metadata {
                        return part.to_owned();
                    }
                    let lower = part.to_lowercase();
                    in_metadata = lower == "metadata";
                    lower
                })
                .collect();
            parts.join(".").into()
        })
        .lowercase(false)
}

fn describe(path: Option<&Path>, err: figment::Error) -> String {
    let source = path.map_or_else(|| "embedded defaults".to_owned(), |p| p.display().to_string());
    let mut messages = Vec::new();
    for e in err {
        let at = if e.path.is_empty() { String::new() } else { format!(" at '{}'", e.path.join(".")) };
        messages.push(format!("{}{at}", e.kind));
    }
    format!("invalid configuration in {source}: {}", messages.join("; "))
}

/// A configuration that cannot be loaded; the message says where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Metadata values may be written as numbers or booleans; components get strings.
fn scalar_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Metadata, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::S(s) => s,
                Scalar::I(i) => i.to_string(),
                Scalar::U(u) => u.to_string(),
                Scalar::F(f) => f.to_string(),
                Scalar::B(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_env() -> Env {
        Env::prefixed("LAYOTTO_UNIT_TEST_NEVER_SET_")
    }

    fn file(ext: &str, text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_without_file() {
        let config = Config::load_with_env(None, no_env()).unwrap();
        assert_eq!(config.server.grpc.port(), 34904);
        assert_eq!(config.server.actuator.port(), 34999);
        assert_eq!(config.state["state_demo"].kind, "in-memory");
        assert_eq!(config.hellos["quick_start_demo"].metadata["hello"], "greeting");
    }

    #[test]
    fn toml_with_metadata_scalars() {
        let f = file(
            ".toml",
            r#"
            [app]
            id = "app1"
            [server]
            grpc = "127.0.0.1:5000"
            [state.cache]
            type = "redis"
            metadata = { redisHost = "127.0.0.1:6379", redisDB = 2, enableTLS = false }
            "#,
        );
        let config = Config::load_with_env(Some(f.path()), no_env()).unwrap();
        assert_eq!(config.app.id, "app1");
        assert_eq!(config.server.grpc.port(), 5000);
        let cache = &config.state["cache"];
        assert_eq!(cache.metadata["redisDB"], "2");
        assert_eq!(cache.metadata["enableTLS"], "false");
        assert!(config.hellos.is_empty());
    }

    #[test]
    fn unknown_keys_are_named() {
        let f = file(".toml", "[server]\ngrpc = \"127.0.0.1:1\"\ngrcp_port = 3\n");
        let err = Config::load_with_env(Some(f.path()), no_env()).unwrap_err().to_string();
        assert!(err.contains("grcp_port"), "{err}");
        let f = file(".toml", "[state.a]\ntype = \"redis\"\nmetdata = {}\n");
        let err = Config::load_with_env(Some(f.path()), no_env()).unwrap_err().to_string();
        assert!(err.contains("metdata") && err.contains("state.a"), "{err}");
        let f = file(".toml", "[pubsub.a]\ntype = \"redis\"\n");
        let err = Config::load_with_env(Some(f.path()), no_env()).unwrap_err().to_string();
        assert!(err.contains("pubsub"), "{err}");
    }

    #[test]
    fn bad_values_and_missing_files() {
        let f = file(".toml", "[server]\ngrpc = \"not an address\"\n");
        let err = Config::load_with_env(Some(f.path()), no_env()).unwrap_err().to_string();
        assert!(err.contains("server.grpc"), "{err}");
        let f = file(".toml", "[state.a]\nmetadata = {}\n");
        let err = Config::load_with_env(Some(f.path()), no_env()).unwrap_err().to_string();
        assert!(err.contains("type") && err.contains("state.a"), "{err}");
        let f = file(".toml", "this is = = not toml");
        assert!(Config::load_with_env(Some(f.path()), no_env()).is_err());
        let err = Config::load_with_env(Some(Path::new("/nonexistent/layotto.toml")), no_env()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/layotto.toml"), "{err}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API, not ours
    fn env_overrides_keep_metadata_case() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LAYOTTO_CFGTEST_SERVER__GRPC", "127.0.0.1:7000");
            jail.set_env("LAYOTTO_CFGTEST_STATE__STATE_DEMO__METADATA__keyPrefix", "appid");
            jail.set_env("LAYOTTO_CFGTEST_APP__ID", "from-env");
            jail.set_env("LAYOTTO_CFGTEST_NO_SEPARATOR", "ignored");
            let config = Config::load_with_env(None, Env::prefixed("LAYOTTO_CFGTEST_")).unwrap();
            assert_eq!(config.server.grpc.port(), 7000);
            assert_eq!(config.app.id, "from-env");
            assert_eq!(config.state["state_demo"].metadata["keyPrefix"], "appid");
            assert_eq!(config.state["state_demo"].kind, "in-memory");
            jail.set_env("LAYOTTO_CFGTEST_SERVR__GRPC", "127.0.0.1:7000");
            let err = Config::load_with_env(None, Env::prefixed("LAYOTTO_CFGTEST_")).unwrap_err().to_string();
            assert!(err.contains("servr"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn debug_hides_metadata_values() {
        let c = ComponentConfig::new("redis").with("redisPassword", "hunter2");
        let shown = format!("{c:?}");
        assert!(shown.contains("redisPassword") && !shown.contains("hunter2"), "{shown}");
    }
}
