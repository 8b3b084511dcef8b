//! OpenTelemetry tracing through the binary, configured only with OTel's
//! standard variables: an OTLP receiver (a tonic server of the collector
//! protocol) gets the spans of a SaveState, a publish → delivery and an
//! invocation, each in the caller's trace with its parent links intact,
//! and the app sees the runtime's span as its `traceparent`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::{Request, Response, Status};

mod common;
use common::{Runtime, command};

#[derive(Clone, Debug)]
struct Span {
    name: String,
    trace: String,
    id: String,
    parent: String,
    /// String attributes by key.
    attributes: Vec<(String, String)>,
}

impl Span {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for s in scope.spans {
                    spans.push(Span {
                        name: s.name,
                        trace: hex(&s.trace_id),
                        id: hex(&s.span_id),
                        parent: hex(&s.parent_span_id),
                        attributes: s
                            .attributes
                            .iter()
                            .filter_map(|kv| {
                                use opentelemetry_proto::tonic::common::v1::any_value::Value;
                                match kv.value.as_ref()?.value.as_ref()? {
                                    Value::StringValue(v) => Some((kv.key.clone(), v.clone())),
                                    _ => None,
                                }
                            })
                            .collect(),
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Collector {
    fn find(&self, trace: &str, name: &str) -> Option<Span> {
        self.0.lock().unwrap().iter().find(|s| s.trace == trace && s.name == name).cloned()
    }

    async fn wait(&self, trace: &str, name: &str) -> Span {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(span) = self.find(trace, name) {
                return span;
            }
            assert!(
                Instant::now() < deadline,
                "no span '{name}' in trace {trace}; got {:?}",
                self.0.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// (trace id, span id, traceparent) of a caller.
fn caller(n: u8) -> (String, String, String) {
    let trace = format!("{n:02x}{}", "ab".repeat(15));
    let span = format!("{n:02x}{}", "cd".repeat(7));
    let traceparent = format!("00-{trace}-{span}-01");
    (trace, span, traceparent)
}

fn traced<T>(message: T, traceparent: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector_in_the_callers_trace() {
    use axum::routing::{get, post};
    use layotto_grpc::pb::dapr::common::v1 as dapr_common;
    use layotto_grpc::pb::dapr::runtime::v1 as dapr;
    use layotto_grpc::pb::runtime as pb;

    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let server = collector.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(server))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });

    // The app: one subscription, and a method to invoke; both keep the traceparent they got.
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let keep = |path: &'static str, seen: Arc<Mutex<Vec<(String, String)>>>| {
        move |headers: axum::http::HeaderMap| async move {
            let traceparent =
                headers.get("traceparent").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            seen.lock().unwrap().push((path.to_owned(), traceparent));
            axum::Json(serde_json::json!({"status": "SUCCESS"}))
        }
    };
    let subscriptions =
        serde_json::json!([{"pubsubname": "pub_subs_demo", "topic": "traced", "route": "/events"}]);
    let app = axum::Router::new()
        .route("/dapr/subscribe", get(move || async move { axum::Json(subscriptions) }))
        .route("/events", post(keep("/events", seen.clone())))
        .route("/echo", post(keep("/echo", seen.clone())));
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = app_listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(app_listener, app).await.unwrap() });

    let mut cmd = command();
    cmd.args(["--app-id", "traced-app", "--app-protocol", "http", "--app-port", &app_port.to_string()])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        .env("OTEL_SERVICE_NAME", "layotto-under-test")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let rt = Runtime::start(cmd);
    assert!(rt.startup.contains("tracing on"), "{}", rt.startup);
    let endpoint = format!("http://127.0.0.1:{}", rt.grpc);
    let mut layotto =
        layotto_grpc::pb::runtime::runtime_client::RuntimeClient::connect(endpoint.clone()).await.unwrap();
    let mut dapr_client = dapr::dapr_client::DaprClient::connect(endpoint).await.unwrap();

    // SaveState: the server span is the caller's child, the component span the server span's.
    let (trace, parent, traceparent) = caller(1);
    let item = pb::StateItem { key: "traced".into(), value: b"v".to_vec(), ..Default::default() };
    let save = pb::SaveStateRequest { store_name: "state_demo".into(), states: vec![item] };
    layotto.save_state(traced(save, &traceparent)).await.unwrap();
    let server = collector.wait(&trace, "/spec.proto.runtime.v1.Runtime/SaveState").await;
    assert_eq!(server.parent, parent, "the caller's span is the parent");
    let component = collector.wait(&trace, "state state_demo").await;
    assert_eq!(component.parent, server.id);
    assert_eq!(component.attribute("layotto.component"), Some("state_demo"), "{component:?}");
    assert_eq!(component.attribute("layotto.component.type"), Some("in-memory"), "{component:?}");

    // Publish → delivery: one trace from the caller to the app's callback.
    let (trace, parent, traceparent) = caller(2);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !seen.lock().unwrap().iter().any(|(path, tp)| path == "/events" && tp.contains(&trace)) {
        assert!(Instant::now() < deadline, "no traced event reached the app: {:?}", seen.lock().unwrap());
        let publish = dapr::PublishEventRequest {
            pubsub_name: "pub_subs_demo".into(),
            topic: "traced".into(),
            data: b"{}".to_vec(),
            data_content_type: "application/json".into(),
            ..Default::default()
        };
        dapr_client.publish_event(traced(publish, &traceparent)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let publish = collector.wait(&trace, "/dapr.proto.runtime.v1.Dapr/PublishEvent").await;
    assert_eq!(publish.parent, parent);
    let deliver = collector.wait(&trace, "deliver traced").await;
    assert_eq!(deliver.parent, publish.id, "delivery is the publish span's child");
    let app_saw =
        seen.lock().unwrap().iter().find(|(p, tp)| p == "/events" && tp.contains(&trace)).cloned().unwrap();
    assert!(app_saw.1.contains(&deliver.id), "the app's parent is the delivery span: {}", app_saw.1);

    // Invocation: the app sees the runtime's InvokeService span as its parent.
    let (trace, parent, traceparent) = caller(3);
    let invoke = dapr::InvokeServiceRequest {
        id: "traced-app".into(),
        message: Some(dapr_common::InvokeRequest {
            method: "echo".into(),
            http_extension: Some(dapr_common::HttpExtension { verb: 3, querystring: String::new() }),
            ..Default::default()
        }),
    };
    dapr_client.invoke_service(traced(invoke, &traceparent)).await.unwrap();
    let server = collector.wait(&trace, "/dapr.proto.runtime.v1.Dapr/InvokeService").await;
    assert_eq!(server.parent, parent);
    let app_saw =
        seen.lock().unwrap().iter().find(|(p, tp)| p == "/echo" && tp.contains(&trace)).cloned().unwrap();
    assert!(app_saw.1.contains(&server.id), "the app's parent is the runtime's span: {}", app_saw.1);
}

/// A collector that is down: calls keep working, the runtime says spans are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_never_blocks_a_call() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cmd = command();
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{closed}")).env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let rt = Runtime::start(cmd);
    let mut client = layotto_grpc::pb::runtime::runtime_client::RuntimeClient::connect(format!(
        "http://127.0.0.1:{}",
        rt.grpc
    ))
    .await
    .unwrap();
    let started = Instant::now();
    for _ in 0..50 {
        client
            .say_hello(layotto_grpc::pb::runtime::SayHelloRequest {
                service_name: "quick_start_demo".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "calls waited on the collector: {:?}",
        started.elapsed()
    );
}
