//! etcd driven directly with the operations the etcd lock and sequencer
//! components issue, as the baseline for their rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::ValueEnum;
use layotto_etcd::pb::etcdserverpb as rpc;
use layotto_etcd::{Etcd, EtcdSettings, compare_eq, op};
use rpc::compare::{CompareTarget, TargetUnion};
use rpc::request_op::Request;

use crate::{Load, Report, check, drive, key_names};

#[derive(Clone, Copy, ValueEnum)]
pub enum Op {
    /// Lease grant, put-if-absent on the lease, compare-and-delete: a TryLock+Unlock pair.
    Lock,
    /// Put and read back in one transaction: one STRONG id.
    Incr,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

async fn lock_pair(etcd: &Etcd, key: String) -> Result<(), String> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let (key, owner) = (format!("/bench-direct/{key}-{n}").into_bytes(), format!("owner-{n}").into_bytes());
    let lease = etcd.grant_lease(Duration::from_secs(10)).await.map_err(|e| e.to_string())?;
    let put = Request::RequestPut(rpc::PutRequest {
        key: key.clone(),
        value: owner.clone(),
        lease,
        ..Default::default()
    });
    let txn = rpc::TxnRequest {
        compare: vec![compare_eq(&key, CompareTarget::Create, TargetUnion::CreateRevision(0))],
        success: vec![op(put)],
        failure: vec![],
    };
    if !etcd.txn(txn).await.map_err(|e| e.to_string())?.succeeded {
        return Err("lock was not free".into());
    }
    let delete =
        Request::RequestDeleteRange(rpc::DeleteRangeRequest { key: key.clone(), ..Default::default() });
    let range = Request::RequestRange(rpc::RangeRequest { key: key.clone(), ..Default::default() });
    let txn = rpc::TxnRequest {
        compare: vec![compare_eq(&key, CompareTarget::Value, TargetUnion::Value(owner))],
        success: vec![op(range.clone()), op(delete)],
        failure: vec![op(range)],
    };
    let released = etcd.txn(txn).await.map_err(|e| e.to_string())?.succeeded;
    if released { Ok(()) } else { Err("unlock failed".into()) }
}

async fn incr(etcd: &Etcd, key: String) -> Result<(), String> {
    let key = format!("/bench-direct-incr/{key}").into_bytes();
    let put = Request::RequestPut(rpc::PutRequest { key: key.clone(), ..Default::default() });
    let range = Request::RequestRange(rpc::RangeRequest { key, ..Default::default() });
    let txn = rpc::TxnRequest { compare: vec![], success: vec![op(put), op(range)], failure: vec![] };
    etcd.txn(txn).await.map(drop).map_err(|e| e.to_string())
}

pub async fn load(endpoint: &str, which: Op, load: &Load) -> Result<Report> {
    check(load)?;
    let settings = EtcdSettings { endpoints: Some(endpoint.to_owned()), ..Default::default() };
    let mut clients = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        clients.push(Arc::new(
            Etcd::connect("bench", &settings).await.map_err(|e| anyhow!("cannot connect to etcd: {e}"))?,
        ));
    }
    let keys = key_names("bench", load.keys);
    drive(load, clients, keys, move |etcd: Arc<Etcd>, key: String| async move {
        match which {
            Op::Lock => lock_pair(&etcd, key).await,
            Op::Incr => incr(&etcd, key).await,
        }
    })
    .await
}
