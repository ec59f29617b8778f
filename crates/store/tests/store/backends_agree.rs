//! Where SQLite and PostgreSQL once answered differently. One implementation now serves
//! both; these pin the answers so they cannot drift apart again.

use crate::common::incident;
use crate::common::{team_and_integration, TestDb};
use chrono::{Duration, Utc};
use secrecy::SecretString;
use snowbound_core::routing::RoutingRule;
use snowbound_core::source::SourceKind;
use snowbound_core::{new_id, Credentials, FieldMap, Integration, TimelineEntry};
use snowbound_store::{ApiToken, LeaseOutcome, NewLink, SecretBox, Session, StoreError, User};

on_both_backends!(
    links_of_an_incident_come_in_creation_then_integration_order,
    the_last_success_never_moves_backwards,
    emails_match_ignoring_ascii_case_only,
    a_wrong_key_is_refused_before_anything_is_migrated,
    every_write_of_the_store_commits,
);

fn user(email: &str) -> User {
    User {
        id: new_id(),
        email: email.into(),
        password_hash: "$argon2id$x".into(),
        is_admin: false,
        team_ids: vec![],
        created_at: Utc::now(),
    }
}

async fn links_of_an_incident_come_in_creation_then_integration_order(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, first) = team_and_integration(&*store).await;
    let mut integrations = vec![first.clone()];
    for n in 0..3 {
        let other = Integration {
            id: new_id(),
            display_name: format!("SN {n}"),
            ..first.clone()
        };
        store
            .create_integration(&other, &Credentials::basic(SecretString::from("pw")))
            .await
            .unwrap();
        integrations.push(other);
    }
    // Linked in descending id order, all in the same millisecond.
    integrations.sort_by_key(|i| std::cmp::Reverse(i.id));
    let incident = incident(&team);
    let links: Vec<_> = integrations
        .iter()
        .map(|i| NewLink {
            incident_id: incident.id,
            integration_id: i.id,
            snapshot: None,
        })
        .collect();
    store.create_incident(&incident, &[], &links).await.unwrap();
    db.raw(&format!(
        "UPDATE links SET created_at = 1000 WHERE incident_id = '{}'",
        incident.id
    ))
    .await;
    let listed: Vec<_> = store
        .links_of_incident(incident.id)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.integration_id)
        .collect();
    let mut expected: Vec<_> = integrations.iter().map(|i| i.id).collect();
    expected.sort();
    assert_eq!(listed, expected, "{}", db.name());
}

async fn the_last_success_never_moves_backwards(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let incident = incident(&team);
    let link = NewLink {
        incident_id: incident.id,
        integration_id: integration.id,
        snapshot: None,
    };
    store
        .create_incident(&incident, &[], &[link])
        .await
        .unwrap();
    // Another node, finishing later, already recorded a later success.
    let later = (Utc::now() + Duration::hours(1)).timestamp_millis();
    db.raw(&format!(
        "UPDATE integrations SET last_success_at = {later} WHERE id = '{}'",
        integration.id
    ))
    .await;
    let leases = store
        .lease_due_links(
            "a",
            Utc::now(),
            Utc::now() + Duration::seconds(30),
            10,
            None,
        )
        .await
        .unwrap();
    let synced = LeaseOutcome::Synced {
        sys_id: "s".into(),
        number: "INC1".into(),
        sent: FieldMap::new(),
        servicenow_state: None,
    };
    assert!(store.complete_lease(&leases[0], &synced).await.unwrap());
    let health = store.get_integration(integration.id).await.unwrap().health;
    assert_eq!(
        health.last_success_at.map(|t| t.timestamp_millis()),
        Some(later),
        "{}",
        db.name()
    );
}

async fn emails_match_ignoring_ascii_case_only(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    store.create_user(&user("Eva@example.com")).await.unwrap();
    assert!(matches!(
        store.create_user(&user("eVA@EXAMPLE.com")).await,
        Err(StoreError::Conflict { field: "email" })
    ));
    // Beyond ASCII, letters differing in case are different addresses on both backends.
    let upper = user("Émile@example.com");
    store.create_user(&upper).await.unwrap();
    store.create_user(&user("émile@example.com")).await.unwrap();
    let found = store
        .user_by_email("ÉMILE@EXAMPLE.COM")
        .await
        .unwrap()
        .expect("ASCII letters fold");
    assert_eq!(found.id, upper.id, "{}", db.name());
    let emails: Vec<_> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(
        emails,
        ["Eva@example.com", "Émile@example.com", "émile@example.com"],
        "{}",
        db.name()
    );
}

async fn a_wrong_key_is_refused_before_anything_is_migrated(db: TestDb) {
    let right = SecretBox::random();
    drop(db.open(right.clone()).await.unwrap());
    // Rolled back to before migration 0003, as an older release left it: a node with the
    // wrong key must not migrate it forward.
    db.raw("DROP TABLE sessions").await;
    db.raw("DROP TABLE users").await;
    // …and without the index 0017 added…
    db.raw("DROP INDEX links_due_by_integration").await;
    // …and with the incidents indexes 0016 replaced…
    db.raw("DROP INDEX incidents_keyset").await;
    db.raw("DROP INDEX incidents_team_keyset").await;
    db.raw("CREATE INDEX incidents_by_time ON incidents (created_at)")
        .await;
    db.raw("CREATE INDEX incidents_by_team ON incidents (team_id, created_at)")
        .await;
    // …and without what 0015 added (the audit trail)…
    db.raw("DROP TABLE audit_events").await;
    // …and without what 0014 added (email sources)…
    db.raw("ALTER TABLE sources DROP COLUMN email").await;
    // …and without what 0013 added (routing history, held links, incidents' source)…
    db.raw("DROP TABLE rule_firings").await;
    db.raw("ALTER TABLE links DROP COLUMN hold_until").await;
    db.raw("ALTER TABLE links DROP COLUMN hold_rule_id").await;
    db.raw("ALTER TABLE links DROP COLUMN hold_rule_name").await;
    db.raw("ALTER TABLE incidents DROP COLUMN source_id").await;
    // …and without what 0010 added (login failures)…
    db.raw("DROP TABLE login_failures").await;
    // …and without what 0011 added (grafana and json sources)…
    db.raw("DROP TABLE source_payloads").await;
    for column in ["grafana", "json_mapping", "hmac_secret_sealed"] {
        db.raw(&format!("ALTER TABLE sources DROP COLUMN {column}"))
            .await;
    }
    // …and without what 0009 added (adopted links)…
    db.raw("ALTER TABLE links DROP COLUMN adopted").await;
    // …and without what 0008 added (a servicenow source's settings)…
    db.raw("ALTER TABLE sources DROP COLUMN servicenow").await;
    // …and without what 0007 added (the link journal)…
    db.raw("DROP TABLE link_journal").await;
    // …and without what 0006 added (the inbound state)…
    db.raw("DROP TABLE inbound_pokes").await;
    db.raw("DROP TABLE inbound_polls").await;
    db.raw("DROP INDEX links_by_sys_id").await;
    db.raw("ALTER TABLE links DROP COLUMN inbound_mod_count")
        .await;
    db.raw("ALTER TABLE links DROP COLUMN inbound_notes").await;
    // …and before 0005.
    db.raw("ALTER TABLE integrations DROP COLUMN client_secret_sealed")
        .await;
    db.raw("ALTER TABLE integrations DROP COLUMN api_key_sealed")
        .await;
    db.raw("DELETE FROM _sqlx_migrations WHERE version >= 3")
        .await;
    let err = db
        .open(SecretBox::random())
        .await
        .err()
        .expect("a wrong key is refused");
    assert!(matches!(err, StoreError::Secret(_)), "{}: {err}", db.name());
    // Fails (and panics) if the refused node had created the table.
    db.raw("CREATE TABLE users (probe INTEGER)").await;
    db.raw("DROP TABLE users").await;
    let store = db.open(right).await.unwrap();
    assert_eq!(
        store.count_users().await.unwrap(),
        0,
        "migrated by the right key"
    );
}

/// Every writing method, once: on SQLite the read connections are read-only, so a write
/// that does not go through the one writer fails here.
async fn every_write_of_the_store_commits(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let now = Utc::now();
    store.set_meta("k", "v").await.unwrap();
    store.check_writable().await.unwrap();

    let token = ApiToken {
        id: new_id(),
        name: "ci".into(),
        hash: "h".into(),
        team_ids: vec![team.id],
        created_at: now,
    };
    store.create_token(&token).await.unwrap();
    store.revoke_token(token.id).await.unwrap();

    let mut changed = integration.clone();
    changed.display_name = "renamed".into();
    store
        .update_integration(&changed, &Credentials::default())
        .await
        .unwrap();
    store
        .pause_integration(integration.id, now + Duration::seconds(5))
        .await
        .unwrap();
    store
        .mark_integration_failing(integration.id, "401")
        .await
        .unwrap();

    let incident = incident(&team);
    let link = NewLink {
        incident_id: incident.id,
        integration_id: integration.id,
        snapshot: None,
    };
    let entry = TimelineEntry {
        at: now,
        actor: "admin".into(),
        kind: "forwarded".into(),
        detail: String::new(),
    };
    store
        .create_incident(&incident, std::slice::from_ref(&entry), &[])
        .await
        .unwrap();
    store.forward(&link, &entry).await.unwrap();
    store.retry_link(incident.id, integration.id).await.unwrap();
    assert_eq!(store.release_all_leases().await.unwrap(), 0);

    let source = crate::common::source(&team, SourceKind::Webhook, "hook");
    store
        .create_source(&source, &SecretString::from("one"))
        .await
        .unwrap();
    store.update_source(&source).await.unwrap();
    store
        .rotate_source_secret(source.id, &SecretString::from("two"))
        .await
        .unwrap();
    store
        .create_incident_for_key(source.id, "k", &self::incident(&team), &[], &[])
        .await
        .unwrap();
    store.delete_source(source.id).await.unwrap();

    let rule = RoutingRule {
        id: new_id(),
        team_id: team.id,
        name: "r".into(),
        position: 1,
        when: Default::default(),
        then: Default::default(),
        created_at: now,
        updated_at: now,
    };
    store.create_routing_rule(&rule).await.unwrap();
    store.update_routing_rule(&rule).await.unwrap();
    store.delete_routing_rule(rule.id).await.unwrap();

    let ada = user("ada@example.com");
    assert!(store.create_first_user(&ada).await.unwrap());
    let session = Session {
        id: "s".into(),
        user_id: ada.id,
        csrf_token: "c".into(),
        created_at: now,
        expires_at: now + Duration::hours(1),
    };
    store.create_session(&session).await.unwrap();
    store
        .set_user_password(ada.id, "$argon2id$y", Some("s"))
        .await
        .unwrap();
    store.delete_session("s").await.unwrap();
    store.delete_user(ada.id).await.unwrap();

    store.delete_integration(integration.id).await.unwrap();
    assert!(matches!(
        store.get_integration(integration.id).await,
        Err(StoreError::NotFound)
    ));
}
