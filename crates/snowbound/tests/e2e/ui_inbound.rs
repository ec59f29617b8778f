//! Issue #15 through the web UI, JavaScript off: a `servicenow` source created from the
//! team's sources page (refused fields named, typed values kept), its page with the
//! ingest URL, the business rule to copy and the poll state as the engine polls the
//! emulator; "who wins" on the ServiceNow Settings page; link notes on the incident page.

use reqwest::StatusCode;
use serde_json::{json, Value};
use snowbound_emulator::{BusinessRule, User};
use snowbound_testkit::ui::{with_admin, Ui, ADMIN_EMAIL, ADMIN_PASSWORD};
use snowbound_testkit::{eventually, on_both_backends, Backend, TestApp};
use uuid::Uuid;

async fn admin_ui(backend: Backend) -> (TestApp, Ui) {
    let t = TestApp::spawn_with(backend, Default::default(), with_admin).await;
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    (t, ui)
}

/// Page text with askama's escapes undone, to compare with what was typed.
fn unescaped(html: &str) -> String {
    html.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}

/// The HTML from the element with `id` to the first `end` after it.
fn part<'a>(html: &'a str, id: &str, end: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} in:\n{html}"));
    let rest = &html[start..];
    &rest[..rest.find(end).map_or(rest.len(), |at| at + end.len())]
}

/// The text of the element with `id` up to its first closing tag.
fn text_of<'a>(html: &'a str, id: &str) -> &'a str {
    let element = part(html, id, "</");
    let from = element.find('>').map_or(0, |at| at + 1);
    element[from..].trim_end_matches("</")
}

fn checked(html: &str, name: &str) -> bool {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no {name} in:\n{html}"));
    html[at..].split('>').next().unwrap().contains("checked")
}

on_both_backends!(
    a_servicenow_source_is_created_from_the_sources_page_and_shows_its_rule_and_polls,
    who_wins_round_trips_through_the_settings_page,
    the_incident_page_shows_a_reasserted_link_note,
);

async fn a_servicenow_source_is_created_from_the_sources_page_and_shows_its_rule_and_polls(
    backend: Backend,
) {
    let (t, mut ui) = admin_ui(backend).await;
    let team = t.team("ops").await;
    let ours = t.integration(team, "always", json!({})).await;
    let other_team = t.team("db").await;
    let theirs = t
        .integration(other_team, "only_on_forwarding", json!({}))
        .await;
    let sources = format!("/teams/{team}/sources");

    let page = ui.get(&sources).await;
    assert_eq!(page.status, StatusCode::OK);
    let select = part(&page.html, "sn_integration", "</select>");
    assert!(select.contains(&format!("value=\"{ours}\"")), "{select}");
    assert!(
        !select.contains(&theirs.to_string()),
        "another team's: {select}"
    );
    assert!(page.html.contains("<option value=\"servicenow\""));
    for on in ["resolve", "reopen", "acknowledge"] {
        assert!(
            checked(&page.html, &format!("servicenow.transitions.{on}")),
            "{on}"
        );
    }
    assert!(!checked(&page.html, "servicenow.transitions.severity"));
    assert!(page
        .html
        .contains("<option value=\"push_and_poll\" selected>"));
    assert!(page
        .html
        .contains("name=\"servicenow.poll_interval_s\" inputmode=\"numeric\" value=\"60\""));

    // Refused: both problems named next to their fields, everything typed kept.
    let ours_text = ours.to_string();
    let bad = [
        ("name", "desk"),
        ("type", "servicenow"),
        ("servicenow.integration_id", ours_text.as_str()),
        ("servicenow.delivery", "poll"),
        ("servicenow.poll_interval_s", "4"),
        ("servicenow.open_filter", "active=true^^priority=1"),
        ("servicenow.transitions.resolve", "1"),
        ("servicenow.transitions.severity", "1"),
    ];
    let refused = ui.submit(&sources, &sources, &bad).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.html
    );
    let html = unescaped(&refused.html);
    assert!(html.contains("must be at least 5 seconds"), "{html}");
    assert!(html.contains("term 2 is empty"), "{html}");
    assert!(html.contains("value=\"4\""), "{html}");
    assert!(html.contains("value=\"active=true^^priority=1\""), "{html}");
    assert!(html.contains("<option value=\"poll\" selected>"), "{html}");
    assert!(
        part(&html, "sn_integration", "</select>").contains(&format!("value=\"{ours}\" selected"))
    );
    assert!(checked(&html, "servicenow.transitions.severity"));
    assert!(!checked(&html, "servicenow.transitions.reopen"));
    assert_eq!(t.get("/api/v1/sources").await, json!([]), "nothing created");

    // Accepted: to the source's page, with the settings as the API holds them.
    let good = [
        ("name", "desk"),
        ("type", "servicenow"),
        ("servicenow.integration_id", ours_text.as_str()),
        ("servicenow.delivery", "poll"),
        ("servicenow.poll_interval_s", "5"),
        ("servicenow.open_filter", "active=true"),
        ("servicenow.transitions.resolve", "1"),
        ("servicenow.transitions.severity", "1"),
    ];
    let created = ui.submit(&sources, &sources, &good).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let listed = t.get("/api/v1/sources").await;
    let source = &listed[0];
    let id = source["id"].as_str().unwrap();
    assert_eq!(
        created.location.as_deref(),
        Some(format!("/teams/{team}/sources/{id}?done=created").as_str())
    );
    assert_eq!(
        source["servicenow"],
        json!({"integration_id": ours, "delivery": "poll", "poll_interval_s": 5,
               "open_filter": "active=true",
               "transitions": {"resolve": true, "reopen": false, "acknowledge": false, "severity": true}})
    );

    let path = format!("/teams/{team}/sources/{id}");
    let page = ui.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = unescaped(&page.html);
    let ingest_url = source["ingest_url"].as_str().unwrap();
    assert!(html.contains(&format!("value=\"{ingest_url}\"")), "{html}");
    let script = text_of(&html, "rule-script");
    assert_eq!(script, source["business_rule"]["script"].as_str().unwrap());
    assert!(script.contains("new sn_ws.RESTMessageV2()") && script.contains("executeAsync()"));
    assert!(script.contains(ingest_url), "{script}");
    assert_eq!(text_of(&html, "rule-table"), "<code>incident");
    assert_eq!(text_of(&html, "rule-when"), "after, insert, update");
    assert_eq!(text_of(&html, "sn-delivery"), "poll");
    assert!(text_of(&html, "sn-transitions").contains("reopen off"));

    // The engine polls the emulator: the page shows when, how many records, no error.
    t.emulator
        .create_as(
            "admin",
            "incident",
            json!({"short_description": "seen by the poll", "active": "true"}),
        )
        .expect("a record under the filter");
    let api = format!("/api/v1/sources/{id}");
    // The UI client is borrowed mutably per page, so this waits by hand.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let html = ui.get(&path).await.html;
        let poll = t.get(&api).await["poll"].clone();
        if poll["last_poll_at"].is_string()
            && poll["last_records"].as_i64() >= Some(1)
            && text_of(&html, "poll-records").parse::<i64>().ok() == poll["last_records"].as_i64()
            && !text_of(&html, "poll-last").contains("not yet")
            && !text_of(&html, "poll-watermark").contains("none yet")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the page never showed the poll {poll}:\n{html}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let html = ui.get(&path).await.html;
    assert_eq!(text_of(&html, "poll-error"), "none", "{html}");
    assert!(text_of(&html, "poll-last").ends_with("UTC"), "{html}");

    // A push-only source does not poll, and says so; no team shows another's source.
    let push = t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "servicenow", "name": "pushed",
                   "servicenow": {"integration_id": ours, "delivery": "push"}}),
        )
        .await;
    let push_id = push["id"].as_str().unwrap();
    let html = ui
        .get(&format!("/teams/{team}/sources/{push_id}"))
        .await
        .html;
    assert!(html.contains("id=\"poll-none\""), "{html}");
    let elsewhere = ui
        .get(&format!("/teams/{other_team}/sources/{push_id}"))
        .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);

    // The list links each source to its page; a webhook's page has its URL and no rule.
    let list = ui.get(&sources).await.html;
    assert!(list.contains(&format!("href=\"{path}\"")), "{list}");
    let hook = t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "webhook", "name": "hooks"}),
        )
        .await;
    let page = ui
        .get(&format!(
            "/teams/{team}/sources/{}",
            hook["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains(&format!(
        "value=\"{}\"",
        hook["ingest_url"].as_str().unwrap()
    )));
    assert!(!page.html.contains("id=\"business-rule\""), "{}", page.html);
}

async fn who_wins_round_trips_through_the_settings_page(backend: Backend) {
    let (t, mut ui) = admin_ui(backend).await;
    let team = t.team("ops").await;
    let integration = t.integration(team, "always", json!({})).await;
    let settings = format!("/integrations/{integration}/settings");
    let action = format!("/integrations/{integration}/settings/who-wins");

    let html = ui.get(&settings).await.html;
    for select in ["who_wins_state", "who_wins_severity"] {
        let shown = part(&html, select, "</select>");
        assert!(
            shown.contains("<option value=\"latest\" selected>"),
            "{shown}"
        );
        assert!(text_of(&html, &format!("{select}-help")).starts_with("The later change wins"));
    }

    let saved = ui
        .submit(
            &settings,
            &action,
            &[("state", "snowbound"), ("severity", "servicenow")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let read = t.get(&format!("/api/v1/integrations/{integration}")).await;
    assert_eq!(
        read["servicenow"]["who_wins"],
        json!({"state": "snowbound", "severity": "servicenow"})
    );
    let html = ui.get(&settings).await.html;
    assert!(part(&html, "who_wins_state", "</select>")
        .contains("<option value=\"snowbound\" selected>"));
    assert!(part(&html, "who_wins_severity", "</select>")
        .contains("<option value=\"servicenow\" selected>"));
    assert!(text_of(&html, "who_wins_state-help").starts_with("Snowbound wins"));
    assert!(text_of(&html, "who_wins_severity-help").starts_with("ServiceNow wins"));

    let refused = ui
        .submit(
            &settings,
            &action,
            &[("state", "whoever"), ("severity", "latest")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = unescaped(&refused.html);
    assert!(
        html.contains("`whoever` is not latest, snowbound or servicenow"),
        "{html}"
    );
    let read: Value = t.get(&format!("/api/v1/integrations/{integration}")).await;
    assert_eq!(
        read["servicenow"]["who_wins"],
        json!({"state": "snowbound", "severity": "servicenow"}),
        "a refused form changes nothing"
    );
}

async fn the_incident_page_shows_a_reasserted_link_note(backend: Backend) {
    let (t, mut ui) = admin_ui(backend).await;
    let team = t.team("ops").await;
    let integration = t
        .integration(team, "always", json!({"who_wins": {"state": "snowbound"}}))
        .await;
    let source = t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "servicenow", "name": "desk",
                   "servicenow": {"integration_id": integration, "delivery": "push"}}),
        )
        .await;
    t.emulator
        .upsert_user(User::new("agent", "agent", &["itil"]));
    t.emulator.add_business_rule(BusinessRule::new(
        "incident",
        source["ingest_url"].as_str().unwrap(),
    ));
    let incident: Uuid = t.incident(team, "Contested", "critical").await;
    t.wait_synced(incident).await;
    let sys_id = t.record(incident).expect("record")["sys_id"].clone();
    let path = format!("/incidents/{incident}");
    let html = ui.get(&path).await.html;
    assert!(
        !html.contains("class=\"link-notes\""),
        "no note before: {html}"
    );

    t.emulator
        .update_as(
            "agent",
            "incident",
            &sys_id,
            json!({"state": "6", "close_code": "Solution provided", "close_notes": "not ours"}),
        )
        .expect("the agent's edit");
    let api = format!("/api/v1/incidents/{incident}");
    eventually("a note on the link", || async {
        t.get(&api).await["links"][0]["notes"]
            .as_array()
            .is_some_and(|n| !n.is_empty())
    })
    .await;
    let note = t.get(&api).await["links"][0]["notes"][0].clone();
    assert_eq!(note["kind"], "reasserted", "{note}");
    let html = unescaped(&ui.get(&path).await.html);
    let notes = part(&html, &format!("notes-{integration}"), "</tr>");
    assert!(notes.contains("re-asserted"), "{notes}");
    for key in [
        "field",
        "servicenow_value",
        "snowbound_value",
        "by",
        "reason",
    ] {
        let value = note[key].as_str().unwrap();
        assert!(notes.contains(value), "{key} {value:?} in {notes}");
    }
    assert!(notes.contains("by agent"), "{notes}");

    // The integration's settings page lists it under drift and re-assertions.
    let settings = unescaped(
        &ui.get(&format!("/integrations/{integration}/settings"))
            .await
            .html,
    );
    let standing = part(&settings, "drift", "</table>");
    assert!(standing.contains("re-asserted"), "{standing}");
    assert!(
        standing.contains(&format!("/incidents/{incident}")),
        "{standing}"
    );
    assert!(
        standing.contains(note["reason"].as_str().unwrap()),
        "{standing}"
    );
}
