//! Adaptive concurrency per integration, as the API and `/metrics` show it (issue #16):
//! calls in flight this node allows now, and the ceiling it may grow to.

use serde_json::json;
use snowbound_emulator::{EmulatorConfig, Fault};
use snowbound_testkit::{Backend, TestApp};

const INCIDENTS: &str = "/api/now/table/incident";

#[tokio::test]
async fn an_integrations_concurrency_shows_in_its_answer_and_in_metrics() {
    let app = TestApp::spawn_with(Backend::Sqlite, EmulatorConfig::default(), |config| {
        config.servicenow_concurrency = 12;
    })
    .await;
    let team = app.team("ops").await;
    let integration = app.integration(team, "always", json!({})).await;
    let path = format!("/api/v1/integrations/{integration}");
    let shown = app.get(&path).await;
    assert_eq!(
        shown["sync"]["concurrency"],
        json!({"current": 8, "ceiling": 12}),
        "an integration starts at 8 calls in flight: {shown}"
    );

    // A 429 is back pressure: the limit is cut.
    app.emulator
        .add_fault(Fault::status("POST", INCIDENTS, 429).times(1));
    let incident = app.incident(team, "Throttled", "critical").await;
    app.wait_synced(incident).await;
    let shown = app.get(&path).await;
    let current = shown["sync"]["concurrency"]["current"].as_u64().unwrap();
    assert!(current < 8, "{shown}");
    assert_eq!(shown["sync"]["concurrency"]["ceiling"], 12);
    let listed = app.get("/api/v1/integrations").await;
    assert_eq!(listed[0]["sync"], shown["sync"]);

    let scrape = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    let text = scrape.text().await.unwrap();
    let series =
        format!("snowbound_servicenow_concurrency{{integration=\"{integration}\"}} {current}");
    assert!(
        text.lines().any(|line| line == series),
        "no `{series}` in:\n{text}"
    );
}
