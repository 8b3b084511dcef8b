//! `spec.proto.runtime.v1.Runtime`: validates requests, maps protobuf to the
//! API crates' plain types and back. APIs not built yet answer UNIMPLEMENTED.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use layotto_hello::{Hello, HelloRequest};
use layotto_lock::{KeepAliveRequest, LockStatus, LockStore, TryLockRequest, UnlockRequest};
use layotto_pubsub::PublishRequest;
use layotto_pubsub::cloudevent::{PublishInput, envelope};
use layotto_sequencer::{Increment, SequencerService};
use layotto_state::{Concurrency, Consistency, DeleteRequest, GetRequest, Operation, SetRequest, StateStore};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::pb::runtime as pb;
use crate::pb::runtime::runtime_server::Runtime;
use crate::pubsub::{ActiveStreams, PubSubComponent, open_stream, serve_stream};
use crate::status::to_status;

type Reply<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The components the Runtime service serves, by the names clients use.
#[derive(Clone, Default)]
pub struct Components {
    pub hellos: HashMap<String, Arc<dyn Hello>>,
    pub state: HashMap<String, Arc<dyn StateStore>>,
    pub pubsubs: HashMap<String, PubSubComponent>,
    /// Lock stores, already behind Layotto's key prefix and validation.
    pub locks: HashMap<String, Arc<dyn LockStore>>,
    pub sequencers: HashMap<String, Arc<SequencerService>>,
}

#[derive(Clone)]
pub struct RuntimeService {
    components: Arc<Components>,
    max_request_bytes: usize,
    streams: Arc<ActiveStreams>,
}

impl RuntimeService {
    pub fn new(components: Arc<Components>, max_request_bytes: usize) -> Self {
        Self { components, max_request_bytes, streams: Arc::default() }
    }

    fn lock_store(&self, name: &str) -> Result<&Arc<dyn LockStore>, Status> {
        if self.components.locks.is_empty() {
            return Err(Status::failed_precondition("lock store is not configured"));
        }
        self.components
            .locks
            .get(name)
            .ok_or_else(|| Status::invalid_argument(format!("lock store {name} not found")))
    }

    fn sequencer(&self, name: &str) -> Result<&Arc<SequencerService>, Status> {
        if self.components.sequencers.is_empty() {
            return Err(Status::failed_precondition("Sequencer store is not configured"));
        }
        self.components
            .sequencers
            .get(name)
            .ok_or_else(|| Status::invalid_argument(format!("Sequencer store {name} not found")))
    }

    fn pubsub(&self, name: &str, topic: &str) -> Result<&PubSubComponent, Status> {
        if name.is_empty() {
            return Err(Status::invalid_argument("pubsub name is empty"));
        }
        if topic.is_empty() {
            return Err(Status::invalid_argument(format!("topic is empty in pubsub {name}")));
        }
        self.components.pubsubs.get(name).ok_or_else(|| {
            let mut known: Vec<&str> = self.components.pubsubs.keys().map(String::as_str).collect();
            known.sort_unstable();
            Status::invalid_argument(format!(
                "pubsub {name} is not found; configured: {}",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ))
        })
    }

    fn state_store(&self, name: &str) -> Result<&Arc<dyn StateStore>, Status> {
        if self.components.state.is_empty() {
            return Err(Status::failed_precondition("state store is not configured"));
        }
        if name.is_empty() {
            return Err(Status::invalid_argument("state store name is empty"));
        }
        self.components.state.get(name).ok_or_else(|| {
            let mut known: Vec<&str> = self.components.state.keys().map(String::as_str).collect();
            known.sort_unstable();
            Status::invalid_argument(format!(
                "state store {name} is not found; configured: {}",
                known.join(", ")
            ))
        })
    }

    /// Rejects a request over the size limit with a message naming the store and key.
    fn check_size(&self, req: &impl Message, store: &str, key: &str) -> Result<(), Status> {
        let len = req.encoded_len();
        if len > self.max_request_bytes {
            return Err(Status::resource_exhausted(format!(
                "state store '{store}': key '{key}': request of {len} bytes exceeds the limit of {} bytes",
                self.max_request_bytes
            )));
        }
        Ok(())
    }
}

fn unimplemented_api<T>(api: &str, rpc: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!("{rpc}: the {api} API is not implemented in this build of layotto-rs")))
}

fn consistency(value: i32) -> Consistency {
    match pb::state_options::StateConsistency::try_from(value) {
        Ok(pb::state_options::StateConsistency::ConsistencyEventual) => Consistency::Eventual,
        Ok(pb::state_options::StateConsistency::ConsistencyStrong) => Consistency::Strong,
        _ => Consistency::Unspecified,
    }
}

fn concurrency(value: i32) -> Concurrency {
    match pb::state_options::StateConcurrency::try_from(value) {
        Ok(pb::state_options::StateConcurrency::ConcurrencyFirstWrite) => Concurrency::FirstWrite,
        Ok(pb::state_options::StateConcurrency::ConcurrencyLastWrite) => Concurrency::LastWrite,
        _ => Concurrency::Unspecified,
    }
}

fn set_request(item: pb::StateItem) -> SetRequest {
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

fn delete_request(item: pb::StateItem) -> DeleteRequest {
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
fn expire(seconds: i32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

fn first_key(states: &[pb::StateItem]) -> &str {
    states.first().map_or("", |s| s.key.as_str())
}

#[tonic::async_trait]
impl Runtime for RuntimeService {
    async fn say_hello(&self, request: Request<pb::SayHelloRequest>) -> Reply<pb::SayHelloResponse> {
        let req = request.into_inner();
        let hello = self.components.hellos.get(&req.service_name).ok_or_else(|| {
            Status::unknown(format!(
                "no instance found: hello service '{}' is not configured",
                req.service_name
            ))
        })?;
        let reply = hello.say_hello(HelloRequest { name: req.name }).await.map_err(to_status)?;
        Ok(Response::new(pb::SayHelloResponse { hello: reply.hello, data: req.data }))
    }

    async fn get_state(&self, request: Request<pb::GetStateRequest>) -> Reply<pb::GetStateResponse> {
        let req = request.into_inner();
        let store = self.state_store(&req.store_name)?;
        let get =
            GetRequest { key: req.key, consistency: consistency(req.consistency), metadata: req.metadata };
        let value = store.get(get).await.map_err(to_status)?;
        Ok(Response::new(value.map_or_else(pb::GetStateResponse::default, |v| pb::GetStateResponse {
            data: v.data,
            etag: v.etag.unwrap_or_default(),
            metadata: v.metadata,
        })))
    }

    async fn get_bulk_state(
        &self,
        request: Request<pb::GetBulkStateRequest>,
    ) -> Reply<pb::GetBulkStateResponse> {
        let req = request.into_inner();
        let store = self.state_store(&req.store_name)?;
        if req.keys.is_empty() {
            return Ok(Response::new(pb::GetBulkStateResponse::default()));
        }
        let items = store.bulk_get(req.keys, req.metadata).await.map_err(to_status)?;
        let items = items
            .into_iter()
            .map(|item| {
                let value = item.value.unwrap_or_default();
                pb::BulkStateItem {
                    key: item.key,
                    data: value.data,
                    etag: value.etag.unwrap_or_default(),
                    error: item.error.unwrap_or_default(),
                    metadata: value.metadata,
                }
            })
            .collect();
        Ok(Response::new(pb::GetBulkStateResponse { items }))
    }

    async fn save_state(&self, request: Request<pb::SaveStateRequest>) -> Reply<()> {
        let req = request.into_inner();
        let store = self.state_store(&req.store_name)?;
        self.check_size(&req, &req.store_name, first_key(&req.states))?;
        if req.states.is_empty() {
            return Ok(Response::new(()));
        }
        let sets = req.states.into_iter().map(set_request).collect();
        store.bulk_set(sets).await.map_err(to_status)?;
        Ok(Response::new(()))
    }

    async fn delete_state(&self, request: Request<pb::DeleteStateRequest>) -> Reply<()> {
        let req = request.into_inner();
        let store = self.state_store(&req.store_name)?;
        let options = req.options.unwrap_or_default();
        let delete = DeleteRequest {
            key: req.key,
            etag: req.etag.map(|e| e.value),
            metadata: req.metadata,
            concurrency: concurrency(options.concurrency),
            consistency: consistency(options.consistency),
        };
        store.delete(delete).await.map_err(to_status)?;
        Ok(Response::new(()))
    }

    async fn delete_bulk_state(&self, request: Request<pb::DeleteBulkStateRequest>) -> Reply<()> {
        let req = request.into_inner();
        let store = self.state_store(&req.store_name)?;
        if req.states.is_empty() {
            return Ok(Response::new(()));
        }
        let deletes = req.states.into_iter().map(delete_request).collect();
        store.bulk_delete(deletes).await.map_err(to_status)?;
        Ok(Response::new(()))
    }

    async fn execute_state_transaction(
        &self,
        request: Request<pb::ExecuteStateTransactionRequest>,
    ) -> Reply<()> {
        let req = request.into_inner();
        let store = self.state_store(&req.store_name)?;
        let first = req.operations.first().and_then(|o| o.request.as_ref()).map_or("", |r| r.key.as_str());
        self.check_size(&req, &req.store_name, first)?;
        if !store.features().transactions {
            return Err(Status::unimplemented(format!(
                "state store '{}' does not support transactions",
                req.store_name
            )));
        }
        let mut ops = Vec::with_capacity(req.operations.len());
        for op in req.operations {
            // Layotto skips operations without a request.
            let Some(item) = op.request else { continue };
            ops.push(match op.operation_type.as_str() {
                "upsert" => Operation::Upsert(set_request(item)),
                "delete" => Operation::Delete(delete_request(item)),
                other => {
                    return Err(Status::unimplemented(format!(
                        "state store '{}': key '{}': operation type '{other}' is not supported (use upsert or delete)",
                        req.store_name, item.key
                    )));
                }
            });
        }
        store.transact(ops, req.metadata).await.map_err(to_status)?;
        Ok(Response::new(()))
    }

    async fn invoke_service(&self, _: Request<pb::InvokeServiceRequest>) -> Reply<pb::InvokeResponse> {
        unimplemented_api("service invocation", "InvokeService")
    }

    async fn get_configuration(
        &self,
        _: Request<pb::GetConfigurationRequest>,
    ) -> Reply<pb::GetConfigurationResponse> {
        unimplemented_api("configuration", "GetConfiguration")
    }

    async fn save_configuration(&self, _: Request<pb::SaveConfigurationRequest>) -> Reply<()> {
        unimplemented_api("configuration", "SaveConfiguration")
    }

    async fn delete_configuration(&self, _: Request<pb::DeleteConfigurationRequest>) -> Reply<()> {
        unimplemented_api("configuration", "DeleteConfiguration")
    }

    type SubscribeConfigurationStream = BoxStream<pb::SubscribeConfigurationResponse>;

    async fn subscribe_configuration(
        &self,
        _: Request<Streaming<pb::SubscribeConfigurationRequest>>,
    ) -> Reply<Self::SubscribeConfigurationStream> {
        unimplemented_api("configuration", "SubscribeConfiguration")
    }

    async fn try_lock(&self, request: Request<pb::TryLockRequest>) -> Reply<pb::TryLockResponse> {
        let req = request.into_inner();
        let store = self.lock_store(&req.store_name)?;
        let try_lock = TryLockRequest {
            resource_id: req.resource_id,
            lock_owner: req.lock_owner,
            expire: expire(req.expire),
        };
        let success = store.try_lock(try_lock).await.map_err(to_status)?;
        Ok(Response::new(pb::TryLockResponse { success }))
    }

    async fn unlock(&self, request: Request<pb::UnlockRequest>) -> Reply<pb::UnlockResponse> {
        use pb::unlock_response::Status as S;
        let req = request.into_inner();
        let store = self.lock_store(&req.store_name)?;
        let unlock = UnlockRequest { resource_id: req.resource_id, lock_owner: req.lock_owner };
        let status = match store.unlock(unlock).await.map_err(to_status)? {
            LockStatus::Success => S::Success,
            LockStatus::LockUnexist => S::LockUnexist,
            LockStatus::LockBelongToOthers => S::LockBelongToOthers,
        };
        Ok(Response::new(pb::UnlockResponse { status: status.into() }))
    }

    async fn lock_keep_alive(
        &self,
        request: Request<pb::LockKeepAliveRequest>,
    ) -> Reply<pb::LockKeepAliveResponse> {
        use pb::lock_keep_alive_response::Status as S;
        let req = request.into_inner();
        let store = self.lock_store(&req.store_name)?;
        let keep_alive = KeepAliveRequest {
            resource_id: req.resource_id,
            lock_owner: req.lock_owner,
            expire: expire(req.expire),
        };
        let status = match store.keep_alive(keep_alive).await.map_err(to_status)? {
            LockStatus::Success => S::Success,
            LockStatus::LockUnexist => S::LockUnexist,
            LockStatus::LockBelongToOthers => S::LockBelongToOthers,
        };
        Ok(Response::new(pb::LockKeepAliveResponse { status: status.into() }))
    }

    async fn get_next_id(&self, request: Request<pb::GetNextIdRequest>) -> Reply<pb::GetNextIdResponse> {
        let req = request.into_inner();
        let sequencer = self.sequencer(&req.store_name)?;
        let strong =
            req.options.is_some_and(|o| o.increment == pb::sequencer_options::AutoIncrement::Strong as i32);
        let increment = if strong { Increment::Strong } else { Increment::Weak };
        let next_id = sequencer.next_id(&req.key, increment).await.map_err(to_status)?;
        Ok(Response::new(pb::GetNextIdResponse { next_id }))
    }

    async fn publish_event(&self, request: Request<pb::PublishEventRequest>) -> Reply<()> {
        let traceparent =
            request.metadata().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let req = request.into_inner();
        let pubsub = self.pubsub(&req.pubsub_name, &req.topic)?;
        let input = PublishInput {
            pubsub_name: req.pubsub_name,
            topic: req.topic,
            data: req.data,
            content_type: req.data_content_type,
            metadata: req.metadata,
            traceparent,
            broker_ttl: pubsub.component.features().message_ttl,
        };
        let data = envelope(&input).map_err(to_status)?;
        let publish = PublishRequest { topic: input.topic, data, metadata: input.metadata };
        pubsub.component.publish(publish).await.map_err(to_status)?;
        Ok(Response::new(()))
    }

    type SubscribeTopicEventsStream = BoxStream<pb::SubscribeTopicEventsResponse>;

    async fn subscribe_topic_events(
        &self,
        request: Request<Streaming<pb::SubscribeTopicEventsRequest>>,
    ) -> Reply<Self::SubscribeTopicEventsStream> {
        use pb::subscribe_topic_events_request::SubscribeTopicEventsRequestType as In;
        let mut requests = request.into_inner();
        let initial = match requests.message().await? {
            Some(pb::SubscribeTopicEventsRequest {
                subscribe_topic_events_request_type: Some(In::InitialRequest(initial)),
            }) => initial,
            _ => return Err(Status::invalid_argument("initial request is required")),
        };
        if initial.pubsub_name.is_empty() {
            return Err(Status::invalid_argument("pubsubName is required"));
        }
        if initial.topic.is_empty() {
            return Err(Status::invalid_argument("topic is required"));
        }
        let name = initial.pubsub_name.clone();
        let component = self
            .components
            .pubsubs
            .get(&name)
            .cloned()
            .ok_or_else(|| Status::invalid_argument(format!("pubsub {name} is not initialized.")))?;
        if !self.streams.claim(&name, &initial.topic) {
            return Err(Status::already_exists(format!(
                "already subscribed to pubsub \"{name}\" topic \"{}\"",
                initial.topic
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let topic = initial.topic.clone();
        let open = match open_stream(&name, &component, initial, tx.clone()).await {
            Ok(open) => open,
            Err(e) => {
                self.streams.release(&name, &topic);
                return Err(to_status(e));
            }
        };
        let first = pb::SubscribeTopicEventsResponse {
            subscribe_topic_events_response_type: Some(
                pb::subscribe_topic_events_response::SubscribeTopicEventsResponseType::InitialResponse(
                    pb::SubscribeTopicEventsResponseInitial {},
                ),
            ),
        };
        let _ = tx.send(Ok(first)).await;
        tokio::spawn(serve_stream(open, requests, tx, self.streams.clone()));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    type GetFileStream = BoxStream<pb::GetFileResponse>;

    async fn get_file(&self, _: Request<pb::GetFileRequest>) -> Reply<Self::GetFileStream> {
        unimplemented_api("file", "GetFile")
    }

    async fn put_file(&self, _: Request<Streaming<pb::PutFileRequest>>) -> Reply<()> {
        unimplemented_api("file", "PutFile")
    }

    async fn list_file(&self, _: Request<pb::ListFileRequest>) -> Reply<pb::ListFileResp> {
        unimplemented_api("file", "ListFile")
    }

    async fn del_file(&self, _: Request<pb::DelFileRequest>) -> Reply<()> {
        unimplemented_api("file", "DelFile")
    }

    async fn get_file_meta(&self, _: Request<pb::GetFileMetaRequest>) -> Reply<pb::GetFileMetaResponse> {
        unimplemented_api("file", "GetFileMeta")
    }

    async fn invoke_binding(&self, _: Request<pb::InvokeBindingRequest>) -> Reply<pb::InvokeBindingResponse> {
        unimplemented_api("bindings", "InvokeBinding")
    }

    async fn get_secret(&self, _: Request<pb::GetSecretRequest>) -> Reply<pb::GetSecretResponse> {
        unimplemented_api("secrets", "GetSecret")
    }

    async fn get_bulk_secret(
        &self,
        _: Request<pb::GetBulkSecretRequest>,
    ) -> Reply<pb::GetBulkSecretResponse> {
        unimplemented_api("secrets", "GetBulkSecret")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layotto_state::components::memory::MemoryStore;

    fn service() -> RuntimeService {
        let mut components = Components::default();
        components.state.insert("mem".into(), Arc::new(MemoryStore::new("mem")));
        RuntimeService::new(Arc::new(components), 1024)
    }

    #[tokio::test]
    async fn unknown_store_and_oversized_request() {
        let svc = service();
        let err = svc
            .get_state(Request::new(pb::GetStateRequest { store_name: "nope".into(), ..Default::default() }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("nope"));
        let big = pb::StateItem { key: "k".into(), value: vec![0; 2048], ..Default::default() };
        let err = svc
            .save_state(Request::new(pb::SaveStateRequest { store_name: "mem".into(), states: vec![big] }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("'mem'") && err.message().contains("'k'"), "{}", err.message());
    }
}
