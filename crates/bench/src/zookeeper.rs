//! ZooKeeper driven directly with the operations the ZooKeeper lock and
//! sequencer components issue, as the baseline for their rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::ValueEnum;
use layotto_zookeeper::zk::{self, Acls, CreateMode};
use layotto_zookeeper::{Zookeeper, ZookeeperSettings};

use crate::{Load, Report, check, drive, key_names};

#[derive(Clone, Copy, ValueEnum)]
pub enum Op {
    /// A new session, an ephemeral node holding the owner, then its delete: a TryLock+Unlock pair.
    Lock,
    /// One write of a persistent node, returning its version: one STRONG id.
    Incr,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

pub async fn load(hosts: &str, which: Op, load: &Load) -> Result<Report> {
    check(load)?;
    let settings = ZookeeperSettings { hosts: Some(hosts.to_owned()), ..Default::default() };
    let zk = Arc::new(Zookeeper::new("bench", &settings).map_err(|e| anyhow!("{e}"))?);
    let mut clients = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let session = zk.session(Duration::from_secs(10)).await.map_err(|e| anyhow!("{e}"))?;
        clients.push((zk.clone(), session));
    }
    let keys = key_names("bench-direct-zk-", load.keys);
    drive(load, clients, keys, move |(zk, session): (Arc<Zookeeper>, zk::Client), key: String| async move {
        let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
        match which {
            Op::Lock => {
                let n = SEQ.fetch_add(1, Ordering::Relaxed);
                let path = format!("/{key}-{n}");
                let own = zk.session(Duration::from_secs(10)).await.map_err(|e| e.to_string())?;
                let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
                own.create(&path, format!("owner-{n}").as_bytes(), &ephemeral)
                    .await
                    .map_err(|e| e.to_string())?;
                let (_, stat) = session.get_data(&path).await.map_err(|e| e.to_string())?;
                session.delete(&path, Some(stat.version)).await.map_err(|e| e.to_string())
            }
            Op::Incr => {
                let path = format!("/{key}");
                match session.set_data(&path, b"", None).await {
                    Ok(_) => Ok(()),
                    Err(zk::Error::NoNode) => match session.create(&path, b"", &persistent).await {
                        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    })
    .await
}
