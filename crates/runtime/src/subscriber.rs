//! The AppCallback side of pub/sub: ask the app what it subscribes to, then
//! deliver those topics to it. Unlike Layotto, which asks once at startup
//! and gives up, this keeps asking until the app answers, so the app and
//! the runtime can start in any order.

use std::sync::Arc;
use std::time::Duration;

use layotto_core::Backoff;
use layotto_grpc::{Apis, AppCallback};
use layotto_pubsub::routing::Routes;
use layotto_pubsub::{App, Subscription};
use tokio::sync::watch;

pub type Subscriptions = Arc<tokio::sync::Mutex<Vec<Subscription>>>;

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The app as a subscriber: over gRPC (Layotto's or Dapr's AppCallback) or
/// over Dapr's HTTP app contract.
#[derive(Clone)]
pub enum SubscribingApp {
    Grpc(AppCallback),
    Http(crate::http_app::HttpSubscriber),
}

impl SubscribingApp {
    pub(crate) fn address(&self) -> &str {
        match self {
            Self::Grpc(app) => app.address(),
            Self::Http(app) => app.address(),
        }
    }

    async fn list(&self) -> Result<Vec<layotto_grpc::pb::runtime::TopicSubscription>, String> {
        match self {
            Self::Grpc(app) => {
                app.list_topic_subscriptions().await.map_err(|s| format!("{:?}: {}", s.code(), s.message()))
            }
            Self::Http(app) => app.list().await,
        }
    }

    /// Adds the declarative subscriptions, with their routes.
    fn declared(
        &self,
        declared: &[crate::dapr_resources::DeclarativeSubscription],
    ) -> Vec<layotto_grpc::pb::runtime::TopicSubscription> {
        declared
            .iter()
            .map(|d| {
                if !d.route.is_empty() || !d.rules.is_empty() {
                    let default = if d.route.is_empty() { d.topic.clone() } else { d.route.clone() };
                    // Rules were checked when the file was read.
                    let routes = Routes::new(default, &d.rules).unwrap_or_default();
                    match self {
                        Self::Grpc(app) => app.set_routes(&d.pubsub_name, &d.topic, routes),
                        Self::Http(app) => app.set_routes(&d.pubsub_name, &d.topic, routes),
                    }
                }
                let mut metadata = d.metadata.clone();
                if !d.dead_letter_topic.is_empty() {
                    metadata.insert("deadLetterTopic".into(), d.dead_letter_topic.clone());
                }
                layotto_grpc::pb::runtime::TopicSubscription {
                    pubsub_name: d.pubsub_name.clone(),
                    topic: d.topic.clone(),
                    metadata,
                }
            })
            .collect()
    }

    fn into_app(self) -> Arc<dyn App> {
        match self {
            Self::Grpc(app) => Arc::new(app),
            Self::Http(app) => Arc::new(app),
        }
    }
}

pub async fn subscribe_app(
    app: SubscribingApp,
    declared: Vec<crate::dapr_resources::DeclarativeSubscription>,
    dapr: Arc<layotto_grpc::dapr::DaprInfo>,
    apis: Arc<Apis>,
    subscriptions: Subscriptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), MAX_BACKOFF);
    let listed = loop {
        let asked = tokio::time::timeout(Duration::from_secs(5), app.list()).await;
        let asked = asked.unwrap_or_else(|_| Err("no answer within 5s".to_owned()));
        match asked {
            Ok(listed) => break listed,
            Err(error) => {
                let attempts = backoff.attempts() + 1;
                // Say it once loudly, then now and then, without flooding the log.
                if attempts == 1 || attempts.is_multiple_of(20) {
                    tracing::info!(
                        app = %app.address(), %error, attempts,
                        "waiting for the app to list its topic subscriptions; retrying"
                    );
                }
            }
        }
        tokio::select! {
            _ = backoff.wait() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    };
    tracing::info!(app = %app.address(), count = listed.len(), "the app listed its topic subscriptions");
    use layotto_grpc::dapr::SubscriptionKind;
    let mut listed: Vec<_> = listed.into_iter().map(|s| (s, SubscriptionKind::Programmatic)).collect();
    for wanted in app.declared(&declared) {
        if !listed.iter().any(|(l, _)| l.pubsub_name == wanted.pubsub_name && l.topic == wanted.topic) {
            listed.push((wanted, SubscriptionKind::Declarative));
        }
    }
    let app: Arc<dyn App> = app.into_app();
    for (wanted, kind) in listed {
        let Ok(pubsub) = apis.pubsub.components.get(&wanted.pubsub_name) else {
            tracing::warn!(
                pubsub = %wanted.pubsub_name, topic = %wanted.topic,
                "the app subscribes to a pubsub that is not configured; ignored"
            );
            continue;
        };
        let (app, subscriptions, mut shutdown, dapr) =
            (app.clone(), subscriptions.clone(), shutdown.clone(), dapr.clone());
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(100), MAX_BACKOFF);
            loop {
                let result = pubsub
                    .subscribe_app(
                        &wanted.pubsub_name,
                        &wanted.topic,
                        wanted.metadata.clone(),
                        None,
                        app.clone(),
                    )
                    .await;
                match result {
                    Ok(subscription) => {
                        tracing::info!(pubsub = %wanted.pubsub_name, topic = %wanted.topic, "subscribed");
                        dapr.subscriptions.lock().push(layotto_grpc::dapr::SubscriptionInfo {
                            pubsub_name: wanted.pubsub_name.clone(),
                            topic: wanted.topic.clone(),
                            dead_letter_topic: wanted
                                .metadata
                                .get("deadLetterTopic")
                                .cloned()
                                .unwrap_or_default(),
                            kind,
                        });
                        let mut all = subscriptions.lock().await;
                        if *shutdown.borrow() {
                            drop(all);
                            subscription.close().await;
                        } else {
                            all.push(subscription);
                        }
                        return;
                    }
                    Err(e) => tracing::warn!(
                        pubsub = %wanted.pubsub_name, topic = %wanted.topic, error = %e,
                        "cannot subscribe yet; retrying"
                    ),
                }
                tokio::select! {
                    _ = backoff.wait() => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        });
    }
}
