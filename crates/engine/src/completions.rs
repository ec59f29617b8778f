//! One writer task records finished reconciles together: reconciles finishing at once
//! share one transaction, so the database commits once per batch instead of twice per
//! link.

use std::sync::Arc;

use chrono::Utc;
use snowbound_store::{Completion, LeaseOutcome, Store};
use tokio::sync::{mpsc, oneshot};

use crate::observe::Observer;

/// A completion and whom to tell once it is written.
pub(crate) type Finished = (Completion, oneshot::Sender<()>);

const COMPLETION_BATCH: usize = 256;

pub(crate) async fn write_completions(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Finished>,
    observer: Observer,
) {
    let mut batch = Vec::with_capacity(COMPLETION_BATCH);
    while rx.recv_many(&mut batch, COMPLETION_BATCH).await > 0 {
        let (done, acks): (Vec<Completion>, Vec<oneshot::Sender<()>>) = batch.drain(..).unzip();
        match store.complete_leases(&done).await {
            Ok(ours) => {
                let now = Utc::now();
                for (c, ours) in done.iter().zip(ours) {
                    if !ours {
                        tracing::warn!(incident_id = %c.lease.link.incident_id, "lease lost before the reconcile finished");
                    } else if matches!(c.outcome, LeaseOutcome::Synced { .. }) {
                        let changed = c.lease.incident.updated_at.max(c.lease.link.created_at);
                        let lag = (now - changed).to_std().unwrap_or_default();
                        observer.synced(c.lease.link.integration_id, lag);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, reconciles = done.len(), "recording reconciles failed; their leases expire and they are redone")
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}
