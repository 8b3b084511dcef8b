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

use crate::apis::{Api, Options, Registries};

/// The whole runtime configuration: `app`, `server`, and one section of
/// named components per API (`[state.<name>]`, `[pub_subs.<name>]`, …; the
/// sections are the APIs' in [`crate::apis`]). Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub app: AppConfig,
    pub server: ServerConfig,
    /// Service invocation's name resolution.
    pub invoke: InvokeConfig,
    /// Components by API section, then by the name clients use.
    #[serde(flatten)]
    pub components: BTreeMap<String, BTreeMap<String, ComponentConfig>>,
    /// What a metadata key no component knows does: an error in our TOML,
    /// a warning in Layotto's JSON (whose shipped files carry such keys).
    #[serde(skip)]
    pub unknown_keys: UnknownKeys,
    /// The config file's directory: relative paths in metadata are relative to it.
    #[serde(skip)]
    pub base_dir: Option<std::path::PathBuf>,
    /// Dapr's declarative subscriptions (`kind: Subscription` resources).
    #[serde(skip)]
    pub subscriptions: Vec<crate::dapr_resources::DeclarativeSubscription>,
    /// Method-level rate limits (`[[rate_limits]]`; Layotto's `flowControlFilter`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimitConfig>,
    /// Traffic dump (`[traffic_dump]`; Layotto's `tcpcopy` filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_dump: Option<crate::dump::DumpConfig>,
    /// OpenTelemetry tracing (`[tracing]`; Layotto's `tracing` block). The
    /// binary installs the exporter; `OTEL_*` variables fill what is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingConfig>,
    /// Prometheus metrics (`[metrics]`; MOSN's `metrics` sinks and `grpc_metric` filter).
    #[serde(default, skip_serializing_if = "MetricsConfig::is_default")]
    pub metrics: MetricsConfig,
    /// WebAssembly functions (`[wasm]`; Layotto's `Layotto` and `wasm_filter` stream filters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<WasmConfig>,
}

/// WebAssembly functions: where they are served, their limits, and the
/// functions loaded at start-up (more can be installed at run time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmConfig {
    /// The functions' HTTP listener; calls name their function in an `id` header (Layotto's 2045).
    #[serde(default = "default_wasm_listen")]
    pub listen: SocketAddr,
    /// `POST /wasm/install|uninstall|update` (Layotto's `wasm_filter`, 34998); off when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<SocketAddr>,
    /// How long one call may run, host calls included.
    #[serde(default = "default_wasm_call_timeout_ms")]
    pub call_timeout_ms: u64,
    /// Linear memory per instance.
    #[serde(default = "default_wasm_max_memory_bytes")]
    pub max_memory_bytes: usize,
    /// Live instances across all functions.
    #[serde(default = "default_wasm_max_instances")]
    pub max_instances: usize,
    /// Files the admin endpoint may install from must be under this
    /// directory (default: the config file's directory, else the working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules_dir: Option<std::path::PathBuf>,
    /// How often function files are checked for changes (hot reload); 0 turns it off.
    #[serde(default = "default_wasm_reload_poll_ms")]
    pub reload_poll_ms: u64,
    /// Functions by plugin name.
    #[serde(default)]
    pub functions: BTreeMap<String, WasmFunctionConfig>,
}

/// One function, with the keys of Layotto's `Layotto` filter entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WasmFunctionConfig {
    /// The plugin name; the key of the entry when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Instances serving at once; 0 or less means one per CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_num: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_config: Option<WasmVmConfig>,
    /// Layotto's reuse of a MOSN wasm plugin; refused with a message here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_wasm_plugin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_context_id: Option<i32>,
    /// Every other key: the plugin configuration (string values), as in Layotto.
    #[serde(flatten)]
    pub plugin_config: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmVmConfig {
    /// `wasmtime`; `wasmer` is accepted and runs on wasmtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    pub path: std::path::PathBuf,
}

fn default_wasm_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 2045))
}
fn default_wasm_call_timeout_ms() -> u64 {
    5_000
}
fn default_wasm_max_memory_bytes() -> usize {
    64 << 20
}
fn default_wasm_max_instances() -> usize {
    256
}
fn default_wasm_reload_poll_ms() -> u64 {
    1_000
}

impl WasmConfig {
    /// Defaults, with no functions.
    pub fn new() -> Self {
        Self {
            listen: default_wasm_listen(),
            admin: None,
            call_timeout_ms: default_wasm_call_timeout_ms(),
            max_memory_bytes: default_wasm_max_memory_bytes(),
            max_instances: default_wasm_max_instances(),
            modules_dir: None,
            reload_poll_ms: default_wasm_reload_poll_ms(),
            functions: BTreeMap::new(),
        }
    }
}

impl Default for WasmConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// What is recorded for `/metrics` and where else it is served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Record request and component metrics (default true); process figures are always served.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A listener of its own for `GET /metrics` besides the actuator (MOSN's Prometheus sink, 34903).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Also record MOSN's `grpc_metric` names (`grpc_request_total{service}`, …), for Layotto's dashboards.
    #[serde(default)]
    pub grpc_metric_names: bool,
}

fn default_true() -> bool {
    true
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true, listen: None, grpc_metric_names: false }
    }
}

impl MetricsConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    #[serde(default)]
    pub enabled: bool,
    /// The OTLP endpoint (`http://collector:4317` for gRPC, `http://collector:4318` for HTTP).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `grpc` (default) or `http/protobuf`.
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub service_name: Option<String>,
    /// The share of traces kept when no caller decided, 0 to 1 (default 1).
    #[serde(default)]
    pub sample_ratio: Option<f64>,
}

/// One method-level rate limit: a token bucket of `rate` calls per second
/// holding `burst` (default: the rate), for all callers or per connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// A full gRPC method (`/spec.proto.runtime.v1.Runtime/SayHello`), a
    /// Dapr HTTP path (`/v1.0/state/mystore`), or either ending in `*`.
    pub method: String,
    pub rate: f64,
    #[serde(default)]
    pub burst: Option<u32>,
    #[serde(default)]
    pub per: RatePer,
    /// The answer's message; Layotto's "current request is limited" by default.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RatePer {
    #[default]
    Global,
    Connection,
}

impl RateLimitConfig {
    pub fn rule(&self) -> layotto_grpc::ratelimit::RateRule {
        layotto_grpc::ratelimit::RateRule {
            method: self.method.clone(),
            rate: self.rate,
            burst: self.burst,
            per_connection: self.per == RatePer::Connection,
            message: self.message.clone(),
        }
    }
}

/// How unknown metadata keys and component options are reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownKeys {
    #[default]
    Deny,
    Warn,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppProtocol {
    #[default]
    Grpc,
    Http,
}

/// Service invocation: how other apps' runtimes are found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeConfig {
    /// `static` (the `peers` map) or `dns` (`dns_template`).
    #[serde(default = "default_resolver")]
    pub resolver: String,
    /// App id → `host:port` of that app's runtime's Dapr HTTP API.
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
    /// `{app}` and `{namespace}` filled in, e.g. `{app}.{namespace}.svc.cluster.local:3500`.
    #[serde(default = "default_dns_template")]
    pub dns_template: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// How long a call may take when the caller sets no deadline.
    #[serde(default = "default_invoke_timeout_seconds")]
    pub timeout_seconds: u64,
}

fn default_resolver() -> String {
    "static".into()
}
fn default_dns_template() -> String {
    "{app}.{namespace}.svc.cluster.local:3500".into()
}
fn default_namespace() -> String {
    std::env::var("NAMESPACE").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into())
}
fn default_invoke_timeout_seconds() -> u64 {
    60
}

impl Default for InvokeConfig {
    fn default() -> Self {
        Self {
            resolver: default_resolver(),
            peers: BTreeMap::new(),
            dns_template: default_dns_template(),
            namespace: default_namespace(),
            timeout_seconds: default_invoke_timeout_seconds(),
        }
    }
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
    /// How the runtime reaches the app on `callback_port`: `grpc` (Layotto's
    /// or Dapr's AppCallback) or `http` (Dapr's HTTP app contract).
    #[serde(default)]
    pub protocol: AppProtocol,
    /// Sent to the app on callbacks as `dapr-api-token` (`APP_API_TOKEN`).
    #[serde(skip)]
    pub api_token: Option<layotto_grpc::token::ApiToken>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listen address (Layotto's port 34904), or `unix:/path/to.sock`.
    #[serde(default = "default_grpc")]
    pub grpc: ListenAddr,
    /// Actuator HTTP listen address (Layotto's port 34999).
    #[serde(default = "default_actuator")]
    pub actuator: SocketAddr,
    /// Largest request accepted, in bytes.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Largest answer of a bulk call (GetBulkState), in bytes.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Longest key (state key, lock resource and owner, sequencer key, topic), in bytes.
    #[serde(default = "default_max_key_bytes")]
    pub max_key_bytes: usize,
    /// Most keys of a bulk call, or operations of a transaction.
    #[serde(default = "default_max_bulk_items")]
    pub max_bulk_items: usize,
    /// Seconds a component may take to answer one call (then DEADLINE_EXCEEDED).
    #[serde(default = "default_call_timeout_seconds")]
    pub call_timeout_seconds: u64,
    /// Concurrent gRPC streams (calls) on one connection.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// gRPC connections open at once; past that the listener waits.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a new gRPC connection may stay silent, and an actuator
    /// request may take to send its head, before the connection is closed.
    #[serde(default = "default_handshake_timeout_seconds")]
    pub handshake_timeout_seconds: u64,
    /// On shutdown, how long in-flight calls may take to finish before their
    /// connections are closed (readiness answers 503 meanwhile).
    #[serde(default = "default_drain_timeout_seconds")]
    pub drain_timeout_seconds: u64,
    /// TLS on the gRPC listener (plaintext when absent).
    #[serde(default)]
    pub tls: Option<crate::tls::TlsConfig>,
    /// TLS on the actuator (plaintext when absent, so probes keep working).
    #[serde(default)]
    pub actuator_tls: Option<crate::tls::TlsConfig>,
    /// Dapr's HTTP API (daprd's port 3500); off when absent. The binary
    /// turns it on at 127.0.0.1:3500 when it runs on embedded defaults.
    #[serde(default)]
    pub dapr_http: Option<SocketAddr>,
    /// Every API call must carry it as `dapr-api-token` (health excepted);
    /// from `LAYOTTO_API_TOKEN` or `DAPR_API_TOKEN`, never from a file.
    #[serde(skip)]
    pub api_token: Option<layotto_grpc::token::ApiToken>,
}

/// One component: its type, its metadata, and options of its API (such as
/// the sequencer's `bigger_than`), as in Layotto.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "scalar_map")]
    pub metadata: Metadata,
    /// Metadata values taken from secret stores before the component starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_ref: Vec<SecretRef>,
    /// The config and secret stores handed to the component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_ref: Option<ComponentRef>,
    /// Keys beside `type` and `metadata`; the API checks them.
    #[serde(flatten)]
    pub options: Options,
}

/// Layotto's `secret_ref`: metadata `inject_as` (or `sub_key`) gets the value
/// `sub_key` (or `key`) of secret `key` in secret store `store_name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub store_name: String,
    pub key: String,
    #[serde(default)]
    pub sub_key: String,
    #[serde(default)]
    pub inject_as: String,
}

/// Layotto's `component_ref`: stores handed to the component by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentRef {
    #[serde(default)]
    pub config_store: Option<String>,
    #[serde(default)]
    pub secret_store: Option<String>,
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
        Self {
            kind: kind.into(),
            metadata: Metadata::new(),
            secret_ref: Vec::new(),
            component_ref: None,
            options: Options::new(),
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets an option of the component's API, e.g. `bigger_than`.
    pub fn option(mut self, key: &str, value: serde_json::Value) -> Self {
        self.options.insert(key.to_owned(), value);
        self
    }
}

fn default_callback_host() -> String {
    "127.0.0.1".to_owned()
}
fn default_grpc() -> ListenAddr {
    ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 34904)))
}

/// Where a listener listens: `host:port`, or a Unix-domain socket written
/// `unix:/path` (Layotto's `"network": "unix"` listeners).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

impl ListenAddr {
    pub fn port(&self) -> Option<u16> {
        match self {
            Self::Tcp(addr) => Some(addr.port()),
            Self::Unix(_) => None,
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(format!("'{s}' names no socket path"));
            }
            return Ok(Self::Unix(path.into()));
        }
        s.parse().map(Self::Tcp).map_err(|_| format!("'{s}' is neither host:port nor unix:/path"))
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}
fn default_actuator() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 34999))
}
fn default_max_request_bytes() -> usize {
    layotto_grpc::DEFAULT_MAX_REQUEST_BYTES
}
fn default_max_response_bytes() -> usize {
    layotto_grpc::api::DEFAULT_MAX_RESPONSE_BYTES
}
fn default_max_key_bytes() -> usize {
    layotto_grpc::api::DEFAULT_MAX_KEY_BYTES
}
fn default_max_bulk_items() -> usize {
    layotto_grpc::api::DEFAULT_MAX_BULK_ITEMS
}
fn default_call_timeout_seconds() -> u64 {
    layotto_grpc::api::DEFAULT_CALL_TIMEOUT.as_secs()
}
fn default_max_concurrent_streams() -> u32 {
    1000
}
fn default_max_connections() -> usize {
    4096
}
fn default_handshake_timeout_seconds() -> u64 {
    10
}
fn default_drain_timeout_seconds() -> u64 {
    10
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc: default_grpc(),
            actuator: default_actuator(),
            max_request_bytes: default_max_request_bytes(),
            max_response_bytes: default_max_response_bytes(),
            max_key_bytes: default_max_key_bytes(),
            max_bulk_items: default_max_bulk_items(),
            call_timeout_seconds: default_call_timeout_seconds(),
            max_concurrent_streams: default_max_concurrent_streams(),
            max_connections: default_max_connections(),
            handshake_timeout_seconds: default_handshake_timeout_seconds(),
            drain_timeout_seconds: default_drain_timeout_seconds(),
            tls: None,
            actuator_tls: None,
            dapr_http: None,
            api_token: None,
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            callback_host: default_callback_host(),
            callback_port: 0,
            protocol: AppProtocol::default(),
            api_token: None,
        }
    }
}

impl Config {
    /// An empty configuration: default addresses, no components.
    pub fn empty() -> Self {
        Self {
            app: AppConfig::default(),
            server: ServerConfig::default(),
            invoke: InvokeConfig::default(),
            components: BTreeMap::new(),
            unknown_keys: UnknownKeys::Deny,
            base_dir: None,
            subscriptions: Vec::new(),
            rate_limits: Vec::new(),
            traffic_dump: None,
            tracing: None,
            metrics: MetricsConfig::default(),
            wasm: None,
        }
    }

    /// Adds the Dapr resources (components, subscriptions) of the YAML files in `dir`.
    pub fn load_dapr_resources(&mut self, dir: &Path) -> Result<(), ConfigError> {
        crate::dapr_resources::load(dir, self, &Registries::builtin())
    }

    /// What runs with no config file: every API on its in-memory component,
    /// under the names of Layotto's quickstart config.
    pub fn embedded_defaults() -> Self {
        let mut config = Self::empty();
        config
            .section_mut("hellos")
            .insert("quick_start_demo".into(), ComponentConfig::new("helloworld").with("hello", "greeting"));
        config.section_mut("state").insert("state_demo".into(), ComponentConfig::new("in-memory"));
        config.section_mut("pub_subs").insert("pub_subs_demo".into(), ComponentConfig::new("in-memory"));
        config.section_mut("lock").insert("lock_demo".into(), ComponentConfig::new("in-memory"));
        config.section_mut("sequencer").insert("sequencer_demo".into(), ComponentConfig::new("in-memory"));
        config.section_mut("config_store").insert("config_demo".into(), ComponentConfig::new("in-memory"));
        config.section_mut("secret_store").insert("secret_demo".into(), ComponentConfig::new("local.env"));
        config.section_mut("email").insert("email_demo".into(), ComponentConfig::new("outbox"));
        let temp = |name: &str| std::env::temp_dir().join(name).display().to_string();
        config
            .section_mut("oss")
            .insert("oss_demo".into(), ComponentConfig::new("local").with("root", &temp("layotto-oss")));
        config
            .section_mut("file")
            .insert("file_demo".into(), ComponentConfig::new("local").with("root", &temp("layotto-files")));
        config
    }

    /// The components of one API section (empty when there are none).
    pub fn section(&self, section: &str) -> impl Iterator<Item = (&String, &ComponentConfig)> {
        self.components.get(section).into_iter().flatten()
    }

    /// The components of one API section, for adding some.
    pub fn section_mut(&mut self, section: &str) -> &mut BTreeMap<String, ComponentConfig> {
        self.components.entry(section.to_owned()).or_default()
    }

    /// Loads `path` (TOML, or Layotto JSON), or the embedded defaults when
    /// `path` is `None`, then applies `LAYOTTO_*` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, Env::prefixed("LAYOTTO_"))
    }

    fn load_with_env(path: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let text = match path {
            None => None,
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?,
            ),
        };
        let file = path.zip(text.as_deref());
        let mut config = Self::parse(file, Some(env))?;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        config.server.api_token = var("LAYOTTO_API_TOKEN")
            .or_else(|| var("DAPR_API_TOKEN"))
            .map(layotto_grpc::token::ApiToken::new);
        config.app.api_token = var("APP_API_TOKEN").map(layotto_grpc::token::ApiToken::new);
        Ok(config)
    }

    /// Parses the text of a config file (`source` names it in errors; a
    /// `.json` name or text starting with `{` is Layotto's JSON, else our
    /// TOML), without environment overrides.
    pub fn from_text(source: &str, text: &str) -> Result<Self, ConfigError> {
        Self::parse(Some((Path::new(source), text)), None)
    }

    fn parse(file: Option<(&Path, &str)>, env: Option<Env>) -> Result<Self, ConfigError> {
        let apis = Registries::builtin();
        let mut unknown_keys = UnknownKeys::Deny;
        let path = file.map(|(path, _)| path);
        let base = match file {
            None => Figment::from(Serialized::defaults(Self::embedded_defaults())),
            Some((path, text)) => {
                if is_json(path, text) {
                    let config = crate::layotto_json::parse(text, &apis)
                        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
                    unknown_keys = UnknownKeys::Warn;
                    Figment::from(Serialized::defaults(config))
                } else {
                    Figment::from(Toml::string(text))
                }
            }
        };
        let source = path.map_or_else(|| "embedded defaults".to_owned(), |p| p.display().to_string());
        let figment = match env {
            Some(env) => base.merge(env_overrides(env)),
            None => base,
        };
        let root: figment::value::Dict =
            figment.extract().map_err(|e| ConfigError(describe(&source, &[], e)))?;
        let mut config = Self::empty();
        config.unknown_keys = unknown_keys;
        config.base_dir = path.and_then(Path::parent).map(Path::to_path_buf);
        for (key, value) in root {
            match key.as_str() {
                "app" => {
                    config.app =
                        value.deserialize().map_err(|e| ConfigError(describe(&source, &["app"], e)))?
                }
                "server" => {
                    config.server =
                        value.deserialize().map_err(|e| ConfigError(describe(&source, &["server"], e)))?
                }
                "invoke" => {
                    config.invoke =
                        value.deserialize().map_err(|e| ConfigError(describe(&source, &["invoke"], e)))?
                }
                "rate_limits" => {
                    config.rate_limits = value
                        .deserialize()
                        .map_err(|e| ConfigError(describe(&source, &["rate_limits"], e)))?
                }
                "tracing" => {
                    config.tracing = Some(
                        value.deserialize().map_err(|e| ConfigError(describe(&source, &["tracing"], e)))?,
                    )
                }
                "metrics" => {
                    config.metrics =
                        value.deserialize().map_err(|e| ConfigError(describe(&source, &["metrics"], e)))?
                }
                "wasm" => {
                    config.wasm =
                        Some(value.deserialize().map_err(|e| ConfigError(describe(&source, &["wasm"], e)))?)
                }
                "traffic_dump" => {
                    config.traffic_dump = Some(
                        value
                            .deserialize()
                            .map_err(|e| ConfigError(describe(&source, &["traffic_dump"], e)))?,
                    )
                }
                section => {
                    let Some(api) = apis.find(section) else {
                        let known: Vec<&str> = [
                            "app",
                            "server",
                            "invoke",
                            "rate_limits",
                            "traffic_dump",
                            "tracing",
                            "metrics",
                            "wasm",
                        ]
                        .into_iter()
                        .chain(apis.apis.iter().map(|api| api.section()))
                        .collect();
                        return Err(ConfigError(format!(
                            "invalid configuration in {source}: unknown section '{section}'; expected one of: {}",
                            known.join(", ")
                        )));
                    };
                    let components: BTreeMap<String, ComponentConfig> =
                        value.deserialize().map_err(|e| ConfigError(describe(&source, &[section], e)))?;
                    for (name, mut component) in components {
                        check_options(api, section, &name, &mut component, unknown_keys)
                            .map_err(|e| ConfigError(format!("invalid configuration in {source}: {e}")))?;
                        config.section_mut(section).insert(name, component);
                    }
                }
            }
        }
        Ok(config)
    }
}

/// Keys beside `type` and `metadata` must be options of the component's API.
fn check_options(
    api: &dyn Api,
    section: &str,
    name: &str,
    component: &mut ComponentConfig,
    unknown_keys: UnknownKeys,
) -> Result<(), String> {
    let known = api.option_keys();
    let unknown: Vec<String> =
        component.options.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
    for key in unknown {
        let takes = ["type", "metadata"].iter().chain(known).copied().collect::<Vec<_>>().join(", ");
        let message =
            format!("unknown key '{key}' at '{section}.{name}'; {section} components take: {takes}");
        match unknown_keys {
            UnknownKeys::Deny => return Err(message),
            UnknownKeys::Warn => {
                tracing::warn!("{message}; ignored");
                component.options.remove(&key);
            }
        }
    }
    Ok(())
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

fn describe(source: &str, within: &[&str], err: figment::Error) -> String {
    let mut messages = Vec::new();
    for e in err {
        let path: Vec<&str> = within.iter().copied().chain(e.path.iter().map(String::as_str)).collect();
        let at = if path.is_empty() { String::new() } else { format!(" at '{}'", path.join(".")) };
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
        assert_eq!(config.server.grpc.port(), Some(34904));
        assert_eq!(config.server.actuator.port(), 34999);
        assert_eq!(config.components["state"]["state_demo"].kind, "in-memory");
        assert_eq!(config.components["hellos"]["quick_start_demo"].metadata["hello"], "greeting");
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
        assert_eq!(config.server.grpc.port(), Some(5000));
        let cache = &config.components["state"]["cache"];
        assert_eq!(cache.metadata["redisDB"], "2");
        assert_eq!(cache.metadata["enableTLS"], "false");
        assert!(config.section("hellos").next().is_none());
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
            assert_eq!(config.server.grpc.port(), Some(7000));
            assert_eq!(config.app.id, "from-env");
            assert_eq!(config.components["state"]["state_demo"].metadata["keyPrefix"], "appid");
            assert_eq!(config.components["state"]["state_demo"].kind, "in-memory");
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
