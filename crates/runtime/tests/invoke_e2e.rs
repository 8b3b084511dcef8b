//! Service invocation end to end: runtime A calls app `orders` behind
//! runtime B (an HTTP app) and app `grpc-app` behind runtime C (a Dapr gRPC
//! app), through Dapr's HTTP API, Dapr's InvokeService and Layotto's, with
//! static and DNS name resolution, deadlines, dead peers and API tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use layotto_grpc::pb::dapr::common::v1 as common;
use layotto_grpc::pb::dapr::runtime::v1 as pb;
use layotto_grpc::pb::dapr::runtime::v1::app_callback_server::{AppCallback, AppCallbackServer};
use layotto_grpc::pb::dapr::runtime::v1::dapr_client::DaprClient;
use layotto_runtime::config::AppProtocol;
use layotto_runtime::{Config, Registries, Running};
use serde_json::{Value, json};
use tonic::{Code, Request, Response, Status};

/// The HTTP app: echoes what reached it; `/slow` takes 3 s; `/status/N` answers N.
async fn http_app() -> u16 {
    async fn handle(
        method: Method,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        let path = uri.path().to_owned();
        if path == "/slow" {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        if let Some(code) = path.strip_prefix("/status/") {
            let code = StatusCode::from_u16(code.parse().unwrap()).unwrap();
            return (code, [("x-app", "yes")], "custom status").into_response();
        }
        let header =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let echo = json!({
            "verb": method.as_str(),
            "path": path,
            "query": uri.query().unwrap_or_default(),
            "custom": header("x-custom"),
            "caller": header("dapr-caller-app-id"),
            "token": header("dapr-api-token"),
            "content_type": header("content-type"),
            "body": String::from_utf8_lossy(&body),
        });
        ([("x-app", "yes"), ("content-type", "application/json")], echo.to_string()).into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(handle)).await.unwrap() });
    port
}

/// The gRPC app: OnInvoke echoes; method `fail` answers ABORTED.
#[derive(Clone)]
struct GrpcApp;

#[tonic::async_trait]
impl AppCallback for GrpcApp {
    async fn on_invoke(
        &self,
        request: Request<common::InvokeRequest>,
    ) -> Result<Response<common::InvokeResponse>, Status> {
        let req = request.into_inner();
        if req.method == "fail" {
            return Err(Status::aborted("the app said no"));
        }
        let verb = req.http_extension.map(|e| e.verb).unwrap_or_default();
        let body =
            format!("{}:{verb}:{}", req.method, String::from_utf8_lossy(&req.data.unwrap_or_default().value));
        Ok(Response::new(common::InvokeResponse {
            data: Some(prost_types::Any { type_url: String::new(), value: body.into_bytes() }),
            content_type: "text/plain".into(),
        }))
    }
    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListTopicSubscriptionsResponse>, Status> {
        Ok(Response::new(pb::ListTopicSubscriptionsResponse::default()))
    }
    async fn on_topic_event(
        &self,
        _: Request<pb::TopicEventRequest>,
    ) -> Result<Response<pb::TopicEventResponse>, Status> {
        Err(Status::unimplemented("no topics"))
    }
    async fn list_input_bindings(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListInputBindingsResponse>, Status> {
        Ok(Response::new(pb::ListInputBindingsResponse::default()))
    }
    async fn on_binding_event(
        &self,
        _: Request<pb::BindingEventRequest>,
    ) -> Result<Response<pb::BindingEventResponse>, Status> {
        Err(Status::unimplemented("no bindings"))
    }
    async fn on_bulk_topic_event(
        &self,
        _: Request<pb::TopicEventBulkRequest>,
    ) -> Result<Response<pb::TopicEventBulkResponse>, Status> {
        Err(Status::unimplemented("no bulk"))
    }
}

async fn grpc_app() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(AppCallbackServer::new(GrpcApp))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    port
}

fn config(app_id: &str, app_port: u16, protocol: AppProtocol, token: Option<&str>) -> Config {
    let mut config = Config::embedded_defaults();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.server.dapr_http = Some("127.0.0.1:0".parse().unwrap());
    config.server.api_token = token.map(layotto_grpc::token::ApiToken::new);
    config.app.id = app_id.into();
    config.app.callback_port = app_port;
    config.app.protocol = protocol;
    config
}

async fn start(config: Config) -> (Running, SocketAddr) {
    let running = layotto_runtime::start(config, Registries::builtin()).await.expect("runtime starts");
    let http = running.dapr_http_addr().unwrap();
    (running, http)
}

/// A (no app of its own) → B (`orders`, HTTP app) and C (`grpc-app`, gRPC app); `ghost` is a dead peer.
async fn three(token: Option<&str>) -> (Running, Running, Running, SocketAddr) {
    let (b, b_http) = start(config("orders", http_app().await, AppProtocol::Http, token)).await;
    let (c, c_http) = start(config("grpc-app", grpc_app().await, AppProtocol::Grpc, token)).await;
    let mut a = config("frontend", 0, AppProtocol::Grpc, token);
    a.invoke.peers.insert("orders".into(), b_http.to_string());
    a.invoke.peers.insert("grpc-app".into(), c_http.to_string());
    a.invoke.peers.insert("ghost".into(), "127.0.0.1:1".into());
    let (a, a_http) = start(a).await;
    (a, b, c, a_http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_invocation_through_two_runtimes_keeps_verb_query_headers_and_status() {
    let (_a, _b, _c, a_http) = three(None).await;
    let client = reqwest::Client::new();
    let response = client
        .put(format!("http://{a_http}/v1.0/invoke/orders/method/items/7?x=1&y=two"))
        .header("x-custom", "kept")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-app").unwrap(), "yes");
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["verb"], "PUT");
    assert_eq!(echo["path"], "/items/7");
    assert_eq!(echo["query"], "x=1&y=two");
    assert_eq!(echo["custom"], "kept");
    assert_eq!(echo["caller"], "frontend");
    assert_eq!(echo["content_type"], "text/plain");
    assert_eq!(echo["body"], "hello");

    // Dapr's other form: the app id in a header, the method as the path.
    let by_header: Value = client
        .post(format!("http://{a_http}/items/8?z=9"))
        .header("dapr-app-id", "orders")
        .body("hdr")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((by_header["path"].as_str(), by_header["query"].as_str()), (Some("/items/8"), Some("z=9")));

    let teapot =
        client.get(format!("http://{a_http}/v1.0/invoke/orders/method/status/418")).send().await.unwrap();
    assert_eq!(teapot.status(), 418, "the app's status comes back unchanged");
    assert_eq!(teapot.text().await.unwrap(), "custom status");

    let unknown = client.get(format!("http://{a_http}/v1.0/invoke/billing/method/x")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.unwrap()["errorCode"], "ERR_DIRECT_INVOKE");
    let dead = client.get(format!("http://{a_http}/v1.0/invoke/ghost/method/x")).send().await.unwrap();
    assert_eq!(dead.status(), 500);
    let no_app = client.get(format!("http://{a_http}/v1.0/invoke/frontend/method/x")).send().await.unwrap();
    assert_eq!(no_app.status(), 500, "A has no app of its own");

    // A gRPC app behind C, called over HTTP: its status as HTTP, the gRPC one in headers.
    let echoed = client
        .post(format!("http://{a_http}/v1.0/invoke/grpc-app/method/echo"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status(), 200, "{:?}", echoed.headers());
    assert_eq!(echoed.text().await.unwrap(), "echo:3:x");
    let failed =
        client.post(format!("http://{a_http}/v1.0/invoke/grpc-app/method/fail")).send().await.unwrap();
    assert_eq!(failed.status(), 409);
    assert_eq!(failed.headers().get("grpc-status").unwrap(), "10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_invocation_dapr_and_layotto_with_statuses_and_deadlines() {
    let (a, _b, _c, _) = three(None).await;
    let mut dapr = DaprClient::connect(format!("http://{}", a.grpc_addr())).await.unwrap();
    let call = |app: &str, method: &str, verb: i32, query: &str| pb::InvokeServiceRequest {
        id: app.into(),
        message: Some(common::InvokeRequest {
            method: method.into(),
            data: Some(prost_types::Any { type_url: String::new(), value: b"payload".to_vec() }),
            content_type: "text/plain".into(),
            http_extension: Some(common::HttpExtension { verb, querystring: query.into() }),
        }),
    };
    let reply = dapr.invoke_service(call("orders", "echo", 3, "q=1")).await.unwrap().into_inner();
    let echo: Value = serde_json::from_slice(&reply.data.unwrap().value).unwrap();
    assert_eq!(
        (echo["verb"].as_str(), echo["query"].as_str(), echo["body"].as_str()),
        (Some("POST"), Some("q=1"), Some("payload"))
    );
    assert_eq!(reply.content_type, "application/json");
    let not_found = dapr.invoke_service(call("orders", "status/404", 1, "")).await.unwrap_err();
    assert_eq!(not_found.code(), Code::NotFound, "an HTTP app's 404 is NOT_FOUND");
    let reply = dapr.invoke_service(call("grpc-app", "echo", 4, "")).await.unwrap().into_inner();
    assert_eq!(reply.data.unwrap().value, b"echo:4:payload");
    let aborted = dapr.invoke_service(call("grpc-app", "fail", 0, "")).await.unwrap_err();
    assert_eq!(
        (aborted.code(), aborted.message()),
        (Code::Aborted, "the app said no"),
        "a gRPC app's status is unchanged"
    );
    assert_eq!(dapr.invoke_service(call("billing", "x", 0, "")).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(dapr.invoke_service(call("ghost", "x", 0, "")).await.unwrap_err().code(), Code::Unavailable);

    // The caller's deadline holds across both runtimes.
    let mut slow = Request::new(call("orders", "slow", 1, ""));
    slow.set_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let late = dapr.invoke_service(slow).await.unwrap_err();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());

    // Layotto's InvokeService reaches the same apps.
    use layotto_grpc::pb::runtime as lpb;
    let mut layotto =
        lpb::runtime_client::RuntimeClient::connect(format!("http://{}", a.grpc_addr())).await.unwrap();
    let reply = layotto
        .invoke_service(lpb::InvokeServiceRequest {
            id: "orders".into(),
            message: Some(lpb::CommonInvokeRequest {
                method: "hello".into(),
                data: Some(prost_types::Any { type_url: String::new(), value: b"from layotto".to_vec() }),
                content_type: "text/plain".into(),
                http_extension: Some(lpb::HttpExtension { verb: 1, querystring: String::new() }),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let echo: Value = serde_json::from_slice(&reply.data.unwrap().value).unwrap();
    assert_eq!((echo["path"].as_str(), echo["verb"].as_str()), (Some("/hello"), Some("GET")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_travel_between_runtimes_and_stay_out_of_the_app() {
    let (_a, _b, _c, a_http) = three(Some("cluster-token")).await;
    let client = reqwest::Client::new();
    let url = format!("http://{a_http}/v1.0/invoke/orders/method/echo");
    assert_eq!(client.post(&url).send().await.unwrap().status(), 401);
    let echo: Value = client
        .post(&url)
        .header("dapr-api-token", "cluster-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["caller"], "frontend");
    assert_eq!(echo["token"], "", "the runtime's token never reaches the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_resolution_finds_the_peer_by_name() {
    // B's app id is a name DNS knows: the template makes `localhost:<B's port>`.
    let (_b, b_http) = start(config("localhost", http_app().await, AppProtocol::Http, None)).await;
    let mut a = config("frontend", 0, AppProtocol::Grpc, None);
    a.invoke.resolver = "dns".into();
    a.invoke.dns_template = format!("{{app}}:{}", b_http.port());
    let (_a, a_http) = start(a).await;
    let client = reqwest::Client::new();
    let echo: Value = client
        .get(format!("http://{a_http}/v1.0/invoke/localhost/method/by-dns"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["path"], "/by-dns");
    let missing =
        client.get(format!("http://{a_http}/v1.0/invoke/no-such-app.invalid/method/x")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
