//! The engine driven one step at a time against a real SQLite store and the ServiceNow
//! emulator: one tick leases and starts, `idle` waits until every outcome is recorded,
//! then the test looks at what the store and ServiceNow hold. No deadlines, no polling.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use snowbound_core::{
    new_id, Credentials, ForwardingMode, Incident, Integration, ServiceNowSettings, Severity, Team,
};
use snowbound_emulator::{Emulator, EmulatorConfig, Fault};
use snowbound_engine::{Backoff, Engine, EngineConfig, EngineWaker, Worker};
use snowbound_servicenow::{Client, ClientConfig};
use snowbound_store::{LinkState, SecretBox, SqliteStore, Store};

const TABLE: &str = "/api/now/table/incident";

struct Bench {
    store: Arc<dyn Store>,
    emulator: Emulator,
    engine: Engine,
    worker: Worker,
    team: Team,
    integration: Integration,
    _dir: tempfile::TempDir,
}

async fn bench(tweak: impl FnOnce(&mut EngineConfig)) -> Bench {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&url, SecretBox::random()).await.unwrap());
    let now = Utc::now();
    let team = Team {
        id: new_id(),
        name: "ops".into(),
        created_at: now,
    };
    store.create_team(&team).await.unwrap();
    let integration = Integration {
        id: new_id(),
        display_name: "SN".into(),
        root_team_id: team.id,
        team_ids: vec![],
        forwarding: ForwardingMode::Always,
        servicenow: ServiceNowSettings::with_defaults(
            emulator.base_url(),
            "admin".into(),
            "Solution provided".into(),
        ),
        created_at: now,
        updated_at: now,
    };
    store
        .create_integration(
            &integration,
            &Credentials::basic(SecretString::from("admin")),
        )
        .await
        .unwrap();
    let mut config = EngineConfig {
        backoff: Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(20),
        },
        settle: Duration::ZERO,
        call_timeout: Duration::from_secs(2),
        lease_for: Duration::from_secs(5),
        ..EngineConfig::default()
    };
    tweak(&mut config);
    let client = Client::new(ClientConfig {
        request_timeout: config.call_timeout,
        // The emulator listens on 127.0.0.1 over plain http.
        allow_local_instances: true,
        ..ClientConfig::default()
    })
    .unwrap();
    let engine = Engine::new(Arc::clone(&store), client, EngineWaker::new(), config);
    let worker = engine.worker();
    Bench {
        store,
        emulator,
        engine,
        worker,
        team,
        integration,
        _dir: dir,
    }
}

impl Bench {
    async fn incident(&self, title: &str) -> Incident {
        common::linked_incident(&*self.store, self.team.id, self.integration.id, title).await
    }

    async fn change(&self, incident: &Incident, severity: Severity) -> Incident {
        common::edit_incident(&*self.store, incident.id, |i| i.severity = severity).await
    }

    async fn incidents(&self, prefix: &str, n: usize) -> Vec<Incident> {
        let mut out = Vec::new();
        for i in 0..n {
            out.push(self.incident(&format!("{prefix} {i}")).await);
        }
        out
    }

    /// Polls until the link is recorded as synced, without joining any reconcile.
    async fn until_synced(&self, incident: &Incident) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.link(incident).await.state != LinkState::Synced {
            assert!(tokio::time::Instant::now() < deadline, "never synced");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// One tick, then everything it started, recorded.
    async fn step(&mut self) -> usize {
        let tick = self.worker.tick().await;
        self.worker.idle().await;
        tick.leased
    }

    async fn link(&self, incident: &Incident) -> snowbound_store::Link {
        self.store
            .get_link(incident.id, self.integration.id)
            .await
            .unwrap()
    }

    fn records(&self, incident: &Incident) -> usize {
        self.emulator
            .records_by_correlation_id("incident", &incident.id.to_string())
            .len()
    }

    fn writes(&self) -> usize {
        self.emulator
            .requests()
            .iter()
            .filter(|r| r.method == "POST" || r.method == "PATCH")
            .count()
    }
}

#[tokio::test]
async fn a_success_is_recorded_and_nothing_is_left_to_lease() {
    let mut b = bench(|_| {}).await;
    let incident = b.incident("Disk full").await;
    assert_eq!(b.step().await, 1);
    let link = b.link(&incident).await;
    assert_eq!(link.state, LinkState::Synced);
    assert!(link.sys_id.is_some());
    assert_eq!(b.records(&incident), 1);
    let health = b
        .store
        .get_integration(b.integration.id)
        .await
        .unwrap()
        .health;
    assert!(health.last_success_at.is_some());
    assert_eq!(b.step().await, 0);
    assert_eq!(b.engine.leases_held(), 0);
}

#[tokio::test]
async fn a_server_error_leaves_the_link_retrying_later() {
    let mut b = bench(|c| {
        c.backoff = Backoff {
            base: Duration::from_secs(60),
            max: Duration::from_secs(60),
        }
    })
    .await;
    b.emulator.add_fault(Fault::status("POST", TABLE, 500));
    let incident = b.incident("Disk full").await;
    assert_eq!(b.step().await, 1);
    let link = b.link(&incident).await;
    assert_eq!((link.state, link.attempts), (LinkState::Retrying, 1));
    assert!(link.last_error.unwrap().contains("500"));
    assert!(
        link.create_unsure,
        "a 5xx to a create may have been applied"
    );
    assert_eq!(b.records(&incident), 0);
}

#[tokio::test]
async fn a_rate_limit_releases_the_link_untouched_and_pauses_the_integration() {
    let mut b = bench(|_| {}).await;
    b.emulator
        .add_fault(Fault::status("POST", TABLE, 429).with_retry_after(60));
    let incident = b.incident("Disk full").await;
    assert_eq!(b.step().await, 1);
    let link = b.link(&incident).await;
    assert_eq!((link.state, link.attempts), (LinkState::Pending, 0));
    let paused = b
        .store
        .get_integration(b.integration.id)
        .await
        .unwrap()
        .health
        .paused_until;
    assert!(paused.is_some_and(|p| p > Utc::now() + chrono::Duration::seconds(50)));
    // Nobody calls the instance before the pause ends.
    assert_eq!(b.step().await, 0);
    assert_eq!(b.emulator.requests().len(), 1);
}

#[tokio::test]
async fn revoked_credentials_fail_the_integration_and_leave_the_link_waiting() {
    let mut b = bench(|_| {}).await;
    b.emulator
        .add_fault(Fault::status("POST", TABLE, 401).always());
    let incident = b.incident("Disk full").await;
    assert_eq!(b.step().await, 1);
    let link = b.link(&incident).await;
    assert_eq!((link.state, link.attempts), (LinkState::Pending, 0));
    let health = b
        .store
        .get_integration(b.integration.id)
        .await
        .unwrap()
        .health;
    assert!(health.failing.unwrap().contains("401"));
    // The link waits for new settings: nothing is leased, nobody calls.
    assert_eq!(b.emulator.requests().len(), 1);
    assert_eq!(b.step().await, 0);
}

#[tokio::test]
async fn a_rejection_parks_the_link_with_servicenows_words() {
    let mut b = bench(|_| {}).await;
    b.emulator.add_fault(Fault::status("POST", TABLE, 400));
    let incident = b.incident("Disk full").await;
    assert_eq!(b.step().await, 1);
    let link = b.link(&incident).await;
    assert_eq!(link.state, LinkState::Parked);
    assert!(link.last_error.unwrap().contains("HTTP 400"));
    assert_eq!(b.step().await, 0);
}

#[tokio::test]
async fn a_404_to_an_update_parks_the_link_and_creates_nothing() {
    let mut b = bench(|_| {}).await;
    let incident = b.incident("Disk full").await;
    assert_eq!(b.step().await, 1);
    b.emulator
        .add_fault(Fault::status("PATCH", &format!("{TABLE}/*"), 404));
    b.change(&incident, Severity::Minor).await;
    assert_eq!(b.step().await, 1);
    let link = b.link(&incident).await;
    assert_eq!(link.state, LinkState::Parked);
    assert!(link.last_error.unwrap().contains("no longer exists"));
    assert_eq!(b.records(&incident), 1);
    let creates = b
        .emulator
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn a_node_leases_its_call_slots_and_a_queue_as_deep_no_more() {
    let mut b = bench(|c| c.per_integration_concurrency = 2).await;
    b.emulator.set_latency(Duration::from_millis(200));
    let mut incidents = Vec::new();
    for i in 0..7 {
        incidents.push(b.incident(&format!("Burst {i}")).await);
    }
    let first = b.worker.tick().await;
    assert_eq!(first.leased, 4, "two in the slots, two queued for them");
    assert!(first.more_waiting);
    // Slots and queue are full: the rest stay free for other nodes.
    let second = b.worker.tick().await;
    assert_eq!(second.leased, 0);
    assert_eq!(b.engine.leases_held(), 4);
    assert!(
        b.emulator.requests().len() <= 2,
        "the queued two wait for a slot"
    );
    b.worker.idle().await;
    let mut rounds = 1;
    while b.step().await > 0 {
        rounds += 1;
    }
    assert_eq!(rounds, 2, "4 + 3");
    for incident in &incidents {
        assert_eq!(b.records(incident), 1);
        assert_eq!(b.link(incident).await.state, LinkState::Synced);
    }
}

#[tokio::test]
async fn reconciles_that_ended_unjoined_do_not_count_against_the_nodes_limit() {
    // Wake-ups by changes or timers join at most one ended reconcile each; the ones
    // left over once throttled a node to one lease at a time.
    let mut b = bench(|c| c.max_in_flight = 4).await;
    let first = b.incidents("First", 4).await;
    assert_eq!(b.worker.tick().await.leased, 4);
    for incident in &first {
        b.until_synced(incident).await;
    }
    b.incidents("Second", 4).await;
    // No join happened since: all four ended reconciles are still in the set.
    assert_eq!(b.worker.tick().await.leased, 4);
    b.worker.idle().await;
}

#[tokio::test]
async fn a_lease_lost_while_settling_is_abandoned_without_a_call() {
    // The fence must cover 1.5 s (timeout + margin) but only 0.5 s is left after the
    // settle wait, so it asks the store, which says the lease went to another worker.
    let mut b = bench(|c| {
        c.call_timeout = Duration::from_millis(500);
        c.lease_for = Duration::from_secs(2);
        c.settle = Duration::from_millis(1_500);
    })
    .await;
    let incident = b.incident("Disk full").await;
    assert_eq!(b.step().await, 1);
    b.change(&incident, Severity::Minor).await;
    let tick = b.worker.tick().await;
    assert_eq!((tick.leased, tick.settling), (1, 1));
    // Another worker whose clock is far ahead takes the link over.
    let later = Utc::now() + chrono::Duration::seconds(3);
    let taken = b
        .store
        .lease_due_links(
            "thief",
            later,
            later + chrono::Duration::seconds(30),
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    b.worker.idle().await;
    assert_eq!(
        b.writes(),
        1,
        "only the create; no PATCH after the lease was lost"
    );
    assert_eq!(b.engine.leases_held(), 0);
    // The new holder's lease is untouched.
    assert!(b
        .store
        .complete_lease(&taken[0], &snowbound_store::LeaseOutcome::UpToDate)
        .await
        .unwrap());
}

#[tokio::test]
async fn a_held_lease_is_renewed_by_the_heartbeat() {
    let mut b = bench(|_| {}).await;
    b.emulator.set_latency(Duration::from_millis(1_500));
    let incident = b.incident("Disk full").await;
    assert_eq!(b.worker.tick().await.leased, 1);
    let leased_by = Utc::now();
    // A gap, so the renewed lease ends later than the first one did.
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.engine.renew_leases().await;
    // Past the first lease's end (5 s) but before the renewed one's: still held.
    let later = leased_by + chrono::Duration::milliseconds(5_500);
    let taken = b
        .store
        .lease_due_links(
            "other",
            later,
            later + chrono::Duration::seconds(5),
            10,
            None,
        )
        .await
        .unwrap();
    assert!(taken.is_empty());
    b.worker.idle().await;
    assert_eq!(b.records(&incident), 1);
    assert_eq!(b.link(&incident).await.state, LinkState::Synced);
}
