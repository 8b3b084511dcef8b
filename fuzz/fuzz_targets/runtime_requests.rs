//! Every unary rpc of Layotto's Runtime, sent over a real gRPC connection to
//! a runtime on the embedded defaults (in-memory components, the whole layer
//! stack): as well-formed messages built from the input, and as raw bytes
//! that may not decode. Whatever comes in, the runtime answers (any status)
//! and never panics: libfuzzer-sys aborts on a panic in any thread.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::{Buf, BufMut, Bytes};
use layotto_grpc::pb::runtime as pb;
use layotto_runtime::{Config, Registries};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

/// Names that hit the embedded default components, or anything else.
#[derive(Arbitrary, Debug)]
enum Name {
    Default,
    Other(String),
}

impl Name {
    fn or(self, default: &str) -> String {
        match self {
            Self::Default => default.to_owned(),
            Self::Other(name) => name,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Item {
    key: String,
    value: Vec<u8>,
    etag: Option<String>,
    metadata: HashMap<String, String>,
    concurrency: i32,
    consistency: i32,
}

impl Item {
    fn pb(self) -> pb::StateItem {
        pb::StateItem {
            key: self.key,
            value: self.value,
            etag: self.etag.map(|value| pb::Etag { value }),
            metadata: self.metadata,
            options: Some(pb::StateOptions { concurrency: self.concurrency, consistency: self.consistency }),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Call {
    Raw { method: u8, body: Vec<u8> },
    SayHello { service: Name, name: String },
    GetState { store: Name, key: String, metadata: HashMap<String, String> },
    GetBulkState { store: Name, keys: Vec<String>, metadata: HashMap<String, String> },
    SaveState { store: Name, items: Vec<Item> },
    DeleteState { store: Name, item: Item },
    DeleteBulkState { store: Name, items: Vec<Item> },
    Transaction { store: Name, ops: Vec<(String, Item)>, metadata: HashMap<String, String> },
    Publish { pubsub: Name, topic: String, data: Vec<u8>, content_type: String, metadata: HashMap<String, String> },
    TryLock { store: Name, resource: String, owner: String, expire: i32 },
    Unlock { store: Name, resource: String, owner: String },
    KeepAlive { store: Name, resource: String, owner: String, expire: i32 },
    NextId { store: Name, key: String, increment: i32, metadata: HashMap<String, String> },
}

const METHODS: &[&str] = &[
    "SayHello",
    "InvokeService",
    "GetConfiguration",
    "SaveConfiguration",
    "DeleteConfiguration",
    "TryLock",
    "Unlock",
    "LockKeepAlive",
    "GetNextId",
    "GetState",
    "GetBulkState",
    "SaveState",
    "DeleteState",
    "DeleteBulkState",
    "ExecuteStateTransaction",
    "PublishEvent",
    "ListFile",
    "DelFile",
    "GetFileMeta",
    "InvokeBinding",
    "GetSecret",
    "GetBulkSecret",
];

fn encoded(method: &str, message: impl Message) -> (String, Bytes) {
    (format!("/spec.proto.runtime.v1.Runtime/{method}"), message.encode_to_vec().into())
}

impl Call {
    fn request(self) -> (String, Bytes) {
        match self {
            Self::Raw { method, body } => {
                let method = METHODS[usize::from(method) % METHODS.len()];
                (format!("/spec.proto.runtime.v1.Runtime/{method}"), body.into())
            }
            Self::SayHello { service, name } => encoded(
                "SayHello",
                pb::SayHelloRequest { service_name: service.or("quick_start_demo"), name, data: None },
            ),
            Self::GetState { store, key, metadata } => encoded(
                "GetState",
                pb::GetStateRequest { store_name: store.or("state_demo"), key, consistency: 0, metadata },
            ),
            Self::GetBulkState { store, keys, metadata } => encoded(
                "GetBulkState",
                pb::GetBulkStateRequest { store_name: store.or("state_demo"), keys, parallelism: 0, metadata },
            ),
            Self::SaveState { store, items } => encoded(
                "SaveState",
                pb::SaveStateRequest {
                    store_name: store.or("state_demo"),
                    states: items.into_iter().map(Item::pb).collect(),
                },
            ),
            Self::DeleteState { store, item } => {
                let item = item.pb();
                encoded(
                    "DeleteState",
                    pb::DeleteStateRequest {
                        store_name: store.or("state_demo"),
                        key: item.key,
                        etag: item.etag,
                        options: item.options,
                        metadata: item.metadata,
                    },
                )
            }
            Self::DeleteBulkState { store, items } => encoded(
                "DeleteBulkState",
                pb::DeleteBulkStateRequest {
                    store_name: store.or("state_demo"),
                    states: items.into_iter().map(Item::pb).collect(),
                },
            ),
            Self::Transaction { store, ops, metadata } => encoded(
                "ExecuteStateTransaction",
                pb::ExecuteStateTransactionRequest {
                    store_name: store.or("state_demo"),
                    operations: ops
                        .into_iter()
                        .map(|(kind, item)| pb::TransactionalStateOperation {
                            operation_type: if kind.len() % 2 == 0 { "upsert".into() } else { kind },
                            request: Some(item.pb()),
                        })
                        .collect(),
                    metadata,
                },
            ),
            Self::Publish { pubsub, topic, data, content_type, metadata } => encoded(
                "PublishEvent",
                pb::PublishEventRequest {
                    pubsub_name: pubsub.or("pub_subs_demo"),
                    topic,
                    data,
                    data_content_type: content_type,
                    metadata,
                },
            ),
            Self::TryLock { store, resource, owner, expire } => encoded(
                "TryLock",
                pb::TryLockRequest { store_name: store.or("lock_demo"), resource_id: resource, lock_owner: owner, expire },
            ),
            Self::Unlock { store, resource, owner } => encoded(
                "Unlock",
                pb::UnlockRequest { store_name: store.or("lock_demo"), resource_id: resource, lock_owner: owner },
            ),
            Self::KeepAlive { store, resource, owner, expire } => encoded(
                "LockKeepAlive",
                pb::LockKeepAliveRequest {
                    store_name: store.or("lock_demo"),
                    resource_id: resource,
                    lock_owner: owner,
                    expire,
                },
            ),
            Self::NextId { store, key, increment, metadata } => encoded(
                "GetNextId",
                pb::GetNextIdRequest {
                    store_name: store.or("sequencer_demo"),
                    key,
                    options: Some(pb::SequencerOptions { increment }),
                    metadata,
                },
            ),
        }
    }
}

/// Sends and receives message bodies as they are.
#[derive(Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Self;
    type Decoder = Self;
    fn encoder(&mut self) -> Self {
        Self
    }
    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

struct Harness {
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let channel = rt.block_on(async {
            let mut config = Config::embedded_defaults();
            config.server.grpc = "127.0.0.1:0".parse().unwrap();
            config.server.actuator = "127.0.0.1:0".parse().unwrap();
            let running = layotto_runtime::start(config, Registries::builtin()).await.unwrap();
            let channel = Channel::from_shared(format!("http://{}", running.grpc_addr())).unwrap();
            let channel = channel.connect().await.unwrap();
            // Serves until the fuzzer exits.
            std::mem::forget(running);
            channel
        });
        Harness { rt, channel }
    })
}

fuzz_target!(|call: Call| {
    let harness = harness();
    let (path, body) = call.request();
    harness.rt.block_on(async {
        let mut grpc = tonic::client::Grpc::new(harness.channel.clone());
        grpc.ready().await.unwrap();
        let path = http::uri::PathAndQuery::try_from(path).unwrap();
        let mut request = tonic::Request::new(body);
        request.set_timeout(Duration::from_secs(10));
        let answer = grpc.unary(request, path, RawCodec).await;
        if let Err(status) = answer {
            // Every failure is an answer with a reason; a panic would abort before this.
            assert_ne!(status.code(), tonic::Code::DeadlineExceeded, "the runtime hung: {status:?}");
        }
    });
});
