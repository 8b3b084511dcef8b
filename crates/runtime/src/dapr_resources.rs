//! Dapr's resource files (`--resources-path DIR`): `kind: Component` YAML
//! (`spec.type` such as `state.redis`, metadata as name/value lists with
//! `secretKeyRef`) becomes our components, and `kind: Subscription` becomes
//! declarative subscriptions delivered to the app. A type we do not have
//! fails naming the file, the component and the types we have.

use std::path::Path;

use serde::Deserialize;
use serde_yaml::Value;

use crate::apis::Registries;
use crate::config::{ComponentConfig, Config, ConfigError, SecretRef};

/// A subscription from a `kind: Subscription` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeclarativeSubscription {
    pub pubsub_name: String,
    pub topic: String,
    /// The app's route (HTTP) or `path` (gRPC); empty means the topic.
    pub route: String,
    /// Routing rules, (match, path) in order.
    pub rules: Vec<(String, String)>,
    pub dead_letter_topic: String,
    pub metadata: layotto_core::Metadata,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: ResourceMeta,
    #[serde(default)]
    spec: Value,
    #[serde(default)]
    auth: Auth,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize, Default)]
struct ResourceMeta {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize, Default)]
struct Auth {
    #[serde(default, rename = "secretStore")]
    secret_store: Option<String>,
}

#[derive(Deserialize)]
struct ComponentSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    metadata: Vec<MetadataItem>,
}

#[derive(Deserialize)]
struct MetadataItem {
    name: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default, rename = "secretKeyRef")]
    secret_key_ref: Option<SecretKeyRef>,
}

#[derive(Deserialize)]
struct SecretKeyRef {
    name: String,
    #[serde(default)]
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionSpec {
    #[serde(alias = "pubsubname")]
    pubsubname: String,
    topic: String,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    routes: Option<Routes>,
    #[serde(default)]
    dead_letter_topic: Option<String>,
    #[serde(default)]
    metadata: layotto_core::Metadata,
}

#[derive(Deserialize)]
struct Routes {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    #[serde(default, rename = "match")]
    matcher: String,
    path: String,
}

/// Our section of one of Dapr's building blocks.
fn section(block: &str) -> Option<&'static str> {
    Some(match block {
        "state" => "state",
        "pubsub" => "pub_subs",
        "lock" => "lock",
        "bindings" => "bindings",
        "input_bindings" => "input_bindings",
        "secretstores" => "secret_store",
        "configuration" => "config_store",
        _ => return None,
    })
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Loads every `.yaml`/`.yml` file of `dir` into `config`.
pub fn load(dir: &Path, config: &mut Config, registries: &Registries) -> Result<(), ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ConfigError(format!("--resources-path {}: {e}", dir.display())))?;
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", file.display())))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .map_err(|e| ConfigError(format!("{}: not valid YAML: {e}", file.display())))?;
            if value.is_null() {
                continue;
            }
            let resource: Resource = serde_yaml::from_value(value)
                .map_err(|e| ConfigError(format!("{}: not a Dapr resource: {e}", file.display())))?;
            load_resource(&file, resource, config, registries)?;
        }
    }
    Ok(())
}

fn load_resource(
    file: &Path,
    resource: Resource,
    config: &mut Config,
    registries: &Registries,
) -> Result<(), ConfigError> {
    let name = resource.metadata.name.clone();
    let at = |what: String| ConfigError(format!("{}: {what}", file.display()));
    // Scoped resources serve only the app ids they list.
    if !resource.scopes.is_empty() && !resource.scopes.contains(&config.app.id) {
        tracing::info!(file = %file.display(), name, "not in this app's scope; skipped");
        return Ok(());
    }
    match resource.kind.as_str() {
        "Component" => {
            let spec: ComponentSpec = serde_yaml::from_value(resource.spec)
                .map_err(|e| at(format!("component '{name}': spec: {e}")))?;
            let (block, kind) = spec.kind.split_once('.').unwrap_or((spec.kind.as_str(), ""));
            // Dapr has one `bindings` block; input bindings are their own API here.
            let is_input = block == "bindings"
                && registries.find("input_bindings").is_some_and(|api| api.check_type(&name, kind).is_ok());
            let block = if is_input { "input_bindings" } else { block };
            let Some(section) = section(block).filter(|s| registries.find(s).is_some()) else {
                return Err(at(format!(
                    "component '{name}': type '{}' is not a building block this runtime serves \
                     (state, pubsub, lock, bindings, secretstores, configuration)",
                    spec.kind
                )));
            };
            if let Some(api) = registries.find(section) {
                api.check_type(&name, kind).map_err(|e| at(format!("component '{name}': {e}")))?;
            }
            let mut component = ComponentConfig::new(kind);
            for item in spec.metadata {
                match (item.value, item.secret_key_ref) {
                    (_, Some(reference)) => {
                        let Some(store) = resource.auth.secret_store.clone() else {
                            return Err(at(format!(
                                "component '{name}': metadata '{}' uses secretKeyRef but the component names no auth.secretStore",
                                item.name
                            )));
                        };
                        component.secret_ref.push(SecretRef {
                            store_name: store,
                            sub_key: reference.key.unwrap_or_else(|| reference.name.clone()),
                            key: reference.name,
                            inject_as: item.name,
                        });
                    }
                    (Some(value), None) => {
                        let value = scalar(&value).ok_or_else(|| {
                            at(format!(
                                "component '{name}': metadata '{}' must be a string, number or boolean",
                                item.name
                            ))
                        })?;
                        component.metadata.insert(item.name, value);
                    }
                    (None, None) => {
                        component.metadata.insert(item.name, String::new());
                    }
                }
            }
            if config.section(section).any(|(existing, _)| existing == &name) {
                return Err(at(format!("component '{name}' is also in the config file")));
            }
            config.section_mut(section).insert(name, component);
        }
        "Subscription" => {
            let spec: SubscriptionSpec = serde_yaml::from_value(resource.spec)
                .map_err(|e| at(format!("subscription '{name}': spec: {e}")))?;
            let (default, rules) = match spec.routes {
                Some(routes) => {
                    (routes.default, routes.rules.into_iter().map(|r| (r.matcher, r.path)).collect())
                }
                None => (None, Vec::new()),
            };
            // A rule Dapr could not evaluate fails here, naming the file.
            layotto_pubsub::routing::Routes::new("", &rules)
                .map_err(|e| at(format!("subscription '{name}': {}", e.message())))?;
            config.subscriptions.push(DeclarativeSubscription {
                pubsub_name: spec.pubsubname,
                topic: spec.topic,
                route: spec.route.or(default).unwrap_or_default(),
                rules,
                dead_letter_topic: spec.dead_letter_topic.unwrap_or_default(),
                metadata: spec.metadata,
            });
        }
        other => {
            tracing::warn!(file = %file.display(), kind = other, name, "Dapr resource kind not used by this runtime; ignored");
        }
    }
    Ok(())
}
