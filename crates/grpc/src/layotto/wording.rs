//! Layotto's wording of errors: byte for byte what Go Layotto answers when
//! no component serves a call.

use tonic::Status;

use crate::api::{ApiError, Lookup};
use crate::status::to_status;

/// Layotto's words for a call that found no component, per API.
pub(crate) fn wording(api: &'static str) -> impl Fn(ApiError) -> Status {
    move |e| match e {
        ApiError::Call(e) => to_status(e),
        ApiError::Lookup(lookup) => lookup_status(api, lookup),
    }
}

/// Layotto's words for a failed GetSecret: INTERNAL, naming key and store.
pub(crate) fn secret_wording(store: &str, key: &str) -> impl Fn(ApiError) -> Status {
    let (store, key) = (store.to_owned(), layotto_core::clip(key).into_owned());
    move |e| match e {
        ApiError::Call(e) if e.kind() == layotto_core::ErrorKind::NotFound => Status::internal(format!(
            "failed getting secret with key {key} from secret store {store}: {}",
            e.message()
        )),
        other => wording("secrets")(other),
    }
}

pub(crate) fn lookup_status(api: &str, lookup: Lookup) -> Status {
    let name = match &lookup {
        Lookup::NotFound { name, .. } => layotto_core::clip(name).into_owned(),
        _ => String::new(),
    };
    match (api, lookup) {
        ("file", _) => Status::invalid_argument(format!("not support store type: {name}")),
        ("configuration", _) => Status::unknown(format!("configure store [{name}] don't support now")),
        ("secrets", Lookup::NotConfigured) => Status::failed_precondition("secret store is not configured"),
        ("secrets", _) => Status::invalid_argument(format!("failed finding secret store with key {name}")),
        ("bindings", Lookup::NotConfigured) => {
            Status::internal(format!("error when invoke output binding {name}: no binding is configured"))
        }
        ("bindings", Lookup::NoName) => Status::internal("error when invoke output binding : name is empty"),
        ("bindings", Lookup::NotFound { known, .. }) => Status::internal(format!(
            "error when invoke output binding {name}: binding {name} not found; configured: {}",
            known.join(", ")
        )),
        ("hello", _) => {
            Status::unknown(format!("no instance found: hello service '{name}' is not configured"))
        }
        ("state", Lookup::NotConfigured) => Status::failed_precondition("state store is not configured"),
        ("state", Lookup::NoName) => Status::invalid_argument("state store name is empty"),
        ("state", Lookup::NotFound { known, .. }) => Status::invalid_argument(format!(
            "state store {name} is not found; configured: {}",
            known.join(", ")
        )),
        ("lock", Lookup::NotConfigured) => Status::failed_precondition("lock store is not configured"),
        ("lock", _) => Status::invalid_argument(format!("lock store {name} not found")),
        ("sequencer", Lookup::NotConfigured) => {
            Status::failed_precondition("Sequencer store is not configured")
        }
        ("sequencer", _) => Status::invalid_argument(format!("Sequencer store {name} not found")),
        (_, Lookup::NoName) => Status::invalid_argument("pubsub name is empty"),
        (_, Lookup::NotFound { known, .. }) => Status::invalid_argument(format!(
            "pubsub {name} is not found; configured: {}",
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        )),
        (_, Lookup::NotConfigured) => Status::invalid_argument(format!("pubsub {name} is not found")),
    }
}
