//! The Sequencer API, each store behind its `PrefixedSequencer`.

use std::sync::Arc;

use layotto_sequencer::{Increment, PrefixedSequencer};

use super::{ApiResult, Limits, Named};

#[derive(Default)]
pub struct SequencerApi {
    pub components: Named<Arc<PrefixedSequencer>>,
    pub limits: Limits,
}

impl SequencerApi {
    pub async fn next_id(&self, store: &str, key: &str, increment: Increment) -> ApiResult<i64> {
        let component = self.components.get(store)?;
        self.limits.check_key(|| format!("sequencer store {store}"), "key", key)?;
        let call = component.next_id(key, increment);
        Ok(self.limits.deadline("sequencer", store, || format!("sequencer store {store}"), call).await?)
    }
}
