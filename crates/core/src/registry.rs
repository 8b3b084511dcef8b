use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use serde::de::DeserializeOwned;

use crate::settings::{self, KeyTracker};
use crate::{Error, Metadata, Result};

/// Everything a component constructor gets from configuration.
#[derive(Clone, Default)]
pub struct ComponentContext {
    /// The API section, e.g. `state`; used in messages.
    pub api: String,
    /// The name clients use (`store_name`).
    pub name: String,
    /// The component type, e.g. `redis`.
    pub kind: String,
    pub metadata: Metadata,
    pub app_id: String,
    /// The metadata keys that settings structs have read, for reporting the rest.
    pub keys: KeyTracker,
    /// The directory of the config file: relative paths in metadata are relative to it.
    pub base_dir: Option<std::path::PathBuf>,
    /// Components this one was handed by `component_ref`, by role
    /// (`config_store`, `secret_store`): the name and the component.
    pub refs: BTreeMap<&'static str, (String, Arc<dyn std::any::Any + Send + Sync>)>,
}

// Metadata can hold passwords: Debug shows only its keys.
impl fmt::Debug for ComponentContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.metadata.keys().collect();
        keys.sort();
        f.debug_struct("ComponentContext")
            .field("api", &self.api)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("metadata_keys", &keys)
            .field("app_id", &self.app_id)
            .field("refs", &self.refs.iter().map(|(role, (name, _))| (role, name)).collect::<Vec<_>>())
            .finish()
    }
}

impl ComponentContext {
    /// "state component 'cache' (redis)": how messages name a component.
    pub fn describe(&self) -> String {
        format!("{} component '{}' ({})", self.api, self.name, self.kind)
    }

    /// `path` as the component should open it: relative to the config file's directory.
    pub fn path(&self, path: &std::path::Path) -> std::path::PathBuf {
        match &self.base_dir {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_owned(),
        }
    }

    /// The component handed to this one as `role` by `component_ref`, if it is a `T`.
    pub fn component_ref<T: Clone + Send + Sync + 'static>(&self, role: &str) -> Option<(String, T)> {
        let (name, component) = self.refs.get(role)?;
        component.downcast_ref::<T>().map(|c| (name.clone(), c.clone()))
    }

    /// Reads the settings struct `T` from the metadata (see [`settings`]),
    /// recording which keys it knows.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T> {
        let parsed = settings::parse_tracked::<T>(&self.describe(), &self.metadata)?;
        self.keys.record(&self.metadata, &parsed);
        Ok(parsed.value)
    }
}

/// Builds one component instance; async because most connect to a backend.
pub type Factory<T> = Arc<dyn Fn(ComponentContext) -> BoxFuture<'static, Result<Arc<T>>> + Send + Sync>;

/// The component types one API can build, keyed by type string.
pub struct Registry<T: ?Sized> {
    api: &'static str,
    factories: BTreeMap<&'static str, Factory<T>>,
}

impl<T: ?Sized> fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("api", &self.api).field("types", &self.factories.keys()).finish()
    }
}

impl<T: ?Sized + Send + Sync + 'static> Registry<T> {
    pub fn new(api: &'static str) -> Self {
        Self { api, factories: BTreeMap::new() }
    }

    pub fn api(&self) -> &'static str {
        self.api
    }

    /// Registers a constructor under `kind`; a later registration of the same
    /// type replaces the earlier one.
    pub fn register<F, Fut>(&mut self, kind: &'static str, factory: F) -> &mut Self
    where
        F: Fn(ComponentContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Arc<T>>> + Send + 'static,
    {
        self.factories.insert(kind, Arc::new(move |ctx| Box::pin(factory(ctx))));
        self
    }

    pub fn types(&self) -> Vec<&'static str> {
        self.factories.keys().copied().collect()
    }

    pub fn contains(&self, kind: &str) -> bool {
        self.factories.contains_key(kind)
    }

    /// Checks that `kind` is known without building anything.
    pub fn check(&self, name: &str, kind: &str) -> Result<()> {
        if self.contains(kind) {
            return Ok(());
        }
        let types = self.types().join(", ");
        Err(Error::config(format!(
            "{} component '{name}': unknown type '{kind}'; this build has: {}",
            self.api,
            if types.is_empty() { "none" } else { &types }
        )))
    }

    pub async fn build(&self, ctx: ComponentContext) -> Result<Arc<T>> {
        self.check(&ctx.name, &ctx.kind)?;
        let factory = self.factories.get(ctx.kind.as_str()).cloned();
        let factory = factory.ok_or_else(|| Error::internal("factory vanished"))?;
        let described = ctx.describe();
        factory(ctx).await.map_err(|e| e.context(described))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    trait Greeter: Send + Sync {
        fn greet(&self) -> String;
    }
    struct Hi(String);
    impl Greeter for Hi {
        fn greet(&self) -> String {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn builds_known_types_and_names_unknown_ones() {
        let mut reg: Registry<dyn Greeter> = Registry::new("hellos");
        reg.register(
            "hi",
            |ctx: ComponentContext| async move { Ok(Arc::new(Hi(ctx.name)) as Arc<dyn Greeter>) },
        );
        let ctx = ComponentContext {
            api: "hellos".into(),
            name: "a".into(),
            kind: "hi".into(),
            ..Default::default()
        };
        assert_eq!(reg.build(ctx).await.unwrap().greet(), "a");
        let bad = ComponentContext {
            api: "hellos".into(),
            name: "b".into(),
            kind: "nope".into(),
            ..Default::default()
        };
        let err = reg.build(bad).await.err().unwrap().to_string();
        assert!(
            err.contains("hellos component 'b'") && err.contains("'nope'") && err.contains("hi"),
            "{err}"
        );
    }
}
