//! A `servicenow` source keeps its settings (issue #15) through create, read, list,
//! lookup by secret and update — on SQLite and on PostgreSQL; other kinds keep none.

use crate::common::{stored_source, team_and_integration, TestDb};
use chrono::Utc;
use secrecy::SecretString;
use snowbound_core::inbound::{Delivery, ServiceNowSourceSettings, Transitions};
use snowbound_core::new_id;
use snowbound_core::source::{Source, SourceKind};
use snowbound_store::SecretBox;

on_both_backends!(
    a_servicenow_source_keeps_its_settings,
    other_kinds_have_no_servicenow_settings,
);

async fn a_servicenow_source_keeps_its_settings(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let now = Utc::now();
    let mut source = Source {
        id: new_id(),
        team_id: team.id,
        kind: SourceKind::Servicenow,
        name: "desk".into(),
        severity_map: Default::default(),
        email: None,
        servicenow: Some(ServiceNowSourceSettings {
            integration_id: integration.id,
            delivery: Delivery::Poll,
            poll_interval_s: 30,
            open_filter: Some("active=true^assignment_group=ops".into()),
            transitions: Transitions {
                severity: true,
                ..Transitions::default()
            },
        }),
        grafana: None,
        json: None,
        created_at: now,
        updated_at: now,
    };
    let secret = SecretString::from(format!("s-{}", source.id));
    store.create_source(&source, &secret).await.unwrap();

    let read = store.get_source(source.id).await.unwrap();
    assert_eq!(read.kind, SourceKind::Servicenow);
    assert_eq!(read.servicenow, source.servicenow);
    let listed = store.list_sources(None).await.unwrap();
    assert_eq!(listed[0].servicenow, source.servicenow);
    let by_secret = store
        .source_by_secret(&format!("s-{}", source.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_secret.servicenow, source.servicenow);

    let settings = source.servicenow.as_mut().unwrap();
    settings.delivery = Delivery::PushAndPoll;
    settings.open_filter = None;
    source.updated_at = Utc::now();
    store.update_source(&source).await.unwrap();
    let read = store.get_source(source.id).await.unwrap();
    assert_eq!(read.servicenow, source.servicenow);
    assert_eq!(
        read.servicenow.unwrap().delivery,
        Delivery::PushAndPoll,
        "an update rewrites the settings"
    );
}

async fn other_kinds_have_no_servicenow_settings(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let source = stored_source(&*store, &team, SourceKind::Webhook).await;
    assert_eq!(store.get_source(source.id).await.unwrap().servicenow, None);
}
