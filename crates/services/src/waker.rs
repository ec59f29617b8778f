use std::sync::Arc;

use tokio::sync::Notify;

/// Wakes idle workers when a change commits, so a sync starts at once instead of at
/// the next poll. Cheap to clone; waking with nobody waiting is remembered once.
#[derive(Clone, Default)]
pub struct EngineWaker {
    notify: Arc<Notify>,
    /// The inbound worker's own: a poke must not steal the outbound loop's wake-up.
    inbound: Arc<Notify>,
}

impl EngineWaker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn wake(&self) {
        self.notify.notify_one();
    }

    pub async fn woken(&self) {
        self.notify.notified().await;
    }

    /// A poke was queued: the inbound worker reads it now.
    pub fn wake_inbound(&self) {
        self.inbound.notify_one();
    }

    pub async fn inbound_woken(&self) {
        self.inbound.notified().await;
    }
}
