//! Pub/Sub on the wire: `PublishEvent`, `SubscribeTopicEvents` streaming,
//! and the AppCallback client that delivers events to the app, which may
//! serve Layotto's `spec.proto.runtime.v1.AppCallback` or Dapr's
//! `dapr.proto.runtime.v1.AppCallback`: whichever answers
//! ListTopicSubscriptions first is the one events go to.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use layotto_core::{Error, Metadata, Result};
use layotto_pubsub::{App, AppStatus, DeliveryPolicy, PubSub, TopicEvent, delivery};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::pb::dapr::runtime::v1 as dapr;
use crate::pb::dapr::runtime::v1::app_callback_client::AppCallbackClient as DaprAppCallbackClient;
use crate::pb::runtime as pb;
use crate::pb::runtime::app_callback_client::AppCallbackClient;
use crate::pb::runtime::topic_event_response::TopicEventResponseStatus;

/// A configured pub/sub component and its configuration metadata, which
/// holds the delivery policy defaults (`deadLetterTopic`, `deliveryMaxRetries`, …).
#[derive(Clone)]
pub struct PubSubComponent {
    pub component: Arc<dyn PubSub>,
    /// Shared: every publish looks the component up and clones this handle.
    pub metadata: Arc<Metadata>,
}

impl PubSubComponent {
    /// The policy for one subscription: component metadata, then the subscription's.
    pub fn policy(&self, name: &str, topic: &str, subscription: &Metadata) -> Result<DeliveryPolicy> {
        DeliveryPolicy::from_metadata(
            &format!("pubsub '{name}': topic '{topic}'"),
            &[self.metadata.as_ref(), subscription],
        )
    }

    /// Subscribes `app` to `topic` with the policy of this component.
    pub async fn subscribe_app(
        &self,
        name: &str,
        topic: &str,
        metadata: Metadata,
        dead_letter_topic: Option<String>,
        app: Arc<dyn App>,
    ) -> Result<layotto_pubsub::Subscription> {
        let mut policy = self.policy(name, topic, &metadata)?;
        if let Some(dlq) = dead_letter_topic.filter(|t| !t.trim().is_empty()) {
            policy.dead_letter_topic = Some(dlq);
        }
        delivery::subscribe_app(name, self.component.clone(), topic, metadata, policy, app).await
    }
}

pub(crate) fn topic_event_request(event: TopicEvent) -> pb::TopicEventRequest {
    pb::TopicEventRequest {
        id: event.id,
        source: event.source,
        r#type: event.r#type,
        spec_version: event.spec_version,
        data_content_type: event.data_content_type,
        data: event.data,
        topic: event.topic,
        pubsub_name: event.pubsub_name,
        metadata: event.metadata,
    }
}

fn app_status(status: i32) -> Result<AppStatus> {
    match TopicEventResponseStatus::try_from(status) {
        Ok(TopicEventResponseStatus::Success) => Ok(AppStatus::Success),
        Ok(TopicEventResponseStatus::Retry) => Ok(AppStatus::Retry),
        Ok(TopicEventResponseStatus::Drop) => Ok(AppStatus::Drop),
        Err(_) => Err(Error::invalid_argument(format!("the app answered an unknown status {status}"))),
    }
}

/// HTTP/2 connections to the app. One connection is driven by one task,
/// which caps deliveries at what one core can push; a few spread the load.
const CALLBACK_CONNECTIONS: usize = 4;

/// The app's AppCallback service, as the subscriber of its subscriptions.
#[derive(Clone)]
pub struct AppCallback {
    clients: Arc<[AppCallbackClient<Channel>]>,
    next: Arc<std::sync::atomic::AtomicUsize>,
    address: String,
    /// `APP_API_TOKEN`, sent on every callback as `dapr-api-token`.
    token: Option<tonic::metadata::AsciiMetadataValue>,
    /// The same connections, speaking Dapr's AppCallback.
    dapr_clients: Arc<[DaprAppCallbackClient<Channel>]>,
    /// Set when the app answered as a Dapr app.
    is_dapr: Arc<std::sync::atomic::AtomicBool>,
    /// A Dapr app's routes per (pubsub, topic): each event's `path`.
    dapr_paths: Arc<Mutex<layotto_pubsub::routing::RoutesByTopic>>,
}

impl AppCallback {
    /// Lazily connected clients: the app may come up after the runtime.
    pub fn new(host: &str, port: u16) -> Result<Self> {
        let address = format!("http://{host}:{port}");
        let endpoint = Channel::from_shared(address.clone())
            .map_err(|e| Error::config(format!("app callback address '{address}': {e}")))?
            .tcp_nodelay(true);
        let channels: Vec<Channel> = (0..CALLBACK_CONNECTIONS).map(|_| endpoint.connect_lazy()).collect();
        Ok(Self {
            clients: channels.iter().cloned().map(AppCallbackClient::new).collect(),
            dapr_clients: channels.into_iter().map(DaprAppCallbackClient::new).collect(),
            next: Arc::default(),
            address,
            token: None,
            is_dapr: Arc::default(),
            dapr_paths: Arc::default(),
        })
    }

    fn dapr_client(&self) -> DaprAppCallbackClient<Channel> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.dapr_clients[i % self.dapr_clients.len()].clone()
    }

    /// The `path`s handed to a Dapr app with events of (pubsub, topic).
    pub fn set_routes(&self, pubsub: &str, topic: &str, routes: layotto_pubsub::routing::Routes) {
        self.dapr_paths.lock().insert((pubsub.to_owned(), topic.to_owned()), Arc::new(routes));
    }

    /// Whether the app turned out to be a Dapr app.
    pub fn is_dapr(&self) -> bool {
        self.is_dapr.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Dapr's subscriptions as Layotto's: the dead-letter topic goes into
    /// the metadata (where delivery reads it); the routes (default and
    /// rules) give each event its `path`. A rule we cannot evaluate fails
    /// the listing, naming it.
    fn take_dapr_subscriptions(
        &self,
        subscriptions: Vec<dapr::TopicSubscription>,
    ) -> std::result::Result<Vec<pb::TopicSubscription>, Status> {
        let mut paths = self.dapr_paths.lock();
        subscriptions
            .into_iter()
            .map(|s| {
                let mut metadata = s.metadata;
                if !s.dead_letter_topic.is_empty() {
                    metadata.insert("deadLetterTopic".into(), s.dead_letter_topic);
                }
                if let Some(routes) = s.routes {
                    let rules: Vec<(String, String)> =
                        routes.rules.into_iter().map(|r| (r.r#match, r.path)).collect();
                    let routes =
                        layotto_pubsub::routing::Routes::new(routes.default, &rules).map_err(|e| {
                            Status::invalid_argument(format!(
                                "ListTopicSubscriptions: {} {}: {}",
                                s.pubsub_name,
                                s.topic,
                                e.message()
                            ))
                        })?;
                    paths.insert((s.pubsub_name.clone(), s.topic.clone()), Arc::new(routes));
                }
                Ok(pb::TopicSubscription { pubsub_name: s.pubsub_name, topic: s.topic, metadata })
            })
            .collect()
    }

    /// Sends `token` to the app on every callback (the app checks it).
    pub fn with_token(mut self, token: Option<&crate::token::ApiToken>) -> Result<Self> {
        self.token = match token {
            None => None,
            Some(token) => Some(token.metadata_value().ok_or_else(|| {
                Error::config("APP_API_TOKEN holds characters that gRPC metadata cannot carry")
            })?),
        };
        Ok(self)
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert(crate::token::TOKEN_HEADER, token.clone());
        }
        for (key, value) in layotto_core::telemetry::current_headers() {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
                tonic::metadata::MetadataValue::try_from(value.as_str()),
            ) {
                request.metadata_mut().insert(key, value);
            }
        }
        request
    }

    fn client(&self) -> AppCallbackClient<Channel> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.clients[i % self.clients.len()].clone()
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub async fn list_topic_subscriptions(&self) -> std::result::Result<Vec<pb::TopicSubscription>, Status> {
        match self.client().list_topic_subscriptions(self.request(())).await {
            Ok(reply) => Ok(reply.into_inner().subscriptions),
            // Not Layotto's service: maybe Dapr's.
            Err(status) if status.code() == Code::Unimplemented => {
                let reply = self.dapr_client().list_topic_subscriptions(self.request(())).await?;
                self.is_dapr.store(true, std::sync::atomic::Ordering::Release);
                self.take_dapr_subscriptions(reply.into_inner().subscriptions)
            }
            Err(status) => Err(status),
        }
    }
}

impl AppCallback {
    /// Dapr's `ListInputBindings`: the input bindings the app takes events
    /// of. A Layotto app (which has no such rpc) takes none.
    pub async fn list_input_bindings(&self) -> std::result::Result<Vec<String>, Status> {
        match self.dapr_client().list_input_bindings(self.request(())).await {
            Ok(reply) => Ok(reply.into_inner().bindings),
            Err(status) if status.code() == Code::Unimplemented => Ok(Vec::new()),
            Err(status) => Err(status),
        }
    }

    /// Dapr's `OnBindingEvent`; the app's answer may ask for follow-up work.
    pub async fn on_binding_event(
        &self,
        name: &str,
        event: layotto_bindings::BindingEvent,
    ) -> Result<dapr::BindingEventResponse> {
        let request = dapr::BindingEventRequest {
            name: name.to_owned(),
            data: event.data,
            metadata: event.metadata.into_iter().collect(),
        };
        self.dapr_client().on_binding_event(self.request(request)).await.map(|r| r.into_inner()).map_err(
            |status| {
                Error::unavailable(format!(
                    "OnBindingEvent '{name}' on the app at {} failed: {}: {}",
                    self.address,
                    status.code(),
                    status.message()
                ))
            },
        )
    }
}

#[tonic::async_trait]
impl App for AppCallback {
    async fn on_event(&self, event: TopicEvent) -> Result<AppStatus> {
        let reply = if self.is_dapr() {
            let routes =
                self.dapr_paths.lock().get(&(event.pubsub_name.clone(), event.topic.clone())).cloned();
            let path = routes.map(|r| r.route(&event).to_owned());
            let request = dapr::TopicEventRequest {
                id: event.id,
                source: event.source,
                r#type: event.r#type,
                spec_version: event.spec_version,
                data_content_type: event.data_content_type,
                topic: event.topic,
                data: event.data,
                pubsub_name: event.pubsub_name,
                path: path.unwrap_or_default(),
                extensions: None,
            };
            self.dapr_client().on_topic_event(self.request(request)).await.map(|r| r.into_inner().status)
        } else {
            self.client()
                .on_topic_event(self.request(topic_event_request(event)))
                .await
                .map(|r| r.into_inner().status)
        };
        match reply {
            Ok(status) => app_status(status),
            // As Layotto: an app without OnTopicEvent drops the event.
            Err(status) if status.code() == Code::Unimplemented => Ok(AppStatus::Drop),
            Err(status) => Err(Error::unavailable(format!(
                "OnTopicEvent on the app at {} failed: {}: {}",
                self.address,
                status.code(),
                status.message()
            ))),
        }
    }
}

/// Streams opened by `SubscribeTopicEvents`, one per (pubsub, topic).
#[derive(Default)]
pub struct ActiveStreams(Mutex<HashSet<(String, String)>>);

/// The client of one `SubscribeTopicEvents` stream as an [`App`]: each event
/// is sent down the stream and answered by an `event_processed` with its id.
struct StreamApp {
    tx: mpsc::Sender<std::result::Result<pb::SubscribeTopicEventsResponse, Status>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<i32>>>>,
}

#[tonic::async_trait]
impl App for StreamApp {
    async fn on_event(&self, event: TopicEvent) -> Result<AppStatus> {
        let id = event.id.clone();
        let (answer_tx, answer_rx) = oneshot::channel();
        self.waiting.lock().insert(id.clone(), answer_tx);
        let message = pb::SubscribeTopicEventsResponse {
            subscribe_topic_events_response_type: Some(
                pb::subscribe_topic_events_response::SubscribeTopicEventsResponseType::EventMessage(
                    topic_event_request(event),
                ),
            ),
        };
        if self.tx.send(Ok(message)).await.is_err() {
            self.waiting.lock().remove(&id);
            return Err(Error::unavailable("the subscribing stream has closed"));
        }
        let status =
            answer_rx.await.map_err(|_| Error::unavailable("the subscribing stream closed before answering"));
        if status.is_err() {
            self.waiting.lock().remove(&id);
        }
        app_status(status?)
    }
}

type StreamSender = mpsc::Sender<std::result::Result<pb::SubscribeTopicEventsResponse, Status>>;

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<i32>>>>;

/// An open `SubscribeTopicEvents` stream: subscribed before the client gets
/// its initial response, so nothing published after that is missed.
pub(crate) struct OpenStream {
    subscription: layotto_pubsub::Subscription,
    waiting: Waiting,
    key: (String, String),
}

/// A `SubscribeTopicEvents` stream after its initial request (Layotto's, or
/// Dapr's converted): validated, claimed for (pubsub, topic), subscribed,
/// then served; the receiver yields the initial response and the events.
pub(crate) async fn subscribe_stream<R>(
    apis: &crate::api::Apis,
    streams: &Arc<ActiveStreams>,
    closing: tokio::sync::watch::Receiver<bool>,
    initial: pb::SubscribeTopicEventsRequestInitial,
    requests: R,
) -> std::result::Result<mpsc::Receiver<std::result::Result<pb::SubscribeTopicEventsResponse, Status>>, Status>
where
    R: futures::Stream<Item = std::result::Result<pb::SubscribeTopicEventsRequest, Status>>
        + Send
        + Unpin
        + 'static,
{
    if initial.pubsub_name.is_empty() {
        return Err(Status::invalid_argument("pubsubName is required"));
    }
    if initial.topic.is_empty() {
        return Err(Status::invalid_argument("topic is required"));
    }
    let name = initial.pubsub_name.clone();
    if apis.pubsub.components.get(&name).is_err() {
        return Err(Status::invalid_argument(format!("pubsub {name} is not initialized.")));
    }
    if !streams.claim(&name, &initial.topic) {
        return Err(Status::already_exists(format!(
            "already subscribed to pubsub \"{name}\" topic \"{}\"",
            initial.topic
        )));
    }
    let (tx, rx) = mpsc::channel(64);
    let topic = initial.topic.clone();
    let open = match open_stream(&apis.pubsub, initial, tx.clone()).await {
        Ok(open) => open,
        Err(e) => {
            streams.release(&name, &topic);
            return Err(crate::layotto::wording::wording("pubsub")(e));
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
    tokio::spawn(serve_stream(open, requests, tx, streams.clone(), closing));
    Ok(rx)
}

async fn open_stream(
    pubsubs: &crate::api::PubSubApi,
    initial: pb::SubscribeTopicEventsRequestInitial,
    tx: StreamSender,
) -> crate::api::ApiResult<OpenStream> {
    let key = (initial.pubsub_name.clone(), initial.topic.clone());
    let waiting: Waiting = Arc::default();
    let app = Arc::new(StreamApp { tx, waiting: waiting.clone() });
    let subscription = pubsubs
        .subscribe(&initial.pubsub_name, &initial.topic, initial.metadata, initial.dead_letter_topic, app)
        .await?;
    Ok(OpenStream { subscription, waiting, key })
}

/// Pairs the client's `event_processed` answers with waiting events until
/// the stream ends, then unsubscribes.
async fn serve_stream(
    open: OpenStream,
    mut requests: impl futures::Stream<Item = std::result::Result<pb::SubscribeTopicEventsRequest, Status>>
    + Unpin,
    tx: StreamSender,
    active: Arc<ActiveStreams>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    use pb::subscribe_topic_events_request::SubscribeTopicEventsRequestType as In;
    loop {
        let next = tokio::select! {
            _ = tx.closed() => break,
            _ = crate::closed(&mut closing) => {
                let _ = tx.send(Err(Status::unavailable("the runtime is shutting down"))).await;
                break;
            }
            m = futures::StreamExt::next(&mut requests) => m.transpose(),
        };
        match next {
            Ok(Some(pb::SubscribeTopicEventsRequest {
                subscribe_topic_events_request_type: Some(In::EventProcessed(p)),
            })) => {
                let status = p.status.map_or(0, |s| s.status);
                if let Some(answer) = open.waiting.lock().remove(&p.id) {
                    let _ = answer.send(status);
                }
            }
            Ok(Some(pb::SubscribeTopicEventsRequest {
                subscribe_topic_events_request_type: Some(In::InitialRequest(_)),
            })) => {
                let _ = tx.send(Err(Status::invalid_argument("duplicate initial request received"))).await;
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    // Events still waiting fail, so the broker delivers them again.
    open.waiting.lock().clear();
    open.subscription.close().await;
    active.0.lock().remove(&open.key);
}

impl ActiveStreams {
    /// The (pubsub, topic) pairs with an open stream.
    pub fn list(&self) -> Vec<(String, String)> {
        self.0.lock().iter().cloned().collect()
    }

    /// Claims (pubsub, topic) for a new stream; false if another has it.
    pub(crate) fn claim(&self, pubsub: &str, topic: &str) -> bool {
        self.0.lock().insert((pubsub.to_owned(), topic.to_owned()))
    }

    pub(crate) fn release(&self, pubsub: &str, topic: &str) {
        self.0.lock().remove(&(pubsub.to_owned(), topic.to_owned()));
    }
}
