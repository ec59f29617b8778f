//! A team's routing rules in the web UI over plain HTTP (#19): edited, moved, and their
//! firings in the routing history, on both backends.

use reqwest::StatusCode;
use serde_json::json;
use snowbound_testkit::{Backend, TestApp};

use crate::sources_routing::rule;
use crate::ui_admin::{action, admin};

/// The browser journey without JavaScript: a rule's conditions and actions edited in its
/// form (a refusal names the field and keeps what was typed), rules moved, and the
/// routing history on the page.
async fn a_rule_is_edited_and_moved_in_the_ui_and_its_firing_shows_in_the_history(
    backend: Backend,
) {
    let t = TestApp::spawn_with(
        backend,
        snowbound_emulator::EmulatorConfig::default(),
        snowbound_testkit::ui::with_admin,
    )
    .await;
    let team = t.team("ops").await;
    let integration = t
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    let first = rule(
        &t,
        team,
        "first",
        json!({}),
        json!({"set_attributes": {"a": "1"}}),
    )
    .await;
    rule(
        &t,
        team,
        "second",
        json!({}),
        json!({"set_attributes": {"b": "2"}}),
    )
    .await;
    let mut ui = admin(&t).await;
    let page = format!("/teams/{team}/rules");
    let shown = ui.get(&page).await.html;
    let edit = action(&shown, &format!("{first}/edit"));

    let bad_when = r#"{"time_window": {"from": "08:00", "to": "18:00", "time_zone": "Mars/Base"}}"#;
    let refused = ui
        .submit(
            &page,
            &edit,
            &[
                ("name", "first"),
                ("when", bad_when),
                ("then", r#"{"stop": true}"#),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .html
            .contains("when.time_window.time_zone: unknown time zone"),
        "{}",
        refused.html
    );
    assert!(refused.html.contains("Mars/Base"), "what was typed stays");
    let not_json = ui
        .submit(
            &page,
            &edit,
            &[("name", "first"), ("when", "{"), ("then", "{}")],
        )
        .await;
    assert_eq!(not_json.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        not_json.html.contains("when: not JSON"),
        "{}",
        not_json.html
    );

    let when = r#"{"match": "any", "status": ["open"], "attributes": {"load": {"gte": "90"}}}"#;
    let then = format!(
        r#"{{"set_severity": "critical", "forward_to": ["{integration}"], "delay_seconds": 1, "stop": true}}"#
    );
    let saved = ui
        .submit(
            &page,
            &edit,
            &[("name", "Hot boxes"), ("when", when), ("then", &then)],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let stored = t.get(&format!("/api/v1/routing-rules/{first}")).await;
    assert_eq!(stored["name"], "Hot boxes");
    assert_eq!(stored["when"]["match"], "any");
    assert_eq!(stored["when"]["attributes"]["load"]["gte"], "90");
    assert_eq!(stored["then"]["delay_seconds"], 1);
    let shown = ui.get(&page).await.html;
    assert!(
        shown.contains("When status is open or load ≥ 90 → set severity to critical; wait 1 s before sending; forward to SN always_after_forwarding; skip the rules below"),
        "{shown}"
    );

    let moved = ui
        .submit(&page, &action(&shown, "/move"), &[("direction", "down")])
        .await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER);
    let listed = t
        .get(&format!("/api/v1/routing-rules?team_id={team}"))
        .await;
    assert_eq!(listed[0]["name"], "second", "{listed}");
    assert_eq!(listed[1]["name"], "Hot boxes");

    let incident = t.incident(team, "Load high", "minor").await;
    let view = t.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(view["severity"], "critical", "{view}");
    assert_eq!(
        view["attributes"]["b"], "2",
        "second now runs first and continues"
    );
    let shown = ui.get(&page).await.html;
    let at = shown.find("Routing history").unwrap();
    assert!(shown[at..].contains("Hot boxes"), "{shown}");
    assert!(shown[at..].contains(&incident.to_string()));
    t.wait_synced(incident).await;
    assert_eq!(t.record(incident).unwrap()["urgency"], "1");
}

snowbound_testkit::on_both_backends!(
    a_rule_is_edited_and_moved_in_the_ui_and_its_firing_shows_in_the_history
);
