//! The read-only page at `/`: what arrived, and in which state, for a person trying the
//! demo.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;

use crate::schema::Kind;
use crate::server::Shared;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) async fn page(State(shared): State<Arc<Shared>>) -> Html<String> {
    let data = shared.data();
    let choices = data.choice_index();
    let mut rows = String::new();
    let mut count = 0;
    if let Some(def) = data.def("incident") {
        debug_assert_eq!(def.kind, Kind::Incident);
        for r in data.visible(def) {
            count += 1;
            let get = |f: &str| r.get(f).map(String::as_str).unwrap_or("");
            let class = get("sys_class_name");
            let tables = [class, "incident", "task"];
            let label = |f: &str| {
                let v = get(f);
                choices.label(&tables, f, v).unwrap_or(v).to_string()
            };
            let cells = [
                get("number").to_string(),
                class.to_string(),
                get("short_description").to_string(),
                label("state"),
                label("urgency"),
                label("priority"),
                get("correlation_id").to_string(),
                get("close_code").to_string(),
                get("close_notes").to_string(),
                get("sys_updated_on").to_string(),
            ];
            rows.push_str("<tr>");
            for c in cells {
                rows.push_str(&format!("<td>{}</td>", escape(&c)));
            }
            rows.push_str("</tr>\n");
        }
    }
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>Snowbound ServiceNow emulator</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}th{{background:#eee}}</style>
</head><body>
<h1>ServiceNow emulator: incidents ({count})</h1>
<p>Read-only view, refreshed every 5 s. Table API at <code>/api/now/table/incident</code>; control API under <code>/emulator/</code>.</p>
<table><thead><tr><th>Number</th><th>Table</th><th>Short description</th><th>State</th><th>Urgency</th><th>Priority</th><th>Correlation ID</th><th>Resolution code</th><th>Resolution notes</th><th>Updated</th></tr></thead>
<tbody>
{rows}</tbody></table>
</body></html>
"#
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
