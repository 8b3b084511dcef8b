//! The one list of APIs the runtime serves. Each API is described once
//! ([`ApiSpec`]): its config section in our TOML and in Layotto's JSON, its
//! registry of component types, its own options beside `type` and
//! `metadata`, the layer it puts around every component (key prefixes,
//! caches), its health probe, and where the built component goes in the
//! gRPC services' [`Apis`]. Startup walks this list; nothing else in the
//! runtime names an API.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;
use layotto_actuator::ComponentProbe;
use layotto_bindings::{InputBinding, OutputBinding};
use layotto_configuration::ConfigStore;
use layotto_core::{ComponentContext, Health, KeyPrefix, Registry, Result};
use layotto_email::EmailSender;
use layotto_grpc::api::Named;
use layotto_grpc::{Apis, PubSubComponent};
use layotto_hello::Hello;
use layotto_lock::{LockStore, PrefixedLock};
use layotto_oss::ObjectStore;
use layotto_pubsub::PubSub;
use layotto_secrets::SecretStore;
use layotto_sequencer::{PrefixedSequencer, Sequencer};
use layotto_state::{PrefixedStore, StateStore};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A component's keys beside `type` and `metadata`, as written in config.
pub type Options = BTreeMap<String, serde_json::Value>;

/// The consumer group of pub/sub components when neither `consumerID` nor an app id is set.
pub const DEFAULT_CONSUMER_ID: &str = "layotto";

/// One API as the runtime sees it; [`ApiSpec`] is the implementation.
pub trait Api: Send + Sync {
    /// The section in our TOML, e.g. `state`.
    fn section(&self) -> &'static str;
    /// The keys of Layotto's `grpc_config` for this API (matched ignoring case).
    fn layotto_keys(&self) -> &'static [&'static str];
    /// Option keys this API takes beside `type` and `metadata`.
    fn option_keys(&self) -> &'static [&'static str];
    /// Checks a component's type without building anything.
    fn check_type(&self, name: &str, kind: &str) -> Result<()>;
    /// Whether Lifecycle's ApplyConfiguration may rebuild its components
    /// while the runtime serves (stateless ones only).
    fn reconfigurable(&self) -> bool;
    /// Builds one component, wraps it in the API's layer and says where it goes.
    fn build<'a>(&'a self, ctx: ComponentContext, options: &'a Options) -> BoxFuture<'a, Result<Built>>;
    /// Asks the component called `name` how it is, whichever instance serves now.
    fn probe(&self, apis: Arc<Apis>, name: &str, kind: &str) -> ComponentProbe;
    /// The component called `name`, for `component_ref` (config and secret stores).
    fn component(&self, _apis: &Apis, _name: &str) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        None
    }
}

/// A built component, ready to be installed in the services (replacing
/// one of the same name).
pub struct Built {
    pub install: Box<dyn FnOnce(&Apis) + Send>,
}

type Wrap<C, O, H> = for<'a> fn(Arc<C>, &'a ComponentContext, O) -> BoxFuture<'a, Result<H>>;

/// How one API is configured, built, probed and served.
pub struct ApiSpec<C: ?Sized + 'static, O, H> {
    pub section: &'static str,
    pub layotto_keys: &'static [&'static str],
    /// The keys `O` reads (with aliases).
    pub option_keys: &'static [&'static str],
    pub registry: Registry<C>,
    /// Adjusts the context before the component is built (defaults in metadata).
    pub prepare: fn(&mut ComponentContext, &O),
    pub wrap: Wrap<C, O, H>,
    pub health: fn(&H) -> BoxFuture<'static, Health>,
    /// Where the API's components live in the services.
    pub slot: fn(&Apis) -> &Named<H>,
    pub reconfigurable: bool,
    pub options: PhantomData<fn() -> O>,
}

impl<C, O, H> Api for ApiSpec<C, O, H>
where
    C: ?Sized + Send + Sync + 'static,
    O: DeserializeOwned + Send + 'static,
    H: Clone + Send + Sync + 'static,
{
    fn section(&self) -> &'static str {
        self.section
    }

    fn layotto_keys(&self) -> &'static [&'static str] {
        self.layotto_keys
    }

    fn option_keys(&self) -> &'static [&'static str] {
        self.option_keys
    }

    fn check_type(&self, name: &str, kind: &str) -> Result<()> {
        self.registry.check(name, kind)
    }

    fn reconfigurable(&self) -> bool {
        self.reconfigurable
    }

    fn probe(&self, apis: Arc<Apis>, name: &str, kind: &str) -> ComponentProbe {
        let (slot, health, owned) = (self.slot, self.health, name.to_owned());
        ComponentProbe::new(self.section, name, kind, move || match slot(&apis).get(&owned) {
            Ok(component) => health(&component),
            Err(_) => Box::pin(async { Health::down("the component is not installed") }),
        })
    }

    fn build<'a>(&'a self, mut ctx: ComponentContext, options: &'a Options) -> BoxFuture<'a, Result<Built>> {
        Box::pin(async move {
            let map = serde_json::Map::from_iter(options.clone());
            let options: O = serde_json::from_value(serde_json::Value::Object(map))
                .map_err(|e| layotto_core::Error::config(format!("{}: {e}", ctx.describe())))?;
            (self.prepare)(&mut ctx, &options);
            let component = self.registry.build(ctx.clone()).await?;
            let handle = (self.wrap)(component, &ctx, options).await?;
            let slot = self.slot;
            let name = ctx.name.clone();
            Ok(Built { install: Box::new(move |apis: &Apis| slot(apis).insert(name, handle)) })
        })
    }
}

/// The API list of a build: every API, with the component types its crates
/// were compiled with (their cargo features).
pub struct Registries {
    pub apis: Vec<Box<dyn Api>>,
}

impl Registries {
    /// Every API with the components this build has.
    /// Secret stores come first and config stores second, so the components
    /// after them can refer to them (`secret_ref`, `component_ref`).
    pub fn builtin() -> Self {
        Self {
            apis: vec![
                secret_store(),
                config_store(),
                hello(),
                state(),
                pubsub(),
                lock(),
                sequencer(),
                bindings(),
                input_bindings(),
                email(),
                oss(),
                file(),
            ],
        }
    }

    pub fn find(&self, section: &str) -> Option<&dyn Api> {
        self.apis.iter().find(|api| api.section() == section).map(|api| &**api)
    }
}

/// Options of APIs that take none.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOptions {}

fn no_prepare<O>(_: &mut ComponentContext, _: &O) {}

fn hello() -> Box<dyn Api> {
    #[derive(Deserialize)]
    struct HelloOptions {
        /// Layotto's JSON has the greeting beside `type`.
        hello: Option<String>,
    }
    let mut registry: Registry<dyn Hello> = Registry::new("hellos");
    registry.register(layotto_hello::HelloWorld::TYPE, layotto_hello::HelloWorld::build);
    Box::new(ApiSpec::<dyn Hello, HelloOptions, Arc<dyn Hello>> {
        section: "hellos",
        layotto_keys: &["hellos"],
        option_keys: &["hello"],
        registry,
        prepare: |ctx, options| {
            if let Some(greeting) = &options.hello {
                ctx.metadata.entry("hello".to_owned()).or_insert_with(|| greeting.clone());
            }
        },
        wrap: |hello, _, _| Box::pin(async move { Ok(hello) }),
        health: |_| Box::pin(async { Health::up() }),
        slot: |apis| &apis.hello.components,
        reconfigurable: true,
        options: PhantomData,
    })
}

fn state() -> Box<dyn Api> {
    Box::new(ApiSpec::<dyn StateStore, NoOptions, Arc<dyn StateStore>> {
        section: "state",
        layotto_keys: &["state"],
        option_keys: &[],
        registry: layotto_state::registry(),
        prepare: no_prepare,
        wrap: |store, ctx, _| {
            Box::pin(async move {
                let prefix = KeyPrefix::from_context(ctx, KeyPrefix::None)?.resolve(&ctx.app_id, &ctx.name);
                Ok(Arc::new(PrefixedStore::new(&ctx.name, prefix, store)) as Arc<dyn StateStore>)
            })
        },
        health: |store| {
            let store = store.clone();
            Box::pin(async move { store.health().await })
        },
        slot: |apis| &apis.state.components,
        reconfigurable: false,
        options: PhantomData,
    })
}

fn pubsub() -> Box<dyn Api> {
    Box::new(ApiSpec::<dyn PubSub, NoOptions, PubSubComponent> {
        section: "pub_subs",
        layotto_keys: &["pub_subs"],
        option_keys: &[],
        registry: layotto_pubsub::registry(),
        prepare: |ctx, _| {
            // As Layotto: runtimes of one app id share the messages of a topic.
            let app_id = ctx.app_id.clone();
            let consumer = ctx.metadata.entry("consumerID".to_owned()).or_default();
            if consumer.trim().is_empty() {
                *consumer = if app_id.is_empty() { DEFAULT_CONSUMER_ID.to_owned() } else { app_id };
            }
        },
        wrap: |pubsub, ctx, _| {
            Box::pin(async move {
                // The delivery policy is checked now, so a bad value fails startup.
                ctx.settings::<layotto_pubsub::delivery::DeliverySettings>()?;
                Ok(PubSubComponent { component: pubsub, metadata: Arc::new(ctx.metadata.clone()) })
            })
        },
        health: |pubsub| {
            let pubsub = pubsub.component.clone();
            Box::pin(async move { pubsub.health().await })
        },
        slot: |apis| &apis.pubsub.components,
        reconfigurable: false,
        options: PhantomData,
    })
}

fn lock() -> Box<dyn Api> {
    Box::new(ApiSpec::<dyn LockStore, NoOptions, Arc<dyn LockStore>> {
        section: "lock",
        layotto_keys: &["lock"],
        option_keys: &[],
        registry: layotto_lock::registry(),
        prepare: no_prepare,
        wrap: |lock, ctx, _| {
            Box::pin(
                async move { Ok(Arc::new(PrefixedLock::from_context(lock, ctx)?) as Arc<dyn LockStore>) },
            )
        },
        health: |lock| {
            let lock = lock.clone();
            Box::pin(async move { lock.health().await })
        },
        slot: |apis| &apis.lock.components,
        reconfigurable: false,
        options: PhantomData,
    })
}

fn sequencer() -> Box<dyn Api> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SequencerOptions {
        /// Ids of each key start above this (Layotto's `biggerThan`).
        #[serde(default, alias = "biggerThan")]
        bigger_than: BTreeMap<String, i64>,
    }
    Box::new(ApiSpec::<dyn Sequencer, SequencerOptions, Arc<PrefixedSequencer>> {
        section: "sequencer",
        layotto_keys: &["sequencer"],
        option_keys: &["bigger_than", "biggerThan"],
        registry: layotto_sequencer::registry(),
        prepare: no_prepare,
        wrap: |sequencer, ctx, options| {
            Box::pin(async move {
                Ok(Arc::new(PrefixedSequencer::new(sequencer, ctx, &options.bigger_than).await?))
            })
        },
        health: |sequencer| {
            let sequencer = sequencer.clone();
            Box::pin(async move { sequencer.health().await })
        },
        slot: |apis| &apis.sequencer.components,
        reconfigurable: false,
        options: PhantomData,
    })
}

/// For APIs that put no layer around their components.
fn as_is<'a, C: ?Sized + Send + Sync + 'static, O>(
    component: Arc<C>,
    _: &'a ComponentContext,
    _: O,
) -> BoxFuture<'a, Result<Arc<C>>> {
    Box::pin(async move { Ok(component) })
}

fn secret_store() -> Box<dyn Api> {
    Box::new(SecretStoreSpec(ApiSpec::<dyn SecretStore, NoOptions, Arc<dyn SecretStore>> {
        section: "secret_store",
        layotto_keys: &["secret_store", "secretStores"],
        option_keys: &[],
        registry: layotto_secrets::registry(),
        prepare: no_prepare,
        wrap: as_is,
        health: |component| {
            let component = component.clone();
            Box::pin(async move { component.health().await })
        },
        slot: |apis| &apis.secrets.components,
        reconfigurable: true,
        options: PhantomData,
    }))
}

fn config_store() -> Box<dyn Api> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ConfigStoreOptions {
        /// Layotto's `address` list (host:port), beside `type`.
        #[serde(default)]
        address: Option<serde_json::Value>,
        /// Layotto's `timeout`: seconds to connect.
        #[serde(default)]
        timeout: Option<serde_json::Value>,
    }
    Box::new(ConfigStoreSpec(ApiSpec::<dyn ConfigStore, ConfigStoreOptions, Arc<dyn ConfigStore>> {
        section: "config_store",
        layotto_keys: &["config_store"],
        option_keys: &["address", "timeout"],
        registry: layotto_configuration::registry(),
        prepare: |ctx, options| {
            let text = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(";"),
                other => other.to_string(),
            };
            if let Some(address) = &options.address {
                ctx.metadata.entry("endpoints".to_owned()).or_insert_with(|| text(address));
            }
            if let Some(timeout) = &options.timeout {
                ctx.metadata.entry("dialTimeout".to_owned()).or_insert_with(|| text(timeout));
            }
        },
        wrap: as_is,
        health: |component| {
            let component = component.clone();
            Box::pin(async move { component.health().await })
        },
        slot: |apis| &apis.configuration.components,
        reconfigurable: true,
        options: PhantomData,
    }))
}

fn bindings() -> Box<dyn Api> {
    Box::new(ApiSpec::<dyn OutputBinding, NoOptions, Arc<dyn OutputBinding>> {
        section: "bindings",
        layotto_keys: &["bindings"],
        option_keys: &[],
        registry: layotto_bindings::registry(),
        prepare: no_prepare,
        wrap: as_is,
        health: |component| {
            let component = component.clone();
            Box::pin(async move { component.health().await })
        },
        slot: |apis| &apis.bindings.components,
        reconfigurable: true,
        options: PhantomData,
    })
}

/// Input bindings (Dapr's `bindings.cron`, …): started once the app is
/// known, each event handed to it.
fn input_bindings() -> Box<dyn Api> {
    Box::new(ApiSpec::<dyn InputBinding, NoOptions, Arc<dyn InputBinding>> {
        section: "input_bindings",
        layotto_keys: &["input_bindings"],
        option_keys: &[],
        registry: layotto_bindings::input_registry(),
        prepare: no_prepare,
        wrap: as_is,
        health: |component| {
            let component = component.clone();
            Box::pin(async move { component.health().await })
        },
        slot: |apis| &apis.bindings.inputs,
        // A rebuilt input binding would need its reader restarted.
        reconfigurable: false,
        options: PhantomData,
    })
}

fn email() -> Box<dyn Api> {
    Box::new(ApiSpec::<dyn EmailSender, NoOptions, Arc<dyn EmailSender>> {
        section: "email",
        layotto_keys: &["email"],
        option_keys: &[],
        registry: layotto_email::registry(),
        prepare: no_prepare,
        wrap: as_is,
        health: |component| {
            let component = component.clone();
            Box::pin(async move { component.health().await })
        },
        slot: |apis| &apis.email.components,
        reconfigurable: true,
        options: PhantomData,
    })
}

fn object_store(
    section: &'static str,
    layotto_keys: &'static [&'static str],
    slot: fn(&Apis) -> &Named<Arc<dyn ObjectStore>>,
) -> Box<dyn Api> {
    Box::new(ApiSpec::<dyn ObjectStore, NoOptions, Arc<dyn ObjectStore>> {
        section,
        layotto_keys,
        option_keys: &[],
        registry: layotto_oss::registry(section),
        prepare: no_prepare,
        wrap: as_is,
        health: |component| {
            let component = component.clone();
            Box::pin(async move { component.health().await })
        },
        slot,
        reconfigurable: true,
        options: PhantomData,
    })
}

/// ObjectStorageService's stores.
fn oss() -> Box<dyn Api> {
    object_store("oss", &["oss"], |apis| &apis.oss.components)
}

/// The File API's stores: the same components, configured apart, as in Layotto.
fn file() -> Box<dyn Api> {
    object_store("file", &["file", "files"], |apis| &apis.files.components)
}

/// An API whose components others can be handed by `component_ref`.
macro_rules! referable {
    ($name:ident, $trait:path, $slot:ident) => {
        struct $name<O>(ApiSpec<dyn $trait, O, Arc<dyn $trait>>);

        impl<O: DeserializeOwned + Send + 'static> Api for $name<O> {
            fn section(&self) -> &'static str {
                self.0.section()
            }
            fn layotto_keys(&self) -> &'static [&'static str] {
                self.0.layotto_keys()
            }
            fn option_keys(&self) -> &'static [&'static str] {
                self.0.option_keys()
            }
            fn check_type(&self, name: &str, kind: &str) -> Result<()> {
                self.0.check_type(name, kind)
            }
            fn reconfigurable(&self) -> bool {
                self.0.reconfigurable()
            }
            fn build<'a>(
                &'a self,
                ctx: ComponentContext,
                options: &'a Options,
            ) -> BoxFuture<'a, Result<Built>> {
                self.0.build(ctx, options)
            }
            fn probe(&self, apis: Arc<Apis>, name: &str, kind: &str) -> ComponentProbe {
                self.0.probe(apis, name, kind)
            }
            fn component(&self, apis: &Apis, name: &str) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
                let component = apis.$slot.components.get(name).ok()?;
                Some(Arc::new(component))
            }
        }
    };
}

referable!(SecretStoreSpec, SecretStore, secrets);
referable!(ConfigStoreSpec, ConfigStore, configuration);
