use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{Error, Health, KEY_SEPARATOR, Metadata, Result, clip};

use crate::{
    BulkGetItem, DeleteRequest, Features, GetRequest, Operation, SetRequest, StateStore, StateValue,
};

/// Applies a key-prefix strategy (Layotto §3.4) and validates keys before
/// they reach a component; strips the prefix from keys it returns.
///
/// Stored keys are `<prefix>||<key>`, or the bare key without a prefix,
/// which is what Go Layotto writes, so both can share one backend.
pub struct PrefixedStore {
    name: String,
    prefix: Option<String>,
    inner: Arc<dyn StateStore>,
}

impl PrefixedStore {
    pub fn new(name: impl Into<String>, prefix: Option<String>, inner: Arc<dyn StateStore>) -> Self {
        Self { name: name.into(), prefix, inner }
    }

    fn stored_key(&self, key: &str) -> Result<String> {
        if key.is_empty() {
            return Err(Error::invalid_argument(format!("state store '{}': key is empty", self.name)));
        }
        if key.contains(KEY_SEPARATOR) {
            return Err(Error::invalid_argument(format!(
                "state store '{}': key '{}' must not contain '||'",
                self.name,
                clip(key)
            )));
        }
        Ok(match &self.prefix {
            Some(prefix) => format!("{prefix}{KEY_SEPARATOR}{key}"),
            None => key.to_owned(),
        })
    }

    /// Strips exactly our prefix. (Layotto splits at the first `||`, which
    /// breaks when the prefix ends in `|`: app id `a|` stores `a|||k`.)
    fn user_key(&self, stored: String) -> String {
        match &self.prefix {
            Some(prefix) => {
                match stored.strip_prefix(prefix.as_str()).and_then(|k| k.strip_prefix(KEY_SEPARATOR)) {
                    Some(key) => key.to_owned(),
                    None => stored,
                }
            }
            None => stored,
        }
    }
}

#[async_trait]
impl StateStore for PrefixedStore {
    fn features(&self) -> Features {
        self.inner.features()
    }

    async fn get(&self, mut req: GetRequest) -> Result<Option<StateValue>> {
        req.key = self.stored_key(&req.key)?;
        self.inner.get(req).await
    }

    async fn bulk_get(&self, keys: Vec<String>, metadata: Metadata) -> Result<Vec<BulkGetItem>> {
        let keys = keys.iter().map(|k| self.stored_key(k)).collect::<Result<Vec<_>>>()?;
        let mut items = self.inner.bulk_get(keys, metadata).await?;
        for item in &mut items {
            item.key = self.user_key(std::mem::take(&mut item.key));
        }
        Ok(items)
    }

    async fn set(&self, mut req: SetRequest) -> Result<()> {
        req.key = self.stored_key(&req.key)?;
        self.inner.set(req).await
    }

    async fn bulk_set(&self, mut reqs: Vec<SetRequest>) -> Result<()> {
        for req in &mut reqs {
            req.key = self.stored_key(&req.key)?;
        }
        self.inner.bulk_set(reqs).await
    }

    async fn delete(&self, mut req: DeleteRequest) -> Result<()> {
        req.key = self.stored_key(&req.key)?;
        self.inner.delete(req).await
    }

    async fn bulk_delete(&self, mut reqs: Vec<DeleteRequest>) -> Result<()> {
        for req in &mut reqs {
            req.key = self.stored_key(&req.key)?;
        }
        self.inner.bulk_delete(reqs).await
    }

    async fn transact(&self, mut ops: Vec<Operation>, metadata: Metadata) -> Result<()> {
        for op in &mut ops {
            let stored = self.stored_key(op.key())?;
            *op.key_mut() = stored;
        }
        self.inner.transact(ops, metadata).await
    }

    async fn health(&self) -> Health {
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::components::memory::MemoryStore;

    /// Found by the key_prefix fuzz target: a prefix ending in `|`.
    #[tokio::test]
    async fn bulk_get_strips_a_prefix_that_ends_in_a_bar() {
        let store = PrefixedStore::new("s", Some("app|".to_owned()), Arc::new(MemoryStore::new("s")));
        store.set(SetRequest::new("\nA", b"v".to_vec())).await.unwrap();
        let items = store.bulk_get(vec!["\nA".to_owned()], Metadata::new()).await.unwrap();
        assert_eq!(items[0].key, "\nA");
        assert_eq!(items[0].value.as_ref().unwrap().data, b"v");
    }
}
