//! The State API. Stores are already behind `PrefixedStore` (key rules and
//! prefixes); this layer adds what every service needs around them.

use std::collections::HashSet;
use std::sync::Arc;

use layotto_core::{Error, ErrorKind, Metadata};
use layotto_state::{BulkGetItem, DeleteRequest, GetRequest, Operation, SetRequest, StateStore, StateValue};

use super::{ApiResult, Limits, Named};

#[derive(Default)]
pub struct StateApi {
    pub components: Named<Arc<dyn StateStore>>,
    pub limits: Limits,
}

impl StateApi {
    fn check_key(&self, store: &str, key: &str) -> Result<(), Error> {
        self.limits.check_key(|| format!("state store '{store}'"), "key", key)
    }

    fn check_bulk(&self, store: &str, what: &str, count: usize) -> Result<(), Error> {
        self.limits.check_bulk(|| format!("state store '{store}'"), what, count)
    }

    /// The count of a bulk write's items, once their count and keys are within the limits.
    fn check_items<'a>(
        &self,
        store: &str,
        keys: impl ExactSizeIterator<Item = &'a str>,
    ) -> Result<usize, Error> {
        let count = keys.len();
        self.check_bulk(store, "items", count)?;
        for key in keys {
            self.check_key(store, key)?;
        }
        Ok(count)
    }

    async fn call<T>(
        &self,
        store: &str,
        call: impl Future<Output = layotto_core::Result<T>>,
    ) -> ApiResult<T> {
        Ok(self.limits.deadline("state", store, || format!("state store '{store}'"), call).await?)
    }

    pub async fn get(&self, store: &str, req: GetRequest) -> ApiResult<Option<StateValue>> {
        let component = self.components.get(store)?;
        self.check_key(store, &req.key)?;
        self.call(store, component.get(req)).await
    }

    /// Each key once, however often it is asked for; an answer over
    /// `limits.max_response_bytes` is RESOURCE_EXHAUSTED.
    pub async fn bulk_get(
        &self,
        store: &str,
        keys: Vec<String>,
        metadata: Metadata,
    ) -> ApiResult<Vec<BulkGetItem>> {
        let component = self.components.get(store)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.check_bulk(store, "keys", keys.len())?;
        for key in &keys {
            self.check_key(store, key)?;
        }
        let mut seen = HashSet::with_capacity(keys.len());
        let keys: Vec<String> = keys.into_iter().filter(|k| seen.insert(k.clone())).collect();
        let items = self.call(store, component.bulk_get(keys, metadata)).await?;
        let size: usize = items
            .iter()
            .map(|item| {
                item.key.len()
                    + item.value.as_ref().map_or(0, |v| v.data.len())
                    + item.error.as_ref().map_or(0, String::len)
            })
            .sum();
        if size > self.limits.max_response_bytes {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "state store '{store}': GetBulkState answer of {size} bytes ({} keys) exceeds the limit of {} \
                     bytes (server.max_response_bytes)",
                    items.len(),
                    self.limits.max_response_bytes
                ),
            )
            .into());
        }
        Ok(items)
    }

    pub async fn bulk_set(&self, store: &str, reqs: Vec<SetRequest>) -> ApiResult<()> {
        let component = self.components.get(store)?;
        if self.check_items(store, reqs.iter().map(|r| r.key.as_str()))? == 0 {
            return Ok(());
        }
        self.call(store, component.bulk_set(reqs)).await
    }

    pub async fn delete(&self, store: &str, req: DeleteRequest) -> ApiResult<()> {
        let component = self.components.get(store)?;
        self.check_key(store, &req.key)?;
        self.call(store, component.delete(req)).await
    }

    pub async fn bulk_delete(&self, store: &str, reqs: Vec<DeleteRequest>) -> ApiResult<()> {
        let component = self.components.get(store)?;
        if self.check_items(store, reqs.iter().map(|r| r.key.as_str()))? == 0 {
            return Ok(());
        }
        self.call(store, component.bulk_delete(reqs)).await
    }

    /// Runs `ops` all or nothing; a store without transactions says so.
    pub async fn transact(&self, store: &str, ops: Vec<Operation>, metadata: Metadata) -> ApiResult<()> {
        let component = self.components.get(store)?;
        self.check_bulk(store, "operations", ops.len())?;
        for op in &ops {
            self.check_key(store, op.key())?;
        }
        if !component.features().transactions {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("state store '{store}' does not support transactions"),
            )
            .into());
        }
        self.call(store, component.transact(ops, metadata)).await
    }
}
