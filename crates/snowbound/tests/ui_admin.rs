//! The admin pages of the web UI over plain HTTP, as a browser with JavaScript off uses
//! them: a team's alert sources and routing rules, the Users page, and team isolation
//! across every page of another team.

mod support;
mod ui_support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use snowbound_emulator::EmulatorConfig;
use support::{send_alert, TestApp};
use ui_support::{with_admin, Ui, ADMIN_EMAIL, ADMIN_PASSWORD};

async fn app_with_admin() -> TestApp {
    TestApp::spawn_with(EmulatorConfig::default(), with_admin).await
}

async fn admin(t: &TestApp) -> Ui {
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    ui
}

/// The `value` of the readonly input labelled as the ingest URL of `name`.
fn ingest_url(html: &str, name: &str) -> String {
    let label = format!("Ingest URL of {name}</label>");
    let at = html
        .find(&label)
        .unwrap_or_else(|| panic!("no URL of {name}"));
    let marker = "readonly value=\"";
    let start = at + html[at..].find(marker).unwrap() + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#x2F;", "/")
}

/// The first path of a form whose action ends with `suffix`.
fn action(html: &str, suffix: &str) -> String {
    html.split("action=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().replace("&#x2F;", "/"))
        .find(|a| a.ends_with(suffix))
        .unwrap_or_else(|| panic!("no form posting to …{suffix}"))
}

fn alert(dedup: &str, title: &str) -> Value {
    json!({"dedup_key": dedup, "title": title, "severity": "critical",
           "attributes": {"env": "prod"}})
}

#[tokio::test]
async fn sources_are_created_rotated_and_deleted_through_forms() {
    let t = app_with_admin().await;
    let team = t.team("ops").await;
    let mut ui = admin(&t).await;
    let page = format!("/teams/{team}/sources");

    let refused = ui
        .submit(
            &page,
            &page,
            &[
                ("name", "prod am"),
                ("type", "webhook"),
                ("severity_map", "page=urgent"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.html.contains("line 1: unknown Severity `urgent`"),
        "{}",
        refused.html
    );
    assert!(
        refused.html.contains("value=\"prod am\""),
        "the typed name stays"
    );
    assert!(
        refused.html.contains(">page=urgent</textarea>"),
        "the typed map stays"
    );
    let nameless = ui
        .submit(&page, &page, &[("name", " "), ("type", "webhook")])
        .await;
    assert_eq!(nameless.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(nameless
        .html
        .contains("<p class=\"field-error\">name: is required</p>"));

    let created = ui
        .submit(
            &page,
            &page,
            &[
                ("name", "prod webhook"),
                ("type", "webhook"),
                ("severity_map", "Page=critical\n\nlow = minor"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let shown = ui.get(created.location.as_deref().unwrap()).await;
    assert!(shown.html.contains("Created."));
    assert!(shown.html.contains("low → minor, page → critical"));
    let url = ingest_url(&shown.html, "prod webhook");
    assert!(url.starts_with(&format!("{}/ingest/sbi_", t.base)), "{url}");

    let (status, answer) = send_alert(&t, &url, alert("db-1", "DB down")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let incident = answer["incident_id"].as_str().unwrap().to_owned();
    assert!(ui.get("/incidents").await.html.contains("DB down"));
    assert_eq!(
        ui.get(&format!("/incidents/{incident}")).await.status,
        StatusCode::OK
    );

    let rotated = ui.submit(&page, &action(&shown.html, "/rotate"), &[]).await;
    assert_eq!(rotated.status, StatusCode::SEE_OTHER);
    let after = ui.get(rotated.location.as_deref().unwrap()).await;
    assert!(after.html.contains("Secret rotated."));
    let new_url = ingest_url(&after.html, "prod webhook");
    assert_ne!(new_url, url);
    let (old, _) = send_alert(&t, &url, alert("db-2", "Old URL")).await;
    assert_eq!(old, StatusCode::NOT_FOUND, "the old URL stops working");
    let (new, _) = send_alert(&t, &new_url, alert("db-2", "New URL")).await;
    assert_eq!(new, StatusCode::ACCEPTED);

    let deleted = ui.submit(&page, &action(&after.html, "/delete"), &[]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert!(ui.get(&page).await.html.contains("No sources yet."));
    let (gone, _) = send_alert(&t, &new_url, alert("db-3", "Deleted")).await;
    assert_eq!(gone, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_rule_made_in_the_form_forwards_incidents_and_rules_reorder() {
    let t = app_with_admin().await;
    let team = t.team("ops").await;
    let integration = t
        .integration(&team, "always_after_forwarding", json!({}))
        .await;
    let mut ui = admin(&t).await;
    let page = format!("/teams/{team}/rules");

    let form = ui.get(&page).await;
    assert!(form
        .html
        .contains(&format!("name=\"forward_to\" value=\"{integration}\"")));
    let bad = ui
        .submit(
            &page,
            &page,
            &[
                ("name", "broken"),
                ("attributes", "host=~(unclosed"),
                ("forward_to", &integration),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.html.contains("not a valid regular expression"),
        "{}",
        bad.html
    );
    assert!(bad.html.contains(">host=~(unclosed</textarea>"));
    let nothing = ui.submit(&page, &page, &[("name", "does nothing")]).await;
    assert_eq!(nothing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(nothing.html.contains("must forward_to or exclude_from"));

    for (name, extra) in [
        (
            "Criticals in prod",
            vec![
                ("severity", "critical"),
                ("attributes", "env=prod\nsvc~pay"),
            ],
        ),
        (
            "Databases",
            vec![("title_contains", "db"), ("attributes", "host=~^db-")],
        ),
    ] {
        let mut fields = vec![("name", name), ("forward_to", integration.as_str())];
        fields.extend(extra);
        let created = ui.submit(&page, &page, &fields).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    }
    let shown = ui.get(&page).await.html;
    assert!(
        shown.contains("When severity is critical and env = prod and svc contains “pay” → forward to SN always_after_forwarding"),
        "{shown}"
    );
    assert!(shown.contains("When title contains “db” and host matches /^db-/"));
    assert!(shown.find("Criticals in prod").unwrap() < shown.find("Databases").unwrap());

    let moved = ui
        .submit(&page, &action(&shown, "/move"), &[("direction", "down")])
        .await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER);
    let reordered = ui.get(&page).await.html;
    assert!(reordered.find("Databases").unwrap() < reordered.find("Criticals in prod").unwrap());
    let rules = t
        .get(&format!("/api/v1/routing-rules?team_id={team}"))
        .await;
    assert_eq!(
        rules[0]["name"], "Databases",
        "the API sees the new order: {rules}"
    );

    let source = t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "webhook", "name": "hook"}),
        )
        .await;
    let url = source["ingest_url"].as_str().unwrap();
    let body = json!({"dedup_key": "p1", "title": "Payments slow", "severity": "critical",
                      "attributes": {"env": "prod", "svc": "payments"}});
    let (status, answer) = send_alert(&t, url, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let incident = answer["incident_id"].as_str().unwrap();
    t.wait_synced(incident).await;
    let record = t.record(incident).expect("forwarded by the rule");
    assert_eq!(record["short_description"], "Payments slow");

    let removed = ui.submit(&page, &action(&reordered, "/delete"), &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    let left = ui.get(&page).await.html;
    assert!(!left.contains("Databases") && left.contains("Criticals in prod"));
}
