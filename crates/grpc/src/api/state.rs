//! The State API. Stores are already behind `PrefixedStore` (key rules and
//! prefixes); this layer adds what every service needs around them.

use std::sync::Arc;

use layotto_core::{Error, ErrorKind, Metadata};
use layotto_state::{BulkGetItem, DeleteRequest, GetRequest, Operation, SetRequest, StateStore, StateValue};

use super::{ApiResult, Named};

#[derive(Default)]
pub struct StateApi {
    pub components: Named<Arc<dyn StateStore>>,
}

impl StateApi {
    pub async fn get(&self, store: &str, req: GetRequest) -> ApiResult<Option<StateValue>> {
        Ok(self.components.get(store)?.get(req).await?)
    }

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
        Ok(component.bulk_get(keys, metadata).await?)
    }

    pub async fn bulk_set(&self, store: &str, reqs: Vec<SetRequest>) -> ApiResult<()> {
        let component = self.components.get(store)?;
        if reqs.is_empty() {
            return Ok(());
        }
        Ok(component.bulk_set(reqs).await?)
    }

    pub async fn delete(&self, store: &str, req: DeleteRequest) -> ApiResult<()> {
        Ok(self.components.get(store)?.delete(req).await?)
    }

    pub async fn bulk_delete(&self, store: &str, reqs: Vec<DeleteRequest>) -> ApiResult<()> {
        let component = self.components.get(store)?;
        if reqs.is_empty() {
            return Ok(());
        }
        Ok(component.bulk_delete(reqs).await?)
    }

    /// Runs `ops` all or nothing; a store without transactions says so.
    pub async fn transact(&self, store: &str, ops: Vec<Operation>, metadata: Metadata) -> ApiResult<()> {
        let component = self.components.get(store)?;
        if !component.features().transactions {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("state store '{store}' does not support transactions"),
            )
            .into());
        }
        Ok(component.transact(ops, metadata).await?)
    }
}
