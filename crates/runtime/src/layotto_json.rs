//! Reads a Layotto JSON config (a MOSN config with the runtime in the
//! `grpc_config` of a `grpc` network filter, reference §3.1) into [`Config`].
//!
//! Like Go's `encoding/json`, `grpc_config` keys match case-insensitively.
//! Each API says which `grpc_config` key is its section ([`crate::apis`]);
//! sections of APIs this build does not serve are skipped with a warning
//! naming each component, so Layotto's shipped configs load as they are.

use std::net::SocketAddr;

use layotto_core::Metadata;
use serde_json::{Map, Value};

use crate::apis::{Options, Registries};
use crate::config::{ComponentConfig, Config, ListenAddr, WasmConfig, WasmFunctionConfig};

/// A listener's MOSN stream filters of one type.
fn stream_filters<'a>(listener: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    let filters = listener.get("stream_filters").and_then(Value::as_array).into_iter().flatten();
    filters.filter(move |f| f.get("type").and_then(Value::as_str) == Some(kind))
}

pub fn parse(text: &str, apis: &Registries) -> Result<Config, String> {
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
    // MOSN's `tracing` block: OTLP is the driver we ship.
    if let Some(tracing) = root.get("tracing") {
        let enabled = tracing.get("enable").and_then(Value::as_bool).unwrap_or(false);
        let driver = str_field(tracing, "driver").unwrap_or_default();
        if enabled && !matches!(driver.to_ascii_lowercase().as_str(), "otlp" | "opentelemetry" | "") {
            tracing::warn!(
                %driver,
                "tracing driver not built in: spans go out over OTLP instead; set OTEL_EXPORTER_OTLP_ENDPOINT \
                 (Jaeger, Zipkin and SkyWalking all take OTLP)"
            );
        }
        config.tracing = Some(crate::config::TracingConfig { enabled, ..Default::default() });
    }
    // MOSN's Prometheus sink serves `/metrics` on a port of its own, on every interface.
    let sinks = root.pointer("/metrics/sinks").and_then(Value::as_array).into_iter().flatten();
    for sink in sinks {
        match str_field(sink, "type").unwrap_or_default().as_str() {
            "prometheus" => {
                let port = sink.pointer("/config/port").and_then(Value::as_u64).unwrap_or(34903);
                let port =
                    u16::try_from(port).map_err(|_| format!("metrics sink: port {port} is out of range"))?;
                config.metrics.listen = Some(SocketAddr::from(([0, 0, 0, 0], port)));
            }
            other => tracing::warn!(sink = %other, "metrics sink not built in; /metrics serves Prometheus"),
        }
    }
    let mut runtime = None;
    let mut wasm_listener = None;
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
                config.server.grpc = grpc_address(listener)?;
            }
            if filter.get("type").and_then(Value::as_str) == Some("tcpcopy") {
                config.traffic_dump =
                    Some(tcpcopy(filter.pointer("/config/strategy").unwrap_or(&Value::Null)));
            }
        }
        if stream_filters(listener, "actuator_filter").next().is_some() {
            config.server.actuator = listener_address(listener)?;
        }
        config.metrics.grpc_metric_names |= stream_filters(listener, "grpc_metric").next().is_some();
        // Layotto's FaaS: the `Layotto` filter serves functions, `wasm_filter` their admin endpoints.
        if let Some(filter) = stream_filters(listener, "Layotto").next() {
            let wasm = config.wasm.get_or_insert_with(WasmConfig::new);
            wasm.listen = listener_address(listener)?;
            wasm_listener = listener.get("name").and_then(Value::as_str).map(str::to_owned);
            let functions = filter.get("config").and_then(Value::as_object).into_iter().flatten();
            for (key, entry) in functions {
                let function: WasmFunctionConfig = serde_json::from_value(entry.clone())
                    .map_err(|e| format!("'Layotto' filter, function '{key}': {e}"))?;
                wasm.functions.insert(key.clone(), function);
            }
        }
        if stream_filters(listener, "wasm_filter").next().is_some() {
            config.wasm.get_or_insert_with(WasmConfig::new).admin = Some(listener_address(listener)?);
        }
        let flow_control = stream_filters(listener, "flowControlFilter");
        for filter in flow_control {
            config.rate_limits.extend(flow_control_rules(filter.get("config").unwrap_or(&Value::Null))?);
        }
    }
    let runtime =
        runtime.ok_or("no listener has a 'grpc' filter with server_name 'runtime' and a 'grpc_config'")?;

    for (key, value) in runtime {
        if key.eq_ignore_ascii_case("app") {
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
            continue;
        }
        if key.eq_ignore_ascii_case("rpcs") && reaches_functions(value, wasm_listener.as_deref()) {
            // proxy_invoke_service finds functions in-process; apps go through `[invoke]`.
            tracing::info!("rpcs: the 'mosn' channel to the functions' listener is served in-process");
            continue;
        }
        let api = apis.apis.iter().find(|api| api.layotto_keys().iter().any(|k| k.eq_ignore_ascii_case(key)));
        let Some(api) = api else {
            let names: Vec<&String> = value.as_object().map(|m| m.keys().collect()).unwrap_or_default();
            tracing::warn!(section = %key, components = ?names, "skipping config section: this build does not serve it");
            continue;
        };
        for (name, entry) in components(key, value)? {
            let component = component(key, &name, entry)?;
            config.section_mut(api.section()).insert(name, component);
        }
    }
    Ok(config)
}

/// Layotto's `tcpcopy` strategy (reference §8.1): `switch`, `interval`
/// (30 to 3600 s), `duration` (less than the interval), `cpu_max_rate` and
/// `mem_max_rate` (percent). As Layotto, an invalid strategy is logged and
/// the defaults stay (off, 30 s, 1 s, 80 %, 70 %).
fn tcpcopy(strategy: &Value) -> crate::dump::DumpConfig {
    let defaults =
        crate::dump::DumpConfig { interval_seconds: 30, duration_seconds: 1, ..Default::default() };
    let number = |key: &str| field(strategy, key).and_then(Value::as_f64);
    let switch = str_field(strategy, "switch").unwrap_or_default();
    let interval = number("interval").unwrap_or(30.0);
    let duration = number("duration").unwrap_or(1.0);
    let cpu = number("cpu_max_rate").unwrap_or(80.0);
    let mem = number("mem_max_rate").unwrap_or(70.0);
    let valid = (30.0..=3600.0).contains(&interval)
        && duration > 0.0
        && duration < interval
        && cpu > 0.0
        && cpu < 100.0
        && mem > 0.0
        && mem < 100.0
        && matches!(switch.as_str(), "ON" | "OFF" | "");
    if !valid {
        tracing::warn!(%strategy, "tcpcopy: invalid strategy; the dump stays off with Layotto's defaults");
        return defaults;
    }
    crate::dump::DumpConfig {
        enabled: switch == "ON",
        interval_seconds: interval as u64,
        duration_seconds: (duration as u64).max(1),
        cpu_max_percent: cpu,
        mem_max_percent: mem,
        ..defaults
    }
}

/// MOSN's `flowControlFilter` (reference §8.2): `rules[].resource` at
/// `threshold` calls per second (`grade` 1, Sentinel's QPS), `action.body`
/// as the message; nothing when `global_switch` is false.
fn flow_control_rules(config: &Value) -> Result<Vec<crate::config::RateLimitConfig>, String> {
    if config.get("global_switch").and_then(Value::as_bool) == Some(false) {
        return Ok(Vec::new());
    }
    if let Some(kind) = str_field(config, "limit_key_type").filter(|k| !k.eq_ignore_ascii_case("PATH")) {
        tracing::warn!(limit_key_type = %kind, "flowControlFilter: only PATH limits (by full method) are applied");
    }
    let message = config.pointer("/action/body").and_then(Value::as_str).map(str::to_owned);
    let rules = config.get("rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    rules
        .iter()
        .map(|rule| {
            let resource = str_field(rule, "resource").filter(|r| !r.is_empty()).ok_or("flowControlFilter: a rule has no 'resource'")?;
            let threshold = rule
                .get("threshold")
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("flowControlFilter: rule '{resource}' has no numeric 'threshold'"))?;
            if let Some(grade) = rule.get("grade").and_then(Value::as_i64).filter(|g| *g != 1) {
                tracing::warn!(%resource, grade, "flowControlFilter: only grade 1 (calls per second) is applied");
            }
            Ok(crate::config::RateLimitConfig {
                method: resource,
                rate: threshold,
                burst: None,
                per: crate::config::RatePer::Global,
                message: message.clone(),
            })
        })
        .collect()
}

/// The runtime's listener: TCP, or a Unix socket (`"network": "unix"`, as configs/config_uds.json).
fn grpc_address(listener: &Value) -> Result<ListenAddr, String> {
    if listener.get("network").and_then(Value::as_str) == Some("unix") {
        let name = listener.get("name").and_then(Value::as_str).unwrap_or("?");
        let path = listener
            .get("address")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .ok_or(format!("listener '{name}' has no socket path in 'address'"))?;
        return Ok(ListenAddr::Unix(path.into()));
    }
    listener_address(listener).map(ListenAddr::Tcp)
}

/// Whether `rpcs` is Layotto's FaaS wiring: a `mosn` channel to the `Layotto` filter's listener.
fn reaches_functions(rpcs: &Value, wasm_listener: Option<&str>) -> bool {
    let Some(wasm_listener) = wasm_listener else { return false };
    let channels = rpcs.pointer("/mosn/config/channel").and_then(Value::as_array).into_iter().flatten();
    channels.into_iter().any(|c| c.get("listener").and_then(Value::as_str) == Some(wasm_listener))
}

fn listener_address(listener: &Value) -> Result<SocketAddr, String> {
    let name = listener.get("name").and_then(Value::as_str).unwrap_or("?");
    if listener.get("network").and_then(Value::as_str) == Some("unix") {
        return Err(format!("listener '{name}': only the runtime's gRPC listener can be a unix socket"));
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

/// `type`, `metadata`, and every other key as an option of the API.
fn component(section: &str, name: &str, entry: &Value) -> Result<ComponentConfig, String> {
    let kind = str_field(entry, "type").ok_or(format!("{section} component '{name}' has no 'type'"))?;
    const OWN_KEYS: [&str; 4] = ["type", "metadata", "secret_ref", "component_ref"];
    let options: Options = entry
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !OWN_KEYS.iter().any(|own| k.eq_ignore_ascii_case(own)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let bad = |what: &str, e: serde_json::Error| format!("{section} component '{name}': '{what}': {e}");
    let secret_ref = match field(entry, "secret_ref") {
        None | Some(Value::Null) => Vec::new(),
        Some(refs) => serde_json::from_value(refs.clone()).map_err(|e| bad("secret_ref", e))?,
    };
    let component_ref = match field(entry, "component_ref") {
        None | Some(Value::Null) => None,
        Some(refs) => Some(serde_json::from_value(refs.clone()).map_err(|e| bad("component_ref", e))?),
    };
    let mut metadata = Metadata::new();
    if let Some(meta) = field(entry, "metadata") {
        // Layotto's `file` components take a list of endpoints: the first serves.
        let meta = match meta {
            Value::Array(list) => {
                if list.len() > 1 {
                    tracing::warn!(
                        section,
                        name,
                        "only the first of {} metadata entries is used",
                        list.len()
                    );
                }
                list.first().unwrap_or(&Value::Null)
            }
            other => other,
        };
        if !meta.is_null() {
            let meta = meta
                .as_object()
                .ok_or(format!("{section} component '{name}': 'metadata' must be an object"))?;
            for (k, v) in meta {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(_) | Value::Bool(_) => v.to_string(),
                    // Nested JSON (the `basic_config` of Layotto's oss components) stays JSON text.
                    Value::Object(_) | Value::Array(_) => v.to_string(),
                    Value::Null => String::new(),
                };
                metadata.insert(k.clone(), v);
            }
        }
    }
    Ok(ComponentConfig { kind, metadata, secret_ref, component_ref, options })
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

    fn parse(text: &str) -> Result<Config, String> {
        super::parse(text, &Registries::builtin())
    }

    #[test]
    fn reads_redis_config() {
        let config = parse(REDIS).unwrap();
        assert_eq!(config.server.grpc.to_string(), "127.0.0.1:34904");
        assert_eq!(config.server.actuator.to_string(), "127.0.0.1:34999");
        assert_eq!(config.app.id, "app1");
        assert_eq!(config.app.callback_port, 9999);
        let c = &config.components;
        assert_eq!(c["hellos"]["quick_start_demo"].options["hello"], "greeting");
        assert_eq!(c["lock"]["redis"].kind, "redis");
        assert_eq!(c["sequencer"]["redis"].options["biggerThan"]["order"], 1000);
        assert_eq!(c["pub_subs"]["redis"].metadata["redisHost"], "localhost:6380");
        let redis = &c["state"]["redis"];
        assert_eq!(redis.kind, "redis");
        assert_eq!(redis.metadata["redisHost"], "localhost:6380");
        assert_eq!(redis.metadata["redisDB"], "0");
    }

    /// Layotto's demo/faas/config.json, trimmed of its xDS blocks.
    const FAAS: &str = r#"{"servers": [{"default_log_path": "stdout", "listeners": [
        {"name": "grpc", "address": "0.0.0.0:34904", "bind_port": true, "filter_chains": [{"filters": [
          {"type": "grpc", "config": {"server_name": "runtime", "grpc_config": {
            "rpcs": {"mosn": {"config": {"channel": [{"size": 16, "protocol": "http", "listener": "wasm"}]}}},
            "state": {"state_demo": {"type": "redis", "metadata": {"redisHost": "localhost:6379", "redisPassword": ""}}}}}}]}]},
        {"name": "wasm", "address": "0.0.0.0:2045", "bind_port": true, "filter_chains": [{"filters": [
          {"type": "proxy", "config": {"downstream_protocol": "Http1", "upstream_protocol": "Http1",
            "router_config_name": "function_router"}}]}],
         "stream_filters": [{"type": "Layotto", "config": {
           "function1": {"name": "function1", "instance_num": 1,
             "vm_config": {"engine": "wasmtime", "path": "demo/faas/code/golang/client/function_1.wasm"}},
           "function2": {"name": "function2", "instance_num": 1, "greeting": "hi",
             "vm_config": {"engine": "wasmer", "path": "demo/faas/code/golang/server/function_2.wasm"}}}}]},
        {"name": "wasm_filter", "address": "0.0.0.0:34998", "bind_port": true, "filter_chains": [{"filters": [
          {"type": "proxy", "config": {"downstream_protocol": "Http1", "upstream_protocol": "Http1",
            "router_config_name": "wasm_router"}}]}], "stream_filters": [{"type": "wasm_filter"}]}],
      "routers": [{"router_config_name": "wasm_router"}, {"router_config_name": "function_router",
        "virtual_hosts": [{"name": "http_host", "domains": ["*"], "routers": [{"direct_response": {"status": 200}}]}]}]}],
      "cluster_manager": {"tls_context": {}, "clusters": [{"name": "function_server", "type": "SIMPLE",
        "lb_type": "LB_RANDOM", "hosts": [{"address": "127.0.0.1:2045", "hostname": "downstream_machine1", "weight": 1}]}]}}"#;

    #[test]
    fn reads_layottos_faas_demo() {
        let config = parse(FAAS).unwrap();
        let wasm = config.wasm.expect("[wasm] from the Layotto filter");
        assert_eq!(wasm.listen.to_string(), "0.0.0.0:2045");
        assert_eq!(wasm.admin.map(|a| a.to_string()).as_deref(), Some("0.0.0.0:34998"));
        let function2 = &wasm.functions["function2"];
        assert_eq!(function2.name.as_deref(), Some("function2"));
        assert_eq!(function2.instance_num, Some(1));
        let vm = function2.vm_config.as_ref().unwrap();
        assert_eq!(vm.engine.as_deref(), Some("wasmer"));
        assert_eq!(vm.path.display().to_string(), "demo/faas/code/golang/server/function_2.wasm");
        assert_eq!(function2.plugin_config["greeting"], "hi", "other keys are the plugin configuration");
        assert!(config.components["state"].contains_key("state_demo"));
    }

    #[test]
    fn reads_the_prometheus_sink_and_grpc_metric_filter() {
        let config = parse(REDIS).unwrap();
        assert_eq!(config.metrics, crate::config::MetricsConfig::default());
        let with_metrics = REDIS
            .replacen(
                r#""stream_filters": [{"type": "actuator_filter"}]"#,
                r#""stream_filters": [{"type": "actuator_filter"}, {"type": "grpc_metric"}]"#,
                1,
            )
            .replacen(
                r#""servers": ["#,
                r#""metrics": {"sinks": [{"type": "prometheus", "config": {"port": 34903}}]}, "servers": ["#,
                1,
            );
        let config = parse(&with_metrics).unwrap();
        assert_eq!(config.metrics.listen, Some("0.0.0.0:34903".parse().unwrap()));
        assert!(config.metrics.grpc_metric_names);
        let bad = with_metrics.replace("34903", "70000");
        assert!(parse(&bad).unwrap_err().contains("metrics sink"), "{bad}");
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
