//! `etcd`: ids in Go Layotto's etcd layout, so both runtimes sharing one etcd
//! hand out ids from the same keys.
//!
//! Storage: the key `<keyPrefixPath><stored key>` (default `/layotto/`); an
//! id is the key's *version*, which every put raises by exactly one.
//! - next_id: one transaction putting the key and reading it back;
//! - segments: none (a version cannot jump), so WEAK asks for every id;
//! - ensure_bigger_than: puts until the version exceeds the minimum, at most
//!   [`MAX_CATCH_UP`] of them; a larger gap fails startup naming the key
//!   (Go Layotto refuses any gap).
//!
//! Metadata (Layotto's keys): `endpoints` (`;`-separated `host:port`),
//! `dialTimeout` and `timeout` (seconds), `username`, `password`,
//! `keyPrefixPath`, `tlsCert` / `tlsCertKey` / `tlsCa` (PEM files: TLS, and
//! client-certificate auth with the first two). An etcd that is down makes calls fail with `Unavailable`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use layotto_core::{ComponentContext, Error, Health, Result};
use layotto_etcd::pb::etcdserverpb as rpc;
use layotto_etcd::{Etcd, EtcdSettings, KeyPrefixPath, op};
use rpc::request_op::Request;
use rpc::response_op::Response;

use crate::{Features, Sequencer};

/// The most puts `biggerThan` may take at startup.
pub const MAX_CATCH_UP: i64 = 100_000;

/// Puts in flight while catching up; etcd commits them in batches.
const CATCH_UP_CONCURRENCY: usize = 64;

pub struct EtcdSequencer {
    component: String,
    etcd: Etcd,
    prefix: String,
}

impl EtcdSequencer {
    pub const TYPE: &'static str = "etcd";

    /// The registry constructor: connects, failing with a message naming the
    /// component and the endpoints when etcd cannot be reached.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn Sequencer>> {
        let settings: EtcdSettings = ctx.settings()?;
        let prefix: KeyPrefixPath = ctx.settings()?;
        let component = format!("sequencer store '{}' (etcd)", ctx.name);
        let etcd = Etcd::connect(&component, &settings).await?;
        Ok(Arc::new(Self { component, etcd, prefix: prefix.path() }))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn version(&self, key: &str) -> Result<i64> {
        Ok(self.etcd.get(key).await?.map_or(0, |kv| kv.version))
    }
}

#[async_trait]
impl Sequencer for EtcdSequencer {
    fn features(&self) -> Features {
        Features { segments: false, durable: true }
    }

    async fn next_id(&self, key: &str) -> Result<i64> {
        let key = self.key(key).into_bytes();
        let put = Request::RequestPut(rpc::PutRequest { key: key.clone(), ..Default::default() });
        let read = Request::RequestRange(rpc::RangeRequest { key: key.clone(), ..Default::default() });
        let txn = rpc::TxnRequest { compare: vec![], success: vec![op(put), op(read)], failure: vec![] };
        let response = self.etcd.txn(txn).await?;
        match response.responses.get(1).and_then(|r| r.response.as_ref()) {
            Some(Response::ResponseRange(range)) if !range.kvs.is_empty() => Ok(range.kvs[0].version),
            _ => Err(Error::internal(format!(
                "{}: key '{}': etcd answered a put without the key",
                self.component,
                String::from_utf8_lossy(&key)
            ))),
        }
    }

    async fn segment(&self, _key: &str, _size: u32) -> Result<Option<RangeInclusive<i64>>> {
        Ok(None)
    }

    async fn ensure_bigger_than(&self, key: &str, min: i64) -> Result<()> {
        let stored = self.key(key);
        let mut current = self.version(&stored).await?;
        if current >= min {
            return Ok(());
        }
        if min - current > MAX_CATCH_UP {
            return Err(Error::config(format!(
                "{}: biggerThan {min} for key '{key}' cannot be met: etcd ids are the version of '{stored}' \
                 ({current}), which one put raises by one, and startup makes at most {MAX_CATCH_UP} puts",
                self.component
            )));
        }
        while current < min {
            let puts = usize::try_from(min - current).unwrap_or(0);
            futures::stream::iter(0..puts)
                .map(|_| self.etcd.put(&stored, b"", 0))
                .buffer_unordered(CATCH_UP_CONCURRENCY)
                .try_for_each(|_| async { Ok(()) })
                .await?;
            current = self.version(&stored).await?;
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        self.etcd.health().await
    }
}
