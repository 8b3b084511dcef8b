//! `zookeeper`: locks as Go Layotto takes them, so both runtimes sharing one
//! ensemble see each other's locks.
//!
//! Storage: the ephemeral node `/<stored key>` (see
//! [`layotto_zookeeper::node_path`]) holding the owner, created by a session
//! of its own. The lock lasts `expire`: this runtime closes that session when
//! the lease ends (which removes the node), and if the runtime dies the server
//! ends the session after its timeout. A session the server expires early
//! (a long partition) takes the node with it, so the lock is reported gone
//! (`LockUnexist`), never held twice.
//! - try_lock: a new session, then create the node (exists → not acquired);
//! - unlock: read the node (absent → `LockUnexist`, another owner →
//!   `LockBelongToOthers`), delete it at the version read;
//! - keep_alive: moves the end of the lease of a lock this runtime took; a
//!   lock held by the same owner through another runtime is that runtime's
//!   to renew (`FAILED_PRECONDITION` saying so).
//!
//! Every held lock keeps a connection: ZooKeeper's `maxClientCnxns` (60 per
//! client address by default) caps the locks one runtime host can hold at
//! once; raise it (0 = no cap) for many concurrent locks.
//!
//! Metadata (Layotto's keys): `zookeeperHosts` (`;`-separated, required),
//! `zookeeperPassword`, `sessionTimeout` (seconds, default 5: connecting and
//! the reading session), `logInfo`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, ErrorKind, Health, Result};
use layotto_zookeeper::zk::{self, Acls, CreateMode};
use layotto_zookeeper::{SharedSession, Zookeeper, ZookeeperSettings, node_path};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{Features, KeepAliveRequest, LockStatus, LockStore, TryLockRequest, UnlockRequest};

/// A lock this runtime holds: the session that owns its node, and when it ends.
struct Held {
    owner: String,
    session: zk::Client,
    until: watch::Sender<Instant>,
}

pub struct ZookeeperLock {
    zk: Zookeeper,
    held: Arc<Mutex<HashMap<String, Held>>>,
    /// The session reads and deletes go through.
    reader: SharedSession,
}

impl ZookeeperLock {
    pub const TYPE: &'static str = "zookeeper";

    /// The registry constructor: opens the reading session, failing with a
    /// message naming the component and the hosts when none answers.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn LockStore>> {
        let settings: ZookeeperSettings = ctx.settings()?;
        let zk = Zookeeper::new(&format!("lock store '{}' (zookeeper)", ctx.name), &settings)?;
        let reader = SharedSession::open(zk.clone(), 1).await?;
        Ok(Arc::new(Self { zk, held: Arc::default(), reader }))
    }

    async fn reader(&self) -> Result<zk::Client> {
        self.reader.get().await
    }

    /// The node's owner and stat, or None when there is no node.
    async fn read(&self, path: &str) -> Result<Option<(Vec<u8>, zk::Stat)>> {
        match self.reader().await?.get_data(path).await {
            Ok((data, stat)) => Ok(Some((data, stat))),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(self.zk.error(&format!("reading {path}"), e)),
        }
    }

    /// Ends the session of the lock this runtime holds at `path` if it is
    /// `session` (another task may already hold a newer lock there).
    fn release(&self, path: &str, session: i64) {
        let mut held = self.held.lock();
        if held.get(path).is_some_and(|h| h.session.session_id().0 == session) {
            held.remove(path);
        }
    }

    /// Keeps `session` (and so the node) until the lease ends, then closes it.
    fn hold(&self, path: String, owner: String, session: zk::Client, expire: Duration) {
        let (until, mut moved) = watch::channel(Instant::now() + expire);
        let session_id = session.session_id();
        self.held.lock().insert(path.clone(), Held { owner, session, until });
        let held = self.held.clone();
        tokio::spawn(async move {
            loop {
                let end = *moved.borrow_and_update();
                tokio::select! {
                    _ = tokio::time::sleep_until(end) => {
                        if *moved.borrow() <= Instant::now() { break; }
                    }
                    changed = moved.changed() => if changed.is_err() { return },
                }
            }
            // Dropping the last handle closes the session, which removes the node.
            let mut held = held.lock();
            if held.get(&path).is_some_and(|h| h.session.session_id() == session_id) {
                held.remove(&path);
            }
        });
    }
}

#[async_trait]
impl LockStore for ZookeeperLock {
    fn features(&self) -> Features {
        Features { keep_alive: true, durable: true, lease_step: Duration::from_millis(1) }
    }

    async fn try_lock(&self, req: TryLockRequest) -> Result<bool> {
        let path = node_path(&req.resource_id);
        let session = self.zk.session(req.expire).await?;
        let create = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        match session.create(&path, req.lock_owner.as_bytes(), &create).await {
            Ok(_) => {
                self.hold(path, req.lock_owner, session, req.expire);
                Ok(true)
            }
            Err(zk::Error::NodeExists) => Ok(false),
            Err(e) => Err(self.zk.error(&format!("creating {path}"), e)),
        }
    }

    async fn unlock(&self, req: UnlockRequest) -> Result<LockStatus> {
        let path = node_path(&req.resource_id);
        let Some((owner, stat)) = self.read(&path).await? else { return Ok(LockStatus::LockUnexist) };
        if owner != req.lock_owner.as_bytes() {
            return Ok(LockStatus::LockBelongToOthers);
        }
        match self.reader().await?.delete(&path, Some(stat.version)).await {
            Ok(()) => {
                self.release(&path, stat.ephemeral_owner);
                Ok(LockStatus::Success)
            }
            Err(zk::Error::NoNode) => Ok(LockStatus::LockUnexist),
            // Replaced since it was read: someone else's now.
            Err(zk::Error::BadVersion) => Ok(LockStatus::LockBelongToOthers),
            Err(e) => Err(self.zk.error(&format!("deleting {path}"), e)),
        }
    }

    async fn keep_alive(&self, req: KeepAliveRequest) -> Result<LockStatus> {
        let path = node_path(&req.resource_id);
        let Some((owner, stat)) = self.read(&path).await? else { return Ok(LockStatus::LockUnexist) };
        if owner != req.lock_owner.as_bytes() {
            return Ok(LockStatus::LockBelongToOthers);
        }
        let held = self.held.lock();
        match held.get(&path) {
            Some(h) if h.owner == req.lock_owner && h.session.session_id().0 == stat.ephemeral_owner => {
                h.until.send_replace(Instant::now() + req.expire);
                Ok(LockStatus::Success)
            }
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{}: lock '{}' of '{}' was taken through another runtime; renew it there",
                    self.zk.component(),
                    req.resource_id,
                    req.lock_owner
                ),
            )),
        }
    }

    async fn health(&self) -> Health {
        self.reader.health().await
    }
}
