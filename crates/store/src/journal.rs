//! Journal notes (issue #17): which timeline entries a link still has to write to its
//! ServiceNow record's journal field, and how far each one got.

use snowbound_core::TimelineEntry;

/// A timeline entry of a journaled kind not yet known to be on the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalItem {
    pub timeline_id: i64,
    pub entry: TimelineEntry,
    /// A write was sent (or about to be) without a confirmed answer: it may be on the
    /// record already, so `sys_journal_field` is checked before writing again.
    pub unsure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalState {
    /// Recorded before the write goes out.
    Sending,
    /// ServiceNow has it (answered, or found in `sys_journal_field`).
    Written,
}

impl JournalState {
    pub fn as_str(self) -> &'static str {
        match self {
            JournalState::Sending => "sending",
            JournalState::Written => "written",
        }
    }
}
