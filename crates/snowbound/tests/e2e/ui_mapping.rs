//! Issue #17 through the web UI, JavaScript off: the ServiceNow Settings page's field
//! mappings, event matrix and Closed-record settings (saved values over the API and on
//! redisplay, an invalid template named next to its row), the preview for a chosen
//! incident, rules' `set_fields` rows, and the incident page's comment box.

use reqwest::StatusCode;
use serde_json::{json, Value};
use snowbound_testkit::ui::{with_admin, Ui, ADMIN_EMAIL, ADMIN_PASSWORD};
use snowbound_testkit::{on_both_backends, Backend, TestApp};
use uuid::Uuid;

async fn admin_ui(backend: Backend) -> (TestApp, Ui) {
    let t = TestApp::spawn_with(backend, Default::default(), with_admin).await;
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    (t, ui)
}

fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn pairs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Page text with askama's escapes undone, to compare with what was typed.
fn unescaped(html: &str) -> String {
    html.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}

/// The HTML of one element, from its `id` to the end of its row.
fn row<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} in:\n{html}"));
    let rest = &html[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

/// The sync form's fields: two mappings, severity sync off, reopen a Closed record, notes
/// as `comments`.
fn sync_form() -> Vec<(String, String)> {
    owned(&[
        ("fm_rows", "3"),
        ("fm_field_0", "cmdb_ci"),
        ("fm_value_0", "{{ attributes.service }}"),
        ("fm_when_0", "create"),
        ("fm_display_0", "1"),
        ("fm_field_1", "assignment_group"),
        ("fm_value_1", "Network L2"),
        ("fm_when_1", "always"),
        ("fm_display_1", "1"),
        ("fm_field_2", ""),
        ("fm_value_2", ""),
        ("fm_when_2", "create"),
        ("up_resolve", "1"),
        ("up_reopen", "1"),
        ("up_acknowledge", "1"),
        ("up_comments", "1"),
        ("up_fields", "1"),
        ("work_notes_field", "comments"),
        ("on_closed", "reopen"),
        ("state_closed", "7"),
        ("action", "save"),
    ])
}

async fn field_mappings_and_events_round_trip_through_the_settings_form(backend: Backend) {
    let (t, mut ui) = admin_ui(backend).await;
    let team = t.team("sre").await;
    let id = t.integration(team, "always", json!({})).await;
    let settings = format!("/integrations/{id}/settings");
    let action = format!("/integrations/{id}/settings/sync");

    let page = ui.get(&settings).await;
    assert!(page.html.contains("Field mappings"), "{}", page.html);
    assert!(
        page.html.contains("id=\"mapping-row-2\""),
        "blank rows to add"
    );
    // Enter in a row saves: the form's first submit button is Save, not Preview.
    let form_html = &page.html[page.html.find("id=\"field-mappings\"").unwrap()..];
    let first_button = &form_html[form_html.find("type=\"submit\"").unwrap()..];
    assert!(
        first_button.starts_with("type=\"submit\" class=\"default-submit\""),
        "{first_button}"
    );
    assert!(first_button[..200].contains("value=\"save\""));
    assert!(page
        .html
        .contains("name=\"up_severity\" id=\"up_severity\" value=\"1\" checked"));

    let saved = ui.submit(&settings, &action, &pairs(&sync_form())).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let sn = &t.get(&format!("/api/v1/integrations/{id}")).await["servicenow"];
    assert_eq!(
        sn["fields"],
        json!([
            {"field": "cmdb_ci", "value": "{{ attributes.service }}", "when": "create",
             "display": true},
            {"field": "assignment_group", "value": "Network L2", "when": "always",
             "display": true},
        ])
    );
    assert_eq!(
        sn["updates"],
        json!({"severity": false, "resolve": true, "reopen": true, "acknowledge": true,
               "comments": true, "fields": true})
    );
    assert_eq!(sn["on_closed"], "reopen");
    assert_eq!(sn["work_notes_field"], "comments");
    assert_eq!(sn["state_closed"], "7");
    assert_eq!(
        sn["auth"]["type"], "basic",
        "the rest of the settings is kept"
    );

    let page = ui.get(&settings).await;
    let first = row(&page.html, "mapping-row-0");
    assert!(first.contains("value=\"cmdb_ci\""), "{first}");
    assert!(
        first.contains("value=\"{{ attributes.service }}\""),
        "{first}"
    );
    assert!(row(&page.html, "mapping-row-1").contains("<option value=\"always\" selected>"));
    assert!(
        page.html.contains("id=\"mapping-row-4\""),
        "three blank rows"
    );
    assert!(page
        .html
        .contains("name=\"up_severity\" id=\"up_severity\" value=\"1\">"));
    assert!(page.html.contains("value=\"reopen\" checked"));
    assert!(page.html.contains("<option value=\"comments\" selected>"));

    // Remove the first mapping, set on_closed back to skip.
    let mut form = sync_form();
    form.push(("fm_remove_0".into(), "1".into()));
    for (k, v) in form.iter_mut() {
        if k == "on_closed" {
            *v = "skip".into();
        }
    }
    let saved = ui.submit(&settings, &action, &pairs(&form)).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let sn = &t.get(&format!("/api/v1/integrations/{id}")).await["servicenow"];
    let fields: Vec<&str> = sn["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["assignment_group"]);
    assert_eq!(sn["on_closed"], "skip");
}

async fn an_invalid_template_is_refused_next_to_its_row(backend: Backend) {
    let (t, mut ui) = admin_ui(backend).await;
    let team = t.team("sre").await;
    let id = t.integration(team, "always", json!({})).await;
    let settings = format!("/integrations/{id}/settings");
    let mut form = sync_form();
    for (k, v) in form.iter_mut() {
        match k.as_str() {
            "fm_field_2" => *v = "category".into(),
            "fm_value_2" => *v = "{{ title".into(),
            _ => {}
        }
    }
    let refused = ui
        .submit(
            &settings,
            &format!("/integrations/{id}/settings/sync"),
            &pairs(&form),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.html
    );
    assert!(refused.html.contains("Not saved"), "{}", refused.html);
    let bad = row(&refused.html, "mapping-row-2");
    assert!(
        bad.contains("servicenow.fields[2].value") && bad.contains("is not a valid template"),
        "the error is next to its row: {bad}"
    );
    assert!(
        bad.contains("value=\"{{ title\""),
        "typed value kept: {bad}"
    );
    assert!(!row(&refused.html, "mapping-row-1").contains("field-error"));
    let sn = &t.get(&format!("/api/v1/integrations/{id}")).await["servicenow"];
    assert_eq!(sn["fields"], json!([]), "nothing saved");
    assert_eq!(sn["updates"]["severity"], true);
}

/// The preview with the values as typed: the template over the incident's attribute, the
/// rule's field, display values in their own request; nothing saved.
async fn the_preview_shows_what_a_chosen_incident_would_send(backend: Backend) {
    let (t, mut ui) = admin_ui(backend).await;
    let team = t.team("sre").await;
    let id = t
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    t.post(
        "/api/v1/routing-rules",
        json!({"team_id": team, "name": "criticals to network",
               "when": {"severity": ["critical"]},
               "then": {"set_fields": {"assignment_group": "Network L2"}}}),
    )
    .await;
    let incident = t
        .post(
            "/api/v1/incidents",
            json!({"team_id": team, "title": "Disk full", "severity": "critical",
                   "attributes": {"service": "db-1"}}),
        )
        .await;
    let incident = snowbound_testkit::id(&incident);
    let settings = format!("/integrations/{id}/settings");
    let page = ui.get(&settings).await;
    assert!(page.html.contains(&format!(
        "<option value=\"{incident}\">Disk full (critical, open)"
    )));

    let mut form = sync_form();
    form.push(("preview_incident".into(), incident.to_string()));
    for (k, v) in form.iter_mut() {
        match k.as_str() {
            "action" => *v = "preview".into(),
            "fm_field_1" => *v = "category".into(),
            "fm_value_1" => *v = "{{ team }}/{{ severity }}".into(),
            "fm_display_1" => *v = String::new(),
            _ => {}
        }
    }
    form.retain(|(k, v)| k != "fm_display_1" || !v.is_empty());
    let shown = ui
        .submit(
            &settings,
            &format!("/integrations/{id}/settings/sync"),
            &pairs(&form),
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.html);
    let start = shown.html.find("id=\"incident-preview-result\"").unwrap();
    let result = &unescaped(&shown.html[start..]);
    assert!(result.contains("not forwarded yet"), "{result}");
    assert!(result.contains("POST /api/now/table/incident"), "{result}");
    assert!(
        result.contains("\"category\": \"sre/critical\""),
        "{result}"
    );
    assert!(
        result.contains("sysparm_input_display_value=true"),
        "{result}"
    );
    assert!(result.contains("\"cmdb_ci\": \"db-1\""), "{result}");
    assert!(
        result.contains("\"assignment_group\": \"Network L2\""),
        "the rule's field: {result}"
    );
    assert!(
        result.contains("<code>cmdb_ci</code>"),
        "named as a display value"
    );
    let sn = &t.get(&format!("/api/v1/integrations/{id}")).await["servicenow"];
    assert_eq!(sn["fields"], json!([]), "a preview saves nothing");

    // With the saved settings, by link.
    let page = ui.get(&format!("{settings}?preview={incident}")).await;
    assert!(page.html.contains("id=\"incident-preview-result\""));
    assert!(unescaped(&page.html).contains("\"assignment_group\": \"Network L2\""));
}

async fn rule(t: &TestApp, team: Uuid) -> Value {
    let rules = t
        .get(&format!("/api/v1/routing-rules?team_id={team}"))
        .await;
    rules.as_array().unwrap()[0].clone()
}

async fn rules_set_fields_are_edited_in_key_value_rows(backend: Backend) {
    let (t, mut ui) = admin_ui(backend).await;
    let team = t.team("payments").await;
    let integration = t.integration(team, "always", json!({})).await;
    let page_path = format!("/teams/{team}/rules");
    let created = ui
        .submit(
            &page_path,
            &page_path,
            &[
                ("name", "criticals to network"),
                ("severity", "critical"),
                ("forward_to", &integration.to_string()),
                ("set_field", "assignment_group"),
                ("set_value", "Network L2"),
                ("set_field", ""),
                ("set_value", ""),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let stored = rule(&t, team).await;
    assert_eq!(
        stored["then"]["set_fields"],
        json!({"assignment_group": "Network L2"})
    );
    let rule_id = stored["id"].as_str().unwrap().to_owned();
    let page = ui.get(&page_path).await;
    assert!(page.html.contains("set assignment_group to “Network L2”"));
    assert!(page.html.contains("value=\"Network L2\""));

    // Change the value, add a field, remove none; then empty the first row to remove it.
    let fields = format!("/teams/{team}/rules/{rule_id}/fields");
    let saved = ui
        .submit(
            &page_path,
            &fields,
            &[
                ("set_field", "assignment_group"),
                ("set_value", "Database"),
                ("set_field", "category"),
                ("set_value", "network"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let stored = rule(&t, team).await;
    assert_eq!(
        stored["then"]["set_fields"],
        json!({"assignment_group": "Database", "category": "network"})
    );
    assert_eq!(stored["when"]["severity"], json!(["critical"]), "kept");
    assert_eq!(stored["then"]["forward_to"], json!([integration]), "kept");
    let saved = ui
        .submit(
            &page_path,
            &fields,
            &[
                ("set_field", ""),
                ("set_value", ""),
                ("set_field", "category"),
                ("set_value", "network"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    assert_eq!(
        rule(&t, team).await["then"]["set_fields"],
        json!({"category": "network"})
    );

    let refused = ui
        .submit(
            &page_path,
            &fields,
            &[("set_field", "Bad Name"), ("set_value", "x")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let start = refused
        .html
        .find(&format!("id=\"rule-{rule_id}\""))
        .unwrap();
    assert!(
        refused.html[start..].contains("Not saved: then.set_fields"),
        "{}",
        refused.html
    );
    assert_eq!(
        rule(&t, team).await["then"]["set_fields"],
        json!({"category": "network"})
    );
}

async fn a_comment_from_the_incident_page_shows_on_the_timeline(backend: Backend) {
    let (t, mut ui) = admin_ui(backend).await;
    let team = t.team("payments").await;
    let incident = t.incident(team, "Checkout down", "critical").await;
    let page_path = format!("/incidents/{incident}");
    let page = ui.get(&page_path).await;
    assert!(page.html.contains("id=\"comment-form\""));
    let action = format!("/incidents/{incident}/comments");
    let posted = ui
        .submit(
            &page_path,
            &action,
            &[("text", "Rolled back the <deploy>.")],
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.html);
    assert_eq!(
        posted.location.as_deref(),
        Some(format!("/incidents/{incident}?done=commented").as_str())
    );
    let page = ui.get(posted.location.as_deref().unwrap()).await;
    let timeline = &page.html[page.html.find("id=\"timeline-h\"").unwrap()..];
    assert!(
        timeline.contains("Rolled back the &#60;deploy&#62;."),
        "{timeline}"
    );
    let api = t.get(&format!("/api/v1/incidents/{incident}")).await;
    assert!(
        api.to_string().contains("Rolled back the <deploy>."),
        "{api}"
    );

    let empty = ui.submit(&page_path, &action, &[("text", "  ")]).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.html.contains("text: is required"), "{}", empty.html);
}

on_both_backends!(
    field_mappings_and_events_round_trip_through_the_settings_form,
    an_invalid_template_is_refused_next_to_its_row,
    the_preview_shows_what_a_chosen_incident_would_send,
    rules_set_fields_are_edited_in_key_value_rows,
    a_comment_from_the_incident_page_shows_on_the_timeline,
);
