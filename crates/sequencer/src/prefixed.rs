//! [`PrefixedSequencer`]: key validation and prefixes, `biggerThan`, and the
//! WEAK segment cache in front of one component.
//!
//! The cache follows Leaf's double buffer, as Layotto does: per stored key,
//! ids are served from the current segment; when at most a tenth of it is
//! left, the next segment is fetched in the background (once); when the
//! current one runs out, the next one takes its place, or, if it is not there
//! (the background fetch failed or is slow), it is fetched on the spot.
//!
//! Ordering: all backend fetches for one key run one at a time (an async
//! mutex per key) and are installed in the order they were fetched, so with
//! a backend whose segments increase (every component here) the ids one
//! runtime hands out for a key only ever increase, also across concurrent
//! callers. The in-memory step holds a plain mutex, never across an await.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use layotto_core::{ComponentContext, Error, Health, KEY_SEPARATOR, KeyPrefix, Result, clip};
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;

use crate::{Increment, Sequencer, sequencer_key};

/// Layotto's segment size.
const DEFAULT_SEGMENT_STEP: u32 = 10_000;

/// The cache's metadata keys (Layotto documents them; here they work).
#[derive(Debug, Deserialize)]
struct CacheSettings {
    #[serde(rename = "segmentCacheEnable", default = "enabled")]
    enabled: bool,
    #[serde(rename = "segmentStep", default)]
    step: Option<u32>,
}

fn enabled() -> bool {
    true
}

/// Validates, prefixes and caches for one configured sequencer.
pub struct PrefixedSequencer {
    name: String,
    prefix: Option<String>,
    inner: Arc<dyn Sequencer>,
    /// `None` when `segmentCacheEnable` is false: WEAK then goes to the component.
    cache: Option<SegmentCache>,
}

impl PrefixedSequencer {
    /// Wraps a component: the key prefix from `keyPrefix` (default the app
    /// id), the segment cache from `segmentCacheEnable` (default true) and
    /// `segmentStep` (default 10 000, more than 0), then `bigger_than` applied
    /// to the keys as requests will store them.
    pub async fn new(
        inner: Arc<dyn Sequencer>,
        ctx: &ComponentContext,
        bigger_than: &BTreeMap<String, i64>,
    ) -> Result<Self> {
        let component = ctx.describe();
        let strategy = KeyPrefix::from_context(ctx, KeyPrefix::AppId)?;
        let cache: CacheSettings = ctx.settings()?;
        let cache_enabled = cache.enabled;
        let step = cache.step.unwrap_or(DEFAULT_SEGMENT_STEP);
        if step == 0 {
            return Err(Error::config(format!("{component}: metadata 'segmentStep' must be greater than 0")));
        }
        let service = Self {
            name: ctx.name.clone(),
            prefix: strategy.resolve(&ctx.app_id, &ctx.name),
            inner,
            cache: cache_enabled.then(|| SegmentCache::new(step)),
        };
        for (key, &min) in bigger_than {
            let stored = service.stored_key(key).map_err(|e| e.context("biggerThan"))?;
            if min > 0 {
                service
                    .inner
                    .ensure_bigger_than(&stored, min)
                    .await
                    .map_err(|e| e.context(format!("{component}: biggerThan '{key}' = {min}")))?;
            }
        }
        Ok(service)
    }

    /// The store name used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next id for a user key.
    pub async fn next_id(&self, key: &str, increment: Increment) -> Result<i64> {
        let stored = self.stored_key(key)?;
        match (&self.cache, increment) {
            (Some(cache), Increment::Weak) if !cache.unsupported.load(Ordering::Relaxed) => {
                cache.next_id(&self.inner, stored).await
            }
            _ => self.inner.next_id(&stored).await,
        }
    }

    /// What the component behind this service can do.
    pub fn features(&self) -> crate::Features {
        self.inner.features()
    }

    pub async fn health(&self) -> Health {
        self.inner.health().await
    }

    fn stored_key(&self, key: &str) -> Result<String> {
        if key.is_empty() {
            return Err(Error::invalid_argument(format!("Key is empty in sequencer store {}", self.name)));
        }
        if key.contains(KEY_SEPARATOR) {
            return Err(Error::invalid_argument(format!(
                "sequencer store {}: key '{}' must not contain '||'",
                self.name,
                clip(key)
            )));
        }
        Ok(sequencer_key(self.prefix.as_deref(), key))
    }
}

struct SegmentCache {
    step: u32,
    /// Prefetch when at most this many ids are left in the current segment.
    threshold: u64,
    /// Set when the component answered `segment` with `None`.
    unsupported: AtomicBool,
    keys: RwLock<HashMap<String, Arc<KeyBuffers>>>,
}

/// The double buffer of one stored key.
#[derive(Default)]
struct KeyBuffers {
    state: Mutex<Buffers>,
    /// Held across every backend fetch of this key, so fetches never overlap.
    fetch: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Buffers {
    current: Option<Segment>,
    next: Option<Segment>,
    prefetching: bool,
}

/// Unissued ids `next..=last`.
#[derive(Clone, Copy)]
struct Segment {
    next: i64,
    last: i64,
}

impl Segment {
    fn remaining(&self) -> u64 {
        self.last.abs_diff(self.next) + 1
    }
}

impl Buffers {
    /// The next id, and whether the caller should start a prefetch.
    fn take(&mut self, threshold: u64) -> Option<(i64, bool)> {
        if self.current.is_none() {
            self.current = self.next.take();
        }
        let segment = self.current.as_mut()?;
        let id = segment.next;
        if id == segment.last {
            self.current = self.next.take();
        } else {
            segment.next = id + 1;
        }
        let left = self.current.map_or(0, |s| s.remaining());
        let prefetch = left <= threshold && self.next.is_none() && !self.prefetching;
        if prefetch {
            self.prefetching = true;
        }
        Some((id, prefetch))
    }

    fn install(&mut self, segment: Segment) {
        if self.current.is_none() {
            self.current = Some(segment);
        } else {
            self.next = Some(segment);
        }
    }
}

impl SegmentCache {
    fn new(step: u32) -> Self {
        Self {
            step,
            threshold: u64::from(step / 10),
            unsupported: AtomicBool::new(false),
            keys: RwLock::new(HashMap::new()),
        }
    }

    fn buffers(&self, key: &str) -> Arc<KeyBuffers> {
        if let Some(buffers) = self.keys.read().get(key) {
            return buffers.clone();
        }
        self.keys.write().entry(key.to_owned()).or_default().clone()
    }

    async fn next_id(&self, inner: &Arc<dyn Sequencer>, key: String) -> Result<i64> {
        let buffers = self.buffers(&key);
        let take = |buffers: &Arc<KeyBuffers>| {
            let taken = buffers.state.lock().take(self.threshold);
            taken.map(|(id, prefetch)| {
                if prefetch {
                    self.prefetch(inner.clone(), buffers.clone(), key.clone());
                }
                id
            })
        };
        if let Some(id) = take(&buffers) {
            return Ok(id);
        }
        let _fetching = buffers.fetch.lock().await;
        // Another caller or the background fetch may have filled the buffer meanwhile.
        if let Some(id) = take(&buffers) {
            return Ok(id);
        }
        match inner.segment(&key, self.step).await? {
            None => {
                self.unsupported.store(true, Ordering::Relaxed);
                inner.next_id(&key).await
            }
            Some(range) => {
                let segment = checked_segment(&key, range)?;
                buffers.state.lock().install(segment);
                take(&buffers)
                    .ok_or_else(|| Error::internal(format!("sequencer key '{key}': segment vanished")))
            }
        }
    }

    /// Fetches the next segment in the background; a failure only means the
    /// next caller that runs out fetches on the spot.
    fn prefetch(&self, inner: Arc<dyn Sequencer>, buffers: Arc<KeyBuffers>, key: String) {
        let step = self.step;
        tokio::spawn(async move {
            let _fetching = buffers.fetch.lock().await;
            let needed = buffers.state.lock().next.is_none();
            let fetched = if needed { Some(inner.segment(&key, step).await) } else { None };
            let mut state = buffers.state.lock();
            state.prefetching = false;
            match fetched {
                Some(Ok(Some(range))) => match checked_segment(&key, range) {
                    Ok(segment) => state.install(segment),
                    Err(e) => tracing::warn!(error = %e, "sequencer segment prefetch returned a bad range"),
                },
                Some(Err(e)) => tracing::warn!(key, error = %e, "sequencer segment prefetch failed"),
                Some(Ok(None)) | None => {}
            }
        });
    }
}

fn checked_segment(key: &str, range: RangeInclusive<i64>) -> Result<Segment> {
    let (first, last) = range.into_inner();
    if first > last {
        return Err(Error::internal(format!("sequencer key '{key}': component returned an empty segment")));
    }
    Ok(Segment { next: first, last })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn buffers_swap_and_ask_for_prefetch_once() {
        let mut b = Buffers::default();
        assert!(b.take(1).is_none());
        b.install(Segment { next: 1, last: 3 });
        assert_eq!(b.take(1), Some((1, false)));
        assert_eq!(b.take(1), Some((2, true)), "one left: prefetch");
        assert_eq!(b.take(1), Some((3, false)), "a prefetch is already running");
        // The background fetch installs its segment and clears the flag.
        b.install(Segment { next: 10, last: 12 });
        b.prefetching = false;
        assert_eq!(b.take(1), Some((10, false)));
        assert_eq!(b.take(1), Some((11, true)));
        b.install(Segment { next: 20, last: 20 });
        b.prefetching = false;
        assert_eq!(b.take(1), Some((12, true)), "swapped to a segment that is nearly used up");
        assert_eq!(b.take(1), Some((20, false)));
        assert!(b.take(1).is_none());
        b.prefetching = false;
        b.install(Segment { next: i64::MAX, last: i64::MAX });
        assert_eq!(b.take(0), Some((i64::MAX, true)));
    }
}
