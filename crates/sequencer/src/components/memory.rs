//! `in-memory`: per-key counters in the process, for tests and single
//! instances. Metadata: none. Storage: a map from stored key to the last id
//! handed out. Segments are supported. Ids restart at 1 with the process.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Result};
use parking_lot::Mutex;

use crate::Sequencer;

#[derive(Default)]
pub struct MemorySequencer {
    counters: Mutex<HashMap<String, i64>>,
}

impl MemorySequencer {
    pub const TYPE: &'static str = "in-memory";

    pub fn new() -> Self {
        Self::default()
    }

    /// The registry constructor.
    pub async fn build(_ctx: ComponentContext) -> Result<Arc<dyn Sequencer>> {
        Ok(Arc::new(Self::new()))
    }

    fn add(&self, key: &str, n: i64) -> Result<i64> {
        let mut counters = self.counters.lock();
        let counter = counters.entry(key.to_owned()).or_insert(0);
        *counter = counter
            .checked_add(n)
            .ok_or_else(|| Error::internal(format!("in-memory sequencer: key '{key}' has run out of ids")))?;
        Ok(*counter)
    }
}

#[async_trait]
impl Sequencer for MemorySequencer {
    fn features(&self) -> crate::Features {
        crate::Features { segments: true, durable: false }
    }

    async fn next_id(&self, key: &str) -> Result<i64> {
        self.add(key, 1)
    }

    async fn segment(&self, key: &str, size: u32) -> Result<Option<RangeInclusive<i64>>> {
        let last = self.add(key, i64::from(size))?;
        Ok(Some(last - i64::from(size) + 1..=last))
    }

    async fn ensure_bigger_than(&self, key: &str, min: i64) -> Result<()> {
        let mut counters = self.counters.lock();
        let counter = counters.entry(key.to_owned()).or_insert(0);
        *counter = (*counter).max(min);
        Ok(())
    }
}
