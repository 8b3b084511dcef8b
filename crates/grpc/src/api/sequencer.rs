//! The Sequencer API, each store behind its `SequencerService`.

use std::sync::Arc;

use layotto_sequencer::{Increment, SequencerService};

use super::{ApiResult, Named};

#[derive(Default)]
pub struct SequencerApi {
    pub components: Named<Arc<SequencerService>>,
}

impl SequencerApi {
    pub async fn next_id(&self, store: &str, key: &str, increment: Increment) -> ApiResult<i64> {
        Ok(self.components.get(store)?.next_id(key, increment).await?)
    }
}
