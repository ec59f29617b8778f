//! Reading a record's journal (`sys_journal_field`): whether a note is already on it.
//! Journal fields only append, so a note whose write went unanswered is looked up here
//! before it is written again.

use reqwest::Method;
use serde_json::Value;

use crate::client::{Client, Exchange, EXCLUDE_LINKS};
use crate::connection::{check_identifier, check_sys_id, encoded_query_value, Connection};
use crate::record::field_text;

/// The start of the note searched for with `LIKE`: enough to be selective (a note starts
/// with its timestamp), short enough for any URL. The match is then compared in full.
const NEEDLE_CHARS: usize = 120;
/// Notes of the same record starting alike (same second, same words): compared one by one.
const JOURNAL_ROW_LIMIT: &str = "50";

impl Client {
    /// Whether `field` (`work_notes`, `comments`) of the record `sys_id` in the
    /// connection's table holds an entry whose text is `note`.
    pub async fn journal_has(
        &self,
        conn: &Connection,
        sys_id: &str,
        field: &str,
        note: &str,
    ) -> Exchange<bool> {
        if let Err(message) = check_sys_id(sys_id)
            .and_then(|()| check_identifier("field", field))
            .and_then(|()| check_identifier("table", &conn.table))
        {
            return Exchange::refused(message);
        }
        let needle: String = note
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(NEEDLE_CHARS)
            .collect();
        let query = format!(
            "element_id={sys_id}^element={field}^name={table}^valueLIKE{needle}",
            table = conn.table,
            needle = encoded_query_value(&needle),
        );
        let url = match self.table_url_for(
            conn,
            "sys_journal_field",
            &[],
            &[
                ("sysparm_query", &query),
                ("sysparm_fields", "element_id,element,value"),
                ("sysparm_limit", JOURNAL_ROW_LIMIT),
                EXCLUDE_LINKS,
            ],
        ) {
            Ok(url) => url,
            Err(message) => return Exchange::refused(message),
        };
        let sent = self.send(conn, Method::GET, url, None).await;
        let outcome = match &sent.outcome {
            Ok(Value::Array(rows)) => Ok(rows.iter().any(|row| holds(row, sys_id, field, note))),
            Ok(_) => Err(sent.unexpected(false)),
            Err(failure) => Err(failure.clone()),
        };
        Exchange {
            outcome,
            calls: sent.into_calls(),
        }
    }
}

/// The row is the note, or an entry holding it between blank lines (notes written
/// together), on this record's field. Line endings and surrounding blanks are the
/// instance's to normalise; a server that ignored part of the query is tolerated.
fn holds(row: &Value, sys_id: &str, field: &str, note: &str) -> bool {
    let text = |key: &str| row.get(key).map(field_text).unwrap_or_default();
    let (record, element) = (text("element_id"), text("element"));
    let same_record = record.is_empty() || record == sys_id;
    let same_field = element.is_empty() || element == field;
    let (value, note) = (normalised(&text("value")), normalised(note));
    let within = value == note
        || value.starts_with(&format!("{note}{NOTES_APART}"))
        || value.ends_with(&format!("{NOTES_APART}{note}"))
        || value.contains(&format!("{NOTES_APART}{note}{NOTES_APART}"));
    same_record && same_field && within
}

/// How notes written as one entry are set apart.
const NOTES_APART: &str = "\n\n";

fn normalised(text: &str) -> String {
    text.replace("\r\n", "\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_holds_the_note_only_in_full_on_the_same_record_and_field() {
        let note = "[Snowbound 2026-01-01 00:00:00 UTC] alice commented: on it";
        let row = |id: &str, element: &str, value: &str| json!({"element_id": id, "element": element, "value": value});
        assert!(holds(
            &row("abc", "work_notes", note),
            "abc",
            "work_notes",
            note
        ));
        assert!(holds(
            &row("abc", "work_notes", &format!("{note}\r\n")),
            "abc",
            "work_notes",
            note
        ));
        assert!(!holds(
            &row("abc", "work_notes", &format!("{note} and more")),
            "abc",
            "work_notes",
            note
        ));
        assert!(!holds(
            &row("abd", "work_notes", note),
            "abc",
            "work_notes",
            note
        ));
        assert!(!holds(
            &row("abc", "comments", note),
            "abc",
            "work_notes",
            note
        ));
    }
}
