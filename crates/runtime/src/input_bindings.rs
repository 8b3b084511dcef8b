//! Input bindings: once the app says it takes a binding's events (Dapr's
//! `ListInputBindings` over gRPC, `OPTIONS /<route>` over HTTP), the
//! runtime reads the binding and hands each event to the app. The app may
//! start after the runtime: until it answers, the runtime keeps asking.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use layotto_bindings::{BindingEvent, BindingHandler, InputBinding};
use layotto_core::{Backoff, Error, Result};
use layotto_grpc::Apis;
use tokio::sync::watch;

use crate::subscriber::SubscribingApp;

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts a reader for every input binding the app takes. `routes` holds
/// each binding's `route` metadata (an HTTP app's path; the name when unset).
pub async fn read_for_app(
    app: SubscribingApp,
    apis: Arc<Apis>,
    routes: BTreeMap<String, String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let bindings = apis.bindings.inputs.all();
    if bindings.is_empty() {
        return;
    }
    let mut backoff = Backoff::new(Duration::from_millis(100), MAX_BACKOFF);
    let taken = loop {
        match tokio::time::timeout(Duration::from_secs(5), taken_by(&app, &bindings, &routes)).await {
            Ok(Ok(taken)) => break taken,
            Ok(Err(error)) => log_waiting(&app, &error, backoff.attempts() + 1),
            Err(_) => log_waiting(&app, "no answer within 5s", backoff.attempts() + 1),
        }
        tokio::select! {
            _ = backoff.wait() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    };
    for (name, binding) in bindings {
        if !taken.contains(&name) {
            tracing::info!(binding = %name, "the app does not take this input binding's events; it is not read");
            continue;
        }
        let route = routes.get(&name).cloned().unwrap_or_else(|| name.clone());
        let handler =
            Arc::new(AppHandler { app: app.clone(), apis: apis.clone(), name: name.clone(), route });
        tokio::spawn(read(name, binding, handler, shutdown.clone()));
    }
}

fn log_waiting(app: &SubscribingApp, error: &str, attempts: u32) {
    if attempts == 1 || attempts.is_multiple_of(20) {
        tracing::info!(app = %app.address(), %error, attempts, "waiting for the app to say which input bindings it takes");
    }
}

async fn taken_by(
    app: &SubscribingApp,
    bindings: &[(String, Arc<dyn InputBinding>)],
    routes: &BTreeMap<String, String>,
) -> std::result::Result<Vec<String>, String> {
    match app {
        SubscribingApp::Grpc(app) => app
            .list_input_bindings()
            .await
            .map_err(|s| format!("ListInputBindings: {:?}: {}", s.code(), s.message())),
        SubscribingApp::Http(app) => {
            let mut taken = Vec::new();
            for (name, _) in bindings {
                let route = routes.get(name).map_or(name.as_str(), String::as_str);
                if app.takes_binding(route).await? {
                    taken.push(name.clone());
                }
            }
            Ok(taken)
        }
    }
}

/// Reads until shutdown; a source that fails is read again after a pause.
async fn read(
    name: String,
    binding: Arc<dyn InputBinding>,
    handler: Arc<AppHandler>,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(binding = %name, "reading the input binding for the app");
    let mut backoff = Backoff::new(Duration::from_millis(200), MAX_BACKOFF);
    loop {
        tokio::select! {
            ended = binding.read(handler.clone()) => match ended {
                Ok(()) => {
                    tracing::info!(binding = %name, "the input binding has no more events");
                    return;
                }
                Err(e) => tracing::warn!(binding = %name, error = %e, "reading the input binding failed; retrying"),
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        tokio::select! {
            _ = backoff.wait() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

struct AppHandler {
    app: SubscribingApp,
    apis: Arc<Apis>,
    name: String,
    route: String,
}

#[async_trait::async_trait]
impl BindingHandler for AppHandler {
    async fn on_event(&self, event: BindingEvent) -> Result<()> {
        match &self.app {
            SubscribingApp::Grpc(app) => {
                let response = app.on_binding_event(&self.name, event).await?;
                layotto_grpc::dapr::binding_follow_up(&self.apis, response).await.map_err(|why| {
                    Error::unavailable(format!(
                        "input binding '{}': the app's follow-up failed: {why}",
                        self.name
                    ))
                })
            }
            SubscribingApp::Http(app) => app.post_binding(&self.route, event).await,
        }
    }
}
