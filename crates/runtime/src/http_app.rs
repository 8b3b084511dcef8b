//! Dapr's HTTP app contract for pub/sub (`app.protocol = "http"`): the app
//! lists its subscriptions at `GET /dapr/subscribe` and receives each event
//! as a CloudEvent POSTed to its route; it answers `{"status": "SUCCESS" |
//! "RETRY" | "DROP"}` (or an empty 2xx, success). A 404 drops the event, as
//! Dapr does; any other status or no answer is retried.

use std::collections::HashMap;
use std::sync::Arc;

use layotto_core::{Error, Metadata, Result};
use layotto_grpc::pb::runtime as pb;
use layotto_pubsub::{App, AppStatus, TopicEvent};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Clone)]
pub struct HttpSubscriber {
    base: String,
    client: reqwest::Client,
    /// The route per (pubsub, topic).
    routes: Arc<Mutex<HashMap<(String, String), String>>>,
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
    routes: Option<Routes>,
    #[serde(default)]
    dead_letter_topic: Option<String>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize)]
struct Routes {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    rules: Vec<Value>,
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

    pub fn set_route(&self, pubsub: &str, topic: &str, route: &str) {
        self.routes.lock().insert((pubsub.to_owned(), topic.to_owned()), route.to_owned());
    }

    pub fn address(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let builder = self.client.request(method, url).timeout(std::time::Duration::from_secs(30));
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
        Ok(listed
            .into_iter()
            .map(|s| {
                let (default, rules) = match s.routes {
                    Some(r) => (r.default, r.rules.len()),
                    None => (None, 0),
                };
                if rules > 0 {
                    tracing::warn!(
                        pubsub = %s.pubsub_name, topic = %s.topic,
                        "routing rules are not evaluated; every event goes to the default route"
                    );
                }
                let route = s.route.or(default).unwrap_or_else(|| s.topic.clone());
                routes.insert((s.pubsub_name.clone(), s.topic.clone()), route);
                let mut metadata = s.metadata;
                if let Some(dead_letter) = s.dead_letter_topic.filter(|t| !t.is_empty()) {
                    metadata.insert("deadLetterTopic".into(), dead_letter);
                }
                pb::TopicSubscription { pubsub_name: s.pubsub_name, topic: s.topic, metadata }
            })
            .collect())
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

#[tonic::async_trait]
impl App for HttpSubscriber {
    async fn on_event(&self, event: TopicEvent) -> Result<AppStatus> {
        let route = self
            .routes
            .lock()
            .get(&(event.pubsub_name.clone(), event.topic.clone()))
            .cloned()
            .unwrap_or_else(|| event.topic.clone());
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
