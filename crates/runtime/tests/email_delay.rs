//! End to end over gRPC: Layotto's EmailService (the embedded outbox,
//! templates, an SMTP server) and DelayQueue (delayed messages in the same
//! CloudEvent envelope as a publish, delivered to SubscribeTopicEvents; two
//! runtimes sharing a Redis deliver each message once).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use layotto_grpc::pb::delay_queue as dq;
use layotto_grpc::pb::delay_queue::delay_queue_client::DelayQueueClient;
use layotto_grpc::pb::email as mail;
use layotto_grpc::pb::email::email_service_client::EmailServiceClient;
use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use layotto_runtime::{ComponentConfig, Config, Registries, Running};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

fn unique(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

fn base() -> Config {
    let mut config = Config::embedded_defaults();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.app.id = unique("app");
    config
}

async fn start(config: Config) -> (Running, Channel) {
    let running = layotto_runtime::start(config, Registries::builtin()).await.expect("runtime starts");
    let channel =
        Channel::from_shared(format!("http://{}", running.grpc_addr())).unwrap().connect().await.unwrap();
    (running, channel)
}

fn send(component: &str, to: &[&str], subject: &str, text: &str, html: &str) -> mail::SendEmailRequest {
    mail::SendEmailRequest {
        component_name: component.into(),
        setting_id: String::new(),
        subject: subject.into(),
        content: Some(mail::Content { text: text.into(), html: html.into() }),
        address: Some(mail::EmailAddress {
            from: "app@example.com".into(),
            to: to.iter().map(|t| (*t).to_owned()).collect(),
            cc: vec![],
            bcc: vec!["audit@example.com".into()],
        }),
        attachments: vec![mail::Attachment {
            filename: "a.txt".into(),
            content_type: "text/plain".into(),
            data: b"attached".to_vec(),
        }],
    }
}

#[tokio::test]
async fn email_through_the_embedded_outbox_and_templates() {
    let outbox = tempfile::tempdir().unwrap();
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(templates.path().join("welcome.html"), "<h1>Welcome {{ name }}</h1>").unwrap();
    std::fs::write(templates.path().join("welcome.txt"), "Welcome {{ name }}").unwrap();
    let mut config = base();
    config.section_mut("email").insert(
        "email_demo".into(),
        ComponentConfig::new("outbox")
            .with("directory", outbox.path().to_str().unwrap())
            .with("templateDir", templates.path().to_str().unwrap()),
    );
    let (running, channel) = start(config).await;
    let mut c = EmailServiceClient::new(channel);
    let id = c
        .send_email(send("email_demo", &["to@example.com"], "Hello", "text body", "<p>html</p>"))
        .await
        .unwrap()
        .into_inner()
        .request_id;
    let eml = std::fs::read_to_string(outbox.path().join(format!("{id}.eml"))).unwrap();
    assert!(eml.contains("Subject: Hello") && eml.contains("text body") && eml.contains("a.txt"), "{eml}");
    assert!(!eml.contains("audit@example.com"), "Bcc stays out of the message");
    let envelope = std::fs::read_to_string(outbox.path().join(format!("{id}.envelope.json"))).unwrap();
    assert!(envelope.contains("audit@example.com"), "{envelope}");

    let templated = |params: &[(&str, &str)], template: &str| mail::SendEmailWithTemplateRequest {
        component_name: "email_demo".into(),
        template: Some(mail::EmailTemplate {
            template_id: template.into(),
            template_params: params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }),
        subject: "Welcome".into(),
        address: Some(mail::EmailAddress {
            from: "app@example.com".into(),
            to: vec!["new@example.com".into()],
            ..Default::default()
        }),
    };
    let id = c
        .send_email_with_template(templated(&[("name", "<script>x</script>")], "welcome"))
        .await
        .unwrap()
        .into_inner()
        .request_id;
    let eml = std::fs::read(outbox.path().join(format!("{id}.eml"))).unwrap();
    let parsed = mailparse::parse_mail(&eml).unwrap();
    let mut bodies = BTreeMap::new();
    for part in parsed
        .subparts
        .iter()
        .flat_map(|p| if p.subparts.is_empty() { vec![p] } else { p.subparts.iter().collect() })
    {
        bodies.insert(part.ctype.mimetype.clone(), part.get_body().unwrap().trim().to_owned());
    }
    assert_eq!(bodies["text/plain"], "Welcome <script>x</script>");
    assert_eq!(
        bodies["text/html"], "<h1>Welcome &lt;script&gt;x&lt;&#x2f;script&gt;</h1>",
        "HTML is escaped"
    );

    let err = c.send_email_with_template(templated(&[], "welcome")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("name"), "{}", err.message());
    let err = c.send_email_with_template(templated(&[("name", "x")], "nope")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("'nope'") && err.message().contains("welcome"), "{}", err.message());
    let err = c.send_email(send("email_demo", &["not an address"], "x", "y", "")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("to 'not an address'"), "{}", err.message());
    let mut none = send("email_demo", &[], "x", "y", "");
    none.address.as_mut().unwrap().bcc.clear();
    let err = c.send_email(none).await.unwrap_err();
    assert!(err.code() == Code::InvalidArgument && err.message().contains("recipient"), "{}", err.message());
    let err = c.send_email(send("nope", &["to@example.com"], "x", "y", "")).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "component not found. kind: email , name: nope")
    );
    running.shutdown().await;
}

#[tokio::test]
async fn email_through_smtp_and_a_server_that_is_down() {
    let mut config = base();
    config.section_mut("email").insert(
        "down".into(),
        ComponentConfig::new("smtp").with("host", "127.0.0.1").with("port", "1").with("tls", "none"),
    );
    let (running, channel) = start(config).await;
    let err = EmailServiceClient::new(channel)
        .send_email(send("down", &["to@example.com"], "x", "y", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(err.message().contains("127.0.0.1:1") && err.message().contains("down"), "{}", err.message());
    running.shutdown().await;
}

fn delay(component: &str, topic: &str, data: &[u8], seconds: i32) -> dq::DelayMessageRequest {
    dq::DelayMessageRequest {
        component_name: component.into(),
        topic: topic.into(),
        data: data.to_vec(),
        data_content_type: "text/plain".into(),
        delay_in_seconds: seconds,
        metadata: HashMap::new(),
    }
}

/// Opens a SubscribeTopicEvents stream that acknowledges everything, and
/// reports each event's data and when it came.
async fn subscribe(
    channel: Channel,
    pubsub: &str,
    topic: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<(pb::TopicEventRequest, Instant)> {
    use pb::subscribe_topic_events_request::SubscribeTopicEventsRequestType as In;
    use pb::subscribe_topic_events_response::SubscribeTopicEventsResponseType as Out;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tx.send(pb::SubscribeTopicEventsRequest {
        subscribe_topic_events_request_type: Some(In::InitialRequest(
            pb::SubscribeTopicEventsRequestInitial {
                pubsub_name: pubsub.into(),
                topic: topic.into(),
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let mut events = RuntimeClient::new(channel)
        .subscribe_topic_events(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let (out, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = events.next().await {
            if let Some(Out::EventMessage(event)) = message.subscribe_topic_events_response_type {
                let processed = pb::SubscribeTopicEventsRequest {
                    subscribe_topic_events_request_type: Some(In::EventProcessed(
                        pb::SubscribeTopicEventsRequestProcessed {
                            id: event.id.clone(),
                            status: Some(pb::TopicEventResponse { status: 0 }),
                        },
                    )),
                };
                let _ = tx.send(processed).await;
                let _ = out.send((event, Instant::now()));
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_reach_subscribers_in_the_publish_envelope() {
    let (running, channel) = start(base()).await;
    let topic = unique("delayed");
    let mut seen = subscribe(channel.clone(), "pub_subs_demo", &topic).await;
    let mut dq = DelayQueueClient::new(channel.clone());
    let before = Instant::now();
    let id = dq
        .publish_delay_message(delay("pub_subs_demo", &topic, b"later", 2))
        .await
        .unwrap()
        .into_inner()
        .message_id;
    let (event, at) = tokio::time::timeout(Duration::from_secs(10), seen.recv()).await.unwrap().unwrap();
    assert!(
        at >= before + Duration::from_secs(2),
        "delivered {:?} early",
        before + Duration::from_secs(2) - at
    );
    assert!(at <= before + Duration::from_secs(3), "delivered {:?} after its time", at - before);
    assert_eq!(event.data, b"later");
    assert_eq!(event.id, id, "the answer's message id is the event's");
    assert_eq!((event.source.as_str(), event.r#type.as_str()), ("runtime", "com.runtime.event.sent"));
    assert_eq!(event.data_content_type, "text/plain");

    let err = dq.publish_delay_message(delay("pub_subs_demo", &topic, b"x", -1)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("delay_in_seconds"), "{}", err.message());
    let err = dq.publish_delay_message(delay("pub_subs_demo", "", b"x", 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("topic"), "{}", err.message());
    let err = dq.publish_delay_message(delay("nope", &topic, b"x", 1)).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "component not found. kind: delay_queue , name: nope")
    );
    running.shutdown().await;
}

/// Two runtimes of one app on one Redis: every delayed message reaches the
/// app's consumer group once, whichever runtime moved it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_sharing_redis_deliver_each_delayed_message_once() {
    let redis = std::env::var("LAYOTTO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let mut config = base();
    config
        .section_mut("pub_subs")
        .insert("redis".into(), ComponentConfig::new("redis").with("redisHost", &redis));
    let (first, first_channel) = start(config.clone()).await;
    let (second, second_channel) = start(config).await;
    let topic = unique("shared");
    let mut seen_first = subscribe(first_channel.clone(), "redis", &topic).await;
    let mut seen_second = subscribe(second_channel.clone(), "redis", &topic).await;
    let mut dq = [DelayQueueClient::new(first_channel), DelayQueueClient::new(second_channel)];
    let sent = 200usize;
    for n in 0..sent {
        let request = delay("redis", &topic, n.to_string().as_bytes(), (n % 3) as i32);
        dq[n % 2].publish_delay_message(request).await.unwrap();
    }
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.values().sum::<usize>() < sent {
        assert!(Instant::now() < deadline, "only {} of {sent} arrived", got.values().sum::<usize>());
        tokio::select! {
            Some((event, _)) = seen_first.recv() => *got.entry(String::from_utf8(event.data).unwrap()).or_default() += 1,
            Some((event, _)) = seen_second.recv() => *got.entry(String::from_utf8(event.data).unwrap()).or_default() += 1,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    // A little longer: a duplicate would show up now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Ok((event, _)) = seen_first.try_recv() {
        *got.entry(String::from_utf8(event.data).unwrap()).or_default() += 1;
    }
    while let Ok((event, _)) = seen_second.try_recv() {
        *got.entry(String::from_utf8(event.data).unwrap()).or_default() += 1;
    }
    assert_eq!(got.len(), sent);
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    first.shutdown().await;
    second.shutdown().await;
}
