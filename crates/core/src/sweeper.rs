//! Periodic clean-up of in-process components (expired items and locks).

use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often in-memory components drop what has expired.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `sweep` on `component` every [`SWEEP_INTERVAL`] until the component
/// is dropped, so expired data is freed even when no call comes. Outside a
/// tokio runtime it does nothing (the component then sweeps on its calls).
pub fn spawn_sweeper<T: Send + Sync + 'static>(component: &Arc<T>, sweep: fn(&T)) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let weak: Weak<T> = Arc::downgrade(component);
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(component) = weak.upgrade() else { return };
            sweep(&component);
        }
    });
}
