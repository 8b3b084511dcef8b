//! A Dapr app (serving `dapr.proto.runtime.v1.AppCallback`, not Layotto's)
//! gets its subscriptions delivered: the runtime finds which AppCallback
//! the app speaks, hands back the route its rules pick (or the default) as
//! `path`, and sends what the app DROPs to the subscription's dead-letter
//! topic. Input bindings reach the app the app says it takes, over gRPC
//! (`OnBindingEvent`, with the follow-up the app asks for) and over HTTP;
//! configuration subscriptions over Dapr's HTTP API POST changes to the app.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use layotto_grpc::pb::dapr::common::v1 as common;
use layotto_grpc::pb::dapr::runtime::v1 as pb;
use layotto_grpc::pb::dapr::runtime::v1::app_callback_server::{AppCallback, AppCallbackServer};
use layotto_grpc::pb::dapr::runtime::v1::dapr_client::DaprClient;
use layotto_grpc::pb::dapr::runtime::v1::topic_event_response::TopicEventResponseStatus as S;
use layotto_runtime::{Config, Registries};
use parking_lot::Mutex;
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct DaprApp {
    topic: String,
    received: Arc<Mutex<Vec<pb::TopicEventRequest>>>,
    bindings: Arc<Mutex<Vec<pb::BindingEventRequest>>>,
}

#[tonic::async_trait]
impl AppCallback for DaprApp {
    async fn on_invoke(
        &self,
        _: Request<common::InvokeRequest>,
    ) -> Result<Response<common::InvokeResponse>, Status> {
        Err(Status::unimplemented("no methods"))
    }

    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListTopicSubscriptionsResponse>, Status> {
        let subscription = |topic: &str, route: &str, dead_letter: &str| pb::TopicSubscription {
            pubsub_name: "pub_subs_demo".into(),
            topic: topic.into(),
            routes: Some(pb::TopicRoutes {
                rules: vec![pb::TopicRule {
                    r#match: r#"event.data.startsWith("vip") && event.topic != "x""#.into(),
                    path: "/vip".into(),
                }],
                default: route.into(),
            }),
            dead_letter_topic: dead_letter.into(),
            ..Default::default()
        };
        let dead = format!("{}-dead", self.topic);
        Ok(Response::new(pb::ListTopicSubscriptionsResponse {
            subscriptions: vec![
                subscription(&self.topic, "/orders", &dead),
                subscription(&dead, "/dead", ""),
            ],
        }))
    }

    async fn on_topic_event(
        &self,
        request: Request<pb::TopicEventRequest>,
    ) -> Result<Response<pb::TopicEventResponse>, Status> {
        let event = request.into_inner();
        let status = if event.data == b"poison" && event.path == "/orders" { S::Drop } else { S::Success };
        self.received.lock().push(event);
        Ok(Response::new(pb::TopicEventResponse { status: status.into() }))
    }

    async fn list_input_bindings(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListInputBindingsResponse>, Status> {
        // `unread` is configured too, but the app does not take it.
        Ok(Response::new(pb::ListInputBindingsResponse { bindings: vec!["tick".into()] }))
    }

    async fn on_binding_event(
        &self,
        request: Request<pb::BindingEventRequest>,
    ) -> Result<Response<pb::BindingEventResponse>, Status> {
        let event = request.into_inner();
        let count = {
            let mut bindings = self.bindings.lock();
            bindings.push(event);
            bindings.len()
        };
        // The app asks the runtime to save a state item after each event.
        Ok(Response::new(pb::BindingEventResponse {
            store_name: "state_demo".into(),
            states: vec![common::StateItem {
                key: format!("{}-ticks", self.topic),
                value: count.to_string().into_bytes(),
                ..Default::default()
            }],
            ..Default::default()
        }))
    }

    async fn on_bulk_topic_event(
        &self,
        _: Request<pb::TopicEventBulkRequest>,
    ) -> Result<Response<pb::TopicEventBulkResponse>, Status> {
        Err(Status::unimplemented("no bulk"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dapr_app_gets_its_events_routes_and_dead_letters() {
    let topic = format!("dapr-{}", uuid::Uuid::new_v4().simple());
    let app = DaprApp { topic: topic.clone(), ..Default::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = app.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(AppCallbackServer::new(server))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let mut config = Config::embedded_defaults();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.app.id = "dapr-app".into();
    config.app.callback_port = port;
    for name in ["tick", "unread"] {
        config.section_mut("input_bindings").insert(
            name.into(),
            layotto_runtime::config::ComponentConfig::new("cron").with("schedule", "@every 100ms"),
        );
    }
    let running = layotto_runtime::start(config, Registries::builtin()).await.unwrap();
    let mut client = DaprClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    let publish = |data: &str| pb::PublishEventRequest {
        pubsub_name: "pub_subs_demo".into(),
        topic: topic.clone(),
        data: data.as_bytes().to_vec(),
        data_content_type: "text/plain".into(),
        ..Default::default()
    };
    // Subscriptions are made once the app has answered: publish until one arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.received.lock().iter().any(|e| e.data == b"hello") {
        assert!(Instant::now() < deadline, "nothing reached the Dapr app");
        client.publish_event(publish("hello")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.publish_event(publish("poison")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.received.lock().iter().any(|e| e.data == b"poison" && e.path == "/dead") {
        assert!(Instant::now() < deadline, "the dropped event never reached the dead-letter topic");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let meta = client.get_metadata(pb::GetMetadataRequest {}).await.unwrap().into_inner();
    let listed: Vec<(&str, i32)> = meta.subscriptions.iter().map(|s| (s.topic.as_str(), s.r#type)).collect();
    assert!(
        listed.contains(&(topic.as_str(), pb::PubsubSubscriptionType::Programmatic as i32)),
        "{listed:?}"
    );
    let hello = app.received.lock().iter().find(|e| e.data == b"hello").cloned().unwrap();
    assert_eq!((hello.path.as_str(), hello.topic.as_str()), ("/orders", topic.as_str()));
    assert_eq!(hello.pubsub_name, "pub_subs_demo");
    assert_eq!(hello.spec_version, "1.0");
    // The routing rule picks the path of what matches it.
    client.publish_event(publish("vip-1")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.received.lock().iter().any(|e| e.data == b"vip-1") {
        assert!(Instant::now() < deadline, "the vip event never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let vip = app.received.lock().iter().find(|e| e.data == b"vip-1").cloned().unwrap();
    assert_eq!(vip.path, "/vip");

    // The cron binding fires every 100 ms; each event is followed by the save the app asked for.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.bindings.lock().len() < 3 {
        assert!(Instant::now() < deadline, "the input binding's events did not reach the app");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = app.bindings.lock().clone();
    assert!(events.iter().all(|e| e.name == "tick"), "only the binding the app takes is read: {events:?}");
    assert!(events[0].metadata.contains_key("readTimeUTC"), "{:?}", events[0].metadata);
    let saved = client
        .get_state(pb::GetStateRequest {
            store_name: "state_demo".into(),
            key: format!("{topic}-ticks"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let saved: usize = String::from_utf8(saved.data).unwrap().parse().unwrap();
    assert!(saved >= 1, "the app's follow-up state was saved");
    let meta = client.get_metadata(pb::GetMetadataRequest {}).await.unwrap().into_inner();
    assert!(
        meta.registered_components.iter().any(|c| c.name == "tick" && c.r#type == "bindings.cron"),
        "{:?}",
        meta.registered_components
    );
    running.shutdown().await;
}

/// A Dapr HTTP app (`app.protocol = "http"`): subscriptions from
/// `GET /dapr/subscribe`, events POSTed as CloudEvents to the route, a DROP
/// answer sends the event to the dead-letter topic's route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dapr_http_app_gets_cloudevents_on_its_routes() {
    use axum::routing::{get, post};
    let topic = format!("http-{}", uuid::Uuid::new_v4().simple());
    let received: Arc<Mutex<Vec<(String, serde_json::Value, String)>>> = Arc::default();
    let subscriptions = serde_json::json!([
        {"pubsubname": "pub_subs_demo", "topic": topic, "route": "/orders", "deadLetterTopic": format!("{topic}-dead")},
        {"pubsubname": "pub_subs_demo", "topic": format!("{topic}-dead"), "routes": {"default": "/dead"}},
    ]);
    let record = |route: &'static str, received: Arc<Mutex<Vec<(String, serde_json::Value, String)>>>| {
        move |headers: axum::http::HeaderMap, body: String| async move {
            let event: serde_json::Value = serde_json::from_str(&body).unwrap();
            let content_type = headers.get("content-type").unwrap().to_str().unwrap().to_owned();
            let poison = event["data"] == "poison" && route == "/orders";
            received.lock().push((route.to_owned(), event, content_type));
            axum::Json(serde_json::json!({"status": if poison { "DROP" } else { "SUCCESS" }}))
        }
    };
    // Input binding events (POST /tick, after OPTIONS /tick) and configuration changes.
    let posted: Arc<Mutex<Vec<(String, axum::http::HeaderMap, String)>>> = Arc::default();
    let keep = |posted: Arc<Mutex<Vec<(String, axum::http::HeaderMap, String)>>>| {
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| async move {
            posted.lock().push((uri.path().to_owned(), headers, body));
            axum::http::StatusCode::OK
        }
    };
    let app = axum::Router::new()
        .route("/dapr/subscribe", get(move || async move { axum::Json(subscriptions) }))
        .route("/orders", post(record("/orders", received.clone())))
        .route("/dead", post(record("/dead", received.clone())))
        .route("/tick", post(keep(posted.clone())).options(|| async { axum::http::StatusCode::OK }))
        .route("/configuration/{store}/{key}", post(keep(posted.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut config = Config::embedded_defaults();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.app.id = "http-app".into();
    config.app.callback_port = port;
    config.app.protocol = layotto_runtime::config::AppProtocol::Http;
    config.server.dapr_http = Some("127.0.0.1:0".parse().unwrap());
    for name in ["tick", "unread"] {
        config.section_mut("input_bindings").insert(
            name.into(),
            layotto_runtime::config::ComponentConfig::new("cron").with("schedule", "@every 100ms"),
        );
    }
    let running = layotto_runtime::start(config, Registries::builtin()).await.unwrap();
    let mut client = DaprClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    let publish = |data: &str| pb::PublishEventRequest {
        pubsub_name: "pub_subs_demo".into(),
        topic: topic.clone(),
        data: data.as_bytes().to_vec(),
        data_content_type: "text/plain".into(),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !received.lock().iter().any(|(_, e, _)| e["data"] == "hello") {
        assert!(Instant::now() < deadline, "nothing reached the HTTP app");
        client.publish_event(publish("hello")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.publish_event(publish("poison")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !received.lock().iter().any(|(route, e, _)| route == "/dead" && e["data"] == "poison") {
        assert!(Instant::now() < deadline, "the dropped event never reached the dead-letter route");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (route, event, content_type) =
        received.lock().iter().find(|(_, e, _)| e["data"] == "hello").cloned().unwrap();
    assert_eq!(route, "/orders");
    assert_eq!(content_type, "application/cloudevents+json");
    assert_eq!(
        (event["topic"].as_str(), event["pubsubname"].as_str()),
        (Some(topic.as_str()), Some("pub_subs_demo"))
    );
    assert_eq!(event["specversion"], "1.0");

    // The app answers OPTIONS /tick (and 404 for /unread): only /tick gets events.
    let deadline = Instant::now() + Duration::from_secs(10);
    while posted.lock().iter().filter(|(path, _, _)| path == "/tick").count() < 2 {
        assert!(Instant::now() < deadline, "the input binding's events did not reach the HTTP app");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, headers, _) = posted.lock().iter().find(|(path, _, _)| path == "/tick").cloned().unwrap();
    assert!(headers.contains_key("readtimeutc"), "metadata travels as headers: {headers:?}");

    // Configuration subscription over Dapr's HTTP API: changes are POSTed to the app.
    let http = reqwest::Client::new();
    let dapr_http = running.dapr_http_addr().unwrap();
    let key = format!("{topic}-cfg");
    let subscribed: serde_json::Value = http
        .get(format!("http://{dapr_http}/v1.0/configuration/config_demo/subscribe?key={key}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = subscribed["id"].as_str().expect("the subscription id").to_owned();
    let mut layotto = layotto_grpc::pb::runtime::runtime_client::RuntimeClient::connect(format!(
        "http://{}",
        running.grpc_addr()
    ))
    .await
    .unwrap();
    layotto
        .save_configuration(layotto_grpc::pb::runtime::SaveConfigurationRequest {
            store_name: "config_demo".into(),
            app_id: "http-app".into(),
            items: vec![layotto_grpc::pb::runtime::ConfigurationItem {
                key: key.clone(),
                content: "on".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let path = format!("/configuration/config_demo/{key}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let change = loop {
        if let Some((_, _, body)) = posted.lock().iter().find(|(p, _, _)| *p == path).cloned() {
            break serde_json::from_str::<serde_json::Value>(&body).unwrap();
        }
        assert!(Instant::now() < deadline, "the configuration change never reached the app");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(change["id"], id.as_str());
    assert_eq!(change["items"][&key]["value"], "on");
    let unsubscribe = format!("http://{dapr_http}/v1.0/configuration/config_demo/{id}/unsubscribe");
    let answer = http.get(&unsubscribe).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<serde_json::Value>().await.unwrap()["ok"], true);
    let again = http.get(&unsubscribe).send().await.unwrap();
    assert_eq!(again.status(), 500);
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["errorCode"],
        "ERR_CONFIGURATION_UNSUBSCRIBE"
    );
    running.shutdown().await;
}
