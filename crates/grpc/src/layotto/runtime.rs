//! `spec.proto.runtime.v1.Runtime`: message conversions and Layotto's
//! wording of errors around the shared API layer ([`crate::api`]). APIs not
//! built yet answer UNIMPLEMENTED naming the API.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use layotto_hello::HelloRequest;
use layotto_lock::{KeepAliveRequest, LockStatus, TryLockRequest, UnlockRequest};
use layotto_sequencer::Increment;
use layotto_state::{DeleteRequest, GetRequest, Operation};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{concurrency, consistency, delete_request, expire, set_request};
use super::wording::{lookup_status, unimplemented_api, wording};
use crate::api::pubsub::Publish;
use crate::api::{ApiError, Apis, Lookup};
use crate::pb::runtime as pb;
use crate::pb::runtime::runtime_server::Runtime;
use crate::pubsub::{ActiveStreams, open_stream, serve_stream};

type Reply<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Clone)]
pub struct RuntimeService {
    apis: Arc<Apis>,
    streams: Arc<ActiveStreams>,
}

impl RuntimeService {
    pub fn new(apis: Arc<Apis>) -> Self {
        Self { apis, streams: Arc::default() }
    }
}

#[tonic::async_trait]
impl Runtime for RuntimeService {
    async fn say_hello(&self, request: Request<pb::SayHelloRequest>) -> Reply<pb::SayHelloResponse> {
        let req = request.into_inner();
        let reply = match self.apis.hello.say_hello(&req.service_name, HelloRequest { name: req.name }).await
        {
            Err(ApiError::Lookup(_)) => {
                return Err(lookup_status(
                    "hello",
                    Lookup::NotFound { name: req.service_name, known: Vec::new() },
                ));
            }
            other => other.map_err(wording("hello"))?,
        };
        Ok(Response::new(pb::SayHelloResponse { hello: reply.hello, data: req.data }))
    }

    async fn get_state(&self, request: Request<pb::GetStateRequest>) -> Reply<pb::GetStateResponse> {
        let req = request.into_inner();
        let get =
            GetRequest { key: req.key, consistency: consistency(req.consistency), metadata: req.metadata };
        let value = self.apis.state.get(&req.store_name, get).await.map_err(wording("state"))?;
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
        let items = self
            .apis
            .state
            .bulk_get(&req.store_name, req.keys, req.metadata)
            .await
            .map_err(wording("state"))?;
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
        let sets = req.states.into_iter().map(set_request).collect();
        self.apis.state.bulk_set(&req.store_name, sets).await.map_err(wording("state"))?;
        Ok(Response::new(()))
    }

    async fn delete_state(&self, request: Request<pb::DeleteStateRequest>) -> Reply<()> {
        let req = request.into_inner();
        let options = req.options.unwrap_or_default();
        let delete = DeleteRequest {
            key: req.key,
            etag: req.etag.map(|e| e.value),
            metadata: req.metadata,
            concurrency: concurrency(options.concurrency),
            consistency: consistency(options.consistency),
        };
        self.apis.state.delete(&req.store_name, delete).await.map_err(wording("state"))?;
        Ok(Response::new(()))
    }

    async fn delete_bulk_state(&self, request: Request<pb::DeleteBulkStateRequest>) -> Reply<()> {
        let req = request.into_inner();
        let deletes = req.states.into_iter().map(delete_request).collect();
        self.apis.state.bulk_delete(&req.store_name, deletes).await.map_err(wording("state"))?;
        Ok(Response::new(()))
    }

    async fn execute_state_transaction(
        &self,
        request: Request<pb::ExecuteStateTransactionRequest>,
    ) -> Reply<()> {
        let req = request.into_inner();
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
        self.apis.state.transact(&req.store_name, ops, req.metadata).await.map_err(wording("state"))?;
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
        let try_lock = TryLockRequest {
            resource_id: req.resource_id,
            lock_owner: req.lock_owner,
            expire: expire(req.expire),
        };
        let success = self.apis.lock.try_lock(&req.store_name, try_lock).await.map_err(wording("lock"))?;
        Ok(Response::new(pb::TryLockResponse { success }))
    }

    async fn unlock(&self, request: Request<pb::UnlockRequest>) -> Reply<pb::UnlockResponse> {
        use pb::unlock_response::Status as S;
        let req = request.into_inner();
        let unlock = UnlockRequest { resource_id: req.resource_id, lock_owner: req.lock_owner };
        let status = match self.apis.lock.unlock(&req.store_name, unlock).await.map_err(wording("lock"))? {
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
        let keep_alive = KeepAliveRequest {
            resource_id: req.resource_id,
            lock_owner: req.lock_owner,
            expire: expire(req.expire),
        };
        let status =
            match self.apis.lock.keep_alive(&req.store_name, keep_alive).await.map_err(wording("lock"))? {
                LockStatus::Success => S::Success,
                LockStatus::LockUnexist => S::LockUnexist,
                LockStatus::LockBelongToOthers => S::LockBelongToOthers,
            };
        Ok(Response::new(pb::LockKeepAliveResponse { status: status.into() }))
    }

    async fn get_next_id(&self, request: Request<pb::GetNextIdRequest>) -> Reply<pb::GetNextIdResponse> {
        let req = request.into_inner();
        let strong =
            req.options.is_some_and(|o| o.increment == pb::sequencer_options::AutoIncrement::Strong as i32);
        let increment = if strong { Increment::Strong } else { Increment::Weak };
        let next_id = self
            .apis
            .sequencer
            .next_id(&req.store_name, &req.key, increment)
            .await
            .map_err(wording("sequencer"))?;
        Ok(Response::new(pb::GetNextIdResponse { next_id }))
    }

    async fn publish_event(&self, request: Request<pb::PublishEventRequest>) -> Reply<()> {
        let traceparent =
            request.metadata().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let req = request.into_inner();
        let publish = Publish {
            pubsub_name: req.pubsub_name,
            topic: req.topic,
            data: req.data,
            data_content_type: req.data_content_type,
            metadata: req.metadata,
            traceparent,
        };
        self.apis.pubsub.publish(publish).await.map_err(wording("pubsub"))?;
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
        if self.apis.pubsub.components.get(&name).is_err() {
            return Err(Status::invalid_argument(format!("pubsub {name} is not initialized.")));
        }
        if !self.streams.claim(&name, &initial.topic) {
            return Err(Status::already_exists(format!(
                "already subscribed to pubsub \"{name}\" topic \"{}\"",
                initial.topic
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let topic = initial.topic.clone();
        let open = match open_stream(&self.apis.pubsub, initial, tx.clone()).await {
            Ok(open) => open,
            Err(e) => {
                self.streams.release(&name, &topic);
                return Err(wording("pubsub")(e));
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
    #![allow(clippy::unwrap_used)]
    use super::*;
    use layotto_state::components::memory::MemoryStore;

    fn service() -> RuntimeService {
        let mut apis = Apis::default();
        apis.state.components.insert("mem".into(), Arc::new(MemoryStore::new("mem")));
        RuntimeService::new(Arc::new(apis))
    }

    #[tokio::test]
    async fn layotto_wording_of_missing_components() {
        let svc = service();
        let err = svc
            .get_state(Request::new(pb::GetStateRequest { store_name: "nope".into(), ..Default::default() }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert_eq!(err.message(), "state store nope is not found; configured: mem");
        let err = svc.try_lock(Request::new(pb::TryLockRequest::default())).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (tonic::Code::FailedPrecondition, "lock store is not configured")
        );
        let err = svc.get_next_id(Request::new(pb::GetNextIdRequest::default())).await.unwrap_err();
        assert_eq!(err.message(), "Sequencer store is not configured");
        let err = svc
            .say_hello(Request::new(pb::SayHelloRequest { service_name: "x".into(), ..Default::default() }))
            .await
            .unwrap_err();
        assert_eq!(err.message(), "no instance found: hello service 'x' is not configured");
        let publish =
            pb::PublishEventRequest { pubsub_name: "p".into(), topic: "t".into(), ..Default::default() };
        let err = svc.publish_event(Request::new(publish)).await.unwrap_err();
        assert_eq!(err.message(), "pubsub p is not found; configured: none");
    }
}
