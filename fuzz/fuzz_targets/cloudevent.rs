//! CloudEvents: what a broker delivers always decodes (as an event or as raw
//! bytes), what a publisher sends is wrapped or refused with an error, and
//! the data of an envelope we made comes back byte for byte.
#![no_main]

use arbitrary::Arbitrary;
use layotto_core::Metadata;
use layotto_pubsub::cloudevent::{Decoded, PublishInput, decode, envelope};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    delivered: Vec<u8>,
    raw_subscription: bool,
    topic: String,
    data: Vec<u8>,
    content_type: String,
    metadata: Vec<(String, String)>,
    traceparent: Option<String>,
}

fuzz_target!(|input: Input| {
    let metadata: Metadata = input.metadata.into_iter().collect();
    let _ = decode("fuzz", &input.topic, &input.delivered, input.raw_subscription, metadata.clone());
    let publish = PublishInput {
        pubsub_name: "fuzz".into(),
        topic: input.topic.clone(),
        data: input.data.clone(),
        content_type: input.content_type.clone(),
        metadata: metadata.clone(),
        traceparent: input.traceparent,
        broker_ttl: false,
        id: None,
    };
    let Ok(bytes) = envelope(&publish) else { return };
    // JSON data is re-serialised and a TTL may expire it: the round trip is
    // exact for everything else.
    let exact = !input.content_type.to_ascii_lowercase().contains("json")
        && !metadata.contains_key("rawPayload")
        && !metadata.contains_key("ttlInSeconds");
    if exact {
        match decode("fuzz", &input.topic, &bytes, false, Metadata::new()) {
            Decoded::Event(event) => assert_eq!(event.data, input.data, "data changed on the way"),
            Decoded::Expired { .. } => panic!("an envelope without a TTL expired"),
        }
    }
});
