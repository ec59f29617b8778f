//! `journal_has`: whether a note is on a record's journal (`sys_journal_field`), also
//! inside an entry of notes written together, and only on that record and field.

use crate::common::*;

const NOTE: &str = "[Snowbound 2026-01-01 10:00:00 UTC] alice commented: 50% ^ done";

#[tokio::test]
async fn a_note_is_found_on_its_record_and_field_only() {
    let emu = emulator().await;
    let conn = admin(&emu);
    let client = client();
    let record = |id: &'static str| {
        let client = client.clone();
        let conn = conn.clone();
        async move {
            client
                .create(&conn, &new_incident(id))
                .await
                .outcome
                .expect("created")
                .sys_id
        }
    };
    let (noted, other) = (record("inc-journal-1").await, record("inc-journal-2").await);
    let together = format!("[Snowbound 2026-01-01 09:59:00 UTC] Acknowledged by bob\n\n{NOTE}");
    client
        .update(&conn, &noted, &fields(&[("work_notes", &together)]))
        .await
        .outcome
        .expect("noted");
    client
        .update(&conn, &other, &fields(&[("comments", NOTE)]))
        .await
        .outcome
        .expect("commented");

    let has = |sys_id: String, field: &'static str, note: &'static str| {
        let client = client.clone();
        let conn = conn.clone();
        async move {
            let exchange = client.journal_has(&conn, &sys_id, field, note).await;
            assert_eq!(exchange.calls.len(), 1);
            assert!(exchange.calls[0].url.contains("/sys_journal_field?"));
            exchange.outcome.expect("answered")
        }
    };
    assert!(
        has(noted.clone(), "work_notes", NOTE).await,
        "inside an entry written together"
    );
    assert!(!has(noted.clone(), "comments", NOTE).await, "another field");
    assert!(has(other.clone(), "comments", NOTE).await);
    assert!(!has(other, "work_notes", NOTE).await);
    assert!(
        !has(
            noted,
            "work_notes",
            "[Snowbound 2026-01-01 10:00:00 UTC] alice commented: 50%"
        )
        .await,
        "a note that is only the start of one on the record"
    );
}
