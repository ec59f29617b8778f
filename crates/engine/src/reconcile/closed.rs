//! A Closed record (issue #17, `servicenow.on_closed`): instances lock Closed records,
//! so before a record that may be Closed is changed its state is read, and the
//! integration's choice decides: skip it, reopen it first, or give a reopened incident
//! a new record.

use snowbound_core::mapping::OnClosed;
use snowbound_core::{FieldMap, ServiceNowSettings, STATE_FIELD};
use snowbound_servicenow::{ApiCall, Connection, Exchange};
use snowbound_store::{Lease, LeaseOutcome, Link};

use super::{Reconciled, Reconciler};
use crate::outcome::Call;

pub(super) enum Closed {
    /// Not Closed: sync as usual.
    Open,
    /// Was Closed and is open again (`reopen`): the state sent is the open mapping.
    Reopened,
    /// Closed and the incident is not resolved (`new_record`): create a new record.
    Replace,
}

/// Whether the record may be Closed now, as far as the link knows. A record is closed
/// from Resolved (instances close Resolved records after a while, or an agent does), so
/// only a record last seen Resolved — or Closed — is read before it is changed; that
/// keeps the extra call off every other update.
pub(super) fn may_be_closed(link: &Link, pushed: &FieldMap, settings: &ServiceNowSettings) -> bool {
    let suspect = |state: Option<&String>| {
        state.is_some_and(|s| *s == settings.state_resolved || *s == settings.mapping.state_closed)
    };
    suspect(link.servicenow_state.as_ref()) || suspect(pushed.get(STATE_FIELD))
}

impl Reconciler<'_> {
    /// Reads the record's state and applies `on_closed` when it is Closed; `Err` is the
    /// reconcile's end (skipped, or a call failed), boxed as the rarer way out.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn closed_record(
        &self,
        lease: &Lease,
        conn: &Connection,
        sys_id: &str,
        number: &str,
        settings: &ServiceNowSettings,
        desired: &FieldMap,
        calls: &mut Vec<ApiCall>,
    ) -> Result<Closed, Box<Reconciled>> {
        let link = &lease.link;
        let table = settings.table.as_str();
        let Ok(permit) = self.may_call(lease).await else {
            return Err(Box::new(Reconciled::abandoned(std::mem::take(calls))));
        };
        let Exchange {
            outcome,
            calls: made,
        } = self.client.get(conn, sys_id).await;
        drop(permit);
        calls.extend(made);
        let state = match outcome {
            Ok(record) => record.values.get(STATE_FIELD).cloned().unwrap_or_default(),
            Err(failure) => {
                let calls = std::mem::take(calls);
                return Err(Box::new(self.failed(
                    link,
                    failure,
                    Call::Update,
                    Some(number),
                    calls,
                    table,
                )));
            }
        };
        let closed = &settings.mapping.state_closed;
        if state != *closed {
            return Ok(Closed::Open);
        }
        let park = |why: &str, calls: &mut Vec<ApiCall>| {
            let error = format!("ServiceNow record {number} is Closed (state {closed}); {why}");
            Err(Box::new(Reconciled::done(
                LeaseOutcome::Park { error },
                std::mem::take(calls),
            )))
        };
        match settings.mapping.on_closed {
            OnClosed::Skip => park(
                "on_closed is `skip`, so Snowbound sends it no more changes",
                calls,
            ),
            OnClosed::NewRecord if desired.get(STATE_FIELD) == Some(&settings.state_resolved) => {
                park(
                    "on_closed is `new_record`: a new record is created when the incident reopens",
                    calls,
                )
            }
            OnClosed::NewRecord => Ok(Closed::Replace),
            OnClosed::Reopen => {
                let Ok(permit) = self.may_call(lease).await else {
                    return Err(Box::new(Reconciled::abandoned(std::mem::take(calls))));
                };
                let reopen =
                    FieldMap::from([(STATE_FIELD.to_owned(), settings.state_open.clone())]);
                let Exchange {
                    outcome,
                    calls: made,
                } = self.client.update(conn, sys_id, &reopen).await;
                drop(permit);
                calls.extend(made);
                match outcome {
                    Ok(_) => Ok(Closed::Reopened),
                    Err(failure) => {
                        let calls = std::mem::take(calls);
                        Err(Box::new(self.failed(
                            link,
                            failure,
                            Call::Update,
                            Some(number),
                            calls,
                            table,
                        )))
                    }
                }
            }
        }
    }
}
