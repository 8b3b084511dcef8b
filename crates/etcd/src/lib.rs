//! The etcd v3 client every etcd component shares (configuration, lock and
//! sequencer): Layotto's metadata keys ([`EtcdSettings`]), one
//! connection over all endpoints, KV calls, watches that resume after an
//! outage from the last revision seen, and leases. It speaks etcd's gRPC API
//! through our own proto subset (`proto/`), so no `protoc` is needed.
//!
//! Errors: connection trouble is UNAVAILABLE, a deadline is a Timeout,
//! refused credentials are a Config error; messages name the component.

use std::sync::Arc;
use std::time::Duration;

use layotto_core::{Backoff, Error, ErrorKind, Health, Result, settings};
use serde::Deserialize;
use tokio::sync::{RwLock, mpsc};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used, missing_docs)]
pub mod pb {
    //! Generated from `proto/`.
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
}

use pb::etcdserverpb as rpc;
pub use pb::mvccpb::KeyValue;

/// Layotto's etcd metadata keys.
#[derive(Debug, Default, Deserialize)]
pub struct EtcdSettings {
    /// `host:port` list separated by `;` (Layotto's lock and sequencer), or
    /// by `,`; a config store's `address` list arrives here too.
    #[serde(alias = "address", default)]
    pub endpoints: Option<String>,
    /// Seconds (or a Go duration) to connect, default 5.
    #[serde(rename = "dialTimeout", default, deserialize_with = "settings::seconds")]
    pub dial_timeout: Option<Duration>,
    /// Seconds (or a Go duration) per call, default 5.
    #[serde(default, deserialize_with = "settings::seconds")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// PEM file of the client certificate, for etcd's `--client-cert-auth`.
    #[serde(rename = "tlsCert", default)]
    pub tls_cert: Option<String>,
    /// PEM file of the client certificate's key.
    #[serde(rename = "tlsCertKey", default)]
    pub tls_cert_key: Option<String>,
    /// PEM file of the CA that signed etcd's certificate (the Mozilla roots when absent).
    #[serde(rename = "tlsCa", default)]
    pub tls_ca: Option<String>,
}

impl EtcdSettings {
    fn uses_tls(&self) -> bool {
        [&self.tls_cert, &self.tls_cert_key, &self.tls_ca]
            .iter()
            .any(|f| f.as_ref().is_some_and(|p| !p.is_empty()))
    }

    /// TLS from Layotto's file keys; None when none is set.
    pub fn tls(&self, component: &str) -> Result<Option<ClientTlsConfig>> {
        if !self.uses_tls() {
            return Ok(None);
        }
        let file = |key: &str, path: &Option<String>| -> Result<Option<Vec<u8>>> {
            match path.as_deref().filter(|p| !p.is_empty()) {
                None => Ok(None),
                Some(path) => std::fs::read(path).map(Some).map_err(|e| {
                    Error::config(format!("{component}: metadata '{key}': cannot read '{path}': {e}"))
                }),
            }
        };
        let mut tls = ClientTlsConfig::new();
        tls = match file("tlsCa", &self.tls_ca)? {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(ca)),
            None => tls.with_webpki_roots(),
        };
        match (file("tlsCert", &self.tls_cert)?, file("tlsCertKey", &self.tls_cert_key)?) {
            (Some(cert), Some(key)) => tls = tls.identity(Identity::from_pem(cert, key)),
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::config(format!(
                    "{component}: metadata 'tlsCert' is set but 'tlsCertKey' is not"
                )));
            }
            (None, Some(_)) => {
                return Err(Error::config(format!(
                    "{component}: metadata 'tlsCertKey' is set but 'tlsCert' is not"
                )));
            }
        }
        Ok(Some(tls))
    }

    /// The endpoints as URLs; `localhost:2379` when none are given.
    pub fn endpoint_urls(&self, component: &str) -> Result<Vec<String>> {
        let raw = self.endpoints.as_deref().unwrap_or("").trim();
        let raw = if raw.is_empty() { "localhost:2379" } else { raw };
        raw.split([';', ','])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                let scheme = if self.uses_tls() { "https" } else { "http" };
                let url = if e.contains("://") { e.to_owned() } else { format!("{scheme}://{e}") };
                Endpoint::from_shared(url.clone()).map(|_| url).map_err(|_| {
                    Error::config(format!("{component}: metadata 'endpoints' has an invalid address '{e}'"))
                })
            })
            .collect()
    }
}

/// Layotto's `keyPrefixPath` of the etcd lock and sequencer: where their keys live.
#[derive(Debug, Default, Deserialize)]
pub struct KeyPrefixPath {
    #[serde(rename = "keyPrefixPath", default)]
    pub key_prefix_path: Option<String>,
}

impl KeyPrefixPath {
    /// The prefix with a leading and a trailing `/`, as Go Layotto makes it; `/layotto/` by default.
    pub fn path(&self) -> String {
        match self.key_prefix_path.as_deref().map(str::trim) {
            None | Some("") => "/layotto/".to_owned(),
            Some(p) => {
                let lead = if p.starts_with('/') { "" } else { "/" };
                let trail = if p.ends_with('/') { "" } else { "/" };
                format!("{lead}{p}{trail}")
            }
        }
    }
}

/// A transaction condition: `target` of `key` equals `value`.
pub fn compare_eq(
    key: &[u8],
    target: rpc::compare::CompareTarget,
    value: rpc::compare::TargetUnion,
) -> rpc::Compare {
    rpc::Compare {
        result: rpc::compare::CompareResult::Equal as i32,
        target: target as i32,
        key: key.to_vec(),
        target_union: Some(value),
        range_end: Vec::new(),
    }
}

/// One step of a transaction.
pub fn op(request: rpc::request_op::Request) -> rpc::RequestOp {
    rpc::RequestOp { request: Some(request) }
}

/// An etcd connection, shared by the calls of one component.
#[derive(Clone)]
pub struct Etcd {
    inner: Arc<Inner>,
}

struct Inner {
    component: String,
    endpoints: String,
    channel: Channel,
    timeout: Duration,
    credentials: Option<(String, String)>,
    token: RwLock<Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>>,
}

/// What a watch reports.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    Put(KeyValue),
    Delete(KeyValue),
    /// The watch could not resume (history compacted, or a long outage):
    /// changes may have been missed, so a watcher should read again.
    Resync,
}

/// Where a watch stands: the revision to resume from (-1: compacted).
struct WatchState {
    next: i64,
    backoff: Backoff,
    failing: bool,
}

/// The end of the range holding every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Etcd {
    /// Connects to every endpoint and checks one answers, naming the
    /// component and the endpoints when none does.
    pub async fn connect(component: &str, settings: &EtcdSettings) -> Result<Self> {
        let urls = settings.endpoint_urls(component)?;
        let dial = settings.dial_timeout.unwrap_or(Duration::from_secs(5));
        let timeout = settings.timeout.unwrap_or(Duration::from_secs(5));
        let tls = settings.tls(component)?;
        let mut endpoints = Vec::with_capacity(urls.len());
        for url in &urls {
            let Ok(endpoint) = Endpoint::from_shared(url.clone()) else { continue };
            let mut endpoint = endpoint
                .connect_timeout(dial)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5));
            if let Some(tls) = &tls {
                endpoint = endpoint
                    .tls_config(tls.clone())
                    .map_err(|e| Error::config(format!("{component}: TLS for etcd at {url}: {e}")))?;
            }
            endpoints.push(endpoint);
        }
        let channel = Channel::balance_list(endpoints.into_iter());
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), password) if !user.is_empty() => {
                Some((user.clone(), password.clone().unwrap_or_default()))
            }
            _ => None,
        };
        let etcd = Self {
            inner: Arc::new(Inner {
                component: component.to_owned(),
                endpoints: urls.join(","),
                channel,
                timeout,
                credentials,
                token: RwLock::new(None),
            }),
        };
        let probe = async {
            etcd.authenticate().await?;
            etcd.revision().await
        };
        match tokio::time::timeout(dial + timeout, probe).await {
            Ok(Ok(_)) => Ok(etcd),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::unavailable(format!(
                "{component}: cannot connect to etcd at {}: no answer within {:?}",
                etcd.inner.endpoints,
                dial + timeout
            ))),
        }
    }

    pub fn endpoints(&self) -> &str {
        &self.inner.endpoints
    }

    async fn authenticate(&self) -> Result<()> {
        let Some((name, password)) = self.inner.credentials.clone() else { return Ok(()) };
        let mut auth = rpc::auth_client::AuthClient::new(self.inner.channel.clone());
        let mut request = tonic::Request::new(rpc::AuthenticateRequest { name, password });
        request.set_timeout(self.inner.timeout);
        let token = auth.authenticate(request).await.map_err(|s| self.error("authenticating", s))?;
        let value = token.into_inner().token.parse().map_err(|_| {
            Error::internal(format!("{}: etcd answered an unusable auth token", self.inner.component))
        })?;
        *self.inner.token.write().await = Some(value);
        Ok(())
    }

    /// A request with the deadline and the auth token.
    async fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.inner.timeout);
        if let Some(token) = self.inner.token.read().await.clone() {
            request.metadata_mut().insert("token", token);
        }
        request
    }

    fn error(&self, what: &str, status: tonic::Status) -> Error {
        let kind = match status.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                ErrorKind::Unavailable
            }
            tonic::Code::DeadlineExceeded => ErrorKind::Timeout,
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => ErrorKind::Config,
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        };
        Error::new(
            kind,
            format!(
                "{}: etcd at {}: {what}: {}",
                self.inner.component,
                self.inner.endpoints,
                status.message()
            ),
        )
    }

    /// Runs `call`, authenticating again once when etcd says the token expired.
    async fn call<T, F, Fut>(&self, what: &str, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, tonic::Status>>,
    {
        match call().await {
            Err(status)
                if status.code() == tonic::Code::Unauthenticated && self.inner.credentials.is_some() =>
            {
                self.authenticate().await?;
                call().await.map_err(|s| self.error(what, s))
            }
            other => other.map_err(|s| self.error(what, s)),
        }
    }

    fn kv(&self) -> rpc::kv_client::KvClient<Channel> {
        rpc::kv_client::KvClient::new(self.inner.channel.clone())
    }

    /// The store's current revision.
    pub async fn revision(&self) -> Result<i64> {
        let range = self.range(vec![0], Vec::new(), true).await?;
        Ok(range.header.map_or(0, |h| h.revision))
    }

    async fn range(&self, key: Vec<u8>, range_end: Vec<u8>, count_only: bool) -> Result<rpc::RangeResponse> {
        self.call("reading", || async {
            let message = rpc::RangeRequest {
                key: key.clone(),
                range_end: range_end.clone(),
                count_only,
                ..Default::default()
            };
            self.kv().range(self.request(message).await).await.map(tonic::Response::into_inner)
        })
        .await
    }

    /// One key.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.range(key.as_bytes().to_vec(), Vec::new(), false).await?.kvs.into_iter().next())
    }

    /// Every key starting with `prefix`, and the revision they were read at.
    pub async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        let response = self.range(prefix.as_bytes().to_vec(), prefix_end(prefix.as_bytes()), false).await?;
        Ok((response.kvs, response.header.map_or(0, |h| h.revision)))
    }

    /// Sets `key`, attached to `lease` when it is not 0; the new revision.
    pub async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<i64> {
        let response = self
            .call("writing", || async {
                let message = rpc::PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: value.to_vec(),
                    lease,
                    ..Default::default()
                };
                self.kv().put(self.request(message).await).await.map(tonic::Response::into_inner)
            })
            .await?;
        Ok(response.header.map_or(0, |h| h.revision))
    }

    /// Deletes `key`, or every key under it when `prefix`; how many went.
    pub async fn delete(&self, key: &str, prefix: bool) -> Result<i64> {
        let range_end = if prefix { prefix_end(key.as_bytes()) } else { Vec::new() };
        let response = self
            .call("deleting", || async {
                let message = rpc::DeleteRangeRequest {
                    key: key.as_bytes().to_vec(),
                    range_end: range_end.clone(),
                    prev_kv: false,
                };
                self.kv().delete_range(self.request(message).await).await.map(tonic::Response::into_inner)
            })
            .await?;
        Ok(response.deleted)
    }

    /// A transaction: `success` if every comparison holds, else `failure`.
    pub async fn txn(&self, txn: rpc::TxnRequest) -> Result<rpc::TxnResponse> {
        self.call("running a transaction", || async {
            self.kv().txn(self.request(txn.clone()).await).await.map(tonic::Response::into_inner)
        })
        .await
    }

    /// A lease of `ttl`; its id.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<i64> {
        let ttl = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let response = self
            .call("granting a lease", || async {
                let mut lease = rpc::lease_client::LeaseClient::new(self.inner.channel.clone());
                let message = rpc::LeaseGrantRequest { ttl, id: 0 };
                lease.lease_grant(self.request(message).await).await.map(tonic::Response::into_inner)
            })
            .await?;
        if !response.error.is_empty() {
            return Err(Error::internal(format!(
                "{}: etcd refused a lease: {}",
                self.inner.component, response.error
            )));
        }
        Ok(response.id)
    }

    /// Revokes a lease; the keys attached to it go with it.
    pub async fn revoke_lease(&self, id: i64) -> Result<()> {
        self.call("revoking a lease", || async {
            let mut lease = rpc::lease_client::LeaseClient::new(self.inner.channel.clone());
            let message = rpc::LeaseRevokeRequest { id };
            lease.lease_revoke(self.request(message).await).await.map(drop)
        })
        .await
    }

    /// The TTL a lease was granted with, in seconds; None once it has expired.
    pub async fn lease_granted_ttl(&self, id: i64) -> Result<Option<i64>> {
        let response = self
            .call("reading a lease", || async {
                let mut lease = rpc::lease_client::LeaseClient::new(self.inner.channel.clone());
                let message = rpc::LeaseTimeToLiveRequest { id, keys: false };
                lease.lease_time_to_live(self.request(message).await).await.map(tonic::Response::into_inner)
            })
            .await?;
        Ok((response.ttl > 0).then_some(response.granted_ttl))
    }

    /// Renews a lease to its granted TTL once; false when it had already expired.
    pub async fn keep_alive_once(&self, id: i64) -> Result<bool> {
        let response = self
            .call("renewing a lease", || async {
                let mut lease = rpc::lease_client::LeaseClient::new(self.inner.channel.clone());
                // The request stream stays open until the answer is in.
                let (requests, request_rx) = mpsc::channel::<rpc::LeaseKeepAliveRequest>(1);
                let _ = requests.send(rpc::LeaseKeepAliveRequest { id }).await;
                let stream = tokio_stream::wrappers::ReceiverStream::new(request_rx);
                let mut answers = lease.lease_keep_alive(self.request(stream).await).await?.into_inner();
                let answer = answers.message().await?;
                drop(requests);
                Ok(answer)
            })
            .await?;
        Ok(response.is_some_and(|r| r.ttl > 0))
    }

    /// Whether etcd answers within two seconds.
    pub async fn health(&self) -> Health {
        match tokio::time::timeout(Duration::from_secs(2), self.revision()).await {
            Ok(Ok(_)) => Health::up(),
            Ok(Err(e)) => Health::down(e.to_string()),
            Err(_) => Health::down(format!("etcd at {} did not answer within 2s", self.inner.endpoints)),
        }
    }

    /// Watches every key under `prefix` from `start_revision` (0 = now) until
    /// the receiver is dropped. After an outage the watch resumes from the
    /// revision after the last one seen, so no change is missed; if etcd has
    /// compacted that history, a [`WatchEvent::Resync`] says so.
    pub fn watch_prefix(&self, prefix: &str, start_revision: i64) -> mpsc::Receiver<WatchEvent> {
        let (tx, rx) = mpsc::channel(1024);
        let etcd = self.clone();
        let prefix = prefix.as_bytes().to_vec();
        tokio::spawn(async move {
            let mut state = WatchState {
                next: start_revision,
                backoff: Backoff::new(Duration::from_millis(100), Duration::from_millis(500)),
                failing: false,
            };
            while !tx.is_closed() {
                match etcd.watch_once(&prefix, &mut state, &tx).await {
                    Ok(()) => return,
                    Err(e) => {
                        if !state.failing {
                            tracing::warn!(component = %etcd.inner.component, error = %e, "etcd watch broken; resuming");
                            state.failing = true;
                        }
                        if state.next == -1 {
                            // Compacted: say so and start from now.
                            state.next = 0;
                            if tx.send(WatchEvent::Resync).await.is_err() {
                                return;
                            }
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(state.backoff.next_delay()) => {}
                            _ = tx.closed() => return,
                        }
                        if etcd.inner.credentials.is_some() {
                            let _ = etcd.authenticate().await;
                        }
                    }
                }
            }
        });
        rx
    }

    /// One watch stream; returns Ok when the receiver went away, Err when the
    /// stream broke (`next` is then the revision to resume from, -1 if compacted).
    async fn watch_once(
        &self,
        prefix: &[u8],
        state: &mut WatchState,
        tx: &mpsc::Sender<WatchEvent>,
    ) -> Result<()> {
        let create = rpc::WatchRequest {
            request_union: Some(rpc::watch_request::RequestUnion::CreateRequest(rpc::WatchCreateRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                start_revision: state.next,
                prev_kv: true,
                ..Default::default()
            })),
        };
        // The request stream stays open (and empty) for as long as we watch.
        let (requests, request_rx) = mpsc::channel::<rpc::WatchRequest>(1);
        requests.send(create).await.map_err(|_| Error::internal("watch request channel closed"))?;
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(request_rx));
        if let Some(token) = self.inner.token.read().await.clone() {
            request.metadata_mut().insert("token", token);
        }
        let mut watch = rpc::watch_client::WatchClient::new(self.inner.channel.clone());
        let mut responses = watch.watch(request).await.map_err(|s| self.error("watching", s))?.into_inner();
        loop {
            let response = tokio::select! {
                r = responses.message() => r.map_err(|s| self.error("watching", s))?,
                _ = tx.closed() => return Ok(()),
            };
            let Some(response) = response else {
                return Err(Error::unavailable(format!(
                    "{}: etcd at {} ended the watch",
                    self.inner.component, self.inner.endpoints
                )));
            };
            if response.compact_revision > 0 {
                state.next = -1;
                return Err(Error::unavailable(format!(
                    "{}: etcd compacted past revision {}",
                    self.inner.component, response.compact_revision
                )));
            }
            if response.canceled {
                return Err(Error::unavailable(format!(
                    "{}: etcd cancelled the watch: {}",
                    self.inner.component, response.cancel_reason
                )));
            }
            if response.created {
                if let Some(header) = &response.header
                    && state.next == 0
                {
                    state.next = header.revision + 1;
                }
                if state.failing {
                    tracing::info!(component = %self.inner.component, "etcd watch resumed");
                    state.failing = false;
                    state.backoff.reset();
                }
            }
            for event in response.events {
                let Some(kv) = event.kv else { continue };
                state.next = kv.mod_revision + 1;
                let event = if event.r#type == pb::mvccpb::event::EventType::Delete as i32 {
                    WatchEvent::Delete(kv)
                } else {
                    WatchEvent::Put(kv)
                };
                if tx.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_follows_etcd() {
        assert_eq!(prefix_end(b"aa"), b"ab");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn key_prefix_paths_follow_layotto() {
        let path = |p: Option<&str>| KeyPrefixPath { key_prefix_path: p.map(str::to_owned) }.path();
        assert_eq!(path(None), "/layotto/");
        assert_eq!(path(Some("/lock")), "/lock/");
        assert_eq!(path(Some("seq/")), "/seq/");
        assert_eq!(path(Some("/")), "/");
    }

    #[test]
    fn endpoints_split_on_semicolons_and_commas() {
        let settings = EtcdSettings { endpoints: Some("a:1; b:2,http://c:3".into()), ..Default::default() };
        assert_eq!(settings.endpoint_urls("x").unwrap(), ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(EtcdSettings::default().endpoint_urls("x").unwrap(), ["http://localhost:2379"]);
    }
}
