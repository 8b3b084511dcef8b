//! The CloudEvents 1.0 JSON envelope `PublishEvent` sends (reference §5.3),
//! and its decoding on delivery.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use layotto_core::{Error, Metadata, Result, settings};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

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

/// The media type without parameters; compared case-insensitively below,
/// without a lowercased copy per message.
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len() && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

fn is_json(content_type: &str) -> bool {
    let ct = media_type(content_type);
    ct.eq_ignore_ascii_case("application/json")
        || ends_with_ignore_case(ct, "+json")
        || ct.eq_ignore_ascii_case("text/json")
}

fn is_text(content_type: &str) -> bool {
    let ct = media_type(content_type);
    ct.is_empty()
        || starts_with_ignore_case(ct, "text/")
        || ends_with_ignore_case(ct, "+xml")
        || ct.eq_ignore_ascii_case("application/xml")
}

/// The longest message TTL accepted (an int32 of seconds, as Dapr's).
pub const MAX_TTL_SECONDS: u64 = i32::MAX as u64;

/// The envelope this runtime writes, serialized straight from borrowed
/// fields: no JSON tree is built per message.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    r#type: &'a str,
    specversion: &'a str,
    datacontenttype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Data<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
    topic: &'a str,
    pubsubname: &'a str,
    traceid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    /// JSON data goes in as the publisher wrote it.
    Json(&'a RawValue),
    Text(&'a str),
}

/// The bytes to hand to the broker for a `PublishEvent`.
pub fn envelope(input: &PublishInput) -> Result<Vec<u8>> {
    let what = || format!("pubsub '{}': topic '{}'", input.pubsub_name, input.topic);
    if is_raw(&input.metadata) {
        return Ok(input.data.clone());
    }
    #[derive(serde::Deserialize)]
    struct PublishSettings {
        #[serde(rename = "ttlInSeconds", default)]
        ttl: Option<u64>,
    }
    // Most publishes carry no metadata: skip naming the component and parsing.
    let ttl = if input.metadata.is_empty() {
        None
    } else {
        settings::parse_request::<PublishSettings>(&what(), &input.metadata)?.ttl
    };
    if ttl.is_some_and(|t| t > MAX_TTL_SECONDS) {
        return Err(Error::invalid_argument(format!(
            "{}: metadata 'ttlInSeconds' must be at most {MAX_TTL_SECONDS} seconds",
            what()
        )));
    }
    let expiration = ttl.filter(|_| !input.broker_ttl).map(|ttl| {
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(ttl)).to_string()
    });
    if starts_with_ignore_case(input.content_type.trim(), CLOUDEVENT_CONTENT_TYPE) {
        return publisher_cloudevent(input, expiration, &what);
    }

    let content_type =
        if input.content_type.trim().is_empty() { "text/plain" } else { input.content_type.trim() };
    let new_id;
    let id = match &input.id {
        Some(id) => id.as_str(),
        None => {
            new_id = uuid::Uuid::new_v4().to_string();
            new_id.as_str()
        }
    };
    let json = is_json(content_type).then(|| serde_json::from_slice::<&RawValue>(&input.data).ok()).flatten();
    let (data, data_base64) = match (json, std::str::from_utf8(&input.data)) {
        (Some(value), _) => (Some(Data::Json(value)), None),
        (None, Ok(text)) if is_text(content_type) || is_json(content_type) => (Some(Data::Text(text)), None),
        _ => (None, Some(BASE64.encode(&input.data))),
    };
    let event = Envelope {
        id,
        source: DEFAULT_SOURCE,
        r#type: DEFAULT_TYPE,
        specversion: SPEC_VERSION,
        datacontenttype: content_type,
        data,
        data_base64,
        topic: &input.topic,
        pubsubname: &input.pubsub_name,
        traceid: input.traceparent.as_deref().unwrap_or_default(),
        traceparent: input.traceparent.as_deref(),
        expiration,
    };
    serde_json::to_vec(&event).map_err(|e| Error::internal(format!("{}: {e}", what())))
}

/// A CloudEvent given by the publisher keeps its fields; ours fill the gaps.
fn publisher_cloudevent(
    input: &PublishInput,
    expiration: Option<String>,
    what: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
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
    event.insert("topic".into(), input.topic.clone().into());
    event.insert("pubsubname".into(), input.pubsub_name.clone().into());
    event.insert("traceid".into(), input.traceparent.clone().unwrap_or_default().into());
    if let Some(tp) = &input.traceparent {
        event.insert("traceparent".into(), tp.clone().into());
    }
    if let Some(at) = expiration {
        event.insert("expiration".into(), at.into());
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

/// The fields delivery reads, borrowed from the message. Each is kept raw so
/// that a field of another JSON type is ignored, as a missing one would be,
/// rather than failing the whole event.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    r#type: Option<&'a RawValue>,
    #[serde(borrow)]
    specversion: Option<&'a RawValue>,
    #[serde(borrow)]
    datacontenttype: Option<&'a RawValue>,
    #[serde(borrow)]
    expiration: Option<&'a RawValue>,
    #[serde(borrow)]
    traceparent: Option<&'a RawValue>,
    #[serde(borrow)]
    data_base64: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// A JSON string's text, borrowed when it has no escapes.
fn text(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = raw?.get();
    if let Ok(s) = serde_json::from_str::<&str>(raw) {
        return Some(Cow::Borrowed(s));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
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
    let Ok(event) = serde_json::from_slice::<Incoming>(data) else {
        return Decoded::Event(Box::new(raw_event(data, metadata)));
    };
    let (Some(id), Some(source), Some(r#type), Some(spec_version)) =
        (text(event.id), text(event.source), text(event.r#type), text(event.specversion))
    else {
        return Decoded::Event(Box::new(raw_event(data, metadata)));
    };
    if let Some(expiration) = text(event.expiration)
        && let Ok(at) = humantime::parse_rfc3339_weak(&expiration)
        && at < SystemTime::now()
    {
        return Decoded::Expired { id: id.into_owned() };
    }
    let data_content_type = text(event.datacontenttype).unwrap_or_default();
    // The publisher's trace context reaches the app in the event metadata.
    let mut metadata = metadata;
    if let Some(tp) = text(event.traceparent).filter(|t| !t.is_empty()) {
        metadata.insert("traceparent".to_owned(), tp.into_owned());
    }
    let data = if let Some(b64) = text(event.data_base64) {
        BASE64.decode(b64.as_bytes()).unwrap_or_default()
    } else {
        match event.data.map(RawValue::get) {
            None | Some("null") => Vec::new(),
            Some(json) if is_json(&data_content_type) => json.as_bytes().to_vec(),
            Some(json) => match text(event.data) {
                Some(s) => s.into_owned().into_bytes(),
                None => json.as_bytes().to_vec(),
            },
        }
    };
    Decoded::Event(Box::new(TopicEvent {
        id: id.into_owned(),
        source: source.into_owned(),
        r#type: r#type.into_owned(),
        spec_version: spec_version.into_owned(),
        data_content_type: data_content_type.into_owned(),
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
    fn content_types_compare_without_case() {
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/cloudevents+JSON"));
        assert!(is_json(" text/json "));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json("json"));
        assert!(is_text(""));
        assert!(is_text("TEXT/plain"));
        assert!(is_text("application/atom+XML"));
        assert!(!is_text("application/octet-stream"));
        // Multi-byte text shorter or longer than the suffix must not panic.
        assert!(!is_json("é"));
        assert!(!is_text("ééééé+xm"));
    }

    /// Events from other publishers: escaped strings are unescaped, a field
    /// of another JSON type is ignored, JSON data keeps the publisher's text.
    #[test]
    fn foreign_events_decode_leniently() {
        let ev = |bytes: &[u8]| match decode("ps", "t", bytes, false, Metadata::new()) {
            Decoded::Event(ev) => ev,
            other => panic!("{other:?}"),
        };
        let e = ev(br#"{"id":"a\"b","source":"s","type":"t","specversion":"1.0","datacontenttype":5,
            "expiration":false,"traceparent":null,"data":"line\nnext","ext":{"x":[1,2]}}"#);
        assert_eq!((e.id.as_str(), e.data_content_type.as_str()), ("a\"b", ""));
        assert_eq!(e.data, b"line\nnext");
        assert_eq!(e.r#type, "t");
        assert!(e.metadata.is_empty());
        let e = ev(br#"{"id":"1","source":"s","type":"t","specversion":"1.0","datacontenttype":"application/json","data":{"b": [1, 2]}}"#);
        assert_eq!(json(&e.data), serde_json::json!({"b": [1, 2]}));
        let e = ev(br#"{"id":"1","source":"s","type":"t","specversion":"1.0","data":{"b":1}}"#);
        assert_eq!(e.data, br#"{"b":1}"#);
        let e = ev(br#"{"id":"1","source":"s","type":"t","specversion":"1.0","data":null}"#);
        assert!(e.data.is_empty());
        // Not a CloudEvent (a non-string id): delivered as it is.
        let e = ev(br#"{"id":7,"source":"s","type":"t","specversion":"1.0"}"#);
        assert_eq!(e.r#type, RAW_TYPE);
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
