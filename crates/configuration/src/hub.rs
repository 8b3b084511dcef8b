//! Fan-out of changes to subscribers, shared by every component: a
//! component reports what changed in an app, the hub hands each subscriber
//! the items in its scope. A subscriber that falls more than
//! [`QUEUE`] batches behind is dropped with a reason instead of holding
//! memory for ever; one that went away is forgotten on the next change.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::{ConfigurationItem, Scope};

/// Batches a subscriber may have waiting.
pub const QUEUE: usize = 1024;

/// Every later change in a scope. Dropping it unsubscribes.
pub struct Subscription {
    pub changes: mpsc::Receiver<Vec<ConfigurationItem>>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// Why `changes` ended: the subscriber fell too far behind.
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Relaxed)
    }
}

struct Subscriber {
    scope: Scope,
    tx: mpsc::Sender<Vec<ConfigurationItem>>,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct Hub {
    subscribers: Mutex<Vec<Subscriber>>,
}

impl Hub {
    pub fn subscribe(&self, scope: Scope) -> Subscription {
        let (tx, changes) = mpsc::channel(QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        self.subscribers.lock().push(Subscriber { scope, tx, lagged: lagged.clone() });
        Subscription { changes, lagged }
    }

    /// Hands each subscriber of `app_id` the changed items in its scope.
    pub fn publish(&self, app_id: &str, items: &[ConfigurationItem]) {
        if items.is_empty() {
            return;
        }
        self.subscribers.lock().retain(|sub| {
            if sub.tx.is_closed() {
                return false;
            }
            let mine: Vec<ConfigurationItem> =
                items.iter().filter(|item| sub.scope.matches(app_id, item)).cloned().collect();
            if mine.is_empty() {
                return true;
            }
            match sub.tx.try_send(mine) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.lagged.store(true, Ordering::Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// The apps someone subscribes to now (for components that watch per app).
    pub fn apps(&self) -> BTreeSet<String> {
        let mut subscribers = self.subscribers.lock();
        subscribers.retain(|sub| !sub.tx.is_closed());
        subscribers.iter().map(|sub| sub.scope.app_id.clone()).collect()
    }

    pub fn has_subscribers(&self, app_id: &str) -> bool {
        self.apps().contains(app_id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_subscriber_gets_its_scope_and_laggards_are_dropped() {
        let hub = Hub::default();
        let mut all = hub.subscribe(Scope::new("a", "g", "l", vec![]));
        let mut one = hub.subscribe(Scope::new("a", "g", "l", vec!["k1".into()]));
        let other_app = hub.subscribe(Scope::new("b", "g", "l", vec![]));
        hub.publish(
            "a",
            &[ConfigurationItem::new("g", "l", "k1", "1"), ConfigurationItem::new("g", "l", "k2", "2")],
        );
        assert_eq!(all.changes.try_recv().unwrap().len(), 2);
        assert_eq!(one.changes.try_recv().unwrap()[0].key, "k1");
        drop(other_app);
        assert_eq!(hub.apps(), BTreeSet::from(["a".to_owned()]));
        for i in 0..=QUEUE {
            hub.publish("a", &[ConfigurationItem::new("g", "l", "k1", &i.to_string())]);
        }
        assert!(all.lagged() && one.lagged());
        assert!(hub.apps().is_empty(), "laggards are dropped");
    }
}
