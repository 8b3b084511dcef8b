//! A Rust app subscribing through AppCallback and publishing through the
//! runtime, like Layotto's `demo/pubsub`.
//!
//! Start the app first or second, either works (the runtime keeps asking):
//! `cargo run -p layotto-examples --bin pubsub-app` serves AppCallback on
//! 127.0.0.1:9999 for topics `hello` and `topic1` of `pub_subs_demo`, then
//! `LAYOTTO_APP__CALLBACK_PORT=9999 cargo run --release` starts the runtime
//! calling it, and
//! `cargo run -p layotto-examples --bin pubsub-app publish` publishes.

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use tonic::{Request, Response, Status};

const PUBSUB: &str = "pub_subs_demo";

struct Subscriber;

#[tonic::async_trait]
impl AppCallback for Subscriber {
    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListTopicSubscriptionsResponse>, Status> {
        let subscriptions = ["hello", "topic1"]
            .into_iter()
            .map(|topic| pb::TopicSubscription {
                pubsub_name: PUBSUB.into(),
                topic: topic.into(),
                metadata: Default::default(),
            })
            .collect();
        Ok(Response::new(pb::ListTopicSubscriptionsResponse { subscriptions }))
    }

    async fn on_topic_event(
        &self,
        request: Request<pb::TopicEventRequest>,
    ) -> Result<Response<pb::TopicEventResponse>, Status> {
        let event = request.into_inner();
        println!(
            "event {} on {}/{}: {}",
            event.id,
            event.pubsub_name,
            event.topic,
            String::from_utf8_lossy(&event.data)
        );
        // SUCCESS acknowledges; RETRY (1) would have it delivered again, DROP (2) discards it.
        Ok(Response::new(pb::TopicEventResponse { status: 0 }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("publish") {
        let mut client = RuntimeClient::connect("http://127.0.0.1:34904").await?;
        for (topic, data) in [("hello", "world"), ("topic1", "value1")] {
            client
                .publish_event(pb::PublishEventRequest {
                    pubsub_name: PUBSUB.into(),
                    topic: topic.into(),
                    data: data.as_bytes().to_vec(),
                    data_content_type: "text/plain".into(),
                    metadata: Default::default(),
                })
                .await?;
            println!("published '{data}' to {topic}");
        }
        return Ok(());
    }
    let addr = "127.0.0.1:9999".parse()?;
    println!("AppCallback listening on {addr}");
    tonic::transport::Server::builder().add_service(AppCallbackServer::new(Subscriber)).serve(addr).await?;
    Ok(())
}
