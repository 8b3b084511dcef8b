//! Reads a Layotto JSON config (a MOSN config with the runtime in the
//! `grpc_config` of a `grpc` network filter, reference §3.1) into [`Config`].
//!
//! Like Go's `encoding/json`, `grpc_config` keys match case-insensitively.
//! Sections of APIs this build does not serve yet are skipped with a warning
//! naming each component, so Layotto's shipped configs load as they are.

use std::net::SocketAddr;

use layotto_core::Metadata;
use serde_json::{Map, Value};

use crate::config::{ComponentConfig, Config};

/// `grpc_config` sections Layotto knows that this build does not serve yet.
const NOT_YET_SERVED: &[&str] = &[
    "config_store",
    "rpcs",
    "file",
    "oss",
    "bindings",
    "secret_store",
    "custom_component",
    "cryption",
    "email",
    "phone",
    "sms",
    "extends",
];

pub fn parse(text: &str) -> Result<Config, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let listeners: Vec<&Value> = root
        .get("servers")
        .and_then(Value::as_array)
        .ok_or("a Layotto config needs a 'servers' array (MOSN format)")?
        .iter()
        .filter_map(|s| s.get("listeners").and_then(Value::as_array))
        .flatten()
        .collect();

    let mut config = Config::empty();
    let mut runtime = None;
    for listener in &listeners {
        let filters = listener
            .get("filter_chains")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|chain| chain.get("filters").and_then(Value::as_array))
            .flatten();
        for filter in filters {
            let is_runtime = filter.get("type").and_then(Value::as_str) == Some("grpc")
                && filter.pointer("/config/server_name").and_then(Value::as_str) == Some("runtime");
            if is_runtime {
                runtime = filter.pointer("/config/grpc_config").and_then(Value::as_object);
                config.server.grpc = listener_address(listener)?;
            }
        }
        let has_actuator = listener.get("stream_filters").and_then(Value::as_array).is_some_and(|f| {
            f.iter().any(|f| f.get("type").and_then(Value::as_str) == Some("actuator_filter"))
        });
        if has_actuator {
            config.server.actuator = listener_address(listener)?;
        }
    }
    let runtime =
        runtime.ok_or("no listener has a 'grpc' filter with server_name 'runtime' and a 'grpc_config'")?;

    for (key, value) in runtime {
        let section = key.to_ascii_lowercase();
        match section.as_str() {
            "app" => {
                config.app.id = str_field(value, "app_id").unwrap_or_default();
                if let Some(host) = str_field(value, "grpc_callback_host").filter(|h| !h.is_empty()) {
                    config.app.callback_host = host;
                }
                config.app.callback_port = field(value, "grpc_callback_port")
                    .and_then(Value::as_u64)
                    .map(u16::try_from)
                    .transpose()
                    .map_err(|_| "app.grpc_callback_port is not a port number")?
                    .unwrap_or(0);
            }
            "hellos" => {
                for (name, entry) in components(key, value)? {
                    let mut component = component(key, &name, entry)?;
                    if let Some(greeting) = str_field(entry, "hello") {
                        component.metadata.insert("hello".into(), greeting);
                    }
                    config.hellos.insert(name, component);
                }
            }
            "state" | "pub_subs" | "lock" => {
                let target = match section.as_str() {
                    "state" => &mut config.state,
                    "pub_subs" => &mut config.pub_subs,
                    _ => &mut config.lock,
                };
                for (name, entry) in components(key, value)? {
                    target.insert(name.clone(), component(key, &name, entry)?);
                }
            }
            "sequencer" => {
                for (name, entry) in components(key, value)? {
                    let mut c = component(key, &name, entry)?;
                    if let Some(map) = field(entry, "biggerThan").and_then(Value::as_object) {
                        for (k, v) in map {
                            let min = v.as_i64().ok_or_else(|| {
                                format!("sequencer '{name}': biggerThan.{k} must be an integer, got {v}")
                            })?;
                            c.bigger_than.insert(k.clone(), min);
                        }
                    }
                    config.sequencer.insert(name, c);
                }
            }
            s if NOT_YET_SERVED.contains(&s) => {
                let names: Vec<&String> = value.as_object().map(|m| m.keys().collect()).unwrap_or_default();
                tracing::warn!(section = s, components = ?names, "skipping config section: this API is not implemented in this build");
            }
            other => tracing::warn!(section = other, "ignoring unknown grpc_config key"),
        }
    }
    Ok(config)
}

fn listener_address(listener: &Value) -> Result<SocketAddr, String> {
    let name = listener.get("name").and_then(Value::as_str).unwrap_or("?");
    if listener.get("network").and_then(Value::as_str) == Some("unix") {
        return Err(format!("listener '{name}': unix socket listeners are not supported yet"));
    }
    let address =
        listener.get("address").and_then(Value::as_str).ok_or(format!("listener '{name}' has no address"))?;
    address.parse().map_err(|_| format!("listener '{name}': address '{address}' is not host:port"))
}

fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let map = value.as_object()?;
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn str_field(value: &Value, key: &str) -> Option<String> {
    field(value, key).and_then(Value::as_str).map(str::to_owned)
}

fn components<'a>(section: &str, value: &'a Value) -> Result<Vec<(String, &'a Value)>, String> {
    let map: &Map<String, Value> =
        value.as_object().ok_or(format!("'{section}' must be an object of components"))?;
    Ok(map.iter().map(|(k, v)| (k.clone(), v)).collect())
}

fn component(section: &str, name: &str, entry: &Value) -> Result<ComponentConfig, String> {
    let kind = str_field(entry, "type").ok_or(format!("{section} component '{name}' has no 'type'"))?;
    let mut metadata = Metadata::new();
    if let Some(meta) = field(entry, "metadata") {
        let meta =
            meta.as_object().ok_or(format!("{section} component '{name}': 'metadata' must be an object"))?;
        for (k, v) in meta {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                _ => return Err(format!("{section} component '{name}': metadata '{k}' must be a string")),
            };
            metadata.insert(k.clone(), v);
        }
    }
    Ok(ComponentConfig { kind, metadata, bigger_than: Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIS: &str = r#"{
      "servers": [{
        "default_log_path": "stdout",
        "listeners": [
          {"name": "grpc", "address": "127.0.0.1:34904", "bind_port": true,
           "filter_chains": [{"filters": [{"type": "grpc", "config": {"server_name": "runtime", "grpc_config": {
              "hellos": {"quick_start_demo": {"type": "helloworld", "hello": "greeting"}},
              "State": {"redis": {"type": "redis", "metadata": {"redisHost": "localhost:6380", "redisPassword": "", "redisDB": 0}}},
              "lock": {"redis": {"type": "redis", "metadata": {"redisHost": "localhost:6380"}}},
              "sequencer": {"redis": {"type": "redis", "biggerThan": {"order": 1000}, "metadata": {"redisHost": "localhost:6380"}}},
              "pub_subs": {"redis": {"type": "redis", "metadata": {"redisHost": "localhost:6380", "consumerID": ""}}},
              "app": {"app_id": "app1", "grpc_callback_port": 9999}
           }}}]}]},
          {"name": "actuator", "address": "127.0.0.1:34999", "bind_port": true,
           "filter_chains": [{"filters": [{"type": "proxy", "config": {"downstream_protocol": "Http1"}}]}],
           "stream_filters": [{"type": "actuator_filter"}]}
        ]
      }]
    }"#;

    #[test]
    fn reads_redis_config() {
        let config = parse(REDIS).unwrap();
        assert_eq!(config.server.grpc.to_string(), "127.0.0.1:34904");
        assert_eq!(config.server.actuator.to_string(), "127.0.0.1:34999");
        assert_eq!(config.app.id, "app1");
        assert_eq!(config.app.callback_port, 9999);
        assert_eq!(config.hellos["quick_start_demo"].metadata["hello"], "greeting");
        assert_eq!(config.lock["redis"].kind, "redis");
        assert_eq!(config.sequencer["redis"].bigger_than["order"], 1000);
        assert_eq!(config.pub_subs["redis"].metadata["redisHost"], "localhost:6380");
        let redis = &config.state["redis"];
        assert_eq!(redis.kind, "redis");
        assert_eq!(redis.metadata["redisHost"], "localhost:6380");
        assert_eq!(redis.metadata["redisDB"], "0");
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert!(parse("{").unwrap_err().contains("JSON"));
        assert!(parse(r#"{"servers": []}"#).unwrap_err().contains("grpc_config"));
        let no_type = REDIS.replace(
            r#""type": "redis", "metadata": {"redisHost": "localhost:6380", "redisPassword""#,
            r#""metadata": {"redisHost": "localhost:6380", "redisPassword""#,
        );
        let err = parse(&no_type).unwrap_err();
        assert!(err.contains("State component 'redis'") && err.contains("type"), "{err}");
    }
}
