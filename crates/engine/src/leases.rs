//! Lease fencing: the leases this node holds, how long each is known to be held, the
//! check before every ServiceNow call and the heartbeat that renews them all.
//!
//! A write sent after our lease ran out can race another node's create of the same
//! record. So before each call the worker makes sure the lease is held for the whole
//! call plus the clock-skew margin, renewing it in the store if it is not; a lease the
//! store says is lost is abandoned without calling. See [`crate::config::check_lease`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use snowbound_store::{Lease, Store};
use uuid::Uuid;

/// The lease is gone (taken over, expired, or its renewal could not be confirmed): do
/// not call ServiceNow for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseLost;

struct Held {
    lease: Lease,
    /// Held until then at least, as far as this node knows.
    until: DateTime<Utc>,
}

pub(crate) struct HeldLeases {
    store: Arc<dyn Store>,
    lease_for: chrono::Duration,
    /// What the lease must still cover when a call starts.
    needed: chrono::Duration,
    held: Mutex<HashMap<(Uuid, Uuid), Held>>,
}

fn key(lease: &Lease) -> (Uuid, Uuid) {
    (lease.link.incident_id, lease.link.integration_id)
}

impl HeldLeases {
    pub fn new(store: Arc<dyn Store>, lease_for: Duration, needed: Duration) -> Self {
        let to_chrono =
            |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        HeldLeases {
            store,
            lease_for: to_chrono(lease_for),
            needed: to_chrono(needed),
            held: Mutex::new(HashMap::new()),
        }
    }

    pub fn lease_for(&self) -> chrono::Duration {
        self.lease_for
    }

    /// Leases just taken, held until `until`. A newer lease of the same link replaces
    /// an older one of ours, which is then lost to its worker.
    pub fn hold(&self, leases: &[Lease], until: DateTime<Utc>) {
        let mut held = self.held.lock().expect("held leases lock");
        for lease in leases {
            held.insert(
                key(lease),
                Held {
                    lease: lease.clone(),
                    until,
                },
            );
        }
    }

    /// The reconcile is over: the heartbeat stops renewing it.
    pub fn forget(&self, lease: &Lease) {
        let mut held = self.held.lock().expect("held leases lock");
        if held
            .get(&key(lease))
            .is_some_and(|h| h.lease.owner == lease.owner)
        {
            held.remove(&key(lease));
        }
    }

    pub fn count(&self) -> usize {
        self.held.lock().expect("held leases lock").len()
    }

    /// Until when this node knows `lease` is held; `None` once it is lost.
    pub fn held_until(&self, lease: &Lease) -> Option<DateTime<Utc>> {
        let held = self.held.lock().expect("held leases lock");
        held.get(&key(lease))
            .filter(|h| h.lease.owner == lease.owner)
            .map(|h| h.until)
    }

    fn lost(&self, lease: &Lease) {
        self.forget(lease);
    }

    fn extend(&self, lease: &Lease, until: DateTime<Utc>) {
        let mut held = self.held.lock().expect("held leases lock");
        if let Some(h) = held
            .get_mut(&key(lease))
            .filter(|h| h.lease.owner == lease.owner)
        {
            h.until = h.until.max(until);
        }
    }

    /// Call right before each ServiceNow call: Ok when the lease is held for at least
    /// one call timeout plus the margin from now, renewing it first when needed.
    pub async fn fence(&self, lease: &Lease) -> Result<(), LeaseLost> {
        let now = Utc::now();
        let until = self.held_until(lease).ok_or(LeaseLost)?;
        if until - now >= self.needed {
            return Ok(());
        }
        let renewed_until = now + self.lease_for;
        match self
            .store
            .renew_leases(std::slice::from_ref(lease), now, renewed_until)
            .await
        {
            Ok(held) if held.first() == Some(&true) => {
                self.extend(lease, renewed_until);
                Ok(())
            }
            Ok(_) => {
                tracing::info!(incident_id = %lease.link.incident_id, "lease lost before a call; not calling");
                self.lost(lease);
                Err(LeaseLost)
            }
            Err(e) => {
                // Unconfirmed is not held: calling now could race whoever has it next.
                tracing::warn!(error = %e, "renewing a lease failed; not calling");
                Err(LeaseLost)
            }
        }
    }

    /// One heartbeat: renews every lease this node holds, in one store call.
    pub async fn renew_all(&self) {
        let leases: Vec<Lease> = {
            let held = self.held.lock().expect("held leases lock");
            held.values().map(|h| h.lease.clone()).collect()
        };
        if leases.is_empty() {
            return;
        }
        let now = Utc::now();
        let until = now + self.lease_for;
        match self.store.renew_leases(&leases, now, until).await {
            Ok(held) => {
                for (lease, held) in leases.iter().zip(held) {
                    if held {
                        self.extend(lease, until);
                    } else {
                        tracing::info!(incident_id = %lease.link.incident_id, "lease lost");
                        self.lost(lease);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, leases = leases.len(), "renewing leases failed"),
        }
    }
}
