//! The Sequencer API, each store behind its `PrefixedSequencer`.

use std::sync::Arc;

use layotto_sequencer::{Increment, PrefixedSequencer};

use super::{ApiResult, Named};

#[derive(Default)]
pub struct SequencerApi {
    pub components: Named<Arc<PrefixedSequencer>>,
}

impl SequencerApi {
    pub async fn next_id(&self, store: &str, key: &str, increment: Increment) -> ApiResult<i64> {
        Ok(self.components.get(store)?.next_id(key, increment).await?)
    }
}
