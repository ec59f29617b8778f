//! One reconcile of one leased link: compute what ServiceNow should hold, send the
//! difference, and turn the answer into a [`LeaseOutcome`].

use std::collections::BTreeMap;

use chrono::Utc;
use snowbound_core::mapping::{MappingInput, OnClosed};
use snowbound_core::sync::{mapped_fields, Desired};
use snowbound_core::STATE_FIELD;
use snowbound_core::{
    incident_url, plan_sync, servicenow_fields, Credentials, FieldMap, Incident, IncidentSnapshot,
    Integration, ServiceNowSettings, SyncPlan,
};
use snowbound_servicenow::{ApiCall, Client, Connection, Exchange, Failure, Record};
use snowbound_store::{Lease, LeaseOutcome, Link, Store};

mod closed;
mod journal;

use closed::{may_be_closed, Closed};
use journal::NotesStop;

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

/// What templates read beyond the incident: its team's name and the `set_fields` of the
/// team's matching routing rules (issue #17).
#[derive(Debug, Clone, Default)]
pub struct MappingContext {
    pub team: String,
    pub rule_fields: BTreeMap<String, String>,
}

/// [`desired_fields`] plus the integration's field mappings and the rules' fields; an
/// error names the mapping whose template did not render.
pub fn mapped_desired(
    subject: &IncidentSnapshot,
    incident: &Incident,
    integration: &Integration,
    public_url: &str,
    context: &MappingContext,
) -> Result<Desired, String> {
    let url = incident_url(public_url, subject.id);
    let input = MappingInput {
        incident: subject,
        team: &context.team,
        attributes: &incident.attributes,
        url: &url,
        rule_fields: &context.rule_fields,
    };
    mapped_fields(&input, &integration.servicenow)
        .map_err(|e| format!("{}: {}", e.field, e.message))
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
    /// For the journal: which notes are still to write, and how far each got.
    pub store: &'a dyn Store,
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
        context: &MappingContext,
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
        let desired =
            match mapped_desired(&subject, incident, integration, self.public_url, context) {
                Ok(desired) => desired,
                Err(error) => return Reconciled::done(LeaseOutcome::Park { error }, Vec::new()),
            };
        let mut calls = Vec::new();

        // After a create whose answer was lost, the record may exist: adopt it rather
        // than create a second one.
        let mut record = link.sys_id.clone().zip(link.number.clone());
        let mut pushed = link.pushed.clone();
        if record.is_none() && link.create_unsure {
            match self.find_unsure(lease, &conn, settings, &mut calls).await {
                // `pushed` holds what the lost create sent (empty when the node died
                // mid-create: then every kept field goes again), so only Snowbound's
                // changes since then are sent and an agent's edit meanwhile stays.
                Ok(Some(found)) => record = Some(found),
                Ok(None) => {}
                Err(stopped) => return *stopped,
            }
        }

        // Notes follow the live incident; a frozen forward shows its snapshot only.
        let notes = if settings.mapping.updates.comments && follows_updates {
            match self.pending_notes(lease).await {
                Ok(notes) => notes,
                Err(error) => return self.retry(link, error, calls),
            }
        } else {
            Vec::new()
        };
        // A record refused (403) before it was read is read and tried once more: the
        // refusal may be the lock instances put on Closed records.
        let (mut read, mut refused) = (false, false);
        loop {
            let mut plan = plan_sync(
                &desired.fields,
                &pushed,
                record.is_some(),
                follows_updates,
                settings,
            );
            // What a reopen sent, recorded with the rest.
            let mut reopened = FieldMap::new();
            if let Some((sys_id, number)) = record.clone() {
                let work = !matches!(plan, SyncPlan::UpToDate) || !notes.is_empty();
                if work && (refused || may_be_closed(link, &pushed, settings)) {
                    read = true;
                    let closed = self
                        .closed_record(
                            lease,
                            &conn,
                            &sys_id,
                            &number,
                            settings,
                            &desired.fields,
                            &mut calls,
                        )
                        .await;
                    match closed {
                        Err(stopped) => return *stopped,
                        Ok(Closed::Open) => {}
                        Ok(Closed::Reopened) => {
                            reopened.insert(STATE_FIELD.into(), settings.state_open.clone());
                            pushed.insert(STATE_FIELD.into(), settings.state_open.clone());
                            // Instances may clear the close fields on reopen: a resolve sends them again.
                            pushed.remove(&settings.close_code_field);
                            pushed.remove(&settings.close_notes_field);
                        }
                        Ok(Closed::Replace) => {
                            record = None;
                            pushed = FieldMap::new();
                            // A replacing create whose answer was lost left the link
                            // on the Closed record: the new one may exist already.
                            if link.create_unsure {
                                match self.find_unsure(lease, &conn, settings, &mut calls).await {
                                    Ok(found) => record = found,
                                    Err(stopped) => return *stopped,
                                }
                            }
                        }
                    }
                    plan = plan_sync(
                        &desired.fields,
                        &pushed,
                        record.is_some(),
                        follows_updates,
                        settings,
                    );
                }
            }
            // The notes go with the fields (or alone, when no field changed), marked
            // `sending` first; looked up first where an earlier answer was lost.
            let sys_id = record.as_ref().map(|(sys_id, _)| sys_id.as_str());
            let notes = match self
                .prepare_notes(lease, &conn, sys_id, settings, &notes, &mut calls)
                .await
            {
                Ok(notes) => notes,
                Err(stop) => {
                    let number = record.as_ref().map(|(_, n)| n.as_str());
                    return self.notes_stopped(link, stop, number, calls, &settings.table);
                }
            };
            let entry = notes.entry();
            if matches!(plan, SyncPlan::UpToDate) && entry.is_some() && record.is_some() {
                plan = SyncPlan::Update(FieldMap::new());
            }
            let journal = entry.map(|text| (settings.mapping.work_notes_field.clone(), text));
            let sent = self
                .send_fields(
                    lease,
                    &conn,
                    plan,
                    record.clone(),
                    &desired,
                    calls,
                    &settings.table,
                    reopened,
                    journal,
                    !read,
                )
                .await;
            let reconciled = match sent {
                Ok(reconciled) => reconciled,
                Err(made) => {
                    // Refused (403) without having been read: it may be Closed and locked.
                    calls = made;
                    refused = true;
                    continue;
                }
            };
            if matches!(reconciled.outcome, Some(LeaseOutcome::Synced { .. })) {
                self.notes_written(lease, &notes).await;
            }
            return reconciled;
        }
    }

    /// The record a create whose answer was lost may have made, by correlation id;
    /// `Err` ends the reconcile (lease lost, or the lookup failed).
    async fn find_unsure(
        &self,
        lease: &Lease,
        conn: &Connection,
        settings: &ServiceNowSettings,
        calls: &mut Vec<ApiCall>,
    ) -> Result<Option<(String, String)>, Box<Reconciled>> {
        let Ok(permit) = self.may_call(lease).await else {
            return Err(Box::new(Reconciled::abandoned(std::mem::take(calls))));
        };
        let id = lease.link.incident_id.to_string();
        let Exchange {
            outcome,
            calls: made,
        } = match settings.mapping.on_closed {
            // The Closed record a new one replaces has the same correlation id.
            OnClosed::NewRecord => {
                let closed = &settings.mapping.state_closed;
                self.client
                    .find_open_by_correlation_id(conn, &id, closed)
                    .await
            }
            _ => self.client.find_by_correlation_id(conn, &id).await,
        };
        drop(permit);
        calls.extend(made);
        match outcome {
            Ok(found) => Ok(found.map(|r| (r.sys_id, r.number))),
            Err(failure) => {
                let calls = std::mem::take(calls);
                let table = &settings.table;
                Err(Box::new(self.failed(
                    &lease.link,
                    failure,
                    Call::Lookup,
                    None,
                    calls,
                    table,
                )))
            }
        }
    }

    fn notes_stopped(
        &self,
        link: &Link,
        stop: NotesStop,
        number: Option<&str>,
        calls: Vec<ApiCall>,
        table: &str,
    ) -> Reconciled {
        match stop {
            NotesStop::Lost => Reconciled::abandoned(calls),
            NotesStop::Failed(failure, call) => {
                self.failed(link, failure, call, number, calls, table)
            }
            NotesStop::Store(error) => self.retry(link, error, calls),
        }
    }

    /// A failure of ours (the store), not ServiceNow's: try again after the backoff.
    fn retry(&self, link: &Link, error: String, calls: Vec<ApiCall>) -> Reconciled {
        let attempt = u32::try_from(link.attempts).unwrap_or(u32::MAX);
        Reconciled::done(
            LeaseOutcome::Retry {
                at: Utc::now() + self.backoff.delay(attempt),
                error,
                create_unsure: false,
                unsure_sent: FieldMap::new(),
            },
            calls,
        )
    }

    /// Sends the planned fields (a create, or a PATCH of the record); `reopened` is what
    /// a reopen already sent, recorded with them; `journal` (field, entry) rides along
    /// with the internal values and is not recorded as pushed (journals only append).
    #[allow(clippy::too_many_arguments)]
    async fn send_fields(
        &self,
        lease: &Lease,
        conn: &Connection,
        plan: SyncPlan,
        record: Option<(String, String)>,
        desired: &Desired,
        mut calls: Vec<ApiCall>,
        table: &str,
        reopened: FieldMap,
        journal: Option<(String, String)>,
        may_read: bool,
    ) -> Result<Reconciled, Vec<ApiCall>> {
        let link = &lease.link;
        let (call, fields) = match (&plan, &record) {
            (SyncPlan::UpToDate, Some((sys_id, number)))
                if link.sys_id.is_none() || !reopened.is_empty() =>
            {
                // Adopted a record that already holds everything, or reopened one.
                let state = reopened.get(STATE_FIELD).cloned();
                let outcome = synced(sys_id.clone(), number.clone(), reopened, state);
                return Ok(Reconciled::done(outcome, calls));
            }
            (SyncPlan::UpToDate, _) => return Ok(Reconciled::done(LeaseOutcome::UpToDate, calls)),
            (SyncPlan::Create(fields), _) => (Call::Create, fields),
            (SyncPlan::Update(fields), Some(_)) => (Call::Update, fields),
            (SyncPlan::Update(_), None) => unreachable!("plan_sync updates only existing records"),
        };
        // Display values go in a request of their own (the flag covers a whole request),
        // after the internal values: on create, a PATCH of the new record.
        let (mut internal, display) = desired.split(fields);
        let internal_fields = internal.clone();
        if let Some((field, entry)) = journal {
            internal.insert(field, entry);
        }
        let Ok(permit) = self.may_call(lease).await else {
            return Ok(Reconciled::abandoned(calls));
        };
        let exchange = match (&record, call) {
            (Some(_), Call::Update) if internal.is_empty() => None,
            (Some((sys_id, _)), Call::Update) => {
                Some(self.client.update(conn, sys_id, &internal).await)
            }
            _ => Some(self.client.create(conn, &internal).await),
        };
        drop(permit);
        let outcome = match exchange {
            Some(exchange) => {
                calls.extend(exchange.calls);
                exchange.outcome
            }
            None => {
                let (sys_id, number) = record.clone().expect("an update has a record");
                Ok(Record {
                    sys_id,
                    number,
                    values: Default::default(),
                })
            }
        };
        let outcome = match outcome {
            Ok(created) if !display.is_empty() => {
                let Ok(permit) = self.may_call(lease).await else {
                    return Ok(Reconciled::abandoned(calls));
                };
                let patched = self
                    .client
                    .update_as(conn, &created.sys_id, &display, true)
                    .await;
                drop(permit);
                calls.extend(patched.calls);
                match patched.outcome {
                    Ok(mut answer) => {
                        answer.sys_id = created.sys_id;
                        if answer.number.is_empty() {
                            answer.number = created.number;
                        }
                        Ok(answer)
                    }
                    // The record exists: keep it on the link, with only what it holds as
                    // sent, rather than risk a second create.
                    Err(_) if matches!(call, Call::Create) => {
                        let state = created.values.get(snowbound_core::STATE_FIELD).cloned();
                        let outcome =
                            synced(created.sys_id, created.number, internal_fields, state);
                        return Ok(Reconciled::done(outcome, calls));
                    }
                    Err(failure) => Err(failure),
                }
            }
            other => other,
        };
        match outcome {
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
                let mut sent = reopened;
                sent.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(Reconciled::done(synced(sys_id, number, sent, state), calls))
            }
            Err(failure) => {
                let number = record.as_ref().map(|(_, n)| n.as_str());
                let locked = matches!(failure, Failure::Rejected { status: 403, .. });
                if may_read && locked && call == Call::Update {
                    return Err(calls);
                }
                let mut done = self.failed(link, failure, call, number, calls, table);
                if let Some(LeaseOutcome::Retry {
                    create_unsure: true,
                    unsure_sent,
                    ..
                }) = &mut done.outcome
                {
                    *unsure_sent = internal_fields;
                }
                Ok(done)
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
