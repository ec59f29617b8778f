//! Gauges computed when `/metrics` is scraped, from the database (incidents by status,
//! links by integration and state: two grouped counts and the integration list) and the
//! node's engine (leases it holds), so they are exact at every scrape and cost nothing
//! between scrapes.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use snowbound_core::IncidentStatus;
use snowbound_engine::WeakEngine;
use snowbound_store::{LinkState, Store};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct IntegrationLabel {
    integration: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LinkLabels {
    integration: String,
    state: String,
}

/// Every state a link is shown in, `waiting` being an unsynced link of an integration
/// that is failing or paused (as the API and web UI show it).
const LINK_STATES: [&str; 5] = ["pending", "retrying", "parked", "waiting", "synced"];

/// Where the gauges are read from.
pub(super) struct Sources {
    pub store: Arc<dyn Store>,
    /// Weak: the engine holds these metrics as its observer.
    pub engine: Option<WeakEngine>,
}

#[derive(Default)]
pub(super) struct Gauges {
    pub incidents: Family<StatusLabels, Gauge>,
    pub links: Family<LinkLabels, Gauge>,
    pub leases: Gauge,
    /// Adaptive concurrency per integration on this node.
    pub concurrency: Family<IntegrationLabel, Gauge>,
    /// One refresh at a time: a refresh clears the families before refilling them.
    pub refreshing: tokio::sync::Mutex<()>,
}

impl Gauges {
    /// Reads the counts now. Every known status, and every state of every integration,
    /// gets a value (0 included) so a series does not vanish when its count drops to 0.
    /// When the database cannot answer, its gauges are left out of this scrape rather
    /// than shown stale.
    pub async fn refresh(&self, sources: &Sources) {
        let engine = sources.engine.as_ref().and_then(WeakEngine::upgrade);
        if let Some(engine) = &engine {
            self.leases.set(engine.leases_held() as i64);
        }
        let (counts, integrations) = tokio::join!(
            sources.store.state_counts(),
            sources.store.list_integrations()
        );
        self.incidents.clear();
        self.links.clear();
        self.concurrency.clear();
        let (counts, integrations) = match (counts, integrations) {
            (Ok(counts), Ok(integrations)) => (counts, integrations),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "reading the counts for /metrics failed");
                return;
            }
        };
        for status in IncidentStatus::ALL {
            self.incidents
                .get_or_create(&StatusLabels {
                    status: status.as_str().to_owned(),
                })
                .set(0);
        }
        for (status, n) in counts.incidents {
            self.incidents
                .get_or_create(&StatusLabels {
                    status: status.as_str().to_owned(),
                })
                .set(n);
        }
        let now = Utc::now();
        let mut waiting = HashSet::new();
        for record in &integrations {
            let id = record.integration.id;
            if let Some(engine) = &engine {
                self.concurrency
                    .get_or_create(&IntegrationLabel {
                        integration: id.to_string(),
                    })
                    .set(engine.concurrency(id).current as i64);
            }
            if record.health.failing.is_some()
                || record.health.paused_until.is_some_and(|until| until > now)
            {
                waiting.insert(id);
            }
            for state in LINK_STATES {
                self.links
                    .get_or_create(&LinkLabels {
                        integration: id.to_string(),
                        state: state.to_owned(),
                    })
                    .set(0);
            }
        }
        for count in counts.links {
            let state =
                if count.state != LinkState::Synced && waiting.contains(&count.integration_id) {
                    "waiting"
                } else {
                    count.state.as_str()
                };
            self.links
                .get_or_create(&LinkLabels {
                    integration: count.integration_id.to_string(),
                    state: state.to_owned(),
                })
                .inc_by(count.count);
        }
    }
}
