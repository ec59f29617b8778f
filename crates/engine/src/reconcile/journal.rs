//! Journal notes (issue #17): comments and chosen timeline events written to the
//! record's journal field, each exactly once. Journal fields only append, so a write is
//! marked `sending` before it goes out and `written` once answered; a note found
//! `sending` (its answer was lost) is looked up in `sys_journal_field` first and only
//! written again when it is not there.

use snowbound_core::mapping::journal_note;
use snowbound_servicenow::{ApiCall, Connection, Exchange, Failure, FieldMap};
use snowbound_store::{JournalItem, JournalState, Lease};

use super::Reconciler;
use crate::outcome::Call;

/// Notes one reconcile writes at most; more wait for the link's next reconcile.
const NOTES_PER_RECONCILE: u32 = 200;

/// Why the notes stopped before all were written.
pub(super) enum NotesStop {
    /// The lease was lost: nothing more may be called or recorded.
    Lost,
    /// ServiceNow failed the call.
    Failed(Failure, Call),
    /// The store could not read or mark the journal.
    Store(String),
}

impl Reconciler<'_> {
    /// The notes the link still has to write, when the integration sends them.
    pub(super) async fn pending_notes(&self, lease: &Lease) -> Result<Vec<JournalItem>, String> {
        let link = &lease.link;
        self.store
            .journal_pending(link.incident_id, link.integration_id, NOTES_PER_RECONCILE)
            .await
            .map_err(|e| format!("reading the notes to write failed: {e}"))
    }

    /// Writes `items` oldest first to `field` of the record `sys_id`, one PATCH each
    /// (one journal entry per write).
    pub(super) async fn write_notes(
        &self,
        lease: &Lease,
        conn: &Connection,
        sys_id: &str,
        field: &str,
        items: &[JournalItem],
        calls: &mut Vec<ApiCall>,
    ) -> Result<(), NotesStop> {
        for item in items {
            let Some(note) = journal_note(&item.entry) else {
                continue;
            };
            if item.unsure {
                let permit = self.may_call(lease).await.map_err(|_| NotesStop::Lost)?;
                let Exchange {
                    outcome,
                    calls: made,
                } = self.client.journal_has(conn, sys_id, field, &note).await;
                drop(permit);
                calls.extend(made);
                match outcome {
                    Ok(true) => {
                        self.mark(lease, item, JournalState::Written).await?;
                        continue;
                    }
                    Ok(false) => {}
                    Err(failure) => return Err(NotesStop::Failed(failure, Call::Lookup)),
                }
            }
            self.mark(lease, item, JournalState::Sending).await?;
            let permit = self.may_call(lease).await.map_err(|_| NotesStop::Lost)?;
            let fields = FieldMap::from([(field.to_owned(), note)]);
            let Exchange {
                outcome,
                calls: made,
            } = self.client.update(conn, sys_id, &fields).await;
            drop(permit);
            calls.extend(made);
            if let Err(failure) = outcome {
                return Err(NotesStop::Failed(failure, Call::Update));
            }
            self.mark(lease, item, JournalState::Written).await?;
        }
        Ok(())
    }

    async fn mark(
        &self,
        lease: &Lease,
        item: &JournalItem,
        state: JournalState,
    ) -> Result<(), NotesStop> {
        match self
            .store
            .mark_journal(lease, item.timeline_id, state)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(NotesStop::Lost),
            Err(e) => Err(NotesStop::Store(format!(
                "recording a note's progress failed: {e}"
            ))),
        }
    }
}
