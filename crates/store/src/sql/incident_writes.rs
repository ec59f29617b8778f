//! Incident writes in as few statements as a transaction allows. A group commit holds
//! hundreds of alerts at once; written one statement per row, each alert would cost its
//! incident, timeline, link, key and history statements — on SQLite a thread hand-off
//! each, on PostgreSQL a round trip each. Here the rows of a whole batch are gathered
//! first ([`IncidentRows`]) and each table is written with one multi-row statement; only
//! what must be decided row by row (an update's optimistic check) stays a statement per
//! write.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use snowbound_core::{Incident, TimelineEntry};
use uuid::Uuid;

use super::dialect::{Dialect, SqlRow, WriteTx};
use super::script::Script;
use super::statement::Sql;
use super::{links, rows, SqlStore};
use crate::types::{IncidentWrite, LinkHold, NewLink, RoutingWrite, RuleFiring};
use crate::{Result, StoreError};

/// Keys of one source read per statement.
const KEYS_PER_READ: usize = 8_000;

/// The rows a batch of incident writes adds, gathered so each table takes one statement.
#[derive(Default)]
pub(super) struct IncidentRows<'a> {
    incidents: Vec<&'a Incident>,
    timeline: Vec<(Uuid, &'a TimelineEntry)>,
    /// Links of updated incidents that need another look.
    bumped: Vec<Uuid>,
    links: Vec<(&'a NewLink, Option<&'a LinkHold>)>,
    keys: Vec<(Uuid, &'a str, Uuid)>,
    firings: Vec<(Option<Uuid>, &'a RuleFiring)>,
    /// Rows made while writing (a held link's "not sent"), owned here.
    not_sent: Vec<(Uuid, TimelineEntry, RuleFiring)>,
}

impl<'a> IncidentRows<'a> {
    /// A new incident with its first timeline entries and links.
    pub(super) fn create(
        &mut self,
        incident: &'a Incident,
        timeline: &'a [TimelineEntry],
        new_links: &'a [NewLink],
        routing: &'a RoutingWrite,
    ) {
        self.incidents.push(incident);
        self.changed(incident.id, timeline, new_links, routing);
    }

    /// Timeline entries of an incident that exists.
    pub(super) fn append(&mut self, incident_id: Uuid, entries: &'a [TimelineEntry]) {
        self.timeline
            .extend(entries.iter().map(|entry| (incident_id, entry)));
    }

    /// What an incident written already (created or updated) adds around it.
    fn changed(
        &mut self,
        incident_id: Uuid,
        timeline: &'a [TimelineEntry],
        new_links: &'a [NewLink],
        routing: &'a RoutingWrite,
    ) {
        self.timeline
            .extend(timeline.iter().map(|entry| (incident_id, entry)));
        self.links
            .extend(new_links.iter().map(|link| (link, routing.hold.as_ref())));
        self.firings
            .extend(routing.firings.iter().map(|f| (Some(incident_id), f)));
    }

    /// Writes everything gathered, in an order the foreign keys accept: incidents before
    /// what refers to them, and an updated incident's links bumped before new links are
    /// added (a new link starts pending anyway).
    pub(super) async fn write<T: WriteTx>(self, tx: &mut T) -> Result<()> {
        let mut script = Script::for_tx(tx);
        script.insert_rows(
            "INSERT INTO incidents (id, team_id, title, description, severity, status, \
             attributes, resolve_comment, created_at, updated_at, source_id) VALUES ",
            "",
            &self.incidents,
            |incident| {
                vec![
                    incident.id.into(),
                    incident.team_id.into(),
                    (&incident.title).into(),
                    (&incident.description).into(),
                    incident.severity.as_str().into(),
                    incident.status.as_str().into(),
                    rows::to_json(&incident.attributes).into(),
                    (&incident.resolve_comment).into(),
                    incident.created_at.into(),
                    incident.updated_at.into(),
                    incident.source_id.into(),
                ]
            },
        );
        let not_sent_timeline: Vec<(Uuid, &TimelineEntry)> = self
            .not_sent
            .iter()
            .map(|(incident_id, entry, _)| (*incident_id, entry))
            .collect();
        let timeline: Vec<&(Uuid, &TimelineEntry)> = self
            .timeline
            .iter()
            .chain(not_sent_timeline.iter())
            .collect();
        script.insert_rows(
            "INSERT INTO timeline (incident_id, at, actor, kind, detail) VALUES ",
            "",
            &timeline,
            |&&(incident_id, entry)| {
                vec![
                    incident_id.into(),
                    entry.at.into(),
                    (&entry.actor).into(),
                    (&entry.kind).into(),
                    (&entry.detail).into(),
                ]
            },
        );
        if !self.bumped.is_empty() {
            links::bump_incidents(&mut script, &self.bumped);
            tx.links_due();
        }
        // One statement may not upsert a row twice (PostgreSQL refuses): a write naming
        // a link twice gets its last.
        let mut last_of_link: HashMap<(Uuid, Uuid), usize> = HashMap::new();
        for (n, (link, _)) in self.links.iter().enumerate() {
            last_of_link.insert((link.incident_id, link.integration_id), n);
        }
        let new_links: Vec<_> = self
            .links
            .iter()
            .enumerate()
            .filter(|(n, (link, _))| last_of_link[&(link.incident_id, link.integration_id)] == *n)
            .map(|(_, link)| *link)
            .collect();
        if !new_links.is_empty() {
            links::upsert_many(&mut script, &new_links);
            tx.links_due();
        }
        script.insert_rows(
            "INSERT INTO source_alerts (source_id, dedup_key, incident_id) VALUES ",
            " ON CONFLICT (source_id, dedup_key) DO UPDATE SET incident_id = excluded.incident_id",
            &self.keys,
            |&(source_id, key, incident_id)| vec![source_id.into(), key.into(), incident_id.into()],
        );
        let firings: Vec<(Option<Uuid>, &RuleFiring)> = self
            .firings
            .iter()
            .copied()
            .chain(
                self.not_sent
                    .iter()
                    .map(|(id, _, firing)| (Some(*id), firing)),
            )
            .collect();
        insert_firings(&mut script, &firings);
        script.run(tx).await
    }
}

/// Routing history rows; `incident_id` overrides the firing's own when set.
pub(super) fn insert_firings<'r>(
    script: &mut Script<'r>,
    firings: &'r [(Option<Uuid>, &'r RuleFiring)],
) {
    script.insert_rows(
        "INSERT INTO rule_firings (team_id, rule_id, rule_name, incident_id, kind, detail, at) \
         VALUES ",
        "",
        firings,
        |&(incident_id, firing)| {
            vec![
                firing.team_id.into(),
                firing.rule_id.into(),
                (&firing.rule_name).into(),
                incident_id.or(firing.incident_id).into(),
                (&firing.kind).into(),
                (&firing.detail).into(),
                firing.at.into(),
            ]
        },
    );
}

/// The incident with its first timeline entries and links, inside the caller's
/// transaction.
pub(super) async fn insert(
    tx: &mut impl WriteTx,
    incident: &Incident,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
    routing: &RoutingWrite,
) -> Result<()> {
    let mut rows = IncidentRows::default();
    rows.create(incident, timeline, new_links, routing);
    rows.write(tx).await
}

/// The update inside the caller's transaction. The inner error is a refusal decided
/// before anything was written (`Stale`, `NotFound`), so the transaction stays usable;
/// the outer one is a database failure that spoils it.
pub(super) async fn update(
    tx: &mut impl WriteTx,
    incident: &Incident,
    expected_updated_at: DateTime<Utc>,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
    routing: &RoutingWrite,
) -> Result<Result<()>> {
    let mut rows = IncidentRows::default();
    if let Err(refused) = update_into(
        tx,
        &mut rows,
        incident,
        expected_updated_at,
        timeline,
        new_links,
        routing,
    )
    .await?
    {
        return Ok(Err(refused));
    }
    rows.write(tx).await?;
    Ok(Ok(()))
}

/// The incident's own row, checked against `expected_updated_at` at once (the answer
/// cannot wait for the batch), and what comes with it gathered into `rows`.
async fn update_into<'a>(
    tx: &mut impl WriteTx,
    rows: &mut IncidentRows<'a>,
    incident: &'a Incident,
    expected_updated_at: DateTime<Utc>,
    timeline: &'a [TimelineEntry],
    new_links: &'a [NewLink],
    routing: &'a RoutingWrite,
) -> Result<Result<()>> {
    // On PostgreSQL the row lock this UPDATE takes makes a concurrent writer on another
    // node wait, then re-check `updated_at` against our committed row: it gets Stale.
    let updated = tx
        .execute(
            Sql::new(
                "UPDATE incidents SET title = $1, description = $2, severity = $3, status = $4, \
                 attributes = $5, resolve_comment = $6, updated_at = $7 \
                 WHERE id = $8 AND updated_at = $9",
            )
            .bind(&incident.title)
            .bind(&incident.description)
            .bind(incident.severity.as_str())
            .bind(incident.status.as_str())
            .bind(rows::to_json(&incident.attributes))
            .bind(&incident.resolve_comment)
            .bind(incident.updated_at)
            .bind(incident.id)
            .bind(expected_updated_at),
        )
        .await?;
    if updated == 0 {
        let exists = tx
            .fetch_optional(Sql::new("SELECT id FROM incidents WHERE id = $1").bind(incident.id))
            .await?;
        return Ok(Err(match exists {
            Some(_) => StoreError::Stale,
            None => StoreError::NotFound,
        }));
    }
    // Its links are bumped before any new ones are added: `write` orders the tables.
    rows.changed(incident.id, timeline, new_links, routing);
    rows.bumped.push(incident.id);
    if let Some(at) = routing.drop_held_at {
        drop_held(tx, rows, incident, at).await?;
    }
    Ok(Ok(()))
}

/// A resolve within a rule's delay: the held links go unsent, and the timeline and the
/// routing history say so.
async fn drop_held(
    tx: &mut impl WriteTx,
    rows: &mut IncidentRows<'_>,
    incident: &Incident,
    at: DateTime<Utc>,
) -> Result<()> {
    for (integration, rule_id, rule_name) in links::drop_held(tx, incident.id, at).await? {
        let detail = format!("not sent to {integration}: resolved within the rule's delay");
        let entry = TimelineEntry {
            at,
            actor: format!("routing rule {rule_name}"),
            kind: "not_sent".into(),
            detail: detail.clone(),
        };
        let firing = RuleFiring {
            team_id: incident.team_id,
            rule_id,
            rule_name,
            incident_id: Some(incident.id),
            kind: "not_sent".into(),
            detail,
            at,
        };
        rows.not_sent.push((incident.id, entry, firing));
    }
    Ok(())
}

/// Group commit: all of `writes` in one transaction, in an order that takes key locks
/// and row locks alike on every node (keys first, sorted, then updates by incident id),
/// so two nodes' batches cannot deadlock on each other. Each write gets its own answer;
/// a refused one (`Stale`, `NotFound`, `KeyHeld`) wrote nothing and does not hold back
/// the others.
pub async fn write_incidents<D: Dialect>(
    store: &SqlStore<D>,
    writes: &[IncidentWrite],
) -> Result<Vec<Result<()>>> {
    let mut tx = store.db.begin().await?;
    let answers = write_in(&mut tx, writes).await?;
    tx.commit().await?;
    Ok(answers)
}

async fn write_in<T: WriteTx>(tx: &mut T, writes: &[IncidentWrite]) -> Result<Vec<Result<()>>> {
    let mut order: Vec<usize> = (0..writes.len()).collect();
    order.sort_by(|&a, &b| lock_order(&writes[a]).cmp(&lock_order(&writes[b])));
    let keys: Vec<(Uuid, &str)> = order
        .iter()
        .filter_map(|&index| match &writes[index] {
            IncidentWrite::Create {
                dedup_key: Some((source_id, key)),
                ..
            } => Some((*source_id, key.as_str())),
            _ => None,
        })
        .collect();
    let mut locked: Option<(Uuid, &str)> = None;
    for &(source_id, key) in keys.iter().filter(|_| T::LOCKS_KEYS) {
        if locked != Some((source_id, key)) {
            tx.lock_key(&format!("snowbound.source_alerts:{source_id}:{key}"))
                .await?;
            locked = Some((source_id, key));
        }
    }
    // Two alerts racing with one key, on one node or two, must not both open an
    // incident: under the key locks (on SQLite the one writer) this sees every
    // committed holder, and `held` gains this batch's own as they are decided.
    let mut held = open_incidents_for_keys(tx, &keys).await?;
    let mut rows = IncidentRows::default();
    let mut answers: Vec<Result<()>> = writes.iter().map(|_| Ok(())).collect();
    for index in order {
        answers[index] = match &writes[index] {
            IncidentWrite::Create {
                incident,
                timeline,
                links,
                dedup_key,
                routing,
            } => {
                let holder = dedup_key
                    .as_ref()
                    .and_then(|(source_id, key)| held.get(&(*source_id, key.clone())));
                match (dedup_key, holder) {
                    (_, Some(holder)) => {
                        Err(StoreError::KeyHeld(Box::new(holder.clone().into_owned())))
                    }
                    (Some((source_id, key)), None) => {
                        held.insert((*source_id, key.clone()), Cow::Borrowed(incident));
                        rows.keys.push((*source_id, key.as_str(), incident.id));
                        rows.create(incident, timeline, links, routing);
                        Ok(())
                    }
                    (None, None) => {
                        rows.create(incident, timeline, links, routing);
                        Ok(())
                    }
                }
            }
            IncidentWrite::Update {
                incident,
                expected_updated_at,
                timeline,
                new_links,
                routing,
            } => {
                update_into(
                    tx,
                    &mut rows,
                    incident,
                    *expected_updated_at,
                    timeline,
                    new_links,
                    routing,
                )
                .await?
            }
        };
    }
    rows.write(tx).await?;
    Ok(answers)
}

/// Keyed creates by key, then updates by incident id, then plain creates.
fn lock_order(write: &IncidentWrite) -> (u8, Option<(Uuid, &str)>, Uuid) {
    match write {
        IncidentWrite::Create {
            dedup_key: Some((source_id, key)),
            incident,
            ..
        } => (0, Some((*source_id, key.as_str())), incident.id),
        IncidentWrite::Update { incident, .. } => (1, None, incident.id),
        IncidentWrite::Create { incident, .. } => (2, None, incident.id),
    }
}

/// The unresolved incident holding each of `keys`, by (source, key): one statement per
/// source (a body's alerts share one), each an index lookup per key on both backends.
pub(super) const HELD_KEYS: &str =
    "SELECT a.source_id AS held_source_id, a.dedup_key AS held_dedup_key, i.* \
     FROM source_alerts a JOIN incidents i ON i.id = a.incident_id \
     WHERE i.status <> 'resolved' AND a.source_id = $1 AND a.dedup_key";

async fn open_incidents_for_keys<'a>(
    tx: &mut impl WriteTx,
    keys: &[(Uuid, &str)],
) -> Result<HashMap<(Uuid, String), Cow<'a, Incident>>> {
    let mut by_source: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    for &(source_id, key) in keys {
        by_source.entry(source_id).or_default().push(key);
    }
    let mut held = HashMap::new();
    for (source_id, keys) in by_source {
        for chunk in keys.chunks(KEYS_PER_READ) {
            let mut sql = Sql::new(HELD_KEYS).bind(source_id);
            sql.push_in(chunk.iter().copied());
            for row in tx.fetch_all(sql).await? {
                let key = row.text("held_dedup_key")?;
                held.insert((source_id, key), Cow::Owned(rows::incident(&row)?));
            }
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_creates_lock_first_in_key_order_then_updates_then_plain_creates() {
        let incident = |id: u128| Incident {
            id: Uuid::from_u128(id),
            team_id: Uuid::from_u128(8),
            title: "t".into(),
            description: String::new(),
            severity: snowbound_core::Severity::Critical,
            status: snowbound_core::IncidentStatus::Open,
            attributes: Default::default(),
            resolve_comment: None,
            source_id: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let source = Uuid::from_u128(9);
        let keyed = |id, key: &str| IncidentWrite::Create {
            incident: incident(id),
            timeline: vec![],
            links: vec![],
            dedup_key: Some((source, key.into())),
            routing: RoutingWrite::default(),
        };
        let plain = IncidentWrite::Create {
            incident: incident(1),
            timeline: vec![],
            links: vec![],
            dedup_key: None,
            routing: RoutingWrite::default(),
        };
        let update = IncidentWrite::Update {
            incident: incident(2),
            expected_updated_at: Utc::now(),
            timeline: vec![],
            new_links: vec![],
            routing: RoutingWrite::default(),
        };
        let writes = [plain, keyed(3, "b"), update, keyed(4, "a")];
        let mut order: Vec<usize> = (0..writes.len()).collect();
        order.sort_by(|&a, &b| lock_order(&writes[a]).cmp(&lock_order(&writes[b])));
        assert_eq!(order, vec![3, 1, 2, 0]);
    }
}
