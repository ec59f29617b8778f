//! The reads inbound sync makes (docs/servicenow/AUTH_AND_INBOUND.md §2.3), against the
//! emulator on 127.0.0.1, with agents editing records through its control API.

use crate::common::*;
use chrono::Duration;
use serde_json::{json, Value};
use snowbound_core::inbound::parse_servicenow_time;
use snowbound_emulator::Emulator;
use snowbound_servicenow::{ChangesQuery, Failure};

async fn env() -> Emulator {
    emulator_with_users(&["admin:admin:admin", "agent:pw:itil"]).await
}

/// An agent's edit, through the control API, as a person in the UI would make it.
async fn act_as(emu: &Emulator, user: &str, sys_id: &str, fields: Value) -> Value {
    let resp = reqwest::Client::new()
        .patch(format!(
            "{}/emulator/act_as/{user}/incident/{sys_id}",
            emu.base_url()
        ))
        .json(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["record"].clone()
}

async fn create(emu: &Emulator, pairs: &[(&str, &str)]) -> String {
    let created = client().create(&admin(emu), &fields(pairs)).await;
    created.outcome.expect("created").sys_id
}

fn wanted() -> Vec<String> {
    [
        "state",
        "urgency",
        "close_notes",
        "short_description",
        "caller_id",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

#[tokio::test]
async fn one_record_comes_with_raw_and_display_values_and_none_once_deleted() {
    let emu = env().await;
    let id = create(
        &emu,
        &[("short_description", "Payroll down"), ("urgency", "2")],
    )
    .await;
    let agent_id = emu.user_sys_id("agent").unwrap();
    act_as(
        &emu,
        "agent",
        &id,
        json!({"state": "2", "caller_id": agent_id}),
    )
    .await;

    let read = client().read_record(&admin(&emu), &id, &wanted()).await;
    assert_eq!(read.calls.len(), 1);
    assert!(
        read.calls[0].url.contains("sysparm_display_value=all"),
        "{}",
        read.calls[0].url
    );
    let record = read.outcome.unwrap().expect("the record");
    assert_eq!(record.values["state"], "2");
    assert_eq!(record.display["state"], "In Progress");
    assert_eq!(record.values["caller_id"], agent_id);
    assert!(!record.display["caller_id"].is_empty());
    assert_ne!(
        record.display["caller_id"], agent_id,
        "a name, not a sys_id"
    );
    let seen = record.seen().unwrap();
    assert_eq!((seen.updated_by.as_str(), seen.mod_count), ("agent", 1));
    assert!(!seen.number.is_empty());
    // Only what was asked for, plus the bookkeeping.
    assert!(!record.values.contains_key("description"));

    let resp = reqwest::Client::new()
        .delete(format!("{}/api/now/table/incident/{id}", emu.base_url()))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let gone = client().read_record(&admin(&emu), &id, &wanted()).await;
    assert_eq!(gone.outcome.unwrap(), None);
    assert_eq!(gone.calls[0].status, Some(404));
}

#[tokio::test]
async fn a_record_is_read_only_when_servicenow_says_it_matches_the_filter() {
    let emu = env().await;
    let inside = create(&emu, &[("short_description", "payroll"), ("urgency", "1")]).await;
    let outside = create(&emu, &[("short_description", "printer"), ("urgency", "3")]).await;
    let filter = "urgency=1^short_descriptionLIKEpay^NQshort_description=nothing";
    let conn = admin(&emu);
    let found = client()
        .read_record_matching(&conn, &inside, filter, &wanted())
        .await;
    assert_eq!(found.outcome.unwrap().unwrap().sys_id, inside);
    let missed = client()
        .read_record_matching(&conn, &outside, filter, &wanted())
        .await;
    assert_eq!(missed.outcome.unwrap(), None);
    // The filter's ^NQ block must not widen the sys_id condition to other records.
    let query = missed.calls[0].url.clone();
    assert!(query.contains("NQsys_id"), "{query}");
}

#[tokio::test]
async fn changes_since_pages_through_the_scopes_in_order_and_keeps_the_boundary_second() {
    let emu = env().await;
    let conn = admin(&emu);
    let mut ours = Vec::new();
    for i in 0..5 {
        let id = create(
            &emu,
            &[
                ("short_description", &format!("ours {i}")),
                ("correlation_display", "Snowbound"),
            ],
        )
        .await;
        ours.push(id);
    }
    let born = create(
        &emu,
        &[("short_description", "phoned in"), ("category", "network")],
    )
    .await;
    let stranger = create(&emu, &[("short_description", "not ours")]).await;
    let first = emu.record("incident", &ours[0]).unwrap()["sys_updated_on"].clone();
    let since = parse_servicenow_time(&first).unwrap();
    let scopes = vec![
        "correlation_display=Snowbound".to_owned(),
        "category=network^ORcategory=hardware".to_owned(),
    ];
    let fields = wanted();
    let query = ChangesQuery {
        since,
        overlap: Duration::zero(),
        scopes: &scopes,
        fields: &fields,
        page_size: 2,
        max_pages: 10,
    };
    let changes = client().changes_since(&conn, &query).await;
    assert!(
        changes.calls.len() >= 3,
        "paged: {} calls",
        changes.calls.len()
    );
    assert!(changes
        .calls
        .iter()
        .all(|c| c.url.contains("ORDERBYsys_updated_on")));
    let result = changes.outcome.unwrap();
    assert!(result.complete);
    let mut ids: Vec<String> = result.records.iter().map(|r| r.sys_id.clone()).collect();
    ids.sort();
    let mut expected = ours.clone();
    expected.push(born.clone());
    expected.sort();
    assert_eq!(
        ids, expected,
        "every scoped record once, the stranger never"
    );
    assert!(!ids.contains(&stranger));
    let times: Vec<_> = result
        .records
        .iter()
        .map(|r| r.updated_on().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    assert_eq!(result.watermark, *times.last().unwrap());

    // A page limit leaves the rest for the next poll.
    let short = client()
        .changes_since(
            &conn,
            &ChangesQuery {
                max_pages: 1,
                ..query.clone()
            },
        )
        .await
        .outcome
        .unwrap();
    assert!(!short.complete);
    assert_eq!(short.records.len(), 2);

    // The boundary second: an agent's change in the very second of the watermark is
    // read by the next poll (>=), as is everything later.
    let mut hit_boundary = false;
    for attempt in 0..5 {
        let poll = client()
            .changes_since(
                &conn,
                &ChangesQuery {
                    since: result.watermark,
                    ..query.clone()
                },
            )
            .await
            .outcome
            .unwrap();
        let changed = act_as(&emu, "agent", &ours[attempt % 5], json!({"state": "2"})).await;
        let at = parse_servicenow_time(changed["sys_updated_on"].as_str().unwrap()).unwrap();
        let next = client()
            .changes_since(
                &conn,
                &ChangesQuery {
                    since: poll.watermark,
                    ..query.clone()
                },
            )
            .await
            .outcome
            .unwrap();
        let seen = next
            .records
            .iter()
            .find(|r| r.sys_id == ours[attempt % 5])
            .expect("the agent's change is read");
        assert_eq!(seen.values["sys_updated_by"], "agent");
        assert_eq!(
            seen.values["sys_mod_count"],
            changed["sys_mod_count"].as_str().unwrap()
        );
        if at == poll.watermark {
            hit_boundary = true;
            break;
        }
    }
    assert!(
        hit_boundary,
        "no change landed in the watermark's second in five tries"
    );
}

#[tokio::test]
async fn reads_are_classified_and_logged_like_every_other_call() {
    let emu = env().await;
    let conn = admin(&emu);
    let id = create(&emu, &[("short_description", "x")]).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/emulator/faults", emu.base_url()))
        .json(
            &json!({"method": "GET", "path": "/api/now/table/incident", "times": 1,
                       "action": "status", "status": 503}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let scopes = vec![];
    let fields = wanted();
    let failed = client()
        .changes_since(
            &conn,
            &ChangesQuery {
                since: chrono::Utc::now() - Duration::hours(1),
                overlap: Duration::seconds(60),
                scopes: &scopes,
                fields: &fields,
                page_size: 100,
                max_pages: 3,
            },
        )
        .await;
    assert!(
        matches!(failed.outcome, Err(Failure::Transient { .. })),
        "{:?}",
        failed.outcome
    );
    assert_eq!(failed.calls.len(), 1);
    assert_eq!(failed.calls[0].status, Some(503));
    assert!(!format!("{:?}", failed.calls).contains("admin:admin"));

    let bad = client().read_record(&conn, "../sys_user", &fields).await;
    assert!(matches!(
        bad.outcome,
        Err(Failure::Rejected { status: 0, .. })
    ));
    assert!(bad.calls.is_empty());
    let odd_field = client()
        .read_record(&conn, &id, &["state^ORx".into()])
        .await;
    assert!(odd_field.calls.is_empty());
}
