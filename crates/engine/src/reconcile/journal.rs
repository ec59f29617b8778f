//! Journal notes (issue #17): comments and chosen timeline events written to the
//! record's journal field, each exactly once. Journal fields only append, so the notes
//! are marked `sending` before the request that carries them and `written` once it is
//! answered; a note found `sending` (an answer was lost) is looked up in
//! `sys_journal_field` first and only sent again when it is not there.
//!
//! The notes due travel together, as one journal entry, in the request that carries
//! the fields (or in one PATCH of their own when no field changed): a burst of changes
//! still costs a few calls.

use snowbound_core::mapping::journal_note;
use snowbound_core::ServiceNowSettings;
use snowbound_servicenow::{ApiCall, Connection, Exchange, Failure};
use snowbound_store::{JournalItem, JournalState, Lease};

use super::Reconciler;
use crate::outcome::Call;

/// Notes one reconcile reads at most; more wait for the link's next reconcile.
const NOTES_PER_RECONCILE: u32 = 200;
/// Between the notes of one journal entry. The lookup after a lost answer finds a note
/// inside such an entry by it.
pub(crate) const NOTE_SEPARATOR: &str = "\n\n";

/// Why the notes could not be prepared.
pub(super) enum NotesStop {
    /// The lease was lost: nothing more may be called or recorded.
    Lost,
    /// ServiceNow failed the lookup.
    Failed(Failure, Call),
    /// The store could not read or mark the journal.
    Store(String),
}

/// Notes marked `sending`, to go out in the next request.
#[derive(Default)]
pub(super) struct Notes {
    ids: Vec<i64>,
    texts: Vec<String>,
}

impl Notes {
    /// The journal entry carrying them all, if there is any.
    pub(super) fn entry(&self) -> Option<String> {
        (!self.texts.is_empty()).then(|| self.texts.join(NOTE_SEPARATOR))
    }
}

/// Whether the matrix sends this kind of note: a severity change or an acknowledgement
/// switched off is not mentioned in the journal either.
fn sent_by_matrix(kind: &str, settings: &ServiceNowSettings) -> bool {
    let updates = &settings.mapping.updates;
    match kind {
        "severity_changed" => updates.severity,
        "acknowledged" => updates.acknowledge,
        _ => true,
    }
}

impl Reconciler<'_> {
    /// The notes the link still has to write.
    pub(super) async fn pending_notes(&self, lease: &Lease) -> Result<Vec<JournalItem>, String> {
        let link = &lease.link;
        self.store
            .journal_pending(link.incident_id, link.integration_id, NOTES_PER_RECONCILE)
            .await
            .map_err(|e| format!("reading the notes to write failed: {e}"))
    }

    /// Of `items`, the notes to send now, marked `sending`. A note whose earlier write
    /// went unanswered is looked up on the record `sys_id` first and, when found there,
    /// only marked `written`; one of a kind the matrix does not send is settled unsent.
    pub(super) async fn prepare_notes(
        &self,
        lease: &Lease,
        conn: &Connection,
        sys_id: Option<&str>,
        settings: &ServiceNowSettings,
        items: &[JournalItem],
        calls: &mut Vec<ApiCall>,
    ) -> Result<Notes, NotesStop> {
        let field = settings.mapping.work_notes_field.as_str();
        let mut notes = Notes::default();
        for item in items {
            let note =
                journal_note(&item.entry).filter(|_| sent_by_matrix(&item.entry.kind, settings));
            let Some(note) = note else {
                // Settled so it does not hold a place among the pending ones for ever.
                self.mark(lease, item.timeline_id, JournalState::Written)
                    .await?;
                continue;
            };
            if let (true, Some(sys_id)) = (item.unsure, sys_id) {
                let permit = self.may_call(lease).await.map_err(|_| NotesStop::Lost)?;
                let Exchange {
                    outcome,
                    calls: made,
                } = self.client.journal_has(conn, sys_id, field, &note).await;
                drop(permit);
                calls.extend(made);
                match outcome {
                    Ok(true) => {
                        self.mark(lease, item.timeline_id, JournalState::Written)
                            .await?;
                        continue;
                    }
                    Ok(false) => {}
                    Err(failure) => return Err(NotesStop::Failed(failure, Call::Lookup)),
                }
            }
            if !item.unsure {
                self.mark(lease, item.timeline_id, JournalState::Sending)
                    .await?;
            }
            notes.ids.push(item.timeline_id);
            notes.texts.push(note);
        }
        Ok(notes)
    }

    /// The request carrying `notes` was answered: they are on the record. Failing to
    /// record it only costs a lookup next time.
    pub(super) async fn notes_written(&self, lease: &Lease, notes: &Notes) {
        for id in &notes.ids {
            if let Err(NotesStop::Store(error)) = self.mark(lease, *id, JournalState::Written).await
            {
                tracing::warn!(%error, "a written note stays marked as sending; it is looked up before the next write");
            }
        }
    }

    async fn mark(
        &self,
        lease: &Lease,
        timeline_id: i64,
        state: JournalState,
    ) -> Result<(), NotesStop> {
        match self.store.mark_journal(lease, timeline_id, state).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(NotesStop::Lost),
            Err(e) => Err(NotesStop::Store(format!(
                "recording a note's progress failed: {e}"
            ))),
        }
    }
}
