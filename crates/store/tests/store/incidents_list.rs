//! The incidents list: search by title and attributes, keyset pages that visit every
//! incident once (ties on `created_at` included), and the indexes that serve a page.

use std::collections::HashSet;

use chrono::{Duration, TimeZone, Utc};
use snowbound_core::{new_id, Incident, Team};
use snowbound_store::{IncidentCursor, IncidentFilter, SecretBox, Store};
use uuid::Uuid;

use crate::common::{incident, team_and_integration, TestDb};

on_both_backends!(
    search_matches_titles_and_exact_attributes,
    pages_visit_every_incident_once,
    search_and_pages_stay_within_the_teams_asked,
    a_page_is_an_index_range_scan
);

async fn stored(store: &dyn Store, team: &Team, title: &str, attributes: &[(&str, &str)]) -> Uuid {
    let mut one = incident(team);
    one.title = title.into();
    one.attributes = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    store.create_incident(&one, &[], &[]).await.unwrap();
    one.id
}

async fn titles(store: &dyn Store, filter: IncidentFilter) -> Vec<String> {
    let mut titles: Vec<String> = store
        .list_incidents(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.title)
        .collect();
    titles.sort();
    titles
}

fn text(terms: &[&str]) -> IncidentFilter {
    IncidentFilter {
        title_contains: terms.iter().map(|t| t.to_string()).collect(),
        ..IncidentFilter::default()
    }
}

fn attrs(pairs: &[(&str, &str)]) -> IncidentFilter {
    IncidentFilter {
        attributes: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..IncidentFilter::default()
    }
}

async fn search_matches_titles_and_exact_attributes(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let s = &*store;
    stored(
        s,
        &team,
        "Disk FULL on db1",
        &[("host", "db1"), ("env", "prod")],
    )
    .await;
    stored(
        s,
        &team,
        "disk full on db2",
        &[("host", "db2"), ("env", "prod")],
    )
    .await;
    stored(s, &team, "CPU high", &[("host", "db10"), ("env", "Prod")]).await;
    stored(s, &team, "50% done", &[("note", "50%\"x")]).await;
    stored(s, &team, "500 done", &[("note", "500")]).await;
    stored(s, &team, "a_b", &[]).await;
    stored(s, &team, "axb", &[]).await;
    stored(s, &team, "back\\slash", &[]).await;

    let name = db.name();
    assert_eq!(
        titles(s, text(&["DISK"])).await,
        ["Disk FULL on db1", "disk full on db2"],
        "{name}"
    );
    assert_eq!(
        titles(s, text(&["disk", "db1"])).await,
        ["Disk FULL on db1"]
    );
    assert_eq!(titles(s, text(&["50%"])).await, ["50% done"], "{name}");
    assert_eq!(titles(s, text(&["a_b"])).await, ["a_b"], "{name}");
    assert_eq!(titles(s, text(&["k\\s"])).await, ["back\\slash"], "{name}");
    assert!(titles(s, text(&["%"])).await.len() == 1, "{name}");

    assert_eq!(
        titles(s, attrs(&[("env", "prod")])).await,
        ["Disk FULL on db1", "disk full on db2"],
        "{name}: values match exactly, case included"
    );
    assert_eq!(
        titles(s, attrs(&[("env", "prod"), ("host", "db1")])).await,
        ["Disk FULL on db1"]
    );
    assert!(titles(s, attrs(&[("host", "db")])).await.is_empty());
    assert!(titles(s, attrs(&[("prod", "env")])).await.is_empty());
    assert_eq!(titles(s, attrs(&[("note", "50%\"x")])).await, ["50% done"]);
    let mixed = IncidentFilter {
        title_contains: vec!["done".into()],
        attributes: vec![("note".into(), "500".into())],
        ..IncidentFilter::default()
    };
    assert_eq!(titles(s, mixed).await, ["500 done"], "{name}");
}

/// Three incidents share each `created_at`, so the page ends fall inside ties.
async fn tied_incidents(store: &dyn Store, team: &Team, count: usize) -> Vec<Incident> {
    let base = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
    let mut all = Vec::new();
    for n in 0..count {
        let mut one = incident(team);
        one.title = format!("i{n}");
        one.created_at = base + Duration::milliseconds((n / 3) as i64);
        one.updated_at = one.created_at;
        store.create_incident(&one, &[], &[]).await.unwrap();
        all.push(one);
    }
    all
}

async fn every_page(store: &dyn Store, mut filter: IncidentFilter) -> Vec<Incident> {
    let mut seen = Vec::new();
    loop {
        let page = store.list_incidents(&filter).await.unwrap();
        let Some(last) = page.last() else {
            return seen;
        };
        filter.before = Some(IncidentCursor {
            created_at: last.created_at,
            id: last.id,
        });
        seen.extend(page);
    }
}

async fn pages_visit_every_incident_once(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let all = tied_incidents(&*store, &team, 23).await;
    let seen = every_page(
        &*store,
        IncidentFilter {
            limit: Some(4),
            ..IncidentFilter::default()
        },
    )
    .await;
    assert_eq!(seen.len(), all.len(), "{}", db.name());
    let ids: HashSet<Uuid> = seen.iter().map(|i| i.id).collect();
    assert_eq!(ids, all.iter().map(|i| i.id).collect(), "{}", db.name());
    let keys: Vec<_> = seen.iter().map(|i| (i.created_at, i.id)).collect();
    assert!(
        keys.windows(2).all(|w| w[0] > w[1]),
        "{}: newest first, ties by id",
        db.name()
    );
}

async fn search_and_pages_stay_within_the_teams_asked(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let mut other = team.clone();
    other.id = new_id();
    other.name = "other".into();
    store.create_team(&other).await.unwrap();
    tied_incidents(&*store, &team, 7).await;
    let theirs = tied_incidents(&*store, &other, 5).await;
    let seen = every_page(
        &*store,
        IncidentFilter {
            team_ids: Some(vec![other.id]),
            title_contains: vec!["I".into()],
            limit: Some(2),
            ..IncidentFilter::default()
        },
    )
    .await;
    let ids: HashSet<Uuid> = seen.iter().map(|i| i.id).collect();
    assert_eq!(seen.len(), theirs.len(), "{}", db.name());
    assert_eq!(ids, theirs.iter().map(|i| i.id).collect(), "{}", db.name());
}

/// The list statement's shape (see `list_incidents`) with a cursor, over every team and
/// within one.
async fn a_page_is_an_index_range_scan(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    tied_incidents(&*store, &team, 3).await;
    let page = "(created_at, id) < (1700000000001, 'x') ORDER BY created_at DESC, id DESC LIMIT 50";
    for (scope, index) in [
        (String::new(), "incidents_keyset"),
        (
            format!(" AND team_id IN ('{}')", team.id),
            "incidents_team_keyset",
        ),
    ] {
        let select = format!("SELECT * FROM incidents WHERE 1 = 1{scope} AND {page}");
        let plan = db.raw_plan(&select).await.join("\n");
        assert!(plan.contains(index), "{}: {plan}", db.name());
        let sorts = plan.contains("TEMP B-TREE") || plan.contains("Sort");
        assert!(!sorts, "{}: the index gives the order: {plan}", db.name());
    }
}
