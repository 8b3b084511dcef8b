//! `in-memory`: a process-local store with etags, TTLs and transactions.
//! Data is gone when the process exits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use layotto_core::{ComponentContext, Metadata, Result};
use parking_lot::Mutex;

use crate::{
    DeleteRequest, Features, GetRequest, Operation, SetRequest, StateStore, StateValue, already_exists,
    etag_mismatch, expiry_metadata, parse_etag, ttl_from_metadata,
};

/// How many writes pass between sweeps of expired items.
const SWEEP_EVERY: u64 = 4096;

#[derive(Clone)]
struct Entry {
    data: Vec<u8>,
    version: u64,
    expires: Option<(Instant, SystemTime)>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|(at, _)| at > now)
    }
}

#[derive(Default)]
struct Inner {
    items: HashMap<String, Entry>,
    /// Store-wide counter, so a deleted and re-created key never reuses an etag.
    last_version: u64,
    writes: u64,
}

pub struct MemoryStore {
    name: String,
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub const TYPE: &'static str = "in-memory";

    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), inner: Mutex::new(Inner::default()) }
    }

    /// A store whose expired items are dropped every second, also when no
    /// call comes (needs a tokio runtime; `new` sweeps on writes only).
    pub fn with_sweeper(name: impl Into<String>) -> Arc<Self> {
        let store = Arc::new(Self::new(name));
        layotto_core::spawn_sweeper(&store, Self::sweep);
        store
    }

    /// The registry constructor.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn StateStore>> {
        Ok(Self::with_sweeper(ctx.name))
    }

    /// Drops every expired item.
    fn sweep(&self) {
        let now = Instant::now();
        self.inner.lock().items.retain(|_, e| e.live(now));
    }

    /// Validates one write against the item as it stands (`current`), and
    /// returns the entry to store, or `None` for a delete.
    fn check(&self, op: &Operation, current: Option<&Entry>, version: u64) -> Result<Option<Entry>> {
        let (key, etag) = match op {
            Operation::Upsert(r) => (&r.key, r.checked_etag()),
            Operation::Delete(r) => (&r.key, r.checked_etag()),
        };
        if let Some(etag) = etag {
            let expected = parse_etag(&self.name, key, etag)?;
            if current.map(|e| e.version) != Some(expected) {
                return Err(etag_mismatch(&self.name, key));
            }
        }
        match op {
            Operation::Upsert(r) => {
                if etag.is_none() && r.concurrency == crate::Concurrency::FirstWrite && current.is_some() {
                    return Err(already_exists(&self.name, key));
                }
                let ttl = ttl_from_metadata(&self.name, key, &r.metadata)?;
                let expires = ttl.map(|d| (Instant::now() + d, SystemTime::now() + d));
                Ok(Some(Entry { data: r.value.clone(), version, expires }))
            }
            Operation::Delete(_) => Ok(None),
        }
    }
}

impl Inner {
    fn live(&self, key: &str) -> Option<&Entry> {
        self.items.get(key).filter(|e| e.live(Instant::now()))
    }

    fn note_write(&mut self) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            let now = Instant::now();
            self.items.retain(|_, e| e.live(now));
        }
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn features(&self) -> Features {
        Features { etag: true, transactions: true, ttl: true, first_write: true }
    }

    async fn get(&self, req: GetRequest) -> Result<Option<StateValue>> {
        let inner = self.inner.lock();
        Ok(inner.live(&req.key).map(|e| StateValue {
            data: e.data.clone(),
            etag: Some(e.version.to_string()),
            metadata: expiry_metadata(e.expires.map(|(_, at)| at)),
        }))
    }

    async fn set(&self, req: SetRequest) -> Result<()> {
        self.transact(vec![Operation::Upsert(req)], Metadata::new()).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        self.transact(vec![Operation::Delete(req)], Metadata::new()).await
    }

    async fn transact(&self, ops: Vec<Operation>, _metadata: Metadata) -> Result<()> {
        let mut inner = self.inner.lock();
        // Stage every step against the items as earlier steps left them; commit only if all pass.
        let mut staged: Vec<(String, Option<Entry>)> = Vec::with_capacity(ops.len());
        // Where each key was last staged, so a large transaction stays linear.
        let mut last_staged: HashMap<&str, usize> = HashMap::with_capacity(ops.len());
        for op in &ops {
            let current = match last_staged.get(op.key()) {
                Some(&at) => staged[at].1.as_ref(),
                None => inner.live(op.key()),
            };
            // Versions given out here stay unique: commit advances last_version past them.
            let version = inner.last_version + staged.len() as u64 + 1;
            let next = self.check(op, current, version)?;
            last_staged.insert(op.key(), staged.len());
            staged.push((op.key().to_owned(), next));
        }
        for (key, entry) in staged {
            match entry {
                Some(entry) => {
                    inner.last_version = inner.last_version.max(entry.version);
                    inner.items.insert(key, entry);
                }
                None => {
                    inner.items.remove(&key);
                }
            }
            inner.note_write();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// 100 000 upserts once took 115 s (staging was quadratic) and held the
    /// store's lock all along; now they are linear. The 20 s bound is a hang
    /// guard, two orders of magnitude above the expected time.
    #[tokio::test]
    async fn a_large_transaction_is_linear() {
        let store = MemoryStore::new("big");
        let ops: Vec<Operation> = (0..100_000)
            .map(|i| Operation::Upsert(SetRequest::new(format!("k{}", i % 50_000), format!("v{i}"))))
            .collect();
        let applied =
            tokio::time::timeout(std::time::Duration::from_secs(20), store.transact(ops, Metadata::new()));
        applied.await.expect("a 100 000-operation transaction finishes well within 20 s").unwrap();
        let last = store.get(GetRequest::new("k49999")).await.unwrap().unwrap();
        assert_eq!(last.data, b"v99999", "the later write of a key wins");
        assert_eq!(store.inner.lock().items.len(), 50_000);
    }

    /// Expired items were dropped only every 4 096 writes; now within a second or two.
    #[tokio::test]
    async fn expired_items_are_freed_without_further_calls() {
        let store = MemoryStore::with_sweeper("ttl");
        for i in 0..40 {
            let set =
                SetRequest::new(format!("k{i}"), vec![1; 1024]).with_metadata(crate::TTL_METADATA_KEY, "1");
            store.set(set).await.unwrap();
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !store.inner.lock().items.is_empty() {
            assert!(Instant::now() < deadline, "expired items were never freed");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
