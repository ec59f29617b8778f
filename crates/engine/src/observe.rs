//! What the engine tells the binary's metrics beyond each call ([`crate::CallObserver`]):
//! the pauses 429s cost and how long changes took to reach ServiceNow. Set once on the
//! engine; until then (and in tests that set nothing) every report is dropped.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use uuid::Uuid;

/// Receives the engine's reports; called on the engine's tasks, so it must be quick.
pub trait EngineObserver: Send + Sync {
    /// A 429 paused `integration` for `pause` (its `Retry-After`, capped, or the cool-down).
    fn paused(&self, integration: Uuid, pause: Duration);
    /// ServiceNow holds a link's change `lag` after the incident changed (or, for a link
    /// made later, after the link was made): the change→ServiceNow lag.
    fn synced(&self, integration: Uuid, lag: Duration);
    /// A poll of a servicenow source reading through `integration` ended; `ok` when it
    /// read and applied every record.
    fn polled(&self, integration: Uuid, ok: bool);
}

/// The engine's slot for its observer, shared by the parts that report.
#[derive(Clone, Default)]
pub(crate) struct Observer(Arc<OnceLock<Arc<dyn EngineObserver>>>);

impl Observer {
    pub fn set(&self, observer: Arc<dyn EngineObserver>) {
        let _ = self.0.set(observer);
    }

    pub fn paused(&self, integration: Uuid, pause: Duration) {
        if let Some(o) = self.0.get() {
            o.paused(integration, pause)
        }
    }

    pub fn synced(&self, integration: Uuid, lag: Duration) {
        if let Some(o) = self.0.get() {
            o.synced(integration, lag)
        }
    }

    pub fn polled(&self, integration: Uuid, ok: bool) {
        if let Some(o) = self.0.get() {
            o.polled(integration, ok)
        }
    }
}
