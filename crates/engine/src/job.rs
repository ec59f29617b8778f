//! One leased link from its start to its recorded outcome: the settle wait, the call
//! slot, the reconcile, what the answer means for the integration, and the completion.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use snowbound_core::Credentials;
use snowbound_servicenow::ConnectionError;
use snowbound_store::{
    ApiCallRecord, Completion, IntegrationRecord, Lease, LeaseOutcome, StoreError,
};
use tokio::sync::oneshot;

use crate::api_log::api_call_records;
use crate::integrations::Seat;
use crate::outcome::SideEffect;
use crate::reconcile::{MappingContext, Reconciler};
use crate::runner::Inner;

/// An integration as one lease batch sees it: read once per batch, not per link. A
/// settings change committed after the read bumps every link, so a link reconciled
/// with the old settings is reconciled again.
pub(crate) enum Loaded {
    Ready {
        record: Box<IntegrationRecord>,
        credentials: Credentials,
    },
    /// Deleted meanwhile: its links went with it.
    Gone,
    /// Reading it failed; the leases expire and the work is redone.
    Unavailable,
    /// The secrets cannot be read or one the auth type needs is not set: the
    /// integration fails until its settings change.
    CredentialsUnusable(String),
}

impl Inner {
    pub(crate) async fn load(&self, integration_id: uuid::Uuid) -> Loaded {
        let record = match self.store.get_integration(integration_id).await {
            Ok(record) => record,
            Err(StoreError::NotFound) => return Loaded::Gone,
            Err(e) => {
                tracing::warn!(error = %e, "loading an integration failed; the lease will expire");
                return Loaded::Unavailable;
            }
        };
        match self.store.integration_credentials(integration_id).await {
            Ok(credentials) => match credentials.missing_for(&record.integration.servicenow.auth) {
                Some(kind) => {
                    Loaded::CredentialsUnusable(ConnectionError::MissingSecret(kind).to_string())
                }
                None => Loaded::Ready {
                    record: Box::new(record),
                    credentials,
                },
            },
            Err(e) => {
                Loaded::CredentialsUnusable(format!("the stored credentials cannot be read: {e}"))
            }
        }
    }

    /// When a leased link's record was updated too recently to update it again now.
    pub(crate) fn settle_until(&self, lease: &Lease) -> Option<tokio::time::Instant> {
        let settle = chrono::Duration::from_std(self.config.settle).ok()?;
        if settle.is_zero() || lease.link.sys_id.is_none() || lease.link.attempts > 0 {
            return None;
        }
        let wait = (lease.link.last_synced_at? + settle - Utc::now())
            .to_std()
            .ok()?;
        Some(tokio::time::Instant::now() + wait)
    }

    pub(crate) async fn settle(
        self: Arc<Self>,
        mut lease: Lease,
        loaded: Arc<Loaded>,
        at: tokio::time::Instant,
    ) {
        tokio::time::sleep_until(at).await;
        // The wait was for the changes made meanwhile: send the incident as it is now.
        // The link is read before the incident, so the revision marked as synced is
        // never newer than what is sent.
        let (incident_id, integration_id) = (lease.link.incident_id, lease.link.integration_id);
        if let Ok(link) = self.store.get_link(incident_id, integration_id).await {
            if let Ok(incident) = self.store.get_incident(incident_id).await {
                lease.rev = link.rev;
                lease.link = link;
                lease.incident = incident;
            }
        }
        self.reconcile(lease, loaded, None).await
    }

    /// `seat`: the slot or queue place taken at leasing; `None` joins the queue here.
    pub(crate) async fn reconcile(
        self: Arc<Self>,
        lease: Lease,
        loaded: Arc<Loaded>,
        seat: Option<Seat>,
    ) {
        let finish = self.reconcile_in_slot(&lease, &loaded, seat).await;
        // From here on no call is made for this lease: the heartbeat may let it go.
        self.leases.forget(&lease);
        match finish {
            Finish::Record(outcome, calls) => self.complete(lease, outcome, calls).await,
            Finish::Abandon(calls) => {
                // Lost before a call: the new holder (or the lease's expiry) decides
                // what happens to the link; only the calls made are worth keeping.
                if !calls.is_empty() {
                    let link = &lease.link;
                    if let Err(e) = self
                        .store
                        .record_api_calls(link.integration_id, Some(link.incident_id), &calls)
                        .await
                    {
                        tracing::warn!(error = %e, "recording API calls failed");
                    }
                }
            }
            Finish::Nothing => {}
        }
    }

    /// The team's name and its rules' fields for the templates. `None` when the store
    /// cannot say now: a record created without its assignment group would stay so.
    async fn mapping_context(&self, incident: &snowbound_core::Incident) -> Option<MappingContext> {
        let store = &*self.store;
        let team = match self.lookups.get() {
            Some(lookups) => lookups.team(store, incident.team_id).await,
            None => store.get_team(incident.team_id).await,
        };
        let team = match team {
            Ok(team) => team.name,
            Err(e) => {
                tracing::warn!(error = %e, "reading the incident's team failed");
                return None;
            }
        };
        let rule_fields = match self.lookups.get() {
            Some(lookups) => lookups
                .routing(store, incident.team_id)
                .await
                .map(|routing| {
                    snowbound_core::routing::set_fields(
                        &routing.rules,
                        incident,
                        chrono::Utc::now(),
                    )
                })
                .map_err(|e| e.to_string()),
            None => store
                .list_routing_rules(Some(&[incident.team_id]))
                .await
                .map(|rules| {
                    snowbound_core::routing::set_fields(&rules, incident, chrono::Utc::now())
                })
                .map_err(|e| e.to_string()),
        };
        let rule_fields = match rule_fields {
            Ok(fields) => fields,
            Err(error) => {
                tracing::warn!(%error, "reading the team's routing rules failed");
                return None;
            }
        };
        Some(MappingContext { team, rule_fields })
    }

    async fn reconcile_in_slot(
        &self,
        lease: &Lease,
        loaded: &Loaded,
        seat: Option<Seat>,
    ) -> Finish {
        let integration_id = lease.link.integration_id;
        let incident_id = lease.link.incident_id;
        let (record, credentials) = match loaded {
            Loaded::Ready {
                record,
                credentials,
            } => (record, credentials),
            Loaded::Gone | Loaded::Unavailable => return Finish::Nothing,
            Loaded::CredentialsUnusable(error) => {
                self.mark_failing(integration_id, error).await;
                return Finish::Record(LeaseOutcome::Release, Vec::new());
            }
        };
        if record.health.failing.is_some() || record.health.paused_until.is_some() {
            return Finish::Record(LeaseOutcome::Release, Vec::new());
        }
        let slot = match seat {
            Some(seat) => self.integrations.take_seat(seat).await,
            None => self.integrations.slot(integration_id).await,
        };
        let settings_at = record.integration.updated_at;
        if self.integrations.is_blocked(integration_id, settings_at) {
            return Finish::Record(LeaseOutcome::Release, Vec::new());
        }

        let Some(context) = self.mapping_context(&lease.incident).await else {
            return Finish::Record(LeaseOutcome::Release, Vec::new());
        };
        let limiter = self.integrations.limiter(integration_id);
        let reconciler = Reconciler {
            client: &self.client,
            backoff: self.config.backoff,
            public_url: &self.config.public_url,
            limiter: limiter.as_deref(),
            leases: &self.leases,
            store: self.store.as_ref(),
        };
        let done = reconciler
            .run(lease, &record.integration, credentials, &context)
            .await;
        // The slot limits calls to the instance; recording the outcome is ours to wait for.
        drop(slot);
        if !done.calls.is_empty() {
            let total_ms: u64 = done.calls.iter().map(|c| c.duration_ms).sum();
            let rtt = Duration::from_millis(total_ms / done.calls.len() as u64);
            let pressure = matches!(done.effect, SideEffect::Pause(_))
                || matches!(done.outcome, Some(LeaseOutcome::Retry { .. }));
            self.integrations.observe(integration_id, rtt, pressure);
        }

        let calls = api_call_records(integration_id, Some(incident_id), done.calls);
        if let Some(observe) = self.call_observer.get() {
            calls.iter().for_each(|call| observe(call));
        }
        let Some(outcome) = done.outcome else {
            return Finish::Abandon(calls);
        };
        match done.effect {
            SideEffect::None => self.integrations.answered(integration_id),
            SideEffect::Pause(retry_after) => {
                let wait = self.integrations.rate_limited(integration_id, retry_after);
                tracing::info!(%integration_id, wait_ms = wait.as_millis() as u64, "ServiceNow rate limit: pausing the integration");
                let until = Utc::now() + wait;
                if let Err(e) = self.store.pause_integration(integration_id, until).await {
                    tracing::warn!(error = %e, "pausing an integration failed");
                }
            }
            SideEffect::Failing(error) => {
                self.integrations.failing(integration_id, settings_at);
                self.mark_failing(integration_id, &error).await
            }
        }
        match &outcome {
            LeaseOutcome::Retry { error, .. } | LeaseOutcome::Park { error } => {
                tracing::info!(%incident_id, %integration_id, %error, "sync did not go through")
            }
            _ => tracing::debug!(%incident_id, %integration_id, "reconciled"),
        }
        Finish::Record(outcome, calls)
    }

    async fn mark_failing(&self, integration_id: uuid::Uuid, error: &str) {
        tracing::warn!(%integration_id, %error, "integration failing; its links wait for new settings");
        if let Err(e) = self
            .store
            .mark_integration_failing(integration_id, error)
            .await
        {
            tracing::warn!(error = %e, "marking an integration failing failed");
        }
    }

    /// Hands the outcome to the batch writer and waits until it is written, so the
    /// in-flight count (and a graceful shutdown) covers the write too.
    async fn complete(&self, lease: Lease, outcome: LeaseOutcome, calls: Vec<ApiCallRecord>) {
        let (ack, written) = oneshot::channel();
        let completion = Completion {
            lease,
            outcome,
            calls,
        };
        if self.completions.send((completion, ack)).is_ok() {
            let _ = written.await;
        }
    }
}

enum Finish {
    Record(LeaseOutcome, Vec<ApiCallRecord>),
    /// The lease was lost before a call.
    Abandon(Vec<ApiCallRecord>),
    /// Nothing to record; the lease expires.
    Nothing,
}
