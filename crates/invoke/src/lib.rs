//! Service invocation: a call for app `X`, method `m` goes to this runtime's
//! own app when `X` is its app id, else to `X`'s runtime, found by a
//! [`Resolver`] (a static map, or DNS names as Kubernetes gives them), which
//! hands it to its app. Runtime to runtime is Dapr's HTTP API
//! (`/v1.0/invoke/X/method/m`) over one pooled HTTP/2 connection per peer.
//! Verbs, query strings, headers, content types and bodies travel both ways;
//! the target's status comes back unchanged.
//!
//! A Rust app can embed this crate without gRPC: [`Invoker::invoke`] with
//! an [`AppChannel`] of its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use layotto_core::{Error, ErrorKind, Result};

/// One call, as it reaches the target app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeRequest {
    /// The method: an HTTP app gets it as the path, a gRPC app as `method`.
    pub method: String,
    /// `GET`, `POST`, …; empty means POST.
    pub verb: String,
    /// The query string without `?`.
    pub query: String,
    /// Headers (HTTP) or metadata (gRPC) for the app.
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: Bytes,
    /// How long the whole call may take.
    pub timeout: Duration,
}

impl InvokeRequest {
    pub fn verb(&self) -> &str {
        if self.verb.is_empty() { "POST" } else { &self.verb }
    }
}

/// The target's answer, passed back as it came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeResponse {
    /// The HTTP status (a gRPC app's answers are 200 or an error).
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: Bytes,
}

/// How this runtime reaches its own app.
#[async_trait]
pub trait AppChannel: Send + Sync {
    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse>;
}

/// Where another app's runtime is: the base URL of its Dapr HTTP API.
#[async_trait]
pub trait Resolver: Send + Sync {
    async fn resolve(&self, app_id: &str) -> Result<String>;
}

/// App ids mapped to their runtimes' addresses (`host:port` of their Dapr HTTP API).
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    pub peers: BTreeMap<String, String>,
}

#[async_trait]
impl Resolver for StaticResolver {
    async fn resolve(&self, app_id: &str) -> Result<String> {
        match self.peers.get(app_id) {
            Some(address) => Ok(base_url(address)),
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "app id '{}' resolves nowhere: it is not among the peers of the static resolver ({})",
                    layotto_core::clip(app_id),
                    if self.peers.is_empty() {
                        "none configured".to_owned()
                    } else {
                        self.peers.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            )),
        }
    }
}

/// DNS names from a template, `{app}` and `{namespace}` filled in, e.g.
/// `{app}.{namespace}.svc.cluster.local:3500` for a Kubernetes Service per app.
#[derive(Debug, Clone)]
pub struct DnsResolver {
    pub template: String,
    pub namespace: String,
}

#[async_trait]
impl Resolver for DnsResolver {
    async fn resolve(&self, app_id: &str) -> Result<String> {
        // A label of a DNS name: letters, digits and '-' only.
        if app_id.is_empty() || !app_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(Error::invalid_argument(format!(
                "app id '{}' cannot be a DNS name",
                layotto_core::clip(app_id)
            )));
        }
        let address = self.template.replace("{app}", app_id).replace("{namespace}", &self.namespace);
        // Resolve now, so a name that does not exist is NOT_FOUND rather than a failed connection.
        let found = tokio::net::lookup_host(&address).await.map(|mut addrs| addrs.next().is_some());
        match found {
            Ok(true) => Ok(base_url(&address)),
            _ => Err(Error::new(
                ErrorKind::NotFound,
                format!("app id '{app_id}' resolves nowhere: DNS has no address for {address}"),
            )),
        }
    }
}

fn base_url(address: &str) -> String {
    if address.contains("://") {
        address.trim_end_matches('/').to_owned()
    } else {
        format!("http://{address}")
    }
}

/// Headers that belong to one connection (or to the runtime), never forwarded.
pub fn hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
            | "content-length"
            | "dapr-api-token"
            | "accept-encoding"
    ) || name.starts_with(':')
}

/// An HTTP app on `base` (`http://127.0.0.1:3000`).
pub struct HttpApp {
    base: String,
    client: reqwest::Client,
}

impl HttpApp {
    pub fn new(host: &str, port: u16) -> Result<Self> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::config(format!("service invocation: HTTP client: {e}")))?;
        Ok(Self { base: format!("http://{host}:{port}"), client })
    }
}

#[async_trait]
impl AppChannel for HttpApp {
    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse> {
        let path = req.method.trim_start_matches('/');
        let mut url = format!("{}/{path}", self.base);
        if !req.query.is_empty() {
            url = format!("{url}?{}", req.query);
        }
        send(&self.client, &url, req, &[], "the app").await
    }
}

/// One HTTP call with the request's verb, headers, body and deadline;
/// `extra` headers go along unfiltered (the token to a peer runtime).
async fn send(
    client: &reqwest::Client,
    url: &str,
    req: InvokeRequest,
    extra: &[(&str, &str)],
    whom: &str,
) -> Result<InvokeResponse> {
    let verb = http::Method::from_bytes(req.verb().as_bytes()).map_err(|_| {
        Error::invalid_argument(format!("'{}' is not an HTTP verb", layotto_core::clip(&req.verb)))
    })?;
    let mut builder = client.request(verb, url).timeout(req.timeout);
    // With tracing on, this runtime's span is the callee's parent, not the caller's.
    let trace = layotto_core::telemetry::current_headers();
    let traced = |name: &str| {
        !trace.is_empty()
            && (name.eq_ignore_ascii_case("traceparent") || name.eq_ignore_ascii_case("tracestate"))
    };
    for (name, value) in &req.headers {
        if !hop_by_hop(name) && !name.eq_ignore_ascii_case("content-type") && !traced(name) {
            builder = builder.header(name, value);
        }
    }
    for (name, value) in &trace {
        builder = builder.header(name, value);
    }
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    if !req.content_type.is_empty() {
        builder = builder.header(http::header::CONTENT_TYPE, &req.content_type);
    }
    let response =
        builder.body(req.body).send().await.map_err(|e| transport_error(whom, url, req.timeout, &e))?;
    let status = response.status().as_u16();
    let mut headers = Vec::new();
    let mut content_type = String::new();
    for (name, value) in response.headers() {
        let Ok(value) = value.to_str() else { continue };
        if name == http::header::CONTENT_TYPE {
            content_type = value.to_owned();
        } else if !hop_by_hop(name.as_str()) {
            headers.push((name.as_str().to_owned(), value.to_owned()));
        }
    }
    let body = response.bytes().await.map_err(|e| transport_error(whom, url, req.timeout, &e))?;
    Ok(InvokeResponse { status, headers, content_type, body })
}

fn transport_error(whom: &str, url: &str, timeout: Duration, e: &reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::new(ErrorKind::Timeout, format!("{whom} at {url} did not answer within {timeout:?}"))
    } else {
        Error::unavailable(format!("cannot reach {whom} at {url}: {e}"))
    }
}

/// Routes calls: to the own app, or through the target's runtime.
pub struct Invoker {
    app_id: String,
    app: Option<Arc<dyn AppChannel>>,
    resolver: Arc<dyn Resolver>,
    /// Runtime to runtime: HTTP/2 with prior knowledge, one pooled connection per peer.
    peers: reqwest::Client,
    /// Sent to peers, which check it as any caller's.
    token: Option<String>,
    pub default_timeout: Duration,
}

impl Invoker {
    pub fn new(
        app_id: &str,
        app: Option<Arc<dyn AppChannel>>,
        resolver: Arc<dyn Resolver>,
        token: Option<String>,
        default_timeout: Duration,
    ) -> Result<Self> {
        let peers = reqwest::Client::builder()
            .http2_prior_knowledge()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| Error::config(format!("service invocation: HTTP/2 client: {e}")))?;
        Ok(Self { app_id: app_id.to_owned(), app, resolver, peers, token, default_timeout })
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// Calls `method` of app `app_id`.
    pub async fn invoke(&self, app_id: &str, mut req: InvokeRequest) -> Result<InvokeResponse> {
        if app_id.is_empty() {
            return Err(Error::invalid_argument("service invocation: the app id is empty"));
        }
        if req.timeout.is_zero() {
            req.timeout = self.default_timeout;
        }
        if app_id == self.app_id {
            let Some(app) = &self.app else {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "service invocation: app '{app_id}' is this runtime's, but no app port is configured (app.callback_port)"
                    ),
                ));
            };
            let timeout = req.timeout;
            return match tokio::time::timeout(timeout, app.invoke(req)).await {
                Ok(result) => result,
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!("app '{app_id}' did not answer within {timeout:?}"),
                )),
            };
        }
        let base = self.resolver.resolve(app_id).await?;
        let method = req.method.trim_start_matches('/').to_owned();
        let mut url = format!("{base}/v1.0/invoke/{app_id}/method/{method}");
        if !req.query.is_empty() {
            url = format!("{url}?{}", req.query);
        }
        req.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("dapr-caller-app-id"));
        let mut extra = vec![("dapr-caller-app-id", self.app_id.as_str())];
        if let Some(token) = &self.token {
            extra.push(("dapr-api-token", token.as_str()));
        }
        send(&self.peers, &url, req, &extra, &format!("the runtime of app '{app_id}'")).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn static_resolver_names_the_known_peers() {
        let resolver = StaticResolver { peers: BTreeMap::from([("orders".into(), "127.0.0.1:3600".into())]) };
        assert_eq!(resolver.resolve("orders").await.unwrap(), "http://127.0.0.1:3600");
        let err = resolver.resolve("billing").await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("billing") && err.to_string().contains("orders"), "{err}");
    }

    #[tokio::test]
    async fn dns_resolver_fills_the_template() {
        let resolver = DnsResolver { template: "{app}:3500".into(), namespace: "default".into() };
        assert_eq!(resolver.resolve("localhost").await.unwrap(), "http://localhost:3500");
        let missing = resolver.resolve("no-such-host.invalid").await.err().map(|e| e.kind());
        assert_eq!(missing, Some(ErrorKind::NotFound));
        let bad = resolver.resolve("a/b").await.err().map(|e| e.kind());
        assert_eq!(bad, Some(ErrorKind::InvalidArgument));
    }
}
