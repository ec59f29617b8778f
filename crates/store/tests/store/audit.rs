//! The audit trail: events listed newest first, filtered by object, paged back by id and
//! kept to the newest `AUDIT_EVENTS_KEPT`.

use chrono::Utc;
use serde_json::json;
use snowbound_core::audit::NewAuditEvent;
use snowbound_store::{AuditFilter, SecretBox, AUDIT_EVENTS_KEPT};

use crate::common::TestDb;

on_both_backends!(
    events_are_listed_newest_first_and_filtered_by_object,
    only_the_newest_events_are_kept
);

fn event(object_type: &'static str, object_id: &str, action: &'static str) -> NewAuditEvent {
    NewAuditEvent {
        at: Utc::now(),
        actor: "admin".into(),
        object_type,
        object_id: object_id.into(),
        action,
        changes: json!({"name": {"from": null, "to": object_id}}),
    }
}

async fn events_are_listed_newest_first_and_filtered_by_object(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    store
        .record_audit(&event("integration", "i1", "create"))
        .await
        .unwrap();
    store
        .record_audit(&event("source", "s1", "create"))
        .await
        .unwrap();
    store
        .record_audit(&event("integration", "i1", "update"))
        .await
        .unwrap();
    store
        .record_audit(&event("integration", "i2", "delete"))
        .await
        .unwrap();

    let all = store.list_audit(&AuditFilter::default()).await.unwrap();
    let seen: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e.object_id.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("i2", "delete"),
            ("i1", "update"),
            ("s1", "create"),
            ("i1", "create")
        ],
        "{}",
        db.name()
    );
    assert_eq!(all[3].changes, json!({"name": {"from": null, "to": "i1"}}));
    assert_eq!(all[3].actor, "admin");

    let of_i1 = store
        .list_audit(&AuditFilter {
            object_type: Some("integration".into()),
            object_id: Some("i1".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        of_i1.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["update", "create"]
    );
    let sources = store
        .list_audit(&AuditFilter {
            object_type: Some("source".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(sources.len(), 1);

    let page = store
        .list_audit(&AuditFilter {
            before: Some(all[1].id),
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, all[2].id);
}

async fn only_the_newest_events_are_kept(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    store
        .record_audit(&event("user", "oldest", "create"))
        .await
        .unwrap();
    // The bound's worth of older events in one statement, then one more recorded.
    db.raw(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {AUDIT_EVENTS_KEPT}) \
         INSERT INTO audit_events (at, actor, object_type, object_id, action, changes) \
         SELECT 0, 'admin', 'user', 'filler', 'update', '{{}}' FROM n"
    ))
    .await;
    store
        .record_audit(&event("user", "newest", "create"))
        .await
        .unwrap();

    let count = db
        .raw_texts("SELECT CAST(COUNT(*) AS TEXT) FROM audit_events")
        .await;
    assert_eq!(count, [AUDIT_EVENTS_KEPT.to_string()], "{}", db.name());
    let oldest = store
        .list_audit(&AuditFilter {
            object_id: Some("oldest".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(oldest.is_empty(), "the oldest event is pruned");
    let newest = store
        .list_audit(&AuditFilter {
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(newest[0].object_id, "newest");
}
