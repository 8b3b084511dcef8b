//! The CloudEvents 1.0 JSON envelope `PublishEvent` sends (reference §5.3),
//! and its decoding on delivery.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use layotto_core::{Error, Metadata, Result, settings};
use serde_json::{Map, Value};

/// Layotto's own constants for envelopes it creates (not Dapr's).
pub const DEFAULT_SOURCE: &str = "runtime";
pub const DEFAULT_TYPE: &str = "com.runtime.event.sent";
pub const SPEC_VERSION: &str = "1.0";
pub const CLOUDEVENT_CONTENT_TYPE: &str = "application/cloudevents+json";
/// The type given to a delivered message that is not a CloudEvent.
pub const RAW_TYPE: &str = "com.runtime.event.raw";

/// Everything `PublishEvent` carries, plus the caller's trace context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishInput {
    pub pubsub_name: String,
    pub topic: String,
    pub data: Vec<u8>,
    pub content_type: String,
    pub metadata: Metadata,
    /// W3C `traceparent` of the publishing call, when it had one.
    pub traceparent: Option<String>,
    /// Whether the component expires messages itself.
    pub broker_ttl: bool,
    /// The event id to use; a new one when `None` (a CloudEvent given by
    /// the publisher keeps its own).
    pub id: Option<String>,
}

/// An event as the app receives it (`TopicEventRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicEvent {
    pub id: String,
    pub source: String,
    pub r#type: String,
    pub spec_version: String,
    pub data_content_type: String,
    pub data: Vec<u8>,
    pub topic: String,
    pub pubsub_name: String,
    pub metadata: Metadata,
}

/// `rawPayload=true` in publish or subscription metadata: no envelope.
pub fn is_raw(metadata: &Metadata) -> bool {
    metadata.get("rawPayload").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn is_json(content_type: &str) -> bool {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct == "application/json" || ct.ends_with("+json") || ct == "text/json"
}

fn is_text(content_type: &str) -> bool {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.is_empty() || ct.starts_with("text/") || ct.ends_with("+xml") || ct == "application/xml"
}

/// The longest message TTL accepted (an int32 of seconds, as Dapr's).
pub const MAX_TTL_SECONDS: u64 = i32::MAX as u64;

/// The bytes to hand to the broker for a `PublishEvent`.
pub fn envelope(input: &PublishInput) -> Result<Vec<u8>> {
    let what = || format!("pubsub '{}': topic '{}'", input.pubsub_name, input.topic);
    if is_raw(&input.metadata) {
        return Ok(input.data.clone());
    }
    let mut event = if input.content_type.trim().to_ascii_lowercase().starts_with(CLOUDEVENT_CONTENT_TYPE) {
        let parsed: Value = serde_json::from_slice(&input.data).map_err(|e| {
            Error::invalid_argument(format!(
                "{}: data_content_type says CloudEvent but data is not JSON: {e}",
                what()
            ))
        })?;
        let Value::Object(mut event) = parsed else {
            return Err(Error::invalid_argument(format!(
                "{}: data_content_type says CloudEvent but data is not a JSON object",
                what()
            )));
        };
        for field in ["id", "source", "type", "specversion"] {
            if let Some(v) = event.get(field).filter(|v| !v.is_string()) {
                return Err(Error::invalid_argument(format!(
                    "{}: CloudEvent field '{field}' must be a string, got {v}",
                    what()
                )));
            }
        }
        let defaults = [
            ("id", input.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string())),
            ("source", DEFAULT_SOURCE.to_owned()),
            ("type", DEFAULT_TYPE.to_owned()),
            ("specversion", SPEC_VERSION.to_owned()),
        ];
        for (field, value) in defaults {
            event.entry(field).or_insert(Value::String(value));
        }
        event
    } else {
        let content_type =
            if input.content_type.trim().is_empty() { "text/plain" } else { input.content_type.trim() };
        let mut event = Map::new();
        event
            .insert("id".into(), input.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()).into());
        event.insert("source".into(), DEFAULT_SOURCE.into());
        event.insert("type".into(), DEFAULT_TYPE.into());
        event.insert("specversion".into(), SPEC_VERSION.into());
        event.insert("datacontenttype".into(), content_type.into());
        let json = is_json(content_type).then(|| serde_json::from_slice::<Value>(&input.data).ok()).flatten();
        match (json, std::str::from_utf8(&input.data)) {
            (Some(value), _) => {
                event.insert("data".into(), value);
            }
            (None, Ok(text)) if is_text(content_type) || is_json(content_type) => {
                event.insert("data".into(), text.into());
            }
            _ => {
                event.insert("data_base64".into(), BASE64.encode(&input.data).into());
            }
        }
        event
    };
    event.insert("topic".into(), input.topic.clone().into());
    event.insert("pubsubname".into(), input.pubsub_name.clone().into());
    event.insert("traceid".into(), input.traceparent.clone().unwrap_or_default().into());
    if let Some(tp) = &input.traceparent {
        event.insert("traceparent".into(), tp.clone().into());
    }
    #[derive(serde::Deserialize)]
    struct PublishSettings {
        #[serde(rename = "ttlInSeconds", default)]
        ttl: Option<u64>,
    }
    let ttl = settings::parse_request::<PublishSettings>(&what(), &input.metadata)?.ttl;
    if ttl.is_some_and(|t| t > MAX_TTL_SECONDS) {
        return Err(Error::invalid_argument(format!(
            "{}: metadata 'ttlInSeconds' must be at most {MAX_TTL_SECONDS} seconds",
            what()
        )));
    }
    if !input.broker_ttl
        && let Some(ttl) = ttl
    {
        let at = SystemTime::now() + Duration::from_secs(ttl);
        event.insert("expiration".into(), humantime::format_rfc3339_seconds(at).to_string().into());
    }
    serde_json::to_vec(&Value::Object(event)).map_err(|e| Error::internal(format!("{}: {e}", what())))
}

/// What a delivered message means to the subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Event(Box<TopicEvent>),
    /// Its `expiration` has passed: acknowledge without delivering.
    Expired {
        id: String,
    },
}

/// Decodes a delivered message. A message that is not a CloudEvent (or a
/// subscription with `rawPayload=true`) becomes an event carrying the bytes
/// as they are, instead of being retried forever.
pub fn decode(pubsub_name: &str, topic: &str, data: &[u8], raw: bool, metadata: Metadata) -> Decoded {
    let raw_event = |data: &[u8], metadata: Metadata| TopicEvent {
        id: uuid::Uuid::new_v4().to_string(),
        source: DEFAULT_SOURCE.to_owned(),
        r#type: RAW_TYPE.to_owned(),
        spec_version: SPEC_VERSION.to_owned(),
        data_content_type: "application/octet-stream".to_owned(),
        data: data.to_vec(),
        topic: topic.to_owned(),
        pubsub_name: pubsub_name.to_owned(),
        metadata,
    };
    if raw {
        return Decoded::Event(Box::new(raw_event(data, metadata)));
    }
    let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(data) else {
        return Decoded::Event(Box::new(raw_event(data, metadata)));
    };
    let field = |name: &str| event.get(name).and_then(Value::as_str).map(str::to_owned);
    let (Some(id), Some(source), Some(r#type), Some(spec_version)) =
        (field("id"), field("source"), field("type"), field("specversion"))
    else {
        return Decoded::Event(Box::new(raw_event(data, metadata)));
    };
    if let Some(expiration) = field("expiration")
        && let Ok(at) = humantime::parse_rfc3339_weak(&expiration)
        && at < SystemTime::now()
    {
        return Decoded::Expired { id };
    }
    let data_content_type = field("datacontenttype").unwrap_or_default();
    // The publisher's trace context reaches the app in the event metadata.
    let mut metadata = metadata;
    if let Some(tp) = field("traceparent").filter(|t| !t.is_empty()) {
        metadata.insert("traceparent".to_owned(), tp);
    }
    let data = if let Some(b64) = field("data_base64") {
        BASE64.decode(b64).unwrap_or_default()
    } else {
        match event.get("data") {
            Some(Value::String(s)) if !is_json(&data_content_type) => s.clone().into_bytes(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => serde_json::to_vec(other).unwrap_or_default(),
        }
    };
    Decoded::Event(Box::new(TopicEvent {
        id,
        source,
        r#type,
        spec_version,
        data_content_type,
        data,
        topic: topic.to_owned(),
        pubsub_name: pubsub_name.to_owned(),
        metadata,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn input(data: &[u8], ct: &str) -> PublishInput {
        PublishInput {
            pubsub_name: "ps".into(),
            topic: "t".into(),
            data: data.to_vec(),
            content_type: ct.into(),
            ..Default::default()
        }
    }

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn new_envelope_fields() {
        let e = json(&envelope(&input(b"hello", "")).unwrap());
        assert_eq!(e["source"], "runtime");
        assert_eq!(e["type"], "com.runtime.event.sent");
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["datacontenttype"], "text/plain");
        assert_eq!(e["data"], "hello");
        assert_eq!(e["topic"], "t");
        assert_eq!(e["pubsubname"], "ps");
        assert!(uuid::Uuid::parse_str(e["id"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn json_binary_and_round_trip() {
        let e = json(&envelope(&input(br#"{"a":1}"#, "application/json")).unwrap());
        assert_eq!(e["data"]["a"], 1);
        let bin = envelope(&input(&[0, 159, 146, 150], "application/octet-stream")).unwrap();
        assert!(json(&bin).get("data_base64").is_some());
        let Decoded::Event(ev) = decode("ps", "t", &bin, false, Metadata::new()) else { panic!() };
        assert_eq!(ev.data, vec![0, 159, 146, 150]);
        let j = envelope(&input(br#"{"a":1}"#, "application/json")).unwrap();
        let Decoded::Event(ev) = decode("ps", "t", &j, false, Metadata::new()) else { panic!() };
        assert_eq!(json(&ev.data)["a"], 1);
        assert_eq!(ev.data_content_type, "application/json");
    }

    #[test]
    fn cloudevent_input_keeps_fields_and_rejects_garbage() {
        let ce = br#"{"id":"x1","source":"me","type":"t.x","specversion":"1.0","data":"d"}"#;
        let e = json(&envelope(&input(ce, CLOUDEVENT_CONTENT_TYPE)).unwrap());
        assert_eq!(e["id"], "x1");
        assert_eq!(e["source"], "me");
        assert_eq!(e["topic"], "t");
        let err = envelope(&input(b"not json", CLOUDEVENT_CONTENT_TYPE)).unwrap_err();
        assert_eq!(err.kind(), layotto_core::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("pubsub 'ps'"), "{err}");
        let err = envelope(&input(br#"{"id":5}"#, CLOUDEVENT_CONTENT_TYPE)).unwrap_err();
        assert!(err.to_string().contains("'id'"), "{err}");
    }

    #[test]
    fn traceparent_travels_to_the_subscriber() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut with_trace = input(b"x", "");
        with_trace.traceparent = Some(tp.into());
        let bytes = envelope(&with_trace).unwrap();
        assert_eq!(json(&bytes)["traceparent"], tp);
        let Decoded::Event(ev) = decode("ps", "t", &bytes, false, Metadata::new()) else { panic!() };
        assert_eq!(ev.metadata.get("traceparent").map(String::as_str), Some(tp));
        let plain = envelope(&input(b"x", "")).unwrap();
        assert!(json(&plain).get("traceparent").is_none());
    }

    #[test]
    fn raw_payload_and_expiry() {
        let mut raw = input(b"bytes", "");
        raw.metadata.insert("rawPayload".into(), "true".into());
        assert_eq!(envelope(&raw).unwrap(), b"bytes");
        let Decoded::Event(ev) = decode("ps", "t", b"bytes", false, Metadata::new()) else { panic!() };
        assert_eq!(ev.data, b"bytes");
        let expired =
            br#"{"id":"1","source":"s","type":"t","specversion":"1.0","expiration":"2000-01-01T00:00:00Z"}"#;
        assert_eq!(decode("ps", "t", expired, false, Metadata::new()), Decoded::Expired { id: "1".into() });
        let mut ttl = input(b"x", "");
        ttl.metadata.insert("ttlInSeconds".into(), "60".into());
        assert!(json(&envelope(&ttl).unwrap()).get("expiration").is_some());
        // Once an overflow of the expiry time: a clear error, never a panic.
        for huge in ["99999999999999", "18446744073709551615"] {
            ttl.metadata.insert("ttlInSeconds".into(), huge.into());
            let err = envelope(&ttl).unwrap_err();
            assert_eq!(err.kind(), layotto_core::ErrorKind::InvalidArgument, "{err}");
            assert!(err.to_string().contains("ttlInSeconds"), "{err}");
        }
    }
}
