//! The read-only page at `/`: what arrived, and in which state, for a person trying the
//! demo; and how to authenticate (Basic, OAuth, API keys, docs/servicenow/AUTH_AND_INBOUND.md
//! §1) and receive changes (business rules, §2.2), with curl lines for this instance.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Html;

use crate::identity::property;
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

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `scheme://host:port` of a URL: the path may hold a receiver's token, so it is not shown.
fn origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "(invalid URL)".into(),
    }
}

/// Current authentication settings and business rules, then curl lines for `base`.
fn auth_section(shared: &Shared, base: &str) -> String {
    let mut out = String::from("<h2>Authentication</h2>\n<ul>\n");
    {
        let auth = shared.auth();
        let restricted = auth.property_is_true(property::BASIC_AUTH_RESTRICTION_ENFORCE);
        let cc = auth.property_is_true(property::CLIENT_CREDENTIALS_ENABLED);
        out.push_str(&format!(
            "<li>Basic authentication restriction enforced: {}</li>\n<li>Client credentials grant enabled: {}</li>\n<li>API key access policy for the Table API: {} ({} keys)</li>\n",
            yes_no(restricted),
            yes_no(cc),
            yes_no(auth.api_key_policy),
            auth.api_keys.len()
        ));
        let clients: Vec<String> = auth
            .clients
            .iter()
            .map(|c| match &c.application_user {
                Some(u) => format!("{} (application user {u})", c.client_id),
                None => c.client_id.clone(),
            })
            .collect();
        out.push_str(&format!(
            "<li>OAuth clients: {}</li>\n<li>Access token lifespan: {} s</li>\n",
            escape(&if clients.is_empty() {
                "none".into()
            } else {
                clients.join(", ")
            }),
            auth.access_lifespan.as_secs()
        ));
        let users: Vec<String> = auth
            .users
            .iter()
            .map(|u| {
                let wsao = if u.web_service_access_only {
                    ", web service access only"
                } else {
                    ""
                };
                format!("{} ({}{wsao})", u.name, u.roles.join(", "))
            })
            .collect();
        out.push_str(&format!("<li>Users: {}</li>\n", escape(&users.join("; "))));
    }
    let rules: Vec<String> = shared
        .control()
        .business_rules
        .iter()
        .map(|r| format!("{} → {}", r.table, origin(&r.url)))
        .collect();
    out.push_str(&format!(
        "<li>Business rules (post <code>{{sys_id, table}}</code> after insert and update): {}</li>\n</ul>\n",
        escape(&if rules.is_empty() { "none".into() } else { rules.join(", ") })
    ));
    let curl = format!(
        r#"# Basic
curl -u admin:admin '{base}/api/now/table/incident?sysparm_limit=1'
# register an OAuth client, then the password grant (form body only)
curl -X POST {base}/emulator/oauth/clients -d '{{"client_id":"demo","client_secret":"demo-secret","application_user":"admin"}}'
curl -d grant_type=password -d client_id=demo -d client_secret=demo-secret -d username=admin -d password=admin {base}/oauth_token.do
curl -H 'Authorization: Bearer ACCESS_TOKEN' '{base}/api/now/table/incident?sysparm_limit=1'
# renew; forget every token; enable client credentials
curl -d grant_type=refresh_token -d client_id=demo -d client_secret=demo-secret -d refresh_token=REFRESH_TOKEN {base}/oauth_token.do
curl -X DELETE {base}/emulator/oauth/tokens
curl -X PUT {base}/emulator/properties -d '{{"glide.oauth.inbound.client.credential.grant_type.enabled":"true"}}'
# API key: the key, then the access policy that lets it in
curl -X POST {base}/emulator/api_keys -d '{{"key":"demo-key","user":"admin"}}'
curl -X PUT {base}/emulator/api_key_policy -d '{{"exists":true}}'
curl -H 'x-sn-apikey: demo-key' '{base}/api/now/table/incident?sysparm_limit=1'
# enforce the Basic restriction; flag an account web-service-access-only
curl -X PUT {base}/emulator/properties -d '{{"glide.authenticate.basic_auth.restriction.enforce":"true"}}'
curl -X PATCH {base}/emulator/users/admin -d '{{"web_service_access_only":true}}'
# a business rule; an agent edits a record (fires it)
curl -X POST {base}/emulator/business_rules -d '{{"table":"incident","url":"http://127.0.0.1:9999/hook"}}'
curl -X PATCH {base}/emulator/act_as/admin/incident/SYS_ID -d '{{"state":"2","work_notes":"on it"}}'"#
    );
    out.push_str(&format!("<pre>{}</pre>\n", escape(&curl)));
    out
}

pub(crate) async fn page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Html<String> {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8089");
    let auth = auth_section(&shared, &format!("http://{host}"));
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
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}th{{background:#eee}}pre{{background:#f6f6f6;padding:8px;overflow-x:auto}}</style>
</head><body>
<h1>ServiceNow emulator: incidents ({count})</h1>
<p>Read-only view, refreshed every 5 s. Table API at <code>/api/now/table/incident</code>; control API under <code>/emulator/</code>.</p>
<table><thead><tr><th>Number</th><th>Table</th><th>Short description</th><th>State</th><th>Urgency</th><th>Priority</th><th>Correlation ID</th><th>Resolution code</th><th>Resolution notes</th><th>Updated</th></tr></thead>
<tbody>
{rows}</tbody></table>
{auth}
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
