//! The incidents list's search text (`q`) and its opaque page cursor (`before`).
//!
//! `q` is terms separated by whitespace, all of which must match (AND): a term
//! `key=value` or `key:value` (split at the first `=` or `:`, both sides non-empty)
//! matches an incident holding attribute `key` with exactly `value`; any other term is a
//! case-insensitive substring of the title, `%` and `_` included literally.
//!
//! A cursor is the last listed incident's `created_at` and id, base64url: clients pass
//! it back unchanged, so its shape may change without notice.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::DateTime;
use snowbound_core::Incident;
use snowbound_store::IncidentCursor;
use uuid::Uuid;

use crate::error::{ServiceError, ServiceResult};

/// At most this many terms, so one request cannot build an unbounded statement.
const MAX_TERMS: usize = 10;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Search {
    pub title_contains: Vec<String>,
    pub attributes: Vec<(String, String)>,
}

pub fn parse_search(q: &str) -> ServiceResult<Search> {
    let mut search = Search::default();
    // PostgreSQL refuses NUL in text: say which parameter instead of failing the query.
    if q.contains('\0') {
        return Err(ServiceError::invalid("q", "must not contain NUL"));
    }
    let terms: Vec<&str> = q.split_whitespace().collect();
    if terms.len() > MAX_TERMS {
        return Err(ServiceError::invalid(
            "q",
            format!("at most {MAX_TERMS} search terms"),
        ));
    }
    for term in terms {
        match term.split_once(['=', ':']) {
            Some((key, value)) if !key.is_empty() && !value.is_empty() => {
                search.attributes.push((key.to_owned(), value.to_owned()));
            }
            _ => search.title_contains.push(term.to_owned()),
        }
    }
    Ok(search)
}

pub fn cursor_after(incident: &Incident) -> String {
    let text = format!("{}.{}", incident.created_at.timestamp_millis(), incident.id);
    URL_SAFE_NO_PAD.encode(text)
}

pub fn parse_cursor(cursor: &str) -> ServiceResult<IncidentCursor> {
    let refused = || ServiceError::invalid("before", "not a cursor this list answered");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| refused())?;
    let text = String::from_utf8(bytes).map_err(|_| refused())?;
    let (millis, id) = text.split_once('.').ok_or_else(refused)?;
    let millis: i64 = millis.parse().map_err(|_| refused())?;
    Ok(IncidentCursor {
        created_at: DateTime::from_timestamp_millis(millis).ok_or_else(refused)?,
        id: Uuid::parse_str(id).map_err(|_| refused())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_split_into_title_words_and_attribute_pairs() {
        let search = parse_search("  Disk env=prod host:db1 error: =x a=b=c ").unwrap();
        assert_eq!(search.title_contains, ["Disk", "error:", "=x"]);
        assert_eq!(
            search.attributes,
            [
                ("env".into(), "prod".into()),
                ("host".into(), "db1".into()),
                ("a".into(), "b=c".into())
            ]
        );
        assert_eq!(parse_search("").unwrap(), Search::default());
        assert!(parse_search(&"a ".repeat(11)).is_err());
        assert!(parse_search("a\0b").is_err());
    }

    #[test]
    fn a_cursor_reads_back_and_garbage_is_refused() {
        let mut incident: Incident = serde_json::from_value(serde_json::json!({
            "id": Uuid::nil(), "team_id": Uuid::nil(), "title": "t", "description": "",
            "severity": "minor", "status": "open", "attributes": {},
            "created_at": "2026-01-02T03:04:05.678Z", "updated_at": "2026-01-02T03:04:05.678Z"
        }))
        .unwrap();
        incident.id = snowbound_core::new_id();
        let cursor = parse_cursor(&cursor_after(&incident)).unwrap();
        assert_eq!(cursor.created_at, incident.created_at);
        assert_eq!(cursor.id, incident.id);
        for bad in ["", "!!", "bm90aGluZw", &URL_SAFE_NO_PAD.encode("1.nope")] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
