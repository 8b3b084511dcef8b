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
use layotto_core::{ComponentContext, Health, KeyPrefix, Registry, Result};
use layotto_grpc::{Apis, PubSubComponent};
use layotto_hello::Hello;
use layotto_lock::{LockStore, PrefixedLock};
use layotto_pubsub::PubSub;
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
    /// Builds one component, wraps it in the API's layer and says where it goes.
    fn build<'a>(&'a self, ctx: ComponentContext, options: &'a Options) -> BoxFuture<'a, Result<Built>>;
}

/// A built component, ready to be installed in the services.
pub struct Built {
    pub install: Box<dyn FnOnce(&mut Apis) + Send>,
    pub probe: ComponentProbe,
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
    pub install: fn(&mut Apis, String, H),
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

    fn build<'a>(&'a self, mut ctx: ComponentContext, options: &'a Options) -> BoxFuture<'a, Result<Built>> {
        Box::pin(async move {
            let map = serde_json::Map::from_iter(options.clone());
            let options: O = serde_json::from_value(serde_json::Value::Object(map))
                .map_err(|e| layotto_core::Error::config(format!("{}: {e}", ctx.describe())))?;
            (self.prepare)(&mut ctx, &options);
            let component = self.registry.build(ctx.clone()).await?;
            let handle = (self.wrap)(component, &ctx, options).await?;
            let probe_handle = handle.clone();
            let health = self.health;
            let probe =
                ComponentProbe::new(self.section, &ctx.name, &ctx.kind, move || health(&probe_handle));
            let install = self.install;
            let name = ctx.name.clone();
            Ok(Built { install: Box::new(move |apis: &mut Apis| install(apis, name, handle)), probe })
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
    pub fn builtin() -> Self {
        Self { apis: vec![hello(), state(), pubsub(), lock(), sequencer()] }
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
        install: |apis, name, hello| apis.hello.components.insert(name, hello),
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
        install: |apis, name, store| apis.state.components.insert(name, store),
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
                Ok(PubSubComponent { component: pubsub, metadata: ctx.metadata.clone() })
            })
        },
        health: |pubsub| {
            let pubsub = pubsub.component.clone();
            Box::pin(async move { pubsub.health().await })
        },
        install: |apis, name, pubsub| apis.pubsub.components.insert(name, pubsub),
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
        install: |apis, name, lock| apis.lock.components.insert(name, lock),
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
        install: |apis, name, sequencer| apis.sequencer.components.insert(name, sequencer),
        options: PhantomData,
    })
}
