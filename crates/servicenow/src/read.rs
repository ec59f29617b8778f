//! The reads inbound sync needs (docs/servicenow/AUTH_AND_INBOUND.md §2.3): one record
//! by sys_id, optionally only if it matches a filter, and the records changed since a
//! watermark. Values come raw *and* as display values (`sysparm_display_value=all`):
//! decisions use raw values, people read display values (a group's name, not its sys_id).

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::Value;
use snowbound_core::inbound::{format_servicenow_time, parse_servicenow_time, SeenRecord};

use crate::classify::Failure;
use crate::client::{Client, Exchange};
use crate::connection::{check_identifier, check_sys_id, Connection};
use crate::record::field_text;
use crate::FieldMap;

/// Fields every inbound read returns, whatever the caller asks for: the record's
/// identity and what watermarks and `sys_mod_count` dedup need.
const BOOKKEEPING: [&str; 5] = [
    "sys_id",
    "number",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
];

/// A record read for inbound: raw values and what a person sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    pub sys_id: String,
    pub number: String,
    pub values: FieldMap,
    pub display: FieldMap,
}

impl ReadRecord {
    /// With `sysparm_display_value=all` each field is `{display_value, value}`.
    fn from_json(row: &Value) -> Option<ReadRecord> {
        let fields = row.as_object()?;
        let mut values = FieldMap::new();
        let mut display = FieldMap::new();
        for (name, value) in fields {
            values.insert(name.clone(), field_text(value));
            if let Some(shown) = value.get("display_value") {
                display.insert(name.clone(), field_text(shown));
            }
        }
        let sys_id = values.get("sys_id").filter(|id| !id.is_empty())?.clone();
        Some(ReadRecord {
            number: values.get("number").cloned().unwrap_or_default(),
            sys_id,
            values,
            display,
        })
    }

    /// For the core's decisions; the message names a field the read lacks.
    pub fn seen(&self) -> Result<SeenRecord, String> {
        SeenRecord::new(self.values.clone(), self.display.clone())
    }

    pub fn updated_on(&self) -> Option<DateTime<Utc>> {
        self.values
            .get("sys_updated_on")
            .and_then(|v| parse_servicenow_time(v))
    }
}

/// What [`Client::changes_since`] reads.
#[derive(Debug, Clone)]
pub struct ChangesQuery<'a> {
    /// The persisted watermark: the newest `sys_updated_on` a previous poll saw.
    pub since: DateTime<Utc>,
    /// Read again this far before `since`: `sys_updated_on` is set when a transaction
    /// starts writing, so a slow one commits a record older than one already seen.
    /// `sys_mod_count` dedup makes the re-read harmless.
    pub overlap: Duration,
    /// Encoded queries OR'ed together (each may hold `^OR` and `^NQ`): the records
    /// linked to incidents, the source's `open_filter`. Empty: every record.
    pub scopes: &'a [String],
    pub fields: &'a [String],
    pub page_size: u32,
    /// A poll reads at most this many pages; the rest is the next poll's (`complete`).
    pub max_pages: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// In `sys_updated_on` order; a record seen twice (it changed while paging) once,
    /// in its newest version.
    pub records: Vec<ReadRecord>,
    /// The next poll's `since`: the newest `sys_updated_on` seen, never before `since`.
    pub watermark: DateTime<Utc>,
    /// False when `max_pages` stopped the poll before the last page.
    pub complete: bool,
}

/// `condition` AND'ed into each `^NQ` block of each scope, then the scopes OR'ed as
/// blocks of their own. An encoded query has no parentheses and `^NQ` binds loosest,
/// so `cond^(a^NQb)` must be written `cond^a^NQcond^b`.
pub fn and_each_block(condition: &str, scopes: &[String]) -> String {
    let blocks: Vec<String> = scopes
        .iter()
        .flat_map(|scope| scope.split("^NQ"))
        .map(str::trim)
        .filter(|block| !block.is_empty())
        .map(|block| format!("{condition}^{block}"))
        .collect();
    if blocks.is_empty() {
        condition.to_owned()
    } else {
        blocks.join("^NQ")
    }
}

/// `sys_idIN…` scopes for linked records, a bounded number of ids each so no URL grows
/// past what proxies accept.
pub fn sys_id_scopes<'a>(
    sys_ids: impl IntoIterator<Item = &'a str>,
    per_scope: usize,
) -> Vec<String> {
    let ids: Vec<&str> = sys_ids
        .into_iter()
        .filter(|id| check_sys_id(id).is_ok())
        .collect();
    ids.chunks(per_scope.max(1))
        .map(|chunk| format!("sys_idIN{}", chunk.join(",")))
        .collect()
}

fn field_list(fields: &[String]) -> Result<String, String> {
    let mut all: Vec<&str> = BOOKKEEPING.to_vec();
    for field in fields {
        check_identifier("field", field)?;
        all.push(field);
    }
    all.sort_unstable();
    all.dedup();
    Ok(all.join(","))
}

impl Client {
    /// GET one record by sys_id with raw and display values. `Ok(None)` when ServiceNow
    /// answers 404 (deleted, or an ACL hides it: the Table API does not tell which).
    pub async fn read_record(
        &self,
        conn: &Connection,
        sys_id: &str,
        fields: &[String],
    ) -> Exchange<Option<ReadRecord>> {
        let url = match check_sys_id(sys_id)
            .and_then(|()| field_list(fields))
            .and_then(|fields| {
                self.table_url(
                    conn,
                    &[sys_id],
                    &[
                        ("sysparm_display_value", "all"),
                        ("sysparm_fields", &fields),
                    ],
                )
            }) {
            Ok(url) => url,
            Err(message) => return Exchange::refused(message),
        };
        let sent = self.send(conn, Method::GET, url, None).await;
        let outcome = match &sent.outcome {
            Ok(result) => ReadRecord::from_json(result)
                .map(Some)
                .ok_or_else(|| sent.unexpected(false)),
            Err(Failure::Rejected { status: 404, .. }) => Ok(None),
            Err(failure) => Err(failure.clone()),
        };
        Exchange {
            outcome,
            calls: vec![sent.call],
        }
    }

    /// The record, only if it matches `filter` (an encoded query): ServiceNow evaluates
    /// it, with reference and dot-walked conditions a local evaluation would get wrong.
    /// `Ok(None)`: it does not match, or does not exist.
    pub async fn read_record_matching(
        &self,
        conn: &Connection,
        sys_id: &str,
        filter: &str,
        fields: &[String],
    ) -> Exchange<Option<ReadRecord>> {
        if let Err(message) = check_sys_id(sys_id) {
            return Exchange::refused(message);
        }
        let query = and_each_block(&format!("sys_id={sys_id}"), &[filter.to_owned()]);
        let exchange = self.list_page(conn, &query, fields, 2, 0).await;
        Exchange {
            outcome: exchange
                .outcome
                .map(|rows| rows.into_iter().find(|r| r.sys_id == sys_id)),
            calls: exchange.calls,
        }
    }

    /// The records of `query.scopes` changed at or after `since - overlap`, oldest first,
    /// paged. Pages follow the watermark rather than a growing offset: the next page
    /// starts at the newest second seen so far, skipping (by `sysparm_offset`) only the
    /// records of that very second already read. A record changing while we page moves
    /// to a later second and is read there (or by the next poll), so an offset that
    /// shifts under our feet cannot hide records beyond the overlap of the next poll.
    pub async fn changes_since(
        &self,
        conn: &Connection,
        query: &ChangesQuery<'_>,
    ) -> Exchange<Changes> {
        let page_size = query.page_size.max(1);
        let mut calls = Vec::new();
        let mut records: Vec<ReadRecord> = Vec::new();
        let mut from = query.since - query.overlap;
        let mut watermark = query.since;
        let mut complete = false;
        for _ in 0..query.max_pages.max(1) {
            // Records already read in the second the page starts at.
            let same_second = records
                .iter()
                .filter(|r| r.updated_on() == Some(from))
                .count();
            let condition = format!("sys_updated_on>={}", format_servicenow_time(from));
            let text = format!(
                "{}^ORDERBYsys_updated_on^ORDERBYsys_id",
                and_each_block(&condition, query.scopes)
            );
            let page = self
                .list_page(conn, &text, query.fields, page_size, same_second)
                .await;
            calls.extend(page.calls);
            let rows = match page.outcome {
                Ok(rows) => rows,
                Err(failure) => {
                    return Exchange {
                        outcome: Err(failure),
                        calls,
                    }
                }
            };
            let full = rows.len() >= page_size as usize;
            for row in rows {
                let Some(at) = row.updated_on() else {
                    continue;
                };
                watermark = watermark.max(at);
                from = from.max(at);
                records.retain(|r| r.sys_id != row.sys_id);
                records.push(row);
            }
            if !full {
                complete = true;
                break;
            }
        }
        Exchange {
            outcome: Ok(Changes {
                records,
                watermark,
                complete,
            }),
            calls,
        }
    }

    async fn list_page(
        &self,
        conn: &Connection,
        query: &str,
        fields: &[String],
        limit: u32,
        offset: usize,
    ) -> Exchange<Vec<ReadRecord>> {
        let limit = limit.to_string();
        let offset = offset.to_string();
        let url = match field_list(fields).and_then(|fields| {
            self.table_url(
                conn,
                &[],
                &[
                    ("sysparm_query", query),
                    ("sysparm_display_value", "all"),
                    ("sysparm_fields", &fields),
                    ("sysparm_limit", &limit),
                    ("sysparm_offset", &offset),
                    ("sysparm_no_count", "true"),
                ],
            )
        }) {
            Ok(url) => url,
            Err(message) => return Exchange::refused(message),
        };
        let sent = self.send(conn, Method::GET, url, None).await;
        let outcome = match &sent.outcome {
            Ok(Value::Array(rows)) => rows
                .iter()
                .map(|row| ReadRecord::from_json(row).ok_or_else(|| sent.unexpected(false)))
                .collect(),
            Ok(_) => Err(sent.unexpected(false)),
            Err(failure) => Err(failure.clone()),
        };
        Exchange {
            outcome,
            calls: vec![sent.call],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_condition_goes_into_every_block() {
        let scopes = vec![
            "correlation_display=Snowbound".to_owned(),
            "active=true^urgency=1^ORurgency=2^NQcategory=network".to_owned(),
        ];
        assert_eq!(
            and_each_block("sys_updated_on>=2026-12-01 10:00:00", &scopes),
            "sys_updated_on>=2026-12-01 10:00:00^correlation_display=Snowbound\
             ^NQsys_updated_on>=2026-12-01 10:00:00^active=true^urgency=1^ORurgency=2\
             ^NQsys_updated_on>=2026-12-01 10:00:00^category=network"
        );
        assert_eq!(and_each_block("a=1", &[]), "a=1");
    }

    #[test]
    fn sys_id_scopes_are_chunked_and_skip_bad_ids() {
        assert_eq!(
            sys_id_scopes(["a1", "b2", "c/3", "d4"], 2),
            vec!["sys_idINa1,b2", "sys_idINd4"]
        );
        assert!(sys_id_scopes([], 10).is_empty());
    }

    #[test]
    fn display_value_all_gives_raw_and_display_values() {
        let r = ReadRecord::from_json(&json!({
            "sys_id": {"display_value": "abc", "value": "abc"},
            "number": {"display_value": "INC1", "value": "INC1"},
            "state": {"display_value": "Resolved", "value": "6"},
            "assignment_group": {"display_value": "Network", "value": "g1", "link": "x"},
        }))
        .unwrap();
        assert_eq!((r.sys_id.as_str(), r.number.as_str()), ("abc", "INC1"));
        assert_eq!(r.values["state"], "6");
        assert_eq!(r.display["state"], "Resolved");
        assert_eq!(r.values["assignment_group"], "g1");
        assert_eq!(r.display["assignment_group"], "Network");
    }

    #[test]
    fn field_lists_always_carry_the_bookkeeping_and_refuse_odd_names() {
        assert_eq!(
            field_list(&["state".into(), "number".into()]).unwrap(),
            "number,state,sys_id,sys_mod_count,sys_updated_by,sys_updated_on"
        );
        assert!(field_list(&["state^ORx".into()]).is_err());
    }
}
