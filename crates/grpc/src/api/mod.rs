//! The API layer every gRPC service shares, free of protobuf: per API, find
//! the named component, validate the request and call it. A missing
//! component is a [`Lookup`] error, which each service words its own way
//! (Layotto's "state store is not configured", Dapr's later), so Layotto's
//! `Runtime` service, its extensions and Dapr's service stay conversions.

pub mod bindings;
pub mod configuration;
pub mod email;
pub mod hello;
pub mod invoke;
pub mod lock;
pub mod oss;
pub mod pubsub;
pub mod secrets;
pub mod sequencer;
pub mod state;

use std::collections::BTreeMap;

pub use bindings::BindingsApi;
pub use configuration::ConfigurationApi;
pub use email::EmailApi;
pub use hello::HelloApi;
pub use invoke::InvokeApi;
pub use lock::LockApi;
pub use oss::OssApi;
pub use pubsub::PubSubApi;
pub use secrets::SecretsApi;
pub use sequencer::SequencerApi;
pub use state::StateApi;

/// Every API's components, by the names clients use.
#[derive(Default)]
pub struct Apis {
    pub hello: HelloApi,
    pub state: StateApi,
    pub pubsub: PubSubApi,
    pub lock: LockApi,
    pub sequencer: SequencerApi,
    pub configuration: ConfigurationApi,
    pub secrets: SecretsApi,
    pub bindings: BindingsApi,
    pub email: EmailApi,
    /// `oss` components: ObjectStorageService.
    pub oss: OssApi,
    /// `file` components: the File API on Runtime.
    pub files: OssApi,
    /// Service invocation, when the runtime has an invoker.
    pub invoke: InvokeApi,
}

/// Largest answer of a bulk call by default, in bytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Longest key (state key, lock resource and owner, sequencer key, topic) by default, in bytes.
pub const DEFAULT_MAX_KEY_BYTES: usize = 16 * 1024;

/// Most keys of a bulk call, or operations of a transaction, by default.
pub const DEFAULT_MAX_BULK_ITEMS: usize = 10_000;

/// How long a component may take to answer one call, by default.
pub const DEFAULT_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The limits every API applies to its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest answer of a bulk call (GetBulkState), in bytes.
    pub max_response_bytes: usize,
    /// The longest key a component stores, in bytes.
    pub max_key_bytes: usize,
    /// Most keys of a bulk call, or operations of a transaction.
    pub max_bulk_items: usize,
    /// How long a component may take to answer one call.
    pub call_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_bulk_items: DEFAULT_MAX_BULK_ITEMS,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

impl Limits {
    /// More than `max_bulk_items` items in one call is RESOURCE_EXHAUSTED naming the limit.
    /// `component` names the caller's component, built only for an error.
    pub fn check_bulk(
        &self,
        component: impl FnOnce() -> String,
        what: &str,
        count: usize,
    ) -> Result<(), layotto_core::Error> {
        if count > self.max_bulk_items {
            return Err(layotto_core::Error::new(
                layotto_core::ErrorKind::ResourceExhausted,
                format!(
                    "{}: {count} {what} exceed the limit of {} per call (server.max_bulk_items)",
                    component(),
                    self.max_bulk_items
                ),
            ));
        }
        Ok(())
    }

    /// Runs one component call within `call_timeout`; past it the caller gets
    /// DEADLINE_EXCEEDED naming the component, and the call is dropped.
    /// Counted in `layotto_component_calls_total{api, component, outcome}`
    /// with its time in `layotto_component_call_duration_seconds`.
    pub async fn deadline<T>(
        &self,
        api: &'static str,
        name: &str,
        component: impl FnOnce() -> String,
        call: impl Future<Output = layotto_core::Result<T>>,
    ) -> layotto_core::Result<T> {
        let started = std::time::Instant::now();
        let span = layotto_core::telemetry::component_span(api, name);
        let result = match tokio::time::timeout(
            self.call_timeout,
            tracing::Instrument::instrument(call, span.clone()),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(layotto_core::Error::new(
                layotto_core::ErrorKind::Timeout,
                format!(
                    "{}: no answer within {:?} (server.call_timeout_seconds)",
                    component(),
                    self.call_timeout
                ),
            )),
        };
        let outcome = result.as_ref().map(drop).map_err(|e| e.kind());
        if outcome.is_err() {
            layotto_core::telemetry::record_error(&span);
        }
        layotto_core::metrics::metrics().component_call(api, name, outcome, started.elapsed());
        result
    }

    /// A key over `max_key_bytes` is INVALID_ARGUMENT naming the limit: a
    /// backend would otherwise keep it (a 5 MiB sequencer key, for ever).
    pub fn check_key(
        &self,
        component: impl FnOnce() -> String,
        field: &str,
        key: &str,
    ) -> Result<(), layotto_core::Error> {
        if key.len() > self.max_key_bytes {
            return Err(layotto_core::Error::invalid_argument(format!(
                "{}: {field} '{}' is longer than the limit of {} bytes (server.max_key_bytes)",
                component(),
                layotto_core::clip(key),
                self.max_key_bytes
            )));
        }
        Ok(())
    }
}

impl Apis {
    /// Hands each API the limits it applies.
    pub fn apply_limits(&mut self, limits: Limits) {
        self.state.limits = limits;
        self.pubsub.limits = limits;
        self.lock.limits = limits;
        self.sequencer.limits = limits;
        self.configuration.limits = limits;
        self.secrets.limits = limits;
        self.bindings.limits = limits;
        self.email.limits = limits;
        self.oss.limits = limits;
        self.files.limits = limits;
    }
}

/// Why no component answered a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The API has no component at all.
    NotConfigured,
    /// The request names no component.
    NoName,
    /// No component has this name; `known` lists the configured ones.
    NotFound { name: String, known: Vec<String> },
}

/// A call that failed in the API layer or in the component.
#[derive(Debug)]
pub enum ApiError {
    Lookup(Lookup),
    Call(layotto_core::Error),
}

impl From<layotto_core::Error> for ApiError {
    fn from(e: layotto_core::Error) -> Self {
        Self::Call(e)
    }
}

impl From<Lookup> for ApiError {
    fn from(e: Lookup) -> Self {
        Self::Lookup(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The components of one API, by name. A component can be replaced while
/// the runtime serves (Lifecycle's ApplyConfiguration): readers take a
/// snapshot without a lock, a replacement swaps the whole map.
pub struct Named<H> {
    components: arc_swap::ArcSwap<BTreeMap<String, H>>,
}

impl<H> Default for Named<H> {
    fn default() -> Self {
        Self { components: arc_swap::ArcSwap::from_pointee(BTreeMap::new()) }
    }
}

impl<H: Clone> Named<H> {
    /// Adds `component`, or replaces the one of that name.
    pub fn insert(&self, name: String, component: H) {
        self.components.rcu(|current| {
            let mut next = BTreeMap::clone(current);
            next.insert(name.clone(), component.clone());
            next
        });
    }

    pub fn is_empty(&self) -> bool {
        self.components.load().is_empty()
    }

    /// Every component, by name.
    pub fn all(&self) -> Vec<(String, H)> {
        self.components.load().iter().map(|(name, c)| (name.clone(), c.clone())).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.components.load().contains_key(name)
    }

    /// The component called `name`, or why there is none.
    pub fn get(&self, name: &str) -> Result<H, Lookup> {
        let components = self.components.load();
        if components.is_empty() {
            return Err(Lookup::NotConfigured);
        }
        if name.is_empty() {
            return Err(Lookup::NoName);
        }
        components.get(name).cloned().ok_or_else(|| Lookup::NotFound {
            name: name.to_owned(),
            known: components.keys().cloned().collect(),
        })
    }
}
