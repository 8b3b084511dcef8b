//! Dapr's HTTP app contract for pub/sub (`app.protocol = "http"`): the app
//! lists its subscriptions at `GET /dapr/subscribe` and receives each event
//! as a CloudEvent POSTed to its route; it answers `{"status": "SUCCESS" |
//! "RETRY" | "DROP"}` (or an empty 2xx, success). A 404 drops the event, as
//! Dapr does; any other status or no answer is retried.

use std::sync::Arc;

use layotto_core::{Error, Metadata, Result};
use layotto_grpc::pb::runtime as pb;
use layotto_pubsub::routing::{Routes, RoutesByTopic};
use layotto_pubsub::{App, AppStatus, TopicEvent};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Clone)]
pub struct HttpSubscriber {
    base: String,
    client: reqwest::Client,
    /// The routes per (pubsub, topic).
    routes: Arc<Mutex<RoutesByTopic>>,
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subscription {
    #[serde(alias = "pubsubname")]
    pubsub_name: String,
    topic: String,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    routes: Option<ListedRoutes>,
    #[serde(default)]
    dead_letter_topic: Option<String>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize)]
struct ListedRoutes {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    rules: Vec<ListedRule>,
}

#[derive(Deserialize)]
struct ListedRule {
    #[serde(default, rename = "match")]
    matcher: String,
    path: String,
}

impl HttpSubscriber {
    pub fn new(host: &str, port: u16, token: Option<&layotto_grpc::token::ApiToken>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::config(format!("HTTP app client: {e}")))?;
        Ok(Self {
            base: format!("http://{host}:{port}"),
            client,
            routes: Arc::default(),
            token: token.map(|t| t.secret().to_owned()),
        })
    }

    pub fn set_routes(&self, pubsub: &str, topic: &str, routes: Routes) {
        self.routes.lock().insert((pubsub.to_owned(), topic.to_owned()), Arc::new(routes));
    }

    pub fn address(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let mut builder = self.client.request(method, url).timeout(std::time::Duration::from_secs(30));
        for (key, value) in layotto_core::telemetry::current_headers() {
            builder = builder.header(key, value);
        }
        match &self.token {
            Some(token) => builder.header("dapr-api-token", token),
            None => builder,
        }
    }

    /// `GET /dapr/subscribe`, as Layotto's subscriptions (the dead-letter
    /// topic in the metadata, where delivery reads it).
    pub async fn list(&self) -> std::result::Result<Vec<pb::TopicSubscription>, String> {
        let response =
            self.request(reqwest::Method::GET, "dapr/subscribe").send().await.map_err(|e| e.to_string())?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !response.status().is_success() {
            return Err(format!("GET /dapr/subscribe answered {}", response.status()));
        }
        let listed: Vec<Subscription> = response
            .json()
            .await
            .map_err(|e| format!("GET /dapr/subscribe: not a subscription list: {e}"))?;
        let mut routes = self.routes.lock();
        listed
            .into_iter()
            .map(|s| {
                let (default, rules) = match s.routes {
                    Some(r) => (r.default, r.rules.into_iter().map(|r| (r.matcher, r.path)).collect()),
                    None => (None, Vec::new()),
                };
                let default = s.route.or(default).unwrap_or_else(|| s.topic.clone());
                let parsed = Routes::new(default, &rules).map_err(|e| {
                    format!("GET /dapr/subscribe: {} {}: {}", s.pubsub_name, s.topic, e.message())
                })?;
                routes.insert((s.pubsub_name.clone(), s.topic.clone()), Arc::new(parsed));
                let mut metadata = s.metadata;
                if let Some(dead_letter) = s.dead_letter_topic.filter(|t| !t.is_empty()) {
                    metadata.insert("deadLetterTopic".into(), dead_letter);
                }
                Ok(pb::TopicSubscription { pubsub_name: s.pubsub_name, topic: s.topic, metadata })
            })
            .collect()
    }
}

/// The event as the CloudEvent JSON Dapr posts: JSON data as JSON, text as
/// a string, anything else base64-encoded in `data_base64`.
fn cloud_event(event: &TopicEvent) -> Value {
    let mut out = json!({
        "id": event.id,
        "source": event.source,
        "type": event.r#type,
        "specversion": event.spec_version,
        "datacontenttype": event.data_content_type,
        "topic": event.topic,
        "pubsubname": event.pubsub_name,
    });
    let json_data = event.data_content_type.contains("json");
    match (json_data, serde_json::from_slice::<Value>(&event.data), std::str::from_utf8(&event.data)) {
        (true, Ok(value), _) => out["data"] = value,
        (_, _, Ok(text)) => out["data"] = Value::String(text.to_owned()),
        _ => {
            use base64::Engine;
            out["data_base64"] = Value::String(base64::engine::general_purpose::STANDARD.encode(&event.data));
        }
    }
    if let Some(traceparent) = event.metadata.get("traceparent") {
        out["traceparent"] = Value::String(traceparent.clone());
    }
    out
}

impl HttpSubscriber {
    /// Whether the app takes events of the input binding at `route`: Dapr
    /// asks with `OPTIONS /<route>`; 404 and 405 mean no. Err when the app
    /// does not answer (yet).
    pub async fn takes_binding(&self, route: &str) -> std::result::Result<bool, String> {
        let response =
            self.request(reqwest::Method::OPTIONS, route).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        Ok(status != reqwest::StatusCode::NOT_FOUND && status != reqwest::StatusCode::METHOD_NOT_ALLOWED)
    }

    /// POSTs `body` as JSON to `path` on the app; Ok on any 2xx.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<()> {
        let response = self
            .request(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| Error::unavailable(format!("POST /{path} on the app at {}: {e}", self.base)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Error::unavailable(format!("POST /{path} on the app at {} answered {status}", self.base)))
        }
    }

    /// POSTs an input binding's event to its route, its metadata as headers.
    pub async fn post_binding(&self, route: &str, event: layotto_bindings::BindingEvent) -> Result<()> {
        let mut request = self.request(reqwest::Method::POST, route);
        for (key, value) in &event.metadata {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(key.as_bytes()),
                reqwest::header::HeaderValue::from_str(value),
            ) {
                request = request.header(name, value);
            }
        }
        let response = request
            .body(event.data)
            .send()
            .await
            .map_err(|e| Error::unavailable(format!("POST /{route} on the app at {}: {e}", self.base)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Error::unavailable(format!("POST /{route} on the app at {} answered {status}", self.base)))
        }
    }
}

#[tonic::async_trait]
impl App for HttpSubscriber {
    async fn on_event(&self, event: TopicEvent) -> Result<AppStatus> {
        let routes = self.routes.lock().get(&(event.pubsub_name.clone(), event.topic.clone())).cloned();
        let route = routes.as_ref().map_or(event.topic.as_str(), |r| r.route(&event)).to_owned();
        let body = cloud_event(&event).to_string();
        let response = self
            .request(reqwest::Method::POST, &route)
            .header("content-type", "application/cloudevents+json")
            .body(body)
            .send()
            .await
            .map_err(|e| Error::unavailable(format!("POST {route} on the app at {}: {e}", self.base)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            tracing::warn!(%route, "the app has no such route (404); the event is dropped");
            return Ok(AppStatus::Drop);
        }
        if !status.is_success() {
            return Err(Error::unavailable(format!("POST {route} on the app answered {status}")));
        }
        let text = response.text().await.unwrap_or_default();
        let answer: Option<Value> = serde_json::from_str(&text).ok();
        match answer.as_ref().and_then(|a| a.get("status")).and_then(Value::as_str) {
            None | Some("SUCCESS") | Some("") => Ok(AppStatus::Success),
            Some("RETRY") => Ok(AppStatus::Retry),
            Some("DROP") => Ok(AppStatus::Drop),
            Some(other) => {
                Err(Error::invalid_argument(format!("the app answered an unknown status '{other}'")))
            }
        }
    }
}
