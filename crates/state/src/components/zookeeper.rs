//! `zookeeper`: state in ZooKeeper in the layout of Dapr's zookeeper state
//! store (which Layotto's `config_integrate_test.json` uses): one node per
//! key under `keyPrefixPath`, holding the value; the node's data version is
//! the etag.
//!
//! - get: read the node (absent → no item);
//! - set: write at the etag's version (or any version), creating the node
//!   when it is missing; first-write without an etag only creates;
//! - delete: at the etag's version (a missing node with an etag is a
//!   mismatch, as everywhere);
//! - transactions: one ZooKeeper `multi`, so all of it applies or none. Steps
//!   without an etag are pinned to the versions read just before, and the
//!   whole is tried again (a few times) if another writer got in between.
//!
//! Keys become node names with what a node name cannot hold escaped (see
//! [`layotto_zookeeper::node_path`]). No TTL.
//!
//! Metadata: Dapr's `servers` (comma-separated) or Layotto's `zookeeperHosts`
//! (`;`-separated), `sessionTimeout` (a duration such as `5s`, or seconds),
//! `keyPrefixPath` (an existing path, created when missing; default `/`),
//! `zookeeperPassword`; `maxBufferSize` and `maxConnBufferSize` are accepted.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, ErrorKind, Health, Metadata, Result};
use layotto_zookeeper::zk::{self, Acls, CreateMode, MultiWriteError};
use layotto_zookeeper::{SharedSession, Zookeeper, ZookeeperSettings, node_path};
use serde::Deserialize;

use crate::{
    Concurrency, DeleteRequest, Features, GetRequest, Operation, SetRequest, StateStore, StateValue,
    already_exists, etag_mismatch, parse_etag,
};

/// What one ZooKeeper request may carry: the server's default `jute.maxbuffer`
/// (1 MiB) less room for the path and the framing.
const MAX_REQUEST_BYTES: usize = 1024 * 1024 - 4096;

/// Tries of a transaction that lost a race to another writer.
const TRANSACTION_TRIES: usize = 5;

/// Dapr's keys besides Layotto's ZooKeeper ones.
#[derive(Debug, Default, Deserialize)]
struct DaprSettings {
    #[serde(default)]
    servers: Option<String>,
    #[serde(rename = "keyPrefixPath", default)]
    key_prefix_path: Option<String>,
    #[serde(rename = "maxBufferSize", default)]
    _max_buffer_size: Option<String>,
    #[serde(rename = "maxConnBufferSize", default)]
    _max_conn_buffer_size: Option<String>,
}

pub struct ZookeeperStore {
    name: String,
    session: SharedSession,
    /// `keyPrefixPath` without a trailing `/` ("" for the root).
    prefix: String,
}

/// What a step of a transaction expects to find.
#[derive(Clone, Copy)]
enum Expect {
    Absent,
    Version(i32),
}

impl ZookeeperStore {
    pub const TYPE: &'static str = "zookeeper";

    /// The registry constructor: opens a session and makes sure
    /// `keyPrefixPath` exists, failing with a message naming the component.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn StateStore>> {
        let dapr: DaprSettings = ctx.settings()?;
        let mut zookeeper: ZookeeperSettings = ctx.settings()?;
        if zookeeper.hosts.as_deref().is_none_or(str::is_empty) {
            zookeeper.hosts = dapr.servers.clone();
        }
        let component = format!("state store '{}' (zookeeper)", ctx.name);
        let zk = Zookeeper::new(&component, &zookeeper)
            .map_err(|e| Error::config(format!("{} (or Dapr's 'servers')", e.message())))?;
        let session = SharedSession::open(zk, 1).await?;
        let prefix = dapr.key_prefix_path.as_deref().map(str::trim).unwrap_or("").trim_end_matches('/');
        let prefix = if prefix.is_empty() || prefix.starts_with('/') {
            prefix.to_owned()
        } else {
            format!("/{prefix}")
        };
        if !prefix.is_empty() {
            let client = session.get().await?;
            let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
            match client.mkdir(&prefix, &options).await {
                Ok(()) | Err(zk::Error::NodeExists) => {}
                Err(e) => {
                    return Err(session.zookeeper().error(&format!("creating keyPrefixPath {prefix}"), e));
                }
            }
        }
        Ok(Arc::new(Self { name: ctx.name.clone(), session, prefix }))
    }

    fn path(&self, key: &str) -> String {
        format!("{}{}", self.prefix, node_path(key))
    }

    fn zk(&self) -> &Zookeeper {
        self.session.zookeeper()
    }

    fn version(&self, key: &str, etag: &str) -> Result<i32> {
        // An etag past i32 can be no version: it simply never matches.
        Ok(i32::try_from(parse_etag(&self.name, key, etag)?).unwrap_or(-2))
    }

    /// Refuses a request ZooKeeper would drop the connection over.
    fn check_size(&self, what: &str, bytes: usize) -> Result<()> {
        if bytes <= MAX_REQUEST_BYTES {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::ResourceExhausted,
            format!(
                "{}: {what}: {bytes} bytes; ZooKeeper takes at most {MAX_REQUEST_BYTES} per request \
                 (its jute.maxbuffer, 1 MiB by default)",
                self.zk().component()
            ),
        ))
    }

    fn error(&self, key: &str, e: zk::Error) -> Error {
        self.zk().error(&format!("key '{key}'"), e)
    }

    /// Reads the versions of the keys a transaction touches.
    async fn versions(&self, client: &zk::Client, ops: &[Operation]) -> Result<HashMap<String, Expect>> {
        let mut found = HashMap::new();
        for op in ops {
            let key = op.key();
            if found.contains_key(key) {
                continue;
            }
            let stat = client.check_stat(&self.path(key)).await.map_err(|e| self.error(key, e))?;
            found.insert(key.to_owned(), stat.map_or(Expect::Absent, |s| Expect::Version(s.version)));
        }
        Ok(found)
    }

    /// One attempt at a transaction. Ok(false): another writer got in
    /// between the read and the write, try again.
    async fn try_transaction(&self, client: &zk::Client, ops: &[Operation]) -> Result<bool> {
        let mut state = self.versions(client, ops).await?;
        let create = CreateMode::Persistent.with_acls(Acls::anyone_all());
        let mut multi = client.new_multi_writer();
        // Per step of the multi: its operation, and whether a failure there is
        // the caller's (an etag, first-write) rather than a race.
        let mut steps: Vec<(&Operation, bool)> = Vec::with_capacity(ops.len());
        for op in ops {
            let key = op.key();
            let path = self.path(key);
            let now = state.get(key).copied().unwrap_or(Expect::Absent);
            let bad = |e: zk::Error| self.error(key, e);
            match op {
                Operation::Upsert(req) => {
                    let etag = req.checked_etag().map(|e| self.version(key, e)).transpose()?;
                    match (etag, now) {
                        (Some(v), _) => multi.add_set_data(&path, &req.value, Some(v)).map_err(bad)?,
                        (None, Expect::Absent) => {
                            multi.add_create(&path, &req.value, &create).map_err(bad)?
                        }
                        (None, Expect::Version(_)) if req.concurrency == Concurrency::FirstWrite => {
                            return Err(already_exists(&self.name, key));
                        }
                        (None, Expect::Version(v)) => {
                            multi.add_set_data(&path, &req.value, Some(v)).map_err(bad)?
                        }
                    }
                    steps.push((op, etag.is_some() || req.concurrency == Concurrency::FirstWrite));
                    let next = match (etag, now) {
                        (Some(v), _) => v + 1,
                        (None, Expect::Absent) => 0,
                        (None, Expect::Version(v)) => v + 1,
                    };
                    state.insert(key.to_owned(), Expect::Version(next));
                }
                Operation::Delete(req) => {
                    let etag = req.checked_etag().map(|e| self.version(key, e)).transpose()?;
                    match (etag, now) {
                        (Some(v), _) => multi.add_delete(&path, Some(v)).map_err(bad)?,
                        (None, Expect::Version(v)) => multi.add_delete(&path, Some(v)).map_err(bad)?,
                        // Nothing to delete; a later step sees the node absent.
                        (None, Expect::Absent) => continue,
                    }
                    steps.push((op, etag.is_some()));
                    state.insert(key.to_owned(), Expect::Absent);
                }
            }
        }
        match multi.commit().await {
            Ok(_) => Ok(true),
            Err(MultiWriteError::OperationFailed { index, source }) => {
                let Some(&(op, caller)) = steps.get(index) else {
                    return Err(self.zk().error("a transaction", source));
                };
                match source {
                    zk::Error::BadVersion | zk::Error::NoNode | zk::Error::NodeExists if caller => {
                        Err(etag_mismatch(&self.name, op.key()))
                    }
                    zk::Error::BadVersion | zk::Error::NoNode | zk::Error::NodeExists => Ok(false),
                    other => Err(self.error(op.key(), other)),
                }
            }
            Err(MultiWriteError::RequestFailed { source }) => Err(self.zk().error("a transaction", source)),
        }
    }
}

#[async_trait]
impl StateStore for ZookeeperStore {
    fn features(&self) -> Features {
        Features { etag: true, transactions: true, ttl: false, first_write: true }
    }

    async fn get(&self, req: GetRequest) -> Result<Option<StateValue>> {
        let client = self.session.get().await?;
        match client.get_data(&self.path(&req.key)).await {
            Ok((data, stat)) => {
                Ok(Some(StateValue { data, etag: Some(stat.version.to_string()), metadata: Metadata::new() }))
            }
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(self.error(&req.key, e)),
        }
    }

    async fn set(&self, req: SetRequest) -> Result<()> {
        self.check_size(&format!("key '{}'", req.key), req.value.len() + req.key.len())?;
        let client = self.session.get().await?;
        let path = self.path(&req.key);
        let create = CreateMode::Persistent.with_acls(Acls::anyone_all());
        if let Some(etag) = req.checked_etag() {
            let version = self.version(&req.key, etag)?;
            return match client.set_data(&path, &req.value, Some(version)).await {
                Ok(_) => Ok(()),
                Err(zk::Error::BadVersion | zk::Error::NoNode) => Err(etag_mismatch(&self.name, &req.key)),
                Err(e) => Err(self.error(&req.key, e)),
            };
        }
        if req.concurrency == Concurrency::FirstWrite {
            return match client.create(&path, &req.value, &create).await {
                Ok(_) => Ok(()),
                Err(zk::Error::NodeExists) => Err(already_exists(&self.name, &req.key)),
                Err(e) => Err(self.error(&req.key, e)),
            };
        }
        // Set, or create; a node created or deleted meanwhile means one more round.
        for _ in 0..TRANSACTION_TRIES {
            match client.set_data(&path, &req.value, None).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NoNode) => match client.create(&path, &req.value, &create).await {
                    Ok(_) => return Ok(()),
                    Err(zk::Error::NodeExists) => continue,
                    Err(e) => return Err(self.error(&req.key, e)),
                },
                Err(e) => return Err(self.error(&req.key, e)),
            }
        }
        Err(Error::unavailable(format!(
            "{}: key '{}': the node kept changing under the write",
            self.zk().component(),
            req.key
        )))
    }

    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        let client = self.session.get().await?;
        let version = req.checked_etag().map(|e| self.version(&req.key, e)).transpose()?;
        match client.delete(&self.path(&req.key), version).await {
            Ok(()) => Ok(()),
            Err(zk::Error::NoNode) if version.is_none() => Ok(()),
            Err(zk::Error::BadVersion | zk::Error::NoNode) => Err(etag_mismatch(&self.name, &req.key)),
            Err(e) => Err(self.error(&req.key, e)),
        }
    }

    async fn transact(&self, ops: Vec<Operation>, _metadata: Metadata) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let bytes = ops
            .iter()
            .map(|op| op.key().len() + if let Operation::Upsert(r) = op { r.value.len() } else { 0 })
            .sum();
        self.check_size("a transaction", bytes)?;
        let client = self.session.get().await?;
        for _ in 0..TRANSACTION_TRIES {
            if self
                .try_transaction(&client, &ops)
                .await
                .map_err(|e| e.context("transaction failed, nothing was applied"))?
            {
                return Ok(());
            }
        }
        Err(Error::unavailable(format!(
            "{}: the keys of the transaction kept changing under it; nothing was applied",
            self.zk().component()
        )))
    }

    async fn health(&self) -> Health {
        self.session.health().await
    }
}
