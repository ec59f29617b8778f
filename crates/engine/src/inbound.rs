//! The inbound direction's worker: it leases due pokes and polls, reads the records over
//! the Table API and hands each to the inbound service, which decides and writes
//! (`docs/SYNC_RULES.md`). Pokes and polls are leased in the store, so several nodes
//! never read one poke or poll one source at once, and an accepted poke stays queued
//! until a read of its record succeeded.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use snowbound_core::inbound::{fields_to_read, Quiet, SeenRecord, ServiceNowSourceSettings};
use snowbound_core::sync::CORRELATION_DISPLAY;
use snowbound_core::Integration;
use snowbound_servicenow::{sys_id_scopes, ChangesQuery, Connection, Failure, ReadRecord};
use snowbound_services::inbound::{Heard, InboundService, Outcome};
use snowbound_store::{PokeLease, PokeOutcome, PollLease, PollResult};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::api_log::api_call_records;
use crate::job::Loaded;
use crate::runner::Inner;

/// Pokes one tick reads at most; each is one read.
const POKES_PER_TICK: u32 = 32;
const POLLS_PER_TICK: u32 = 4;
/// A poll reads at most this many pages of this size; the rest is read straight after.
const POLL_PAGE_SIZE: u32 = 100;
const POLL_MAX_PAGES: u32 = 10;
/// Read again before the watermark: `sys_updated_on` is taken when a transaction starts,
/// so a slow one can commit a record older than one already seen.
const POLL_OVERLAP: chrono::Duration = chrono::Duration::seconds(5);
/// Adopted records of incidents resolved longer ago than this leave the poll's scope.
const ADOPTED_RECENT: chrono::Duration = chrono::Duration::days(7);
const ADOPTED_PER_POLL: u32 = 500;
const SYS_IDS_PER_SCOPE: usize = 50;
/// Snowbound's own write read before its reconcile is recorded: read again this soon.
const OWN_WRITE_AGAIN: chrono::Duration = chrono::Duration::seconds(1);

/// What one [`InboundWorker::tick`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundTick {
    pub pokes: usize,
    pub polls: usize,
    /// A batch came back full, or a poll stopped at its page limit: tick again now.
    pub more: bool,
}

/// The inbound loop's steps, for [`crate::Engine::run`] and for tests to drive.
pub struct InboundWorker {
    inner: Arc<Inner>,
    service: InboundService,
}

impl InboundWorker {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        let service = InboundService::new(Arc::clone(&inner.store), inner.waker.clone());
        InboundWorker { inner, service }
    }

    /// Reads every due poke and runs every due poll (up to a batch each), and waits for
    /// their writes.
    pub async fn tick(&mut self) -> InboundTick {
        let now = Utc::now();
        let owner = format!(
            "{}:in:{}",
            self.inner.config.node_id,
            Uuid::new_v4().simple()
        );
        let mut tick = InboundTick::default();
        let mut work = JoinSet::new();
        let poke_until =
            now + chrono::Duration::from_std(self.inner.config.lease_for).unwrap_or_default();
        match self
            .inner
            .store
            .lease_due_pokes(&owner, now, poke_until, POKES_PER_TICK)
            .await
        {
            Ok(pokes) => {
                tick.pokes = pokes.len();
                tick.more |= pokes.len() == POKES_PER_TICK as usize;
                for poke in pokes {
                    let this = self.clone_parts();
                    work.spawn(async move {
                        this.poke(poke).await;
                        false
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "leasing pokes failed"),
        }
        // A poll makes up to a page limit of calls, each with its timeout.
        let poll_for = self.inner.config.call_timeout * (POLL_MAX_PAGES + 1);
        let poll_until = now + chrono::Duration::from_std(poll_for).unwrap_or_default();
        match self
            .inner
            .store
            .lease_due_polls(&owner, now, poll_until, POLLS_PER_TICK)
            .await
        {
            Ok(polls) => {
                tick.polls = polls.len();
                for poll in polls {
                    let this = self.clone_parts();
                    work.spawn(async move { this.poll(poll).await });
                }
            }
            Err(e) => tracing::warn!(error = %e, "leasing polls failed"),
        }
        while let Some(done) = work.join_next().await {
            tick.more |= done.unwrap_or(false);
        }
        tick
    }

    fn clone_parts(&self) -> Parts {
        Parts {
            inner: Arc::clone(&self.inner),
            service: self.service.clone(),
        }
    }

    /// Sleeps until a poke arrives or the next poke or poll may be due.
    pub async fn sleep(&self, tick: InboundTick) {
        if tick.more {
            return;
        }
        let wait = self.inner.config.poll_interval.min(Duration::from_secs(1));
        tokio::select! {
            _ = self.inner.waker.inbound_woken() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What a poke or poll task needs.
struct Parts {
    inner: Arc<Inner>,
    service: InboundService,
}

/// A source's settings and its integration, ready to call.
struct Reader {
    team_id: Uuid,
    settings: ServiceNowSourceSettings,
    integration: Integration,
    conn: Connection,
}

impl Parts {
    async fn reader(&self, source_id: Uuid) -> Result<Reader, String> {
        let source = self
            .inner
            .store
            .get_source(source_id)
            .await
            .map_err(|e| format!("reading the source failed: {e}"))?;
        let settings = source
            .servicenow
            .ok_or_else(|| "the source is not a servicenow source".to_owned())?;
        let (record, credentials) = match self.inner.load(settings.integration_id).await {
            Loaded::Ready {
                record,
                credentials,
            } => (record, credentials),
            Loaded::Gone => return Err("the source's integration was deleted".into()),
            Loaded::Unavailable => return Err("the integration could not be read".into()),
            Loaded::CredentialsUnusable(error) => return Err(error),
        };
        let integration = record.integration;
        if self
            .inner
            .integrations
            .is_blocked(integration.id, integration.updated_at)
        {
            return Err("the integration is paused or failing".into());
        }
        let conn =
            Connection::for_integration(&integration, &credentials).map_err(|e| e.to_string())?;
        Ok(Reader {
            team_id: source.team_id,
            settings,
            integration,
            conn,
        })
    }

    /// Keeps the calls in the integration's API call log.
    async fn log(
        &self,
        integration_id: Uuid,
        incident: Option<Uuid>,
        calls: Vec<snowbound_servicenow::ApiCall>,
    ) {
        if calls.is_empty() {
            return;
        }
        let records = api_call_records(integration_id, incident, calls);
        if let Some(observer) = self.inner.call_observer.get() {
            records.iter().for_each(|call| observer(call));
        }
        if let Err(e) = self
            .inner
            .store
            .record_api_calls(integration_id, incident, &records)
            .await
        {
            tracing::warn!(error = %e, "recording inbound API calls failed");
        }
    }

    /// What a failed call means for the integration (a 429 pauses it, a 401 fails it),
    /// and the error to keep.
    fn failed(&self, integration: &Integration, failure: &Failure) -> String {
        match failure {
            Failure::RateLimited { retry_after, .. } => {
                self.inner
                    .integrations
                    .rate_limited(integration.id, *retry_after);
            }
            Failure::Unauthorized { .. } => self
                .inner
                .integrations
                .failing(integration.id, integration.updated_at),
            _ => {}
        }
        failure.user_message(&integration.servicenow.table)
    }

    fn retry(&self, poke: &PokeLease, error: String) -> PokeOutcome {
        let attempt = u32::try_from(poke.attempts).unwrap_or(u32::MAX);
        let delay = self.inner.config.backoff.delay(attempt);
        PokeOutcome::Retry {
            at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
            error,
        }
    }

    /// One poke: read its record (only if it can matter) and apply it.
    async fn poke(&self, mut poke: PokeLease) {
        let outcome = match self.reader(poke.source_id).await {
            Ok(reader) => self.read_poked(&mut poke, &reader).await,
            Err(error) => self.retry(&poke, error),
        };
        match self
            .inner
            .store
            .complete_poke(&poke, &outcome, Utc::now())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(sys_id = %poke.sys_id, "a poke's lease was lost; another worker reads it")
            }
            Err(e) => tracing::warn!(error = %e, "completing a poke failed; it is read again"),
        }
    }

    async fn read_poked(&self, poke: &mut PokeLease, reader: &Reader) -> PokeOutcome {
        let store = &self.inner.store;
        let integration = &reader.integration;
        let held = match store.inbound_link(integration.id, &poke.sys_id).await {
            Ok(link) => link.map(|l| l.link.incident_id),
            Err(e) => return self.retry(poke, format!("reading the link failed: {e}")),
        };
        let fields = fields_to_read(&integration.servicenow);
        // The read about to go out covers every poke so far (a business rule posts after
        // its write): only a poke arriving during the read makes it read again.
        match store.poke_rev(poke.source_id, &poke.sys_id).await {
            Ok(Some(rev)) => poke.rev = rev,
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "reading a poke's revision failed"),
        }
        // A record no incident holds matters only if it may open one: read it through
        // the filter, so ServiceNow says whether it matches. Without a filter, nothing
        // to read at all.
        let (exchange, matches_filter) = match (held, reader.settings.open_filter()) {
            (Some(_), _) => (
                self.inner
                    .client
                    .read_record(&reader.conn, &poke.sys_id, &fields)
                    .await,
                false,
            ),
            (None, Some(filter)) => (
                self.inner
                    .client
                    .read_record_matching(&reader.conn, &poke.sys_id, filter, &fields)
                    .await,
                true,
            ),
            (None, None) => return PokeOutcome::Read,
        };
        self.log(integration.id, held, exchange.calls).await;
        let record = match exchange.outcome {
            Ok(Some(record)) => record,
            Ok(None) if held.is_some() => {
                return match self.service.record_gone(integration.id, &poke.sys_id).await {
                    Ok(_) => PokeOutcome::Read,
                    Err(e) => self.retry(poke, e.to_string()),
                };
            }
            // Not in the filter (or gone) and held by nobody: nothing to do.
            Ok(None) => return PokeOutcome::Read,
            Err(failure) => {
                let error = self.failed(integration, &failure);
                return self.retry(poke, error);
            }
        };
        match self.hear(reader, &record, matches_filter).await {
            Ok(Outcome::Quiet(Quiet::OwnWrite)) => PokeOutcome::Retry {
                at: Utc::now() + OWN_WRITE_AGAIN,
                error: "Snowbound's own write, read before its reconcile was recorded; read again"
                    .into(),
            },
            Ok(_) => PokeOutcome::Read,
            Err(error) => self.retry(poke, error),
        }
    }

    async fn hear(
        &self,
        reader: &Reader,
        record: &ReadRecord,
        matches_filter: bool,
    ) -> Result<Outcome, String> {
        let seen: SeenRecord = record.seen()?;
        let outcome = self
            .service
            .hear(Heard {
                team_id: reader.team_id,
                settings: &reader.settings,
                integration: &reader.integration,
                record: &seen,
                matches_filter,
                public_url: &self.inner.config.public_url,
            })
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(sys_id = %seen.sys_id, number = %seen.number, ?outcome, "inbound record");
        Ok(outcome)
    }

    /// One poll: the records of the source's scopes changed since its watermark.
    /// True when it stopped at its page limit.
    async fn poll(&self, poll: PollLease) -> bool {
        let now = Utc::now();
        let result = match self.reader(poll.source_id).await {
            Ok(reader) => {
                let result = self.read_changes(&poll, &reader, now).await;
                self.inner
                    .observer
                    .polled(reader.integration.id, result.error.is_none());
                result
            }
            Err(error) => PollResult {
                at: now,
                watermark: None,
                records_seen: 0,
                error: Some(error),
                more: false,
            },
        };
        let more = result.more;
        match self.inner.store.complete_poll(&poll, &result).await {
            Ok(true) => {}
            Ok(false) => tracing::info!(source_id = %poll.source_id, "a poll's lease was lost"),
            Err(e) => tracing::warn!(error = %e, "recording a poll failed; it runs again"),
        }
        more
    }

    async fn read_changes(
        &self,
        poll: &PollLease,
        reader: &Reader,
        now: DateTime<Utc>,
    ) -> PollResult {
        let failed = |error: String| PollResult {
            at: now,
            watermark: None,
            records_seen: 0,
            error: Some(error),
            more: false,
        };
        let integration = &reader.integration;
        let scopes = match self.scopes(reader, now).await {
            Ok(scopes) => scopes,
            Err(error) => return failed(error),
        };
        // The first poll starts where the source began: records changed before it are
        // no news, and an old backlog must not open incidents by the hundred.
        let since = match poll.watermark {
            Some(watermark) => watermark,
            None => match self.inner.store.get_source(poll.source_id).await {
                Ok(source) => source.created_at,
                Err(e) => return failed(format!("reading the source failed: {e}")),
            },
        };
        let fields = fields_to_read(&integration.servicenow);
        let exchange = self
            .inner
            .client
            .changes_since(
                &reader.conn,
                &ChangesQuery {
                    since,
                    overlap: POLL_OVERLAP,
                    scopes: &scopes,
                    fields: &fields,
                    page_size: POLL_PAGE_SIZE,
                    max_pages: POLL_MAX_PAGES,
                },
            )
            .await;
        self.log(integration.id, None, exchange.calls).await;
        let changes = match exchange.outcome {
            Ok(changes) => changes,
            Err(failure) => return failed(self.failed(integration, &failure)),
        };
        let mut error = None;
        // Only the filter's scope can bring a record nobody holds that is not a
        // Snowbound's: such a record matched it, as ServiceNow evaluated it.
        let matches_filter = reader.settings.open_filter().is_some();
        for record in &changes.records {
            if let Err(e) = self.hear(reader, record, matches_filter).await {
                error = Some(format!("{}: {e}", record.number));
            }
        }
        PollResult {
            at: now,
            // A record that failed to apply is read again by the next poll.
            watermark: if error.is_none() {
                Some(changes.watermark)
            } else {
                None
            },
            records_seen: changes.records.len() as i64,
            error,
            more: !changes.complete,
        }
    }

    /// What a poll reads: the records Snowbound created (by their correlation_display),
    /// the records adopted by its incidents, and the source's `open_filter`.
    async fn scopes(&self, reader: &Reader, now: DateTime<Utc>) -> Result<Vec<String>, String> {
        let mut scopes = vec![format!("correlation_display={CORRELATION_DISPLAY}")];
        let adopted = self
            .inner
            .store
            .adopted_sys_ids(
                reader.integration.id,
                now - ADOPTED_RECENT,
                ADOPTED_PER_POLL,
            )
            .await
            .map_err(|e| format!("listing adopted records failed: {e}"))?;
        scopes.extend(sys_id_scopes(
            adopted.iter().map(String::as_str),
            SYS_IDS_PER_SCOPE,
        ));
        if let Some(filter) = reader.settings.open_filter() {
            scopes.push(filter.to_owned());
        }
        Ok(scopes)
    }
}
