//! `zookeeper`: ids in Go Layotto's ZooKeeper layout, so both runtimes
//! sharing one ensemble hand out ids from the same nodes.
//!
//! Storage: the node `/<stored key>` (see [`layotto_zookeeper::node_path`]);
//! an id is the node's data *version*, which every write raises by one.
//! Unlike Go Layotto, which creates the node ephemeral (so ids start again
//! after its session ends), the node is persistent: ids survive restarts.
//! - next_id: write the node (creating it when missing) and return the version;
//! - versions are 32-bit: past 2 147 483 647 the key answers
//!   RESOURCE_EXHAUSTED instead of wrapping round;
//! - segments: none, so WEAK asks for every id;
//! - ensure_bigger_than: writes until the version exceeds the minimum, at
//!   most [`MAX_CATCH_UP`] of them; a larger gap fails startup naming the key.
//!
//! Writes go over four sessions in turn: ZooKeeper answers one session's
//! requests one after another.
//!
//! Metadata (Layotto's keys): `zookeeperHosts` (`;`-separated, required),
//! `zookeeperPassword`, `sessionTimeout` (seconds, default 5), `logInfo`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use layotto_core::{ComponentContext, Error, ErrorKind, Health, Result};
use layotto_zookeeper::zk::{self, Acls, CreateMode};
use layotto_zookeeper::{SharedSession, Zookeeper, ZookeeperSettings, node_path};

use crate::{Features, Sequencer};

/// The most writes `biggerThan` may take at startup.
pub const MAX_CATCH_UP: i64 = 100_000;

/// Writes in flight while catching up.
const CATCH_UP_CONCURRENCY: usize = 64;

pub struct ZookeeperSequencer {
    session: SharedSession,
}

impl ZookeeperSequencer {
    pub const TYPE: &'static str = "zookeeper";

    /// The registry constructor: opens a session, failing with a message
    /// naming the component and the hosts when none answers.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn Sequencer>> {
        let settings: ZookeeperSettings = ctx.settings()?;
        let zk = Zookeeper::new(&format!("sequencer store '{}' (zookeeper)", ctx.name), &settings)?;
        Ok(Arc::new(Self { session: SharedSession::open(zk, 4).await? }))
    }

    fn zk(&self) -> &Zookeeper {
        self.session.zookeeper()
    }

    /// Writes the node once; its new version.
    async fn bump(&self, client: &zk::Client, path: &str) -> Result<i32> {
        match client.set_data(path, b"", None).await {
            Ok(stat) => Ok(stat.version),
            Err(zk::Error::NoNode) => {
                let create = CreateMode::Persistent.with_acls(Acls::anyone_all());
                match client.create(path, b"", &create).await {
                    Ok(_) | Err(zk::Error::NodeExists) => {}
                    Err(e) => return Err(self.zk().error(&format!("creating {path}"), e)),
                }
                client
                    .set_data(path, b"", None)
                    .await
                    .map(|stat| stat.version)
                    .map_err(|e| self.zk().error(path, e))
            }
            Err(e) => Err(self.zk().error(&format!("writing {path}"), e)),
        }
    }

    async fn version(&self, client: &zk::Client, path: &str) -> Result<i64> {
        match client.check_stat(path).await {
            Ok(stat) => Ok(stat.map_or(0, |s| i64::from(s.version))),
            Err(e) => Err(self.zk().error(&format!("reading {path}"), e)),
        }
    }
}

#[async_trait]
impl Sequencer for ZookeeperSequencer {
    fn features(&self) -> Features {
        Features { segments: false, durable: true }
    }

    async fn next_id(&self, key: &str) -> Result<i64> {
        let client = self.session.get().await?;
        let path = node_path(key);
        let version = self.bump(&client, &path).await?;
        if version <= 0 {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "{}: key '{key}': the version of {path} went past 2147483647 (ZooKeeper versions are 32-bit); \
                     this key has no ids left",
                    self.zk().component()
                ),
            ));
        }
        Ok(i64::from(version))
    }

    async fn segment(&self, _key: &str, _size: u32) -> Result<Option<RangeInclusive<i64>>> {
        Ok(None)
    }

    async fn ensure_bigger_than(&self, key: &str, min: i64) -> Result<()> {
        let client = self.session.get().await?;
        let path = node_path(key);
        let mut current = self.version(&client, &path).await?;
        if current >= min {
            return Ok(());
        }
        if min - current > MAX_CATCH_UP || min >= i64::from(i32::MAX) {
            return Err(Error::config(format!(
                "{}: biggerThan {min} for key '{key}' cannot be met: ZooKeeper ids are the version of {path} \
                 ({current}), which one write raises by one, and startup makes at most {MAX_CATCH_UP} writes",
                self.zk().component()
            )));
        }
        while current < min {
            let writes = usize::try_from(min - current).unwrap_or(0);
            futures::stream::iter(0..writes)
                .map(|_| self.bump(&client, &path))
                .buffer_unordered(CATCH_UP_CONCURRENCY)
                .try_for_each(|_| async { Ok(()) })
                .await?;
            current = self.version(&client, &path).await?;
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        self.session.health().await
    }
}
