use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, Exchange, EXCLUDE_LINKS};
use crate::connection::{check_identifier, Connection};
use crate::record::field_text;

/// One entry of a ServiceNow choice list: the stored value and what users see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// Choice lists of task fields (state, urgency, impact…) may be defined on `task` only;
/// incident and other task tables inherit them unless they define their own.
const PARENT_TABLE: &str = "task";

/// Generous for a choice list, but bounded so a misconfigured field cannot pull the table.
const CHOICE_ROW_LIMIT: &str = "1000";

impl Client {
    /// Active choices of `field` on the connection's table, in ServiceNow's order
    /// (`sequence`). The table's own choices win; `task`'s count only when the table has
    /// none of its own for that field. A 403 is `Rejected` (callers fall back to manual
    /// values); an empty list may also mean row ACLs hide sys_choice.
    pub async fn choices(&self, conn: &Connection, field: &str) -> Exchange<Vec<Choice>> {
        if let Err(message) =
            check_identifier("table", &conn.table).and_then(|()| check_identifier("field", field))
        {
            return Exchange::refused(message);
        }
        // Inactive rows are fetched too: a table whose own choices are all inactive still
        // overrides task's list rather than falling back to it.
        let query = if conn.table == PARENT_TABLE {
            format!("name={PARENT_TABLE}^element={field}^language=en^ORDERBYsequence")
        } else {
            format!(
                "name={table}^ORname={PARENT_TABLE}^element={field}^language=en^ORDERBYsequence",
                table = conn.table
            )
        };
        let url = match self.table_url_for(
            conn,
            "sys_choice",
            &[],
            &[
                ("sysparm_query", &query),
                (
                    "sysparm_fields",
                    "name,element,value,label,sequence,inactive",
                ),
                ("sysparm_limit", CHOICE_ROW_LIMIT),
                EXCLUDE_LINKS,
            ],
        ) {
            Ok(url) => url,
            Err(message) => return Exchange::refused(message),
        };
        let sent = self.send(conn, Method::GET, url, None).await;
        let outcome = match &sent.outcome {
            Ok(Value::Array(rows)) => Ok(pick_choices(rows, &conn.table, field)),
            Ok(_) => Err(sent.unexpected(false)),
            Err(failure) => Err(failure.clone()),
        };
        Exchange {
            outcome,
            calls: sent.into_calls(),
        }
    }
}

#[derive(Debug)]
struct Row {
    table: String,
    value: String,
    label: String,
    sequence: Option<i64>,
    active: bool,
}

/// Picks the table's own rows (else task's), drops inactive ones and duplicates, and sorts
/// by sequence. The server orders too, but may compare sequences as text ("10" < "9").
pub(crate) fn pick_choices(rows: &[Value], table: &str, field: &str) -> Vec<Choice> {
    let text = |row: &Value, key: &str| row.get(key).map(field_text).unwrap_or_default();
    let rows: Vec<Row> = rows
        .iter()
        .filter(|row| {
            // Tolerates a server that ignored part of the query.
            let element = text(row, "element");
            element.is_empty() || element == field
        })
        .map(|row| Row {
            table: text(row, "name"),
            value: text(row, "value"),
            label: text(row, "label"),
            sequence: text(row, "sequence").trim().parse().ok(),
            active: !matches!(text(row, "inactive").as_str(), "true" | "1"),
        })
        .collect();
    let own = rows.iter().any(|row| row.table == table);
    let source = if own { table } else { PARENT_TABLE };
    let mut picked: Vec<&Row> = rows
        .iter()
        .filter(|row| row.table == source && row.active)
        .collect();
    // Stable: equal sequences keep ServiceNow's order. Rows without a sequence go last.
    picked.sort_by_key(|row| row.sequence.unwrap_or(i64::MAX));
    let mut seen = std::collections::BTreeSet::new();
    picked
        .into_iter()
        .filter(|row| seen.insert(row.value.clone()))
        .map(|row| Choice {
            value: row.value.clone(),
            label: if row.label.is_empty() {
                row.value.clone()
            } else {
                row.label.clone()
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(table: &str, value: &str, label: &str, sequence: &str, inactive: &str) -> Value {
        json!({"name": table, "element": "state", "value": value, "label": label,
               "sequence": sequence, "inactive": inactive})
    }

    fn values(choices: &[Choice]) -> Vec<&str> {
        choices.iter().map(|c| c.value.as_str()).collect()
    }

    #[test]
    fn table_choices_win_over_task() {
        let rows = [
            row("task", "-5", "Pending", "1", "false"),
            row("incident", "1", "New", "1", "false"),
            row("incident", "2", "In Progress", "2", "false"),
        ];
        let choices = pick_choices(&rows, "incident", "state");
        assert_eq!(values(&choices), ["1", "2"]);
        assert_eq!(choices[1].label, "In Progress");
    }

    #[test]
    fn task_choices_count_when_the_table_has_none() {
        let rows = [
            row("task", "1", "Open", "1", "false"),
            row("task", "3", "Closed Complete", "3", "false"),
        ];
        assert_eq!(
            values(&pick_choices(&rows, "incident", "state")),
            ["1", "3"]
        );
    }

    #[test]
    fn inactive_are_dropped_and_sequence_is_numeric() {
        let rows = [
            row("incident", "7", "Closed", "10", "false"),
            row("incident", "6", "Resolved", "9", "false"),
            row("incident", "4", "Awaiting", "5", "true"),
            row("incident", "1", "New", "1", "false"),
            row("incident", "x", "", "", "false"),
        ];
        let choices = pick_choices(&rows, "incident", "state");
        assert_eq!(values(&choices), ["1", "6", "7", "x"]);
        assert_eq!(choices[3].label, "x");
    }

    #[test]
    fn all_inactive_own_choices_do_not_fall_back_to_task() {
        let rows = [
            row("task", "1", "Open", "1", "false"),
            row("incident", "1", "New", "1", "true"),
        ];
        assert!(pick_choices(&rows, "incident", "state").is_empty());
    }

    #[test]
    fn duplicates_keep_the_first() {
        let rows = [
            row("incident", "1", "New", "1", "false"),
            row("incident", "1", "Nouveau", "2", "false"),
        ];
        let choices = pick_choices(&rows, "incident", "state");
        assert_eq!(choices.len(), 1);
        assert_eq!(choices[0].label, "New");
    }
}
