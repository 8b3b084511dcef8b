//! Dapr's API end to end: `dapr.proto.runtime.v1.Dapr` on the gRPC port
//! beside Layotto's services, and Dapr's HTTP API on its own listener, both
//! on the embedded defaults (in-memory components), with Dapr's codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use layotto_grpc::pb::dapr::common::v1 as common;
use layotto_grpc::pb::dapr::runtime::v1 as pb;
use layotto_grpc::pb::dapr::runtime::v1::dapr_client::DaprClient;
use layotto_runtime::{Config, Registries, Running};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

async fn start() -> (Running, DaprClient<Channel>, String) {
    start_with(None).await
}

async fn start_with(token: Option<&str>) -> (Running, DaprClient<Channel>, String) {
    let mut config = Config::embedded_defaults();
    config.server.api_token = token.map(layotto_grpc::token::ApiToken::new);
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.server.dapr_http = Some("127.0.0.1:0".parse().unwrap());
    config.app.id = "dapr-app".into();
    let running = layotto_runtime::start(config, Registries::builtin()).await.expect("runtime starts");
    let client = DaprClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    let http = format!("http://{}", running.dapr_http_addr().expect("Dapr HTTP listens"));
    (running, client, http)
}

fn key() -> String {
    format!("dapr-{}", uuid::Uuid::new_v4().simple())
}

fn item(key: &str, value: &str, etag: Option<&str>) -> common::StateItem {
    common::StateItem {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        etag: etag.map(|e| common::Etag { value: e.into() }),
        ..Default::default()
    }
}

async fn get(c: &mut DaprClient<Channel>, key: &str) -> pb::GetStateResponse {
    c.get_state(pb::GetStateRequest {
        store_name: "state_demo".into(),
        key: key.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test]
async fn grpc_state_follows_dapr() {
    let (_rt, mut c, _) = start().await;
    let k = key();
    let save = |items| pb::SaveStateRequest { store_name: "state_demo".into(), states: items };
    c.save_state(save(vec![item(&k, "v1", None)])).await.unwrap();
    let first = get(&mut c, &k).await;
    assert_eq!(first.data, b"v1");
    assert!(!first.etag.is_empty());
    c.save_state(save(vec![item(&k, "v2", Some(&first.etag))])).await.unwrap();
    // A stale etag is ABORTED, a malformed one INVALID_ARGUMENT (Dapr's codes).
    let stale = c.save_state(save(vec![item(&k, "v3", Some(&first.etag))])).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    // Dapr's SDKs read the ErrorInfo reason as the error code.
    use tonic_types::StatusExt;
    let info = stale.get_details_error_info().expect("an ErrorInfo detail");
    assert_eq!((info.reason.as_str(), info.domain.as_str()), ("DAPR_STATE_ETAG_MISMATCH", "dapr.io"));
    let bad = c.save_state(save(vec![item(&k, "v3", Some("not-a-number"))])).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert_eq!(get(&mut c, &k).await.data, b"v2");
    // A missing key is OK with empty data, not NOT_FOUND.
    let missing = get(&mut c, &key()).await;
    assert!(missing.data.is_empty() && missing.etag.is_empty());

    let (a, b) = (key(), key());
    let upsert = |k: &str| pb::TransactionalStateOperation {
        operation_type: "upsert".into(),
        request: Some(item(k, "t", None)),
    };
    c.execute_state_transaction(pb::ExecuteStateTransactionRequest {
        store_name: "state_demo".into(),
        operations: vec![upsert(&a), upsert(&b)],
        metadata: Default::default(),
    })
    .await
    .unwrap();
    let bulk = c
        .get_bulk_state(pb::GetBulkStateRequest {
            store_name: "state_demo".into(),
            keys: vec![a.clone(), b.clone(), k.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let values: Vec<&[u8]> = bulk.items.iter().map(|i| i.data.as_slice()).collect();
    assert_eq!(values, vec![&b"t"[..], b"t", b"v2"]);
    c.delete_state(pb::DeleteStateRequest {
        store_name: "state_demo".into(),
        key: k.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(get(&mut c, &k).await.data.is_empty());

    // An unknown store names itself: INVALID_ARGUMENT, as daprd.
    let unknown = c
        .get_state(pb::GetStateRequest { store_name: "nope".into(), key: "k".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(unknown.message().contains("nope"), "{}", unknown.message());
    assert_eq!(unknown.get_details_error_info().map(|i| i.reason), Some("DAPR_STATE_NOT_FOUND".to_owned()));
}

#[tokio::test]
async fn grpc_lock_metadata_secrets_and_publish() {
    let (_rt, mut c, _) = start().await;
    let (res, a, b) = (key(), key(), key());
    let lock = |owner: &str| pb::TryLockRequest {
        store_name: "lock_demo".into(),
        resource_id: res.clone(),
        lock_owner: owner.into(),
        expiry_in_seconds: 30,
    };
    assert!(c.try_lock_alpha1(lock(&a)).await.unwrap().into_inner().success);
    assert!(!c.try_lock_alpha1(lock(&b)).await.unwrap().into_inner().success);
    let unlock = |owner: &str| pb::UnlockRequest {
        store_name: "lock_demo".into(),
        resource_id: res.clone(),
        lock_owner: owner.into(),
    };
    let status = c.unlock_alpha1(unlock(&b)).await.unwrap().into_inner().status;
    assert_eq!(status, pb::unlock_response::Status::LockBelongsToOthers as i32);
    let status = c.unlock_alpha1(unlock(&a)).await.unwrap().into_inner().status;
    assert_eq!(status, pb::unlock_response::Status::Success as i32);
    let status = c.unlock_alpha1(unlock(&a)).await.unwrap().into_inner().status;
    assert_eq!(status, pb::unlock_response::Status::LockDoesNotExist as i32);

    c.set_metadata(pb::SetMetadataRequest { key: "team".into(), value: "blue".into() }).await.unwrap();
    let meta = c.get_metadata(pb::GetMetadataRequest {}).await.unwrap().into_inner();
    assert_eq!(meta.id, "dapr-app");
    assert_eq!(meta.extended_metadata.get("team").map(String::as_str), Some("blue"));
    assert!(!meta.runtime_version.is_empty());
    let types: Vec<(&str, &str)> =
        meta.registered_components.iter().map(|c| (c.name.as_str(), c.r#type.as_str())).collect();
    assert!(types.contains(&("state_demo", "state.in-memory")), "{types:?}");
    assert!(types.contains(&("pub_subs_demo", "pubsub.in-memory")), "{types:?}");
    let state = meta.registered_components.iter().find(|c| c.name == "state_demo").unwrap();
    for capability in ["ETAG", "TRANSACTIONAL", "TTL"] {
        assert!(state.capabilities.iter().any(|c| c == capability), "{:?}", state.capabilities);
    }

    // local.env never hands out the runtime's own variables; PATH is an ordinary one.
    let secret = c
        .get_secret(pb::GetSecretRequest {
            store_name: "secret_demo".into(),
            key: "PATH".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(secret.data.get("PATH").is_some_and(|p| !p.is_empty()));

    c.publish_event(pb::PublishEventRequest {
        pubsub_name: "pub_subs_demo".into(),
        topic: "orders".into(),
        data: b"{}".to_vec(),
        data_content_type: "application/json".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let unknown = c
        .publish_event(pb::PublishEventRequest {
            pubsub_name: "nope".into(),
            topic: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn grpc_configuration_subscription_sends_its_id_first_then_changes() {
    let (rt, mut c, _) = start().await;
    let k = key();
    let mut stream = c
        .subscribe_configuration_alpha1(pb::SubscribeConfigurationRequest {
            store_name: "config_demo".into(),
            keys: vec![k.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first =
        tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
    assert!(!first.id.is_empty() && first.items.is_empty(), "{first:?}");
    // A change through Layotto's API reaches the Dapr subscriber.
    let mut layotto = layotto_grpc::pb::runtime::runtime_client::RuntimeClient::connect(format!(
        "http://{}",
        rt.grpc_addr()
    ))
    .await
    .unwrap();
    layotto
        .save_configuration(layotto_grpc::pb::runtime::SaveConfigurationRequest {
            store_name: "config_demo".into(),
            app_id: "dapr-app".into(),
            items: vec![layotto_grpc::pb::runtime::ConfigurationItem {
                key: k.clone(),
                content: "on".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let change =
        tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(change.id, first.id);
    assert_eq!(change.items.get(&k).map(|i| i.value.as_str()), Some("on"));
    let got = c
        .get_configuration(pb::GetConfigurationRequest {
            store_name: "config_demo".into(),
            keys: vec![k.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.items.get(&k).map(|i| i.value.as_str()), Some("on"));
    let unsubscribed = c
        .unsubscribe_configuration(pb::UnsubscribeConfigurationRequest {
            store_name: "config_demo".into(),
            id: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(unsubscribed.ok);
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap();
    assert!(matches!(ended, Ok(None)), "the stream ends after unsubscribing: {ended:?}");
    let again = c
        .unsubscribe_configuration(pb::UnsubscribeConfigurationRequest {
            store_name: "config_demo".into(),
            id: first.id,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.ok && again.message.contains("not found"));
}

#[tokio::test]
async fn http_health_and_metadata() {
    let (_rt, _, http) = start().await;
    let outbound = reqwest::get(format!("{http}/v1.0/healthz/outbound")).await.unwrap();
    assert_eq!(outbound.status(), 204);
    assert_eq!(reqwest::get(format!("{http}/v1.0/healthz")).await.unwrap().status(), 204);
    let client = reqwest::Client::new();
    let put = client.put(format!("{http}/v1.0/metadata/owner")).body("ops").send().await.unwrap();
    assert_eq!(put.status(), 204);
    let meta: Value = reqwest::get(format!("{http}/v1.0/metadata")).await.unwrap().json().await.unwrap();
    assert_eq!(meta["id"], "dapr-app");
    assert_eq!(meta["extended"]["owner"], "ops");
    let components = meta["components"].as_array().unwrap();
    assert!(components.iter().any(|c| c["name"] == "lock_demo" && c["type"] == "lock.in-memory"), "{meta}");
}

#[tokio::test]
async fn http_state_uses_dapr_status_codes() {
    let (_rt, _, http) = start().await;
    let client = reqwest::Client::new();
    let k = key();
    let url = format!("{http}/v1.0/state/state_demo");
    let saved = client.post(&url).json(&json!([{"key": k, "value": {"n": 1}}])).send().await.unwrap();
    assert_eq!(saved.status(), 204);
    let got = client.get(format!("{url}/{k}")).send().await.unwrap();
    assert_eq!(got.status(), 200);
    let etag = got.headers().get("etag").unwrap().to_str().unwrap().to_owned();
    assert_eq!(got.json::<Value>().await.unwrap(), json!({"n": 1}));
    // Missing key: 204. Stale etag: 409. Malformed etag: 400. Bad JSON: 400 ERR_MALFORMED_REQUEST.
    assert_eq!(client.get(format!("{url}/{}", key())).send().await.unwrap().status(), 204);
    let second = client.post(&url).json(&json!([{"key": k, "value": 2, "etag": etag}])).send().await.unwrap();
    assert_eq!(second.status(), 204);
    let stale = client.post(&url).json(&json!([{"key": k, "value": 3, "etag": etag}])).send().await.unwrap();
    assert_eq!(stale.status(), 409);
    let bad = client.post(&url).json(&json!([{"key": k, "value": 3, "etag": "x"}])).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let malformed = client.post(&url).body("[{").send().await.unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(malformed.json::<Value>().await.unwrap()["errorCode"], "ERR_MALFORMED_REQUEST");
    let unknown = client.get(format!("{http}/v1.0/state/nope/{k}")).send().await.unwrap();
    assert_eq!(unknown.status(), 400);
    assert_eq!(unknown.json::<Value>().await.unwrap()["errorCode"], "ERR_STATE_STORE_NOT_FOUND");

    let bulk: Value = client
        .post(format!("{url}/bulk"))
        .json(&json!({"keys": [k]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bulk[0]["data"], 2);
    let tx = json!({"operations": [{"operation": "delete", "request": {"key": k}}]});
    assert_eq!(client.post(format!("{url}/transaction")).json(&tx).send().await.unwrap().status(), 204);
    assert_eq!(client.get(format!("{url}/{k}")).send().await.unwrap().status(), 204);
}

#[tokio::test]
async fn http_publish_lock_and_secrets() {
    let (_rt, _, http) = start().await;
    let client = reqwest::Client::new();
    let published = client
        .post(format!("{http}/v1.0/publish/pub_subs_demo/orders/eu"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 204);
    let bulk = serde_json::json!([
        {"entryId": "1", "event": {"n": 1}, "contentType": "application/json"},
        {"entryId": "2", "event": "two", "contentType": "text/plain"},
    ]);
    let published = client
        .post(format!("{http}/v1.0-alpha1/publish/bulk/pub_subs_demo/orders"))
        .json(&bulk)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 204);
    let query =
        client.post(format!("{http}/v1.0-alpha1/state/state_demo/query")).body("{}").send().await.unwrap();
    assert_eq!(query.status(), 500);
    assert_eq!(query.json::<Value>().await.unwrap()["errorCode"], "ERR_STATE_STORE_NOT_SUPPORTED");
    let unknown = client.post(format!("{http}/v1.0/publish/nope/orders")).body("{}").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.unwrap()["errorCode"], "ERR_PUBSUB_NOT_FOUND");

    let res = key();
    let lock =
        |owner: &str, expiry: i64| json!({"resourceId": res, "lockOwner": owner, "expiryInSeconds": expiry});
    let url = format!("{http}/v1.0-alpha1/lock/lock_demo");
    let got: Value = client.post(&url).json(&lock("a", 30)).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, json!({"success": true}));
    let got: Value = client.post(&url).json(&lock("b", 30)).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, json!({"success": false}));
    let zero = client.post(&url).json(&lock("b", 0)).send().await.unwrap();
    assert_eq!(zero.status(), 400);
    let unlock = format!("{http}/v1.0-alpha1/unlock/lock_demo");
    let got: Value = client.post(&unlock).json(&lock("b", 0)).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, json!({"status": 2}));
    let got: Value = client.post(&unlock).json(&lock("a", 0)).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, json!({"status": 0}));

    let secret: Value = client
        .get(format!("{http}/v1.0/secrets/secret_demo/PATH"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(secret["PATH"].as_str().is_some_and(|p| !p.is_empty()));
    let unknown = client.get(format!("{http}/v1.0/secrets/nope/PATH")).send().await.unwrap();
    assert_eq!(unknown.status(), 401, "Dapr's (sic) code for an unknown secret store");
}

/// With an API token every call on gRPC (Dapr's and Layotto's services) and
/// on HTTP needs it, except health; a wrong one is refused as a missing one.
#[tokio::test]
async fn api_token_is_required_except_for_health() {
    let (rt, mut c, http) = start_with(Some("s3cret")).await;
    let get = |token: Option<&str>| {
        let mut request = tonic::Request::new(pb::GetStateRequest {
            store_name: "state_demo".into(),
            key: "k".into(),
            ..Default::default()
        });
        if let Some(token) = token {
            request.metadata_mut().insert("dapr-api-token", token.parse().unwrap());
        }
        request
    };
    assert_eq!(c.get_state(get(None)).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(c.get_state(get(Some("s3creT"))).await.unwrap_err().code(), Code::Unauthenticated);
    c.get_state(get(Some("s3cret"))).await.unwrap();
    let mut layotto = layotto_grpc::pb::runtime::runtime_client::RuntimeClient::connect(format!(
        "http://{}",
        rt.grpc_addr()
    ))
    .await
    .unwrap();
    let hello = layotto
        .say_hello(layotto_grpc::pb::runtime::SayHelloRequest {
            service_name: "quick_start_demo".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(hello.code(), Code::Unauthenticated);
    assert!(hello.message().contains("dapr-api-token"), "{}", hello.message());
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", rt.grpc_addr())).unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.connect().await.unwrap());
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();

    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{http}/v1.0/healthz/outbound")).send().await.unwrap().status(), 204);
    assert_eq!(client.get(format!("{http}/v1.0/metadata")).send().await.unwrap().status(), 401);
    let with =
        client.get(format!("{http}/v1.0/metadata")).header("dapr-api-token", "s3cret").send().await.unwrap();
    assert_eq!(with.status(), 200);
}

/// Building blocks this runtime does not have answer UNIMPLEMENTED naming
/// themselves; the connection keeps serving.
#[tokio::test]
async fn missing_building_blocks_are_named() {
    let (rt, mut c, _) = start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", rt.grpc_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    for (method, block) in
        [("InvokeActor", "actors"), ("StartWorkflowBeta1", "workflows"), ("ScheduleJobAlpha1", "jobs")]
    {
        raw.ready().await.unwrap();
        let path = format!("/dapr.proto.runtime.v1.Dapr/{method}").parse().unwrap();
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let status = raw.unary(tonic::Request::new(()), path, codec).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{method}");
        assert!(
            status.message().contains(method) && status.message().contains(block),
            "{}",
            status.message()
        );
    }
    assert!(get(&mut c, "still-serving").await.data.is_empty());
}

/// SubscribeTopicEventsAlpha1: the initial response first, then events,
/// each acknowledged by an `event_processed`; a second stream on the same
/// topic is refused.
#[tokio::test]
async fn streaming_subscription_delivers_and_takes_answers() {
    use pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as In;
    use pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Out;
    let (_rt, mut c, _) = start().await;
    let topic = key();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(pb::SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(In::InitialRequest(
            pb::SubscribeTopicEventsRequestInitialAlpha1 {
                pubsub_name: "pub_subs_demo".into(),
                topic: topic.clone(),
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let mut stream = c
        .subscribe_topic_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.subscribe_topic_events_response_type, Some(Out::InitialResponse(_))));
    c.publish_event(pb::PublishEventRequest {
        pubsub_name: "pub_subs_demo".into(),
        topic: topic.clone(),
        data: b"streamed".to_vec(),
        data_content_type: "text/plain".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let event =
        tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
    let Some(Out::EventMessage(event)) = event.subscribe_topic_events_response_type else {
        panic!("an event")
    };
    assert_eq!((event.data.as_slice(), event.topic.as_str()), (&b"streamed"[..], topic.as_str()));
    tx.send(pb::SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(In::EventProcessed(
            pb::SubscribeTopicEventsRequestProcessedAlpha1 {
                id: event.id,
                status: Some(pb::TopicEventResponse { status: 0 }),
            },
        )),
    })
    .await
    .unwrap();

    let (tx2, rx2) = tokio::sync::mpsc::channel(1);
    tx2.send(pb::SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(In::InitialRequest(
            pb::SubscribeTopicEventsRequestInitialAlpha1 {
                pubsub_name: "pub_subs_demo".into(),
                topic: topic.clone(),
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let second =
        c.subscribe_topic_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx2)).await.unwrap_err();
    assert_eq!(second.code(), Code::AlreadyExists);
}
