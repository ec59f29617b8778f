//! The incidents list's search (`q`) and keyset pages (`before`, `Link: rel="next"`)
//! over HTTP and in the web UI, on both backends (#19).

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use snowbound_testkit::{on_both_backends, Backend, TestApp};
use uuid::Uuid;

use crate::ui_admin::admin;

on_both_backends!(
    the_api_searches_titles_and_attributes_within_the_callers_teams,
    the_api_pages_visit_every_incident_once,
    the_ui_searches_and_pages_older_incidents,
);

async fn app(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        snowbound_emulator::EmulatorConfig::default(),
        snowbound_testkit::ui::with_admin,
    )
    .await
}

async fn opened(t: &TestApp, team: Uuid, title: &str, attributes: Value) -> Uuid {
    let body =
        json!({"team_id": team, "title": title, "severity": "minor", "attributes": attributes});
    snowbound_testkit::id(&t.post("/api/v1/incidents", body).await)
}

fn titles(list: &Value) -> Vec<String> {
    let mut titles: Vec<String> = list
        .as_array()
        .expect("the list is a JSON array")
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    titles
}

async fn search(t: &TestApp, token: Option<&str>, q: &str) -> Vec<String> {
    let request = t
        .request(
            Method::GET,
            "/api/v1/incidents",
            token.or(Some(snowbound_testkit::ADMIN_TOKEN)),
        )
        .query(&[("q", q)]);
    titles(&t.send(request).await.ok(q))
}

async fn the_api_searches_titles_and_attributes_within_the_callers_teams(backend: Backend) {
    let t = app(backend).await;
    let ops = t.team("ops").await;
    let dev = t.team("dev").await;
    opened(
        &t,
        ops,
        "Disk FULL on db1",
        json!({"env": "prod", "host": "db1"}),
    )
    .await;
    opened(
        &t,
        ops,
        "disk full on db2",
        json!({"env": "staging", "host": "db2"}),
    )
    .await;
    opened(&t, ops, "50% of quota", json!({})).await;
    opened(&t, ops, "500 of quota", json!({})).await;
    opened(&t, dev, "disk full on dev1", json!({"env": "prod"})).await;

    assert_eq!(
        search(&t, None, "disk").await,
        ["Disk FULL on db1", "disk full on db2", "disk full on dev1"]
    );
    assert_eq!(
        search(&t, None, "DISK env=prod").await,
        ["Disk FULL on db1", "disk full on dev1"]
    );
    assert_eq!(
        search(&t, None, "env:prod host=db1").await,
        ["Disk FULL on db1"]
    );
    assert!(
        search(&t, None, "host=db").await.is_empty(),
        "values match exactly"
    );
    assert_eq!(search(&t, None, "50%").await, ["50% of quota"]);

    let ops_token = t.token("ops-bot", &[ops]).await;
    assert_eq!(
        search(&t, Some(&ops_token), "disk env=prod").await,
        ["Disk FULL on db1"],
        "another team's incident stays out of a search"
    );

    let refused = t.try_get("/api/v1/incidents?before=not-a-cursor").await;
    assert_eq!(
        refused.status_code(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused:?}"
    );
    assert_eq!(refused.field(), "before");
    let nul = t.try_get("/api/v1/incidents?q=a%00b").await;
    assert_eq!(
        nul.status_code(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{nul:?}"
    );
    assert_eq!(nul.field(), "q");
}

async fn the_api_pages_visit_every_incident_once(backend: Backend) {
    let t = app(backend).await;
    let ops = t.team("ops").await;
    let mut all = HashSet::new();
    for n in 0..7 {
        all.insert(opened(&t, ops, &format!("page {n}"), json!({"env": "prod"})).await);
    }
    opened(&t, ops, "not on these pages", json!({"env": "dev"})).await;

    let mut seen = Vec::new();
    let mut next = Some("/api/v1/incidents?limit=3&q=env%3Dprod".to_owned());
    while let Some(path) = next {
        let answer = t.try_get(&path).await;
        next = answer.next_link();
        if let Some(link) = &next {
            let cursor = answer.headers["x-next-cursor"].to_str().unwrap();
            assert!(link.ends_with(&format!("&before={cursor}")), "{link}");
            assert!(
                link.contains("q=env%3Dprod") && link.contains("limit=3"),
                "{link}"
            );
        }
        let page = answer.ok("a page");
        let page = page.as_array().expect("the list is a JSON array");
        assert!(page.len() <= 3);
        seen.extend(page.iter().map(snowbound_testkit::id));
    }
    assert_eq!(seen.len(), all.len(), "each once");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), all);
}

/// The `href` of the "Older" link, as the browser would follow it.
fn older(html: &str) -> Option<String> {
    let rest = html.split("rel=\"next\" href=\"").nth(1)?;
    let href = rest.split('"').next()?;
    Some(href.replace("&#38;", "&").replace("&#x2F;", "/"))
}

async fn the_ui_searches_and_pages_older_incidents(backend: Backend) {
    let t = app(backend).await;
    let ops = t.team("ops").await;
    // One more than a page of the UI (200), so an "Older" page exists.
    for n in 0..201 {
        opened(&t, ops, &format!("bulk {n}"), json!({"env": "prod"})).await;
    }
    opened(&t, ops, "Needle in the list", json!({"env": "dev"})).await;
    let mut ui = admin(&t).await;

    let list = ui.get("/incidents").await;
    assert!(list.html.contains("name=\"q\""), "a search box");
    let found = ui.get("/incidents?q=needle").await.html;
    assert!(found.contains("Needle in the list"));
    assert!(bulk_titles(&found).is_empty());
    assert!(older(&found).is_none(), "one page only");
    assert!(
        found.contains("value=\"needle\""),
        "the search stays in the box"
    );

    let first = ui.get("/incidents?q=env%3Dprod").await.html;
    assert!(!first.contains("Needle"));
    let next = older(&first).expect("an Older link");
    let second = ui.get(&next).await;
    assert_eq!(second.status, StatusCode::OK);
    let on_first = bulk_titles(&first);
    let on_second = bulk_titles(&second.html);
    assert_eq!((on_first.len(), on_second.len()), (200, 1), "{next}");
    assert!(!on_first.contains(&on_second[0]), "{}", on_second[0]);
    assert!(older(&second.html).is_none());
}

fn bulk_titles(html: &str) -> Vec<String> {
    html.split(">bulk ")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap().to_owned())
        .collect()
}
