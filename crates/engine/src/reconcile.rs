//! One reconcile of one leased link: compute what ServiceNow should hold, send the
//! difference, and turn the answer into a [`LeaseOutcome`].

use chrono::Utc;
use snowbound_core::{
    incident_url, plan_sync, servicenow_fields, Credentials, FieldMap, Incident, IncidentSnapshot,
    Integration, SyncPlan,
};
use snowbound_servicenow::{ApiCall, Client, Connection, Exchange, Record};
use snowbound_store::{Lease, LeaseOutcome, Link};

use crate::backoff::Backoff;
use crate::leases::{HeldLeases, LeaseLost};
use crate::outcome::{failed, Call, SideEffect};
use crate::rate_limit::{CallPermit, RateLimiter};

/// What the link shows ServiceNow: the frozen snapshot of an `only_on_forwarding`
/// forward, else the live incident. The flag says whether it follows updates.
pub fn subject_of(link: Option<&Link>, incident: &Incident) -> (IncidentSnapshot, bool) {
    match link.and_then(|l| l.snapshot.clone()) {
        Some(snapshot) => (snapshot, false),
        None => (incident.snapshot(), true),
    }
}

pub fn desired_fields(
    subject: &IncidentSnapshot,
    integration: &Integration,
    public_url: &str,
) -> FieldMap {
    servicenow_fields(
        subject,
        &integration.servicenow,
        &incident_url(public_url, subject.id),
    )
}

pub(crate) struct Reconciled {
    /// `None`: the lease was lost before a call, so there is nothing to record.
    pub outcome: Option<LeaseOutcome>,
    pub effect: SideEffect,
    pub calls: Vec<ApiCall>,
}

impl Reconciled {
    fn done(outcome: LeaseOutcome, calls: Vec<ApiCall>) -> Self {
        Reconciled {
            outcome: Some(outcome),
            effect: SideEffect::None,
            calls,
        }
    }

    fn abandoned(calls: Vec<ApiCall>) -> Self {
        Reconciled {
            outcome: None,
            effect: SideEffect::None,
            calls,
        }
    }
}

pub(crate) struct Reconciler<'a> {
    pub client: &'a Client,
    pub backoff: Backoff,
    pub public_url: &'a str,
    pub limiter: Option<&'a RateLimiter>,
    pub leases: &'a HeldLeases,
}

impl Reconciler<'_> {
    /// Every HTTP call to the instance goes through here first: the rate limit's place
    /// (hold it until the answer is in), then the lease fence, last, so no wait comes
    /// between the check and the call.
    async fn may_call(&self, lease: &Lease) -> Result<Option<CallPermit>, LeaseLost> {
        let permit = match self.limiter {
            Some(limiter) => Some(limiter.acquire().await),
            None => None,
        };
        self.leases.fence(lease).await?;
        Ok(permit)
    }

    pub async fn run(
        &self,
        lease: &Lease,
        integration: &Integration,
        credentials: &Credentials,
    ) -> Reconciled {
        let (link, incident) = (&lease.link, &lease.incident);
        let settings = &integration.servicenow;
        // The connection carries the integration's id: the client caches its OAuth token
        // under it, for every worker of this node.
        let conn = match Connection::for_integration(integration, credentials) {
            Ok(conn) => conn,
            Err(e) => {
                let error = e.to_string();
                return Reconciled::done(LeaseOutcome::Park { error }, Vec::new());
            }
        };
        let (subject, follows_updates) = subject_of(Some(link), incident);
        let desired = desired_fields(&subject, integration, self.public_url);
        let mut calls = Vec::new();

        // After a create whose answer was lost, the record may exist: adopt it rather
        // than create a second one.
        let mut record = link.sys_id.clone().zip(link.number.clone());
        let mut pushed = link.pushed.clone();
        if record.is_none() && link.create_unsure {
            let Ok(permit) = self.may_call(lease).await else {
                return Reconciled::abandoned(calls);
            };
            let Exchange {
                outcome,
                calls: made,
            } = self
                .client
                .find_by_correlation_id(&conn, &subject.id.to_string())
                .await;
            drop(permit);
            calls.extend(made);
            match outcome {
                Ok(Some(found)) => {
                    record = Some((found.sys_id, found.number));
                    // What the lost create wrote is unknown: send every kept field again.
                    pushed = FieldMap::new();
                }
                Ok(None) => {}
                Err(failure) => {
                    return self.failed(link, failure, Call::Lookup, None, calls, &settings.table)
                }
            }
        }

        let plan = plan_sync(
            &desired,
            &pushed,
            record.is_some(),
            follows_updates,
            settings,
        );
        let (call, fields) = match (&plan, &record) {
            (SyncPlan::UpToDate, Some((sys_id, number))) if link.sys_id.is_none() => {
                // Adopted a record that already holds everything.
                let outcome = synced(sys_id.clone(), number.clone(), FieldMap::new(), None);
                return Reconciled::done(outcome, calls);
            }
            (SyncPlan::UpToDate, _) => return Reconciled::done(LeaseOutcome::UpToDate, calls),
            (SyncPlan::Create(fields), _) => (Call::Create, fields),
            (SyncPlan::Update(fields), Some(_)) => (Call::Update, fields),
            (SyncPlan::Update(_), None) => unreachable!("plan_sync updates only existing records"),
        };
        let Ok(permit) = self.may_call(lease).await else {
            return Reconciled::abandoned(calls);
        };
        let exchange = match (&record, call) {
            (Some((sys_id, _)), Call::Update) => self.client.update(&conn, sys_id, fields).await,
            _ => self.client.create(&conn, fields).await,
        };
        drop(permit);
        calls.extend(exchange.calls);
        match exchange.outcome {
            Ok(Record {
                sys_id,
                number,
                values,
            }) => {
                let (sys_id, number) = match &record {
                    // Some tables return no number on PATCH; keep what we know.
                    Some((known_id, known_number)) if number.is_empty() => {
                        (known_id.clone(), known_number.clone())
                    }
                    _ => (sys_id, number),
                };
                let state = values.get(snowbound_core::STATE_FIELD).cloned();
                Reconciled::done(synced(sys_id, number, fields.clone(), state), calls)
            }
            Err(failure) => {
                let number = record.as_ref().map(|(_, n)| n.as_str());
                self.failed(link, failure, call, number, calls, &settings.table)
            }
        }
    }

    fn failed(
        &self,
        link: &Link,
        failure: snowbound_servicenow::Failure,
        call: Call,
        number: Option<&str>,
        calls: Vec<ApiCall>,
        table: &str,
    ) -> Reconciled {
        let (outcome, effect) = failed(
            failure,
            call,
            link.attempts,
            table,
            number,
            &self.backoff,
            Utc::now(),
        );
        Reconciled {
            outcome: Some(outcome),
            effect,
            calls,
        }
    }
}

fn synced(
    sys_id: String,
    number: String,
    sent: FieldMap,
    servicenow_state: Option<String>,
) -> LeaseOutcome {
    LeaseOutcome::Synced {
        sys_id,
        number,
        sent,
        servicenow_state,
    }
}
