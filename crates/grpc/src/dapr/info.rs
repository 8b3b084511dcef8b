//! What Dapr's GetMetadata, SetMetadata and Shutdown see, shared by the
//! gRPC service and the HTTP API.

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// One configured component as Dapr lists it (`state.redis`, `v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredComponent {
    pub name: String,
    pub kind: String,
    pub version: String,
    pub capabilities: Vec<String>,
}

/// How a subscription came to be, as Dapr's metadata says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionKind {
    Declarative,
    Programmatic,
    Streaming,
}

/// One active subscription, for GetMetadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub pubsub_name: String,
    pub topic: String,
    pub dead_letter_topic: String,
    pub kind: SubscriptionKind,
}

/// The runtime as Dapr's metadata describes it.
#[derive(Debug, Default)]
pub struct DaprInfo {
    pub app_id: String,
    pub runtime_version: String,
    pub components: Vec<RegisteredComponent>,
    /// SetMetadata's key/value pairs.
    pub extended: Mutex<BTreeMap<String, String>>,
    /// Notified by Shutdown: whoever runs the runtime stops it.
    pub shutdown: tokio::sync::Notify,
    /// The app's subscriptions (streaming ones are added when listed).
    pub subscriptions: Mutex<Vec<SubscriptionInfo>>,
}

/// Dapr's building-block prefix of one of our config sections.
pub fn dapr_type(section: &str, kind: &str) -> String {
    let block = match section {
        "pub_subs" => "pubsub",
        "config_store" => "configuration",
        "secret_store" => "secretstores",
        "input_bindings" => "bindings",
        other => other,
    };
    format!("{block}.{kind}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn types_read_as_dapr_names_them() {
        assert_eq!(super::dapr_type("state", "redis"), "state.redis");
        assert_eq!(super::dapr_type("pub_subs", "rabbitmq"), "pubsub.rabbitmq");
        assert_eq!(super::dapr_type("secret_store", "local.file"), "secretstores.local.file");
    }
}
