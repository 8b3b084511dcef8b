//! `etcd`: locks in Go Layotto's etcd layout, so both runtimes sharing one
//! etcd see each other's locks.
//!
//! Storage: the key `<keyPrefixPath><stored key>` (default prefix
//! `/layotto/`) holding the owner, attached to a lease of `expire` seconds.
//! - try_lock: grant a lease, then a transaction "put if the key's create
//!   revision is 0"; a lease that lost is revoked at once;
//! - unlock: "delete if the value is the owner", else read the key to tell
//!   `LockUnexist` from `LockBelongToOthers` (the released lease ends by itself);
//! - keep_alive: a real `LeaseKeepAlive` on the lock's lease when it was
//!   granted at least `expire`; a longer `expire` moves the lock to a new
//!   lease in one transaction guarded by owner and old lease.
//!
//! Leases are whole seconds (etcd's unit, and its server may round a short
//! TTL up); etcd ends an expired lease within about half a second.
//!
//! Metadata (Layotto's keys): `endpoints` (`;`-separated `host:port`),
//! `dialTimeout` and `timeout` (seconds), `username`, `password`,
//! `keyPrefixPath`, `tlsCert` / `tlsCertKey` / `tlsCa` (PEM files: TLS, and
//! client-certificate auth with the first two). An etcd that is down makes calls fail with
//! `Unavailable`, never a false "not acquired".

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Health, Result};
use layotto_etcd::pb::etcdserverpb as rpc;
use layotto_etcd::{Etcd, EtcdSettings, KeyPrefixPath, compare_eq, op};
use rpc::compare::{CompareTarget, TargetUnion};
use rpc::request_op::Request;
use rpc::response_op::Response;

use crate::{Features, KeepAliveRequest, LockStatus, LockStore, TryLockRequest, UnlockRequest};

pub struct EtcdLock {
    etcd: Etcd,
    prefix: String,
}

impl EtcdLock {
    pub const TYPE: &'static str = "etcd";

    /// The registry constructor: connects, failing with a message naming the
    /// component and the endpoints when etcd cannot be reached.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn LockStore>> {
        let settings: EtcdSettings = ctx.settings()?;
        let prefix: KeyPrefixPath = ctx.settings()?;
        let component = format!("lock store '{}' (etcd)", ctx.name);
        let etcd = Etcd::connect(&component, &settings).await?;
        Ok(Arc::new(Self { etcd, prefix: prefix.path() }))
    }

    fn key(&self, resource_id: &str) -> Vec<u8> {
        format!("{}{resource_id}", self.prefix).into_bytes()
    }

    /// Revokes a lease nobody needs any more, off the caller's path; if it
    /// fails, the lease still ends by itself.
    fn revoke_later(&self, lease: i64) {
        if lease == 0 {
            return;
        }
        let etcd = self.etcd.clone();
        tokio::spawn(async move {
            let _ = etcd.revoke_lease(lease).await;
        });
    }

    /// The owner's status from the key as it is now.
    async fn status_of(
        &self,
        key: &[u8],
        owner: &str,
    ) -> Result<(LockStatus, Option<layotto_etcd::KeyValue>)> {
        let kv = self.etcd.get(&String::from_utf8_lossy(key)).await?;
        let status = match &kv {
            None => LockStatus::LockUnexist,
            Some(kv) if kv.value == owner.as_bytes() => LockStatus::Success,
            Some(_) => LockStatus::LockBelongToOthers,
        };
        Ok((status, kv))
    }
}

/// A lease in whole seconds, at least one.
fn seconds(expire: Duration) -> u64 {
    (expire.as_secs() + u64::from(expire.subsec_nanos() > 0)).max(1)
}

fn range(key: &[u8]) -> Request {
    Request::RequestRange(rpc::RangeRequest { key: key.to_vec(), ..Default::default() })
}

/// The key-values a range answer at `index` of a transaction holds.
fn range_kvs(response: &rpc::TxnResponse, index: usize) -> &[layotto_etcd::KeyValue] {
    match response.responses.get(index).and_then(|r| r.response.as_ref()) {
        Some(Response::ResponseRange(range)) => &range.kvs,
        _ => &[],
    }
}

#[async_trait]
impl LockStore for EtcdLock {
    fn features(&self) -> Features {
        Features { keep_alive: true, durable: true, lease_step: Duration::from_secs(1) }
    }

    async fn try_lock(&self, req: TryLockRequest) -> Result<bool> {
        let lease = self.etcd.grant_lease(Duration::from_secs(seconds(req.expire))).await?;
        let key = self.key(&req.resource_id);
        let put = Request::RequestPut(rpc::PutRequest {
            key: key.clone(),
            value: req.lock_owner.into_bytes(),
            lease,
            ..Default::default()
        });
        let txn = rpc::TxnRequest {
            compare: vec![compare_eq(&key, CompareTarget::Create, TargetUnion::CreateRevision(0))],
            success: vec![op(put)],
            failure: vec![],
        };
        match self.etcd.txn(txn).await {
            Ok(response) if response.succeeded => Ok(true),
            Ok(_) => {
                self.revoke_later(lease);
                Ok(false)
            }
            Err(e) => {
                // The put may have landed; revoking releases it, and the caller,
                // who sees an error, never thinks it holds the lock.
                self.revoke_later(lease);
                Err(e)
            }
        }
    }

    async fn unlock(&self, req: UnlockRequest) -> Result<LockStatus> {
        let key = self.key(&req.resource_id);
        let delete =
            Request::RequestDeleteRange(rpc::DeleteRangeRequest { key: key.clone(), ..Default::default() });
        let txn = rpc::TxnRequest {
            compare: vec![compare_eq(
                &key,
                CompareTarget::Value,
                TargetUnion::Value(req.lock_owner.into_bytes()),
            )],
            success: vec![op(delete)],
            failure: vec![op(range(&key))],
        };
        let response = self.etcd.txn(txn).await?;
        if response.succeeded {
            // The key is gone; its lease ends by itself (revoking costs etcd one more write).
            return Ok(LockStatus::Success);
        }
        Ok(if range_kvs(&response, 0).is_empty() {
            LockStatus::LockUnexist
        } else {
            LockStatus::LockBelongToOthers
        })
    }

    async fn keep_alive(&self, req: KeepAliveRequest) -> Result<LockStatus> {
        let key = self.key(&req.resource_id);
        let (status, kv) = self.status_of(&key, &req.lock_owner).await?;
        let Some(kv) = kv.filter(|_| status == LockStatus::Success) else { return Ok(status) };
        let wanted = seconds(req.expire);
        let granted = if kv.lease == 0 { None } else { self.etcd.lease_granted_ttl(kv.lease).await? };
        if granted.is_some_and(|g| u64::try_from(g).unwrap_or(0) >= wanted) {
            return Ok(if self.etcd.keep_alive_once(kv.lease).await? {
                LockStatus::Success
            } else {
                LockStatus::LockUnexist
            });
        }
        // A longer lease than the lock has: move it, if it is still this owner's on that lease.
        let lease = self.etcd.grant_lease(Duration::from_secs(wanted)).await?;
        let put = Request::RequestPut(rpc::PutRequest {
            key: key.clone(),
            value: req.lock_owner.clone().into_bytes(),
            lease,
            ..Default::default()
        });
        let txn = rpc::TxnRequest {
            compare: vec![
                compare_eq(
                    &key,
                    CompareTarget::Value,
                    TargetUnion::Value(req.lock_owner.clone().into_bytes()),
                ),
                compare_eq(&key, CompareTarget::Lease, TargetUnion::Lease(kv.lease)),
            ],
            success: vec![op(put)],
            failure: vec![],
        };
        match self.etcd.txn(txn).await {
            Ok(response) if response.succeeded => {
                self.revoke_later(kv.lease);
                Ok(LockStatus::Success)
            }
            Ok(_) => {
                self.revoke_later(lease);
                Ok(self.status_of(&key, &req.lock_owner).await?.0)
            }
            Err(e) => Err(e),
        }
    }

    async fn health(&self) -> Health {
        self.etcd.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_round_up_to_whole_seconds() {
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::from_millis(1000)), 1);
        assert_eq!(seconds(Duration::from_millis(1001)), 2);
        assert_eq!(seconds(Duration::ZERO), 1);
        assert_eq!(seconds(Duration::from_secs(30)), 30);
    }
}
