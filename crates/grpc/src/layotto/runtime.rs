//! `spec.proto.runtime.v1.Runtime`: message conversions and Layotto's
//! wording of errors around the shared API layer ([`crate::api`]). APIs not
//! built yet answer UNIMPLEMENTED naming the API.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use layotto_bindings::InvokeRequest;
use layotto_hello::HelloRequest;
use layotto_lock::{KeepAliveRequest, LockStatus, TryLockRequest, UnlockRequest};
use layotto_sequencer::Increment;
use layotto_state::{DeleteRequest, GetRequest, Operation};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{
    concurrency, configuration_item, consistency, delete_request, expire, from_configuration_item,
    set_request,
};
use super::oss::{body_stream, stream_back};
use super::wording::{lookup_status, secret_wording, wording};
use crate::api::pubsub::Publish;
use crate::api::{ApiError, Apis, Lookup};
use crate::pb::runtime as pb;
use crate::pb::runtime::runtime_server::Runtime;
use crate::pubsub::{ActiveStreams, subscribe_stream};
use layotto_oss::{GetObject, ListObjects, PutObject};

type Reply<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Clone)]
pub struct RuntimeService {
    apis: Arc<Apis>,
    streams: Arc<ActiveStreams>,
    /// Turns true when the runtime shuts down: open streams end then.
    closing: tokio::sync::watch::Receiver<bool>,
}

/// File API bodies go back in chunks of at most 100 KiB, as Layotto's.
const FILE_CHUNK: usize = 100 * 1024;

/// Unix seconds as RFC 3339, as the File API's `last_modified` strings.
fn rfc3339(secs: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Component errors of the File API keep their kinds (NotFound for a file
/// that is not there, as Layotto's).
fn file_wording(e: ApiError) -> Status {
    match e {
        ApiError::Lookup(lookup) => lookup_status("file", lookup),
        ApiError::Call(e) => crate::status::to_status(e),
    }
}

impl RuntimeService {
    /// The `file` component of a request and its file name split into
    /// bucket and key (`<bucket>/<key>`, Layotto's convention).
    fn file(
        &self,
        store: &str,
        name: &str,
        unknown: &str,
    ) -> Result<(std::sync::Arc<dyn layotto_oss::ObjectStore>, String, String), Status> {
        let Some((bucket, key)) = name.split_once('/') else {
            return Err(Status::invalid_argument(format!(
                "file store '{store}': name '{}' must be <bucket>/<key>",
                layotto_core::clip(name)
            )));
        };
        let component = self.apis.files.object_store(store, bucket, Some(key)).map_err(|e| match e {
            ApiError::Lookup(_) => {
                Status::invalid_argument(format!("{unknown}: {}", layotto_core::clip(store)))
            }
            ApiError::Call(e) => crate::status::to_status(e),
        })?;
        Ok((component, bucket.to_owned(), key.to_owned()))
    }

    pub fn new(apis: Arc<Apis>, closing: tokio::sync::watch::Receiver<bool>) -> Self {
        Self { apis, streams: Arc::default(), closing }
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

    async fn invoke_service(&self, request: Request<pb::InvokeServiceRequest>) -> Reply<pb::InvokeResponse> {
        let metadata = request.metadata().clone();
        let req = request.into_inner();
        let message = req.message.unwrap_or_default();
        let extension = message.http_extension.unwrap_or_default();
        let call = crate::api::invoke::GrpcInvoke {
            app_id: req.id,
            method: message.method,
            data: message.data.map(|d| d.value).unwrap_or_default(),
            content_type: message.content_type,
            verb: extension.verb,
            query: extension.querystring,
        };
        let (body, content_type) =
            crate::api::invoke::invoke_grpc(&self.apis.invoke, call, &metadata).await?;
        Ok(Response::new(pb::InvokeResponse {
            data: Some(prost_types::Any { type_url: String::new(), value: body }),
            content_type,
        }))
    }

    async fn get_configuration(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Reply<pb::GetConfigurationResponse> {
        let req = request.into_inner();
        let api = &self.apis.configuration;
        let scope = api
            .scope(&req.store_name, &req.app_id, &req.group, &req.label, req.keys)
            .map_err(wording("configuration"))?;
        let items = api.get(&req.store_name, scope).await.map_err(wording("configuration"))?;
        Ok(Response::new(pb::GetConfigurationResponse {
            items: items.into_iter().map(configuration_item).collect(),
        }))
    }

    async fn save_configuration(&self, request: Request<pb::SaveConfigurationRequest>) -> Reply<()> {
        let req = request.into_inner();
        let items = req.items.into_iter().map(from_configuration_item).collect();
        self.apis
            .configuration
            .save(&req.store_name, &req.app_id, items)
            .await
            .map_err(wording("configuration"))?;
        Ok(Response::new(()))
    }

    async fn delete_configuration(&self, request: Request<pb::DeleteConfigurationRequest>) -> Reply<()> {
        let req = request.into_inner();
        let api = &self.apis.configuration;
        let scope = api
            .scope(&req.store_name, &req.app_id, &req.group, &req.label, req.keys)
            .map_err(wording("configuration"))?;
        api.delete(&req.store_name, scope).await.map_err(wording("configuration"))?;
        Ok(Response::new(()))
    }

    type SubscribeConfigurationStream = BoxStream<pb::SubscribeConfigurationResponse>;

    /// Every message on the stream adds a subscription; every later change
    /// in it is sent back. When the client goes, its subscriptions go (and
    /// only its: Layotto stops every subscriber of the store).
    async fn subscribe_configuration(
        &self,
        request: Request<Streaming<pb::SubscribeConfigurationRequest>>,
    ) -> Reply<Self::SubscribeConfigurationStream> {
        let mut requests = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::SubscribeConfigurationResponse, Status>>(64);
        let (apis, mut closing) = (self.apis.clone(), self.closing.clone());
        tokio::spawn(async move {
            let mut forwarders = tokio::task::JoinSet::new();
            loop {
                let next = tokio::select! {
                    _ = crate::closed(&mut closing) => {
                        let _ = tx.send(Err(Status::unavailable("the runtime is shutting down"))).await;
                        break;
                    }
                    next = requests.message() => next,
                    // A forwarder that ended (a subscriber that fell behind) ends the stream.
                    Some(_) = forwarders.join_next(), if !forwarders.is_empty() => break,
                    _ = tx.closed() => break,
                };
                let req = match next {
                    Ok(Some(req)) => req,
                    Ok(None) | Err(_) => break,
                };
                let api = &apis.configuration;
                let scope = api.scope(&req.store_name, &req.app_id, &req.group, &req.label, req.keys);
                let subscription = match scope {
                    Ok(scope) => api.subscribe(&req.store_name, scope).await,
                    Err(e) => Err(e),
                };
                let mut subscription = match subscription {
                    Ok(subscription) => subscription,
                    Err(e) => {
                        let _ = tx.send(Err(wording("configuration")(e))).await;
                        break;
                    }
                };
                let (tx, store_name, app_id) =
                    (tx.clone(), req.store_name, api.app_id(&req.app_id).to_owned());
                forwarders.spawn(async move {
                    while let Some(items) = subscription.changes.recv().await {
                        let response = pb::SubscribeConfigurationResponse {
                            store_name: store_name.clone(),
                            app_id: app_id.clone(),
                            items: items.into_iter().map(configuration_item).collect(),
                        };
                        if tx.send(Ok(response)).await.is_err() {
                            return;
                        }
                    }
                    let reason = if subscription.lagged() {
                        format!(
                            "config store {store_name}: this subscriber fell more than {} changes behind; subscribe again",
                            layotto_configuration::hub::QUEUE
                        )
                    } else {
                        format!("config store {store_name}: the subscription ended")
                    };
                    let _ = tx.send(Err(Status::resource_exhausted(reason))).await;
                });
            }
            // Dropping the forwarders drops their subscriptions.
            forwarders.shutdown().await;
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
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
        let rx = subscribe_stream(&self.apis, &self.streams, self.closing.clone(), initial, requests).await?;
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    type GetFileStream = BoxStream<pb::GetFileResponse>;

    async fn get_file(&self, request: Request<pb::GetFileRequest>) -> Reply<Self::GetFileStream> {
        let req = request.into_inner();
        let (store, bucket, key) = self.file(&req.store_name, &req.name, "not supported store type")?;
        let get = GetObject { bucket, key, ..Default::default() };
        let (_, body) =
            self.apis.files.call(&req.store_name, store.get_object(get)).await.map_err(file_wording)?;
        Ok(Response::new(stream_back(body, FILE_CHUNK, |data| pb::GetFileResponse { data })))
    }

    async fn put_file(&self, request: Request<Streaming<pb::PutFileRequest>>) -> Reply<()> {
        let mut stream = request.into_inner();
        // Layotto answers OK to a stream closed at once.
        let Some(first) = stream.message().await? else { return Ok(Response::new(())) };
        let (store, bucket, key) = self.file(&first.store_name, &first.name, "not support store type")?;
        let put =
            PutObject { bucket, key, metadata: first.metadata.into_iter().collect(), ..Default::default() };
        let body = body_stream(first.data.into(), stream, |m: pb::PutFileRequest| m.data);
        store.put_object(put, body).await.map_err(crate::status::to_status)?;
        Ok(Response::new(()))
    }

    async fn list_file(&self, request: Request<pb::ListFileRequest>) -> Reply<pb::ListFileResp> {
        let req = request.into_inner();
        let file = req.request.unwrap_or_default();
        let (bucket, prefix) = match file.name.split_once('/') {
            Some((bucket, prefix)) => (bucket.to_owned(), prefix.to_owned()),
            None => (file.name.clone(), String::new()),
        };
        let store = self.apis.files.object_store(&file.store_name, &bucket, None).map_err(|e| match e {
            ApiError::Lookup(_) => Status::invalid_argument(format!(
                "not support store type: {}",
                layotto_core::clip(&file.store_name)
            )),
            ApiError::Call(e) => crate::status::to_status(e),
        })?;
        let list =
            ListObjects { bucket, prefix, marker: req.marker, max_keys: req.page_size, ..Default::default() };
        let listing =
            self.apis.files.call(&file.store_name, store.list_objects(list)).await.map_err(file_wording)?;
        Ok(Response::new(pb::ListFileResp {
            files: listing
                .contents
                .into_iter()
                .map(|o| pb::FileInfo {
                    file_name: o.key,
                    size: o.size,
                    last_modified: rfc3339(o.last_modified),
                    metadata: o.metadata.into_iter().collect(),
                })
                .collect(),
            marker: listing.next_marker,
            is_truncated: listing.is_truncated,
        }))
    }

    async fn del_file(&self, request: Request<pb::DelFileRequest>) -> Reply<()> {
        let file = request.into_inner().request.unwrap_or_default();
        let (store, bucket, key) = self.file(&file.store_name, &file.name, "not support store type")?;
        // Layotto's DelFile says NotFound for a file that is not there.
        self.apis
            .files
            .call(&file.store_name, store.head_object(&bucket, &key, ""))
            .await
            .map_err(file_wording)?;
        self.apis
            .files
            .call(&file.store_name, store.delete_object(&bucket, &key, ""))
            .await
            .map_err(file_wording)?;
        Ok(Response::new(()))
    }

    async fn get_file_meta(
        &self,
        request: Request<pb::GetFileMetaRequest>,
    ) -> Reply<pb::GetFileMetaResponse> {
        let file = request.into_inner().request.unwrap_or_default();
        let (store, bucket, key) = self.file(&file.store_name, &file.name, "not support store type")?;
        let info = self
            .apis
            .files
            .call(&file.store_name, store.head_object(&bucket, &key, ""))
            .await
            .map_err(file_wording)?;
        let mut metadata: std::collections::HashMap<String, pb::FileMetaValue> =
            info.metadata.into_iter().map(|(k, v)| (k, pb::FileMetaValue { value: vec![v] })).collect();
        for (k, v) in [("ETag", info.etag), ("Content-Type", info.content_type)] {
            if !v.is_empty() {
                metadata.insert(k.to_owned(), pb::FileMetaValue { value: vec![v] });
            }
        }
        Ok(Response::new(pb::GetFileMetaResponse {
            size: info.size,
            last_modified: rfc3339(info.last_modified),
            response: Some(pb::FileMeta { metadata }),
        }))
    }

    async fn invoke_binding(
        &self,
        request: Request<pb::InvokeBindingRequest>,
    ) -> Reply<pb::InvokeBindingResponse> {
        let req = request.into_inner();
        let invoke = InvokeRequest { operation: req.operation, data: req.data, metadata: req.metadata };
        let response = self.apis.bindings.invoke(&req.name, invoke).await.map_err(wording("bindings"))?;
        Ok(Response::new(pb::InvokeBindingResponse { data: response.data, metadata: response.metadata }))
    }

    async fn get_secret(&self, request: Request<pb::GetSecretRequest>) -> Reply<pb::GetSecretResponse> {
        let req = request.into_inner();
        let secret = self
            .apis
            .secrets
            .get(&req.store_name, &req.key)
            .await
            .map_err(secret_wording(&req.store_name, &req.key))?;
        Ok(Response::new(pb::GetSecretResponse { data: secret.into_iter().collect() }))
    }

    async fn get_bulk_secret(
        &self,
        request: Request<pb::GetBulkSecretRequest>,
    ) -> Reply<pb::GetBulkSecretResponse> {
        let req = request.into_inner();
        let all = self.apis.secrets.bulk_get(&req.store_name).await.map_err(wording("secrets"))?;
        let data = all
            .into_iter()
            .map(|(key, secret)| (key, pb::SecretResponse { secrets: secret.into_iter().collect() }))
            .collect();
        Ok(Response::new(pb::GetBulkSecretResponse { data }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use layotto_state::components::memory::MemoryStore;

    fn service() -> RuntimeService {
        let apis = Apis::default();
        apis.state.components.insert("mem".into(), Arc::new(MemoryStore::new("mem")));
        RuntimeService::new(Arc::new(apis), tokio::sync::watch::channel(false).1)
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
