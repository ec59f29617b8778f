//! The node's cache of what every alert (and every reconcile) reads but people seldom
//! change: the source by its ingest secret, a team, and a team's routing (its
//! integrations and rules). Filled on a miss, forgotten by the services' own writes
//! ([`Lookups::changed`], called by every service method that writes one of them, after
//! its commit) and, on PostgreSQL, by what other nodes announce: `changed` also
//! announces the change through the store, every node's change listener hears it and
//! hands it to [`Lookups::heard`].
//!
//! Why it cannot serve a stale value for long:
//! - a fill that started before a change was forgotten is not kept (`generation`), so a
//!   read racing a write cannot put the old value back;
//! - while a PostgreSQL node's listener is not connected it cannot hear other nodes, so
//!   the cache is bypassed until the listener says it is listening again;
//! - a node that dies between its commit and its announcement leaves the others a stale
//!   entry for at most [`TTL`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use snowbound_core::source::Source;
use snowbound_core::Team;
use snowbound_store::{Heard, Store, StoreError};
use uuid::Uuid;

use crate::error::ServiceResult;
use crate::held_keys::HeldKeys;
use crate::routing_links::RoutingContext;

/// The bound on an entry whose change was never announced (its node died right after
/// committing).
pub const TTL: Duration = Duration::from_secs(60);

/// Entries per kind; past it a kind starts over (nothing unbounded grows in memory, and
/// only stored objects are cached, never a miss).
const MAX_ENTRIES: usize = 10_000;

/// What a write changed; what it names is forgotten on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// Settings, secret, or existence of one source.
    Source(Uuid),
    /// Teams are never renamed or deleted today; a write that does so must say this.
    Team(Uuid),
    /// Any integration: one may serve several teams, so every team's routing goes.
    Integrations,
    /// The routing rules of one team.
    Rules { team: Uuid },
}

/// The announcement's prefix, so the cache tells its own messages from others.
const PREFIX: &str = "lookups ";

impl Changed {
    fn message(self) -> String {
        match self {
            Changed::Source(id) => format!("{PREFIX}source {id}"),
            Changed::Team(id) => format!("{PREFIX}team {id}"),
            Changed::Integrations => format!("{PREFIX}integrations"),
            Changed::Rules { team } => format!("{PREFIX}rules {team}"),
        }
    }

    /// `None` for a message that is not about the cache; `Some(None)` for one that is but
    /// cannot be read (a newer node's): everything is forgotten then.
    fn parse(message: &str) -> Option<Option<Changed>> {
        let rest = message.strip_prefix(PREFIX)?;
        let (kind, id) = rest.split_once(' ').unwrap_or((rest, ""));
        let id = id.parse::<Uuid>().ok();
        Some(match (kind, id) {
            ("source", Some(id)) => Some(Changed::Source(id)),
            ("team", Some(id)) => Some(Changed::Team(id)),
            ("integrations", _) => Some(Changed::Integrations),
            ("rules", Some(team)) => Some(Changed::Rules { team }),
            _ => None,
        })
    }
}

struct Entry<V> {
    at: Instant,
    value: V,
}

#[derive(Default)]
struct State {
    /// Raised by every forgetting: a fill that read before it is not kept.
    generation: u64,
    /// By SHA-256 of the secret: the cache holds no secret in clear.
    sources: HashMap<[u8; 32], Entry<Source>>,
    teams: HashMap<Uuid, Entry<Team>>,
    routing: HashMap<Uuid, Entry<Arc<RoutingContext>>>,
}

impl State {
    fn forget(&mut self, what: Option<Changed>) {
        self.generation += 1;
        match what {
            Some(Changed::Source(id)) => self.sources.retain(|_, e| e.value.id != id),
            Some(Changed::Team(id)) => {
                self.teams.remove(&id);
            }
            Some(Changed::Integrations) => self.routing.clear(),
            Some(Changed::Rules { team }) => {
                self.routing.remove(&team);
            }
            None => {
                self.sources.clear();
                self.teams.clear();
                self.routing.clear();
            }
        }
    }
}

type Pick<K, V> = fn(&mut State) -> &mut HashMap<K, Entry<V>>;

pub struct Lookups {
    state: Mutex<State>,
    /// Alert keys seen held on this node (a hint of its own, never forgotten by writes:
    /// see [`HeldKeys`]).
    pub(crate) held_keys: HeldKeys,
    /// Whether this node hears every change (always on SQLite; on PostgreSQL while its
    /// listener is connected).
    hearing: AtomicBool,
}

impl Default for Lookups {
    fn default() -> Self {
        Lookups {
            state: Mutex::default(),
            held_keys: HeldKeys::default(),
            hearing: AtomicBool::new(true),
        }
    }
}

impl Lookups {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached value, or the generation a fill must still find to be kept.
    fn get<K: Hash + Eq, V: Clone>(&self, pick: Pick<K, V>, key: &K) -> Result<V, u64> {
        let mut state = self.state();
        let generation = state.generation;
        match pick(&mut state).get(key) {
            Some(entry) if entry.at.elapsed() < TTL && self.hearing.load(Ordering::Acquire) => {
                Ok(entry.value.clone())
            }
            _ => Err(generation),
        }
    }

    fn fill<K: Hash + Eq, V>(&self, pick: Pick<K, V>, generation: u64, key: K, value: V) {
        let mut state = self.state();
        if state.generation != generation || !self.hearing.load(Ordering::Acquire) {
            return;
        }
        let map = pick(&mut state);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            key,
            Entry {
                at: Instant::now(),
                value,
            },
        );
    }

    /// The source whose ingest URL carries `secret`.
    pub async fn source_by_secret(
        &self,
        store: &dyn Store,
        secret: &str,
    ) -> Result<Option<Source>, StoreError> {
        let key: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let generation = match self.get(|s| &mut s.sources, &key) {
            Ok(source) => return Ok(Some(source)),
            Err(generation) => generation,
        };
        let source = store.source_by_secret(secret).await?;
        if let Some(source) = &source {
            self.fill(|s| &mut s.sources, generation, key, source.clone());
        }
        Ok(source)
    }

    pub async fn team(&self, store: &dyn Store, id: Uuid) -> Result<Team, StoreError> {
        let generation = match self.get(|s| &mut s.teams, &id) {
            Ok(team) => return Ok(team),
            Err(generation) => generation,
        };
        let team = store.get_team(id).await?;
        self.fill(|s| &mut s.teams, generation, id, team.clone());
        Ok(team)
    }

    /// The integrations serving `team` and its routing rules.
    pub async fn routing(
        &self,
        store: &dyn Store,
        team: Uuid,
    ) -> ServiceResult<Arc<RoutingContext>> {
        let generation = match self.get(|s| &mut s.routing, &team) {
            Ok(routing) => return Ok(routing),
            Err(generation) => generation,
        };
        let routing = Arc::new(RoutingContext::load(store, team).await?);
        self.fill(|s| &mut s.routing, generation, team, Arc::clone(&routing));
        Ok(routing)
    }

    /// A write committed `what`: forgotten here at once, then announced to the other
    /// nodes. An announcement that fails is logged, not the writer's error (its change
    /// is committed); the other nodes' entries then age out within [`TTL`].
    pub async fn changed(&self, store: &dyn Store, what: Changed) {
        self.state().forget(Some(what));
        if let Err(e) = store.announce(&what.message()).await {
            tracing::warn!(error = %e, change = ?what, "could not tell the other nodes about a change; their caches catch up within a minute");
        }
    }

    /// What this node's change listener heard (PostgreSQL). A node that may have missed
    /// something forgets everything; one that cannot hear bypasses the cache.
    pub fn heard(&self, news: Heard<'_>) {
        match news {
            Heard::Listening => {
                let mut state = self.state();
                state.forget(None);
                self.hearing.store(true, Ordering::Release);
            }
            Heard::Deaf => {
                let mut state = self.state();
                self.hearing.store(false, Ordering::Release);
                state.forget(None);
            }
            Heard::Announced(message) => {
                if let Some(what) = Changed::parse(message) {
                    self.state().forget(what);
                }
            }
            Heard::LinksDue => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_read_back_as_what_changed() {
        let id = Uuid::new_v4();
        for what in [
            Changed::Source(id),
            Changed::Team(id),
            Changed::Integrations,
            Changed::Rules { team: id },
        ] {
            assert_eq!(Changed::parse(&what.message()), Some(Some(what)));
        }
        assert_eq!(Changed::parse(""), None);
        assert_eq!(Changed::parse("lookups widgets 1"), Some(None));
    }

    #[test]
    fn a_fill_that_read_before_a_change_is_not_kept() {
        let lookups = Lookups::default();
        let team = Team {
            id: Uuid::new_v4(),
            name: "core".into(),
            created_at: chrono::Utc::now(),
        };
        let before = lookups.get(|s| &mut s.teams, &team.id).unwrap_err();
        lookups.state().forget(Some(Changed::Team(team.id)));
        lookups.fill(|s| &mut s.teams, before, team.id, team.clone());
        assert!(lookups.get(|s| &mut s.teams, &team.id).is_err());
        let now = lookups.get(|s| &mut s.teams, &team.id).unwrap_err();
        lookups.fill(|s| &mut s.teams, now, team.id, team.clone());
        assert_eq!(
            lookups.get(|s| &mut s.teams, &team.id).unwrap().name,
            "core"
        );
    }

    #[test]
    fn a_node_that_cannot_hear_does_not_trust_its_cache() {
        let lookups = Lookups::default();
        let id = Uuid::new_v4();
        let team = Team {
            id,
            name: "core".into(),
            created_at: chrono::Utc::now(),
        };
        let generation = lookups.get(|s| &mut s.teams, &id).unwrap_err();
        lookups.fill(|s| &mut s.teams, generation, id, team.clone());
        lookups.heard(Heard::Deaf);
        let generation = lookups.get(|s| &mut s.teams, &id).unwrap_err();
        lookups.fill(|s| &mut s.teams, generation, id, team.clone());
        assert!(lookups.get(|s| &mut s.teams, &id).is_err());
        lookups.heard(Heard::Listening);
        let generation = lookups.get(|s| &mut s.teams, &id).unwrap_err();
        lookups.fill(|s| &mut s.teams, generation, id, team);
        assert!(lookups.get(|s| &mut s.teams, &id).is_ok());
    }
}
