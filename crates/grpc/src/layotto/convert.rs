//! Message conversions between Layotto's protobuf types and the API crates'.

use layotto_configuration::ConfigurationItem;
use layotto_state::{Concurrency, Consistency, DeleteRequest, SetRequest};

use crate::pb::runtime as pb;

pub(crate) fn consistency(value: i32) -> Consistency {
    match pb::state_options::StateConsistency::try_from(value) {
        Ok(pb::state_options::StateConsistency::ConsistencyEventual) => Consistency::Eventual,
        Ok(pb::state_options::StateConsistency::ConsistencyStrong) => Consistency::Strong,
        _ => Consistency::Unspecified,
    }
}

pub(crate) fn concurrency(value: i32) -> Concurrency {
    match pb::state_options::StateConcurrency::try_from(value) {
        Ok(pb::state_options::StateConcurrency::ConcurrencyFirstWrite) => Concurrency::FirstWrite,
        Ok(pb::state_options::StateConcurrency::ConcurrencyLastWrite) => Concurrency::LastWrite,
        _ => Concurrency::Unspecified,
    }
}

pub(crate) fn set_request(item: pb::StateItem) -> SetRequest {
    let options = item.options.unwrap_or_default();
    SetRequest {
        key: item.key,
        value: item.value,
        etag: item.etag.map(|e| e.value),
        metadata: item.metadata,
        concurrency: concurrency(options.concurrency),
        consistency: consistency(options.consistency),
    }
}

pub(crate) fn delete_request(item: pb::StateItem) -> DeleteRequest {
    let options = item.options.unwrap_or_default();
    DeleteRequest {
        key: item.key,
        etag: item.etag.map(|e| e.value),
        metadata: item.metadata,
        concurrency: concurrency(options.concurrency),
        consistency: consistency(options.consistency),
    }
}

/// Seconds on the wire; zero or negative is rejected by the lock layer.
pub(crate) fn expire(seconds: i32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

pub(crate) fn configuration_item(item: ConfigurationItem) -> pb::ConfigurationItem {
    pb::ConfigurationItem {
        key: item.key,
        content: item.content,
        group: item.group,
        label: item.label,
        tags: item.tags.into_iter().collect(),
        metadata: item.metadata.into_iter().collect(),
    }
}

pub(crate) fn from_configuration_item(item: pb::ConfigurationItem) -> ConfigurationItem {
    ConfigurationItem {
        key: item.key,
        content: item.content,
        group: item.group,
        label: item.label,
        tags: item.tags.into_iter().collect(),
        metadata: item.metadata.into_iter().collect(),
    }
}
