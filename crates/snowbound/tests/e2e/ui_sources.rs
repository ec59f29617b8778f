//! A source edited in the browser: its name and severity words change on the team's
//! sources page, the very next alert reads the new words, and a bad word is refused on
//! that source's row.

use reqwest::StatusCode;
use serde_json::json;
use snowbound_emulator::EmulatorConfig;
use snowbound_testkit::ui::{with_admin, Ui, ADMIN_EMAIL, ADMIN_PASSWORD};
use snowbound_testkit::{on_both_backends, Backend, TestApp};

on_both_backends!(a_source_renamed_and_remapped_in_the_browser_acts_on_the_next_alert);

async fn a_source_renamed_and_remapped_in_the_browser_acts_on_the_next_alert(backend: Backend) {
    let t = TestApp::spawn_with(backend, EmulatorConfig::default(), with_admin).await;
    let team = t.team("ops").await;
    let source = t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "webhook", "name": "old name"}),
        )
        .await;
    let id = source["id"].as_str().unwrap().to_owned();
    let url = source["ingest_url"].as_str().unwrap().to_owned();
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let list = format!("/teams/{team}/sources");
    let edit = format!("/teams/{team}/sources/{id}/edit");

    let refused = ui
        .submit(
            &list,
            &edit,
            &[("name", "new name"), ("severity_map", "p1=urgent")],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.html
    );
    assert!(refused.html.contains("line 1"), "{}", refused.html);
    assert_eq!(
        t.get(&format!("/api/v1/sources/{id}")).await["name"],
        "old name"
    );

    let saved = ui
        .submit(
            &list,
            &edit,
            &[
                ("name", "new name"),
                ("severity_map", "p1=critical\nP5 = minor"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let page = ui.get(&list).await;
    assert!(page.html.contains("new name"), "{}", page.html);
    let stored = t.get(&format!("/api/v1/sources/{id}")).await;
    assert_eq!(stored["name"], "new name");
    assert_eq!(
        stored["severity_map"],
        json!({"p1": "critical", "p5": "minor"})
    );

    let (status, answer) = t
        .send_alert(
            &url,
            json!({"dedup_key": "db1", "title": "Disk", "severity": "P1"}),
        )
        .await
        .parts();
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let incident = t
        .get(&format!(
            "/api/v1/incidents/{}",
            answer["incident_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(incident["severity"], "critical");
}
