//! `dapr.proto.runtime.v1.Dapr`. Dapr's state enums carry the same numbers
//! as Layotto's, so the Layotto conversions serve both.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use layotto_bindings::InvokeRequest;
use layotto_core::ErrorKind;
use layotto_lock::{LockStatus, TryLockRequest, UnlockRequest};
use layotto_state::{DeleteRequest, GetRequest, Operation, SetRequest};
use parking_lot::Mutex;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};

use super::info::DaprInfo;
use crate::api::invoke::{GrpcInvoke, invoke_grpc};
use crate::api::pubsub::Publish;
use crate::api::{ApiError, Apis, Lookup};
use crate::layotto::convert::{concurrency, consistency};
use crate::pb::dapr::common::v1 as common;
use crate::pb::dapr::runtime::v1 as pb;
use crate::pb::dapr::runtime::v1::dapr_server::Dapr;
use crate::pb::dapr::runtime::v1::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as DaprIn;
use crate::pb::runtime as layotto;
use crate::pubsub::{ActiveStreams, subscribe_stream};
use crate::status::to_status;

type Reply<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Clone)]
pub struct DaprService {
    apis: Arc<Apis>,
    info: Arc<DaprInfo>,
    /// Open configuration subscriptions by id, for UnsubscribeConfiguration.
    config_subscriptions: Arc<Mutex<HashMap<String, tokio::sync::oneshot::Sender<()>>>>,
    /// Streaming subscriptions, one per (pubsub, topic).
    streams: Arc<ActiveStreams>,
    closing: tokio::sync::watch::Receiver<bool>,
}

impl DaprService {
    pub fn new(apis: Arc<Apis>, info: Arc<DaprInfo>, closing: tokio::sync::watch::Receiver<bool>) -> Self {
        Self { apis, info, config_subscriptions: Arc::default(), streams: Arc::default(), closing }
    }
}

/// Dapr's words for a call that found no component, per building block
/// (daprd's `pkg/messages`): unknown store INVALID_ARGUMENT, none
/// configured FAILED_PRECONDITION; each with the `google.rpc.ErrorInfo`
/// (domain `dapr.io`) whose reason Dapr's SDKs read as the error code.
fn wording(noun: &'static str) -> impl Fn(ApiError) -> Status {
    move |e| {
        let block = reason_block(noun);
        let (code, message, reason) = match e {
            ApiError::Call(e) => {
                let reason = match e.kind() {
                    ErrorKind::EtagMismatch => Some("DAPR_STATE_ETAG_MISMATCH".to_owned()),
                    ErrorKind::InvalidEtag => Some("DAPR_STATE_ETAG_INVALID".to_owned()),
                    _ => None,
                };
                let status = to_status(e);
                (status.code(), status.message().to_owned(), reason)
            }
            ApiError::Lookup(Lookup::NotConfigured) => (
                Code::FailedPrecondition,
                format!("{noun} is not configured"),
                Some(format!("DAPR_{block}_NOT_CONFIGURED")),
            ),
            ApiError::Lookup(Lookup::NoName) => (
                Code::InvalidArgument,
                format!("{noun} name is empty"),
                Some(format!("DAPR_{block}_NAME_EMPTY")),
            ),
            ApiError::Lookup(Lookup::NotFound { name, .. }) => (
                Code::InvalidArgument,
                format!("{noun} {} is not found", layotto_core::clip(&name)),
                Some(format!("DAPR_{block}_NOT_FOUND")),
            ),
        };
        match reason {
            Some(reason) => {
                let details =
                    ErrorDetails::with_error_info(reason, "dapr.io", HashMap::<String, String>::new());
                Status::with_error_details(code, message, details)
            }
            None => Status::new(code, message),
        }
    }
}

/// The building block's part of Dapr's error reasons.
fn reason_block(noun: &str) -> &'static str {
    match noun {
        "state store" => "STATE",
        "pubsub" => "PUBSUB",
        "lock store" => "LOCK",
        "secret store" => "SECRET_STORE",
        "configuration store" => "CONFIGURATION",
        "output binding" => "BINDING",
        _ => "COMPONENT",
    }
}

/// What a Dapr app's answer to `OnBindingEvent` asks for: its `states`
/// saved in `store_name`, its `data` sent to each output binding in `to`
/// (operation `create`), as daprd does.
pub async fn binding_follow_up(apis: &Apis, response: pb::BindingEventResponse) -> Result<(), String> {
    if !response.states.is_empty() {
        let items = response.states.into_iter().map(set_request).collect();
        apis.state.bulk_set(&response.store_name, items).await.map_err(|e| {
            format!(
                "saving the app's states in '{}': {}",
                response.store_name,
                wording("state store")(e).message()
            )
        })?;
    }
    for target in response.to {
        let request = InvokeRequest {
            operation: "create".into(),
            data: response.data.clone(),
            metadata: Default::default(),
        };
        apis.bindings.invoke(&target, request).await.map_err(|e| {
            format!(
                "sending the app's data to binding '{target}': {}",
                wording("output binding")(e).message()
            )
        })?;
    }
    Ok(())
}

fn set_request(item: common::StateItem) -> SetRequest {
    let options = item.options.unwrap_or_default();
    SetRequest {
        key: item.key,
        value: item.value,
        etag: item.etag.map(|e| e.value).filter(|e| !e.is_empty()),
        metadata: item.metadata,
        concurrency: concurrency(options.concurrency),
        consistency: consistency(options.consistency),
    }
}

fn delete_request(item: common::StateItem) -> DeleteRequest {
    let options = item.options.unwrap_or_default();
    DeleteRequest {
        key: item.key,
        etag: item.etag.map(|e| e.value).filter(|e| !e.is_empty()),
        metadata: item.metadata,
        concurrency: concurrency(options.concurrency),
        consistency: consistency(options.consistency),
    }
}

fn config_items(
    items: Vec<layotto_configuration::ConfigurationItem>,
) -> HashMap<String, common::ConfigurationItem> {
    items
        .into_iter()
        .map(|item| {
            let version = item.metadata.get("version").cloned().unwrap_or_default();
            let value = common::ConfigurationItem {
                value: item.content,
                version,
                metadata: item.metadata.into_iter().collect(),
            };
            (item.key, value)
        })
        .collect()
}

impl DaprService {
    async fn get_configuration_items(
        &self,
        req: pb::GetConfigurationRequest,
    ) -> Reply<pb::GetConfigurationResponse> {
        let api = &self.apis.configuration;
        let scope =
            api.scope(&req.store_name, "", "", "", req.keys).map_err(wording("configuration store"))?;
        let items = api.get(&req.store_name, scope).await.map_err(wording("configuration store"))?;
        Ok(Response::new(pb::GetConfigurationResponse { items: config_items(items) }))
    }

    /// The first message carries the subscription's id at once (the Python
    /// SDK waits 5 s for it); then every change in the store's scope.
    async fn subscribe_configuration_stream(
        &self,
        req: pb::SubscribeConfigurationRequest,
    ) -> Reply<BoxStream<pb::SubscribeConfigurationResponse>> {
        let api = &self.apis.configuration;
        let scope =
            api.scope(&req.store_name, "", "", "", req.keys).map_err(wording("configuration store"))?;
        let mut subscription =
            api.subscribe(&req.store_name, scope).await.map_err(wording("configuration store"))?;
        let id = uuid::Uuid::new_v4().to_string();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
        self.config_subscriptions.lock().insert(id.clone(), stop_tx);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let _ = tx.try_send(Ok(pb::SubscribeConfigurationResponse { id: id.clone(), items: HashMap::new() }));
        let (subscriptions, mut closing) = (self.config_subscriptions.clone(), self.closing.clone());
        tokio::spawn(async move {
            loop {
                let items = tokio::select! {
                    _ = &mut stop_rx => break,
                    _ = crate::closed(&mut closing) => {
                        let _ = tx.send(Err(Status::unavailable("the runtime is shutting down"))).await;
                        break;
                    }
                    _ = tx.closed() => break,
                    items = subscription.changes.recv() => items,
                };
                let Some(items) = items else {
                    let _ = tx
                        .send(Err(Status::resource_exhausted("the configuration subscription ended")))
                        .await;
                    break;
                };
                let response =
                    pb::SubscribeConfigurationResponse { id: id.clone(), items: config_items(items) };
                if tx.send(Ok(response)).await.is_err() {
                    break;
                }
            }
            subscriptions.lock().remove(&id);
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    fn unsubscribe(&self, req: pb::UnsubscribeConfigurationRequest) -> pb::UnsubscribeConfigurationResponse {
        match self.config_subscriptions.lock().remove(&req.id) {
            Some(stop) => {
                let _ = stop.send(());
                pb::UnsubscribeConfigurationResponse { ok: true, message: String::new() }
            }
            None => pb::UnsubscribeConfigurationResponse {
                ok: false,
                message: format!("subscription {} is not found", layotto_core::clip(&req.id)),
            },
        }
    }

    async fn bulk_publish(&self, req: pb::BulkPublishRequest) -> Reply<pb::BulkPublishResponse> {
        // Every entry is published; the ones that fail are listed, as Dapr does.
        self.apis.pubsub.component(&req.pubsub_name, &req.topic).map_err(wording("pubsub"))?;
        let mut failed = Vec::new();
        for entry in req.entries {
            let mut metadata = req.metadata.clone();
            metadata.extend(entry.metadata);
            let publish = Publish {
                pubsub_name: req.pubsub_name.clone(),
                topic: req.topic.clone(),
                data: entry.event,
                data_content_type: entry.content_type,
                metadata,
                traceparent: None,
            };
            if let Err(e) = self.apis.pubsub.publish(publish).await {
                failed.push(pb::BulkPublishResponseFailedEntry {
                    entry_id: entry.entry_id,
                    error: wording("pubsub")(e).message().to_owned(),
                });
            }
        }
        Ok(Response::new(pb::BulkPublishResponse { failed_entries: failed }))
    }
}

#[tonic::async_trait]
impl Dapr for DaprService {
    async fn invoke_service(
        &self,
        request: Request<pb::InvokeServiceRequest>,
    ) -> Reply<common::InvokeResponse> {
        let metadata = request.metadata().clone();
        let req = request.into_inner();
        let message = req.message.unwrap_or_default();
        let extension = message.http_extension.unwrap_or_default();
        let call = GrpcInvoke {
            app_id: req.id,
            method: message.method,
            data: message.data.map(|d| d.value).unwrap_or_default(),
            content_type: message.content_type,
            verb: extension.verb,
            query: extension.querystring,
        };
        let (body, content_type) = invoke_grpc(&self.apis.invoke, call, &metadata).await?;
        Ok(Response::new(common::InvokeResponse {
            data: Some(prost_types::Any { type_url: String::new(), value: body }),
            content_type,
        }))
    }

    /// A missing key is OK with empty data, as Dapr answers.
    async fn get_state(&self, request: Request<pb::GetStateRequest>) -> Reply<pb::GetStateResponse> {
        let req = request.into_inner();
        let get =
            GetRequest { key: req.key, consistency: consistency(req.consistency), metadata: req.metadata };
        let value = self.apis.state.get(&req.store_name, get).await.map_err(wording("state store"))?;
        Ok(Response::new(value.map_or_else(pb::GetStateResponse::default, |v| pb::GetStateResponse {
            data: v.data,
            etag: v.etag.unwrap_or_default(),
            metadata: v.metadata.into_iter().collect(),
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
            .bulk_get(&req.store_name, req.keys, req.metadata.into_iter().collect())
            .await
            .map_err(wording("state store"))?;
        let items = items
            .into_iter()
            .map(|item| {
                let value = item.value.unwrap_or_default();
                pb::BulkStateItem {
                    key: item.key,
                    data: value.data,
                    etag: value.etag.unwrap_or_default(),
                    error: item.error.unwrap_or_default(),
                    metadata: value.metadata.into_iter().collect(),
                }
            })
            .collect();
        Ok(Response::new(pb::GetBulkStateResponse { items }))
    }

    async fn save_state(&self, request: Request<pb::SaveStateRequest>) -> Reply<()> {
        let req = request.into_inner();
        let sets = req.states.into_iter().map(set_request).collect();
        self.apis.state.bulk_set(&req.store_name, sets).await.map_err(wording("state store"))?;
        Ok(Response::new(()))
    }

    async fn query_state_alpha1(
        &self,
        request: Request<pb::QueryStateRequest>,
    ) -> Reply<pb::QueryStateResponse> {
        let req = request.into_inner();
        self.apis.state.components.get(&req.store_name).map_err(|e| wording("state store")(e.into()))?;
        Err(Status::internal(format!(
            "state store {} doesn't support query: no store of this build can query",
            layotto_core::clip(&req.store_name)
        )))
    }

    async fn delete_state(&self, request: Request<pb::DeleteStateRequest>) -> Reply<()> {
        let req = request.into_inner();
        let options = req.options.unwrap_or_default();
        let delete = DeleteRequest {
            key: req.key,
            etag: req.etag.map(|e| e.value).filter(|e| !e.is_empty()),
            metadata: req.metadata.into_iter().collect(),
            concurrency: concurrency(options.concurrency),
            consistency: consistency(options.consistency),
        };
        self.apis.state.delete(&req.store_name, delete).await.map_err(wording("state store"))?;
        Ok(Response::new(()))
    }

    async fn delete_bulk_state(&self, request: Request<pb::DeleteBulkStateRequest>) -> Reply<()> {
        let req = request.into_inner();
        let deletes = req.states.into_iter().map(delete_request).collect();
        self.apis.state.bulk_delete(&req.store_name, deletes).await.map_err(wording("state store"))?;
        Ok(Response::new(()))
    }

    async fn execute_state_transaction(
        &self,
        request: Request<pb::ExecuteStateTransactionRequest>,
    ) -> Reply<()> {
        let req = request.into_inner();
        let mut ops = Vec::with_capacity(req.operations.len());
        for op in req.operations {
            let Some(item) = op.request else { continue };
            ops.push(match op.operation_type.as_str() {
                "upsert" => Operation::Upsert(set_request(item)),
                "delete" => Operation::Delete(delete_request(item)),
                other => {
                    return Err(Status::invalid_argument(format!(
                        "state store {}: operation type '{}' is not supported (upsert or delete)",
                        req.store_name,
                        layotto_core::clip(other)
                    )));
                }
            });
        }
        self.apis
            .state
            .transact(&req.store_name, ops, req.metadata.into_iter().collect())
            .await
            .map_err(wording("state store"))?;
        Ok(Response::new(()))
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
            metadata: req.metadata.into_iter().collect(),
            traceparent,
        };
        self.apis.pubsub.publish(publish).await.map_err(wording("pubsub"))?;
        Ok(Response::new(()))
    }

    async fn bulk_publish_event_alpha1(
        &self,
        request: Request<pb::BulkPublishRequest>,
    ) -> Reply<pb::BulkPublishResponse> {
        self.bulk_publish(request.into_inner()).await
    }

    async fn bulk_publish_event(
        &self,
        request: Request<pb::BulkPublishRequest>,
    ) -> Reply<pb::BulkPublishResponse> {
        self.bulk_publish(request.into_inner()).await
    }

    type SubscribeTopicEventsAlpha1Stream = BoxStream<pb::SubscribeTopicEventsResponseAlpha1>;

    /// Dapr's streaming subscription, served by the same code as Layotto's
    /// SubscribeTopicEvents: its messages are converted both ways.
    async fn subscribe_topic_events_alpha1(
        &self,
        request: Request<Streaming<pb::SubscribeTopicEventsRequestAlpha1>>,
    ) -> Reply<Self::SubscribeTopicEventsAlpha1Stream> {
        use futures::StreamExt;
        let mut requests = request.into_inner();
        let initial = match requests.message().await?.and_then(|m| m.subscribe_topic_events_request_type) {
            Some(DaprIn::InitialRequest(initial)) => layotto::SubscribeTopicEventsRequestInitial {
                pubsub_name: initial.pubsub_name,
                topic: initial.topic,
                metadata: initial.metadata,
                dead_letter_topic: initial.dead_letter_topic,
            },
            _ => return Err(Status::invalid_argument("initial request is required")),
        };
        let requests = requests.map(|message| message.map(to_layotto_request));
        let rx = subscribe_stream(&self.apis, &self.streams, self.closing.clone(), initial, requests).await?;
        let responses = tokio_stream::wrappers::ReceiverStream::new(rx).map(|r| r.map(to_dapr_response));
        Ok(Response::new(Box::pin(responses)))
    }

    async fn invoke_binding(
        &self,
        request: Request<pb::InvokeBindingRequest>,
    ) -> Reply<pb::InvokeBindingResponse> {
        let req = request.into_inner();
        let invoke = InvokeRequest {
            operation: req.operation,
            data: req.data,
            metadata: req.metadata.into_iter().collect(),
        };
        let response =
            self.apis.bindings.invoke(&req.name, invoke).await.map_err(wording("output binding"))?;
        Ok(Response::new(pb::InvokeBindingResponse {
            data: response.data,
            metadata: response.metadata.into_iter().collect(),
        }))
    }

    async fn get_secret(&self, request: Request<pb::GetSecretRequest>) -> Reply<pb::GetSecretResponse> {
        let req = request.into_inner();
        let secret =
            self.apis.secrets.get(&req.store_name, &req.key).await.map_err(wording("secret store"))?;
        Ok(Response::new(pb::GetSecretResponse { data: secret.into_iter().collect() }))
    }

    async fn get_bulk_secret(
        &self,
        request: Request<pb::GetBulkSecretRequest>,
    ) -> Reply<pb::GetBulkSecretResponse> {
        let req = request.into_inner();
        let secrets = self.apis.secrets.bulk_get(&req.store_name).await.map_err(wording("secret store"))?;
        let data = secrets
            .into_iter()
            .map(|(key, secret)| (key, pb::SecretResponse { secrets: secret.into_iter().collect() }))
            .collect();
        Ok(Response::new(pb::GetBulkSecretResponse { data }))
    }

    async fn get_configuration_alpha1(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Reply<pb::GetConfigurationResponse> {
        self.get_configuration_items(request.into_inner()).await
    }

    async fn get_configuration(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Reply<pb::GetConfigurationResponse> {
        self.get_configuration_items(request.into_inner()).await
    }

    type SubscribeConfigurationAlpha1Stream = BoxStream<pb::SubscribeConfigurationResponse>;

    async fn subscribe_configuration_alpha1(
        &self,
        request: Request<pb::SubscribeConfigurationRequest>,
    ) -> Reply<Self::SubscribeConfigurationAlpha1Stream> {
        self.subscribe_configuration_stream(request.into_inner()).await
    }

    type SubscribeConfigurationStream = BoxStream<pb::SubscribeConfigurationResponse>;

    async fn subscribe_configuration(
        &self,
        request: Request<pb::SubscribeConfigurationRequest>,
    ) -> Reply<Self::SubscribeConfigurationStream> {
        self.subscribe_configuration_stream(request.into_inner()).await
    }

    async fn unsubscribe_configuration_alpha1(
        &self,
        request: Request<pb::UnsubscribeConfigurationRequest>,
    ) -> Reply<pb::UnsubscribeConfigurationResponse> {
        Ok(Response::new(self.unsubscribe(request.into_inner())))
    }

    async fn unsubscribe_configuration(
        &self,
        request: Request<pb::UnsubscribeConfigurationRequest>,
    ) -> Reply<pb::UnsubscribeConfigurationResponse> {
        Ok(Response::new(self.unsubscribe(request.into_inner())))
    }

    async fn try_lock_alpha1(&self, request: Request<pb::TryLockRequest>) -> Reply<pb::TryLockResponse> {
        let req = request.into_inner();
        let try_lock = TryLockRequest {
            resource_id: req.resource_id,
            lock_owner: req.lock_owner,
            expire: crate::layotto::convert::expire(req.expiry_in_seconds),
        };
        let success =
            self.apis.lock.try_lock(&req.store_name, try_lock).await.map_err(wording("lock store"))?;
        Ok(Response::new(pb::TryLockResponse { success }))
    }

    async fn unlock_alpha1(&self, request: Request<pb::UnlockRequest>) -> Reply<pb::UnlockResponse> {
        use pb::unlock_response::Status as S;
        let req = request.into_inner();
        let unlock = UnlockRequest { resource_id: req.resource_id, lock_owner: req.lock_owner };
        let status =
            match self.apis.lock.unlock(&req.store_name, unlock).await.map_err(wording("lock store"))? {
                LockStatus::Success => S::Success,
                LockStatus::LockUnexist => S::LockDoesNotExist,
                LockStatus::LockBelongToOthers => S::LockBelongsToOthers,
            };
        Ok(Response::new(pb::UnlockResponse { status: status.into() }))
    }

    async fn get_metadata(&self, _: Request<pb::GetMetadataRequest>) -> Reply<pb::GetMetadataResponse> {
        let info = &self.info;
        let registered_components = info
            .components
            .iter()
            .map(|c| pb::RegisteredComponents {
                name: c.name.clone(),
                r#type: c.kind.clone(),
                version: c.version.clone(),
                capabilities: c.capabilities.clone(),
            })
            .collect();
        let subscription =
            |pubsub_name: String, topic: String, dead_letter_topic: String, kind| pb::PubsubSubscription {
                pubsub_name,
                topic,
                dead_letter_topic,
                r#type: kind as i32,
                ..Default::default()
            };
        let mut subscriptions: Vec<pb::PubsubSubscription> = info
            .subscriptions
            .lock()
            .iter()
            .map(|s| {
                let kind = match s.kind {
                    super::SubscriptionKind::Declarative => pb::PubsubSubscriptionType::Declarative,
                    super::SubscriptionKind::Programmatic => pb::PubsubSubscriptionType::Programmatic,
                    super::SubscriptionKind::Streaming => pb::PubsubSubscriptionType::Streaming,
                };
                subscription(s.pubsub_name.clone(), s.topic.clone(), s.dead_letter_topic.clone(), kind)
            })
            .collect();
        subscriptions.extend(
            self.streams
                .list()
                .into_iter()
                .map(|(p, t)| subscription(p, t, String::new(), pb::PubsubSubscriptionType::Streaming)),
        );
        Ok(Response::new(pb::GetMetadataResponse {
            id: info.app_id.clone(),
            registered_components,
            subscriptions,
            extended_metadata: info.extended.lock().clone().into_iter().collect(),
            runtime_version: info.runtime_version.clone(),
            ..Default::default()
        }))
    }

    async fn set_metadata(&self, request: Request<pb::SetMetadataRequest>) -> Reply<()> {
        let req = request.into_inner();
        self.info.extended.lock().insert(req.key, req.value);
        Ok(Response::new(()))
    }

    /// Answers at once; the runtime then stops as on SIGTERM.
    async fn shutdown(&self, _: Request<pb::ShutdownRequest>) -> Reply<()> {
        self.info.shutdown.notify_one();
        Ok(Response::new(()))
    }
}

/// A Dapr stream message as Layotto's: the same fields under other names.
fn to_layotto_request(
    message: pb::SubscribeTopicEventsRequestAlpha1,
) -> layotto::SubscribeTopicEventsRequest {
    use layotto::subscribe_topic_events_request::SubscribeTopicEventsRequestType as In;
    let kind = message.subscribe_topic_events_request_type.map(|kind| match kind {
        DaprIn::InitialRequest(i) => In::InitialRequest(layotto::SubscribeTopicEventsRequestInitial {
            pubsub_name: i.pubsub_name,
            topic: i.topic,
            metadata: i.metadata,
            dead_letter_topic: i.dead_letter_topic,
        }),
        DaprIn::EventProcessed(p) => In::EventProcessed(layotto::SubscribeTopicEventsRequestProcessed {
            id: p.id,
            status: p.status.map(|s| layotto::TopicEventResponse { status: s.status }),
        }),
    });
    layotto::SubscribeTopicEventsRequest { subscribe_topic_events_request_type: kind }
}

fn to_dapr_response(
    response: layotto::SubscribeTopicEventsResponse,
) -> pb::SubscribeTopicEventsResponseAlpha1 {
    use layotto::subscribe_topic_events_response::SubscribeTopicEventsResponseType as Out;
    use pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as DaprOut;
    let kind = response.subscribe_topic_events_response_type.map(|kind| match kind {
        Out::InitialResponse(_) => DaprOut::InitialResponse(pb::SubscribeTopicEventsResponseInitialAlpha1 {}),
        Out::EventMessage(e) => DaprOut::EventMessage(pb::TopicEventRequest {
            id: e.id,
            source: e.source,
            r#type: e.r#type,
            spec_version: e.spec_version,
            data_content_type: e.data_content_type,
            topic: e.topic,
            data: e.data,
            pubsub_name: e.pubsub_name,
            path: String::new(),
            extensions: None,
        }),
    });
    pb::SubscribeTopicEventsResponseAlpha1 { subscribe_topic_events_response_type: kind }
}
