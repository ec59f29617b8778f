//! Reads the emulator's request log as the run goes and decides, per change, when
//! ServiceNow first held it (or something newer): the change → ServiceNow latency.
//!
//! The engine sends the incident as it is at lease time, so a request does not say
//! which change it carries. We replay each record's values from the requests (in the
//! order the emulator received them) and credit a request with the newest change that
//! had been sent by then and whose values the record now holds; the changes between
//! the last credited one and it were coalesced into it. A change whose values the
//! record already held when it was made costs no call: it counts as delivered when it
//! was acknowledged.

use std::collections::HashMap;
use std::sync::Arc;

use snowbound_emulator::{Emulator, ReceivedRequest};

use crate::drive::{expected, Ledger};

const TABLE_PATH: &str = "/api/now/table/incident";

#[derive(Default, Clone)]
struct IncidentState {
    sys_id_known: bool,
    /// (urgency, state) ServiceNow holds; None before the create.
    holds: Option<(u8, u8)>,
    /// Index of the newest change ServiceNow holds; -1 = none.
    delivered: i64,
    calls: u32,
    done: bool,
}

pub struct Tracker {
    emulator: Emulator,
    ledger: Arc<Ledger>,
    incidents: Vec<IncidentState>,
    sys_ids: HashMap<String, usize>,
    /// Requests whose incident we could not name yet (the ingest answer carrying the
    /// incident id may arrive after the engine's create).
    unmatched: Vec<ReceivedRequest>,
    pub done: usize,
    pub calls: u64,
    pub failed_calls: u64,
    pub rate_limited: u64,
    pub lookups: u64,
    /// µs latency of every delivered change, from its send.
    pub latencies: Vec<i64>,
    /// The same from the ingest answer (the change is committed by then); 0 when
    /// ServiceNow had it before the answer reached us.
    pub latencies_from_ack: Vec<i64>,
    /// Receive time (µs) of every Table API call.
    pub call_times: Vec<i64>,
    /// Delivery time (µs) of every change.
    pub delivered_times: Vec<i64>,
    pub last_delivery: i64,
    /// Calls received per calendar second (as the instance's rate limit counts them).
    pub per_second: HashMap<i64, u32>,
}

impl Tracker {
    pub fn new(emulator: Emulator, ledger: Arc<Ledger>) -> Self {
        let n = ledger.incidents;
        let total = n * ledger.changes;
        Tracker {
            emulator,
            incidents: vec![
                IncidentState {
                    delivered: -1,
                    ..IncidentState::default()
                };
                n
            ],
            ledger,
            sys_ids: HashMap::with_capacity(n),
            unmatched: Vec::new(),
            done: 0,
            calls: 0,
            failed_calls: 0,
            rate_limited: 0,
            lookups: 0,
            latencies: Vec::with_capacity(total),
            latencies_from_ack: Vec::with_capacity(total),
            call_times: Vec::with_capacity(total),
            delivered_times: Vec::with_capacity(total),
            last_delivery: 0,
            per_second: HashMap::new(),
        }
    }

    pub fn all_done(&self) -> bool {
        self.done == self.incidents.len()
    }

    pub fn delivered(&self) -> usize {
        self.delivered_times.len()
    }

    /// Drains the emulator's log and credits what it shows; then settles incidents
    /// whose last change cost no call.
    pub fn poll(&mut self) {
        let mut batch = std::mem::take(&mut self.unmatched);
        batch.extend(self.emulator.take_requests());
        for request in batch {
            self.observe(request);
        }
        self.settle_absorbed();
    }

    fn incident_of(&mut self, request: &ReceivedRequest) -> Option<usize> {
        let rest = request.path.strip_prefix(TABLE_PATH)?;
        if let Some(sys_id) = rest.strip_prefix('/') {
            if let Some(&i) = self.sys_ids.get(sys_id) {
                return Some(i);
            }
            let record = self.emulator.record("incident", sys_id)?;
            let i = *self
                .ledger
                .ids
                .lock()
                .expect("ids")
                .get(record.get("correlation_id")?)?;
            self.sys_ids.insert(sys_id.to_owned(), i);
            return Some(i);
        }
        let correlation = match request.method.as_str() {
            "POST" => request.body["correlation_id"].as_str()?.to_owned(),
            // The lookup after an ambiguous create: `correlation_id=<id>^ORDERBY…`.
            _ => {
                let q = request.query.split("correlation_id%3D").nth(1)?;
                q.split(['^', '%', '&']).next()?.to_owned()
            }
        };
        self.ledger
            .ids
            .lock()
            .expect("ids")
            .get(&correlation)
            .copied()
    }

    fn observe(&mut self, request: ReceivedRequest) {
        if !request.path.starts_with("/api/now/") {
            return;
        }
        let Some(i) = self.incident_of(&request) else {
            if request.path.starts_with(TABLE_PATH) {
                self.unmatched.push(request);
            }
            return;
        };
        let t = request.received_at.timestamp_micros();
        self.calls += 1;
        self.call_times.push(t);
        *self.per_second.entry(t.div_euclid(1_000_000)).or_default() += 1;
        let status = request.status.unwrap_or(0);
        if status == 429 {
            self.rate_limited += 1;
        }
        let state = &mut self.incidents[i];
        state.calls += 1;
        let write = matches!(request.method.as_str(), "POST" | "PATCH");
        if !(200..300).contains(&status) {
            self.failed_calls += 1;
            return;
        }
        if !write {
            self.lookups += 1;
            return;
        }
        if request.method == "POST" {
            state.sys_id_known = true;
        }
        let field = |name: &str| request.body[name].as_str().and_then(|v| v.bytes().next());
        let (mut urgency, mut st) = state.holds.unwrap_or((0, 0));
        if let Some(u) = field("urgency") {
            urgency = u;
        }
        if let Some(s) = field("state") {
            st = s;
        }
        state.holds = Some((urgency, st));
        self.credit(i, t);
    }

    /// Credits incident `i`'s newest sent change that ServiceNow now holds, at `t`.
    fn credit(&mut self, i: usize, t: i64) {
        let m = self.ledger.changes;
        let state = &self.incidents[i];
        let Some(holds) = state.holds else { return };
        let from = (state.delivered + 1) as usize;
        let newest_sent = (from..m)
            .take_while(|&j| {
                let s = self.ledger.sent(i, j);
                s != 0 && s <= t
            })
            .last();
        let Some(newest_sent) = newest_sent else {
            return;
        };
        let Some(j) = (from..=newest_sent)
            .rev()
            .find(|&j| expected(j, m) == holds)
        else {
            return;
        };
        self.deliver(i, from, j, t);
    }

    fn deliver(&mut self, i: usize, from: usize, to: usize, t: i64) {
        for j in from..=to {
            let sent = self.ledger.sent(i, j);
            self.latencies.push((t - sent).max(0));
            let acked = self.ledger.acked(i, j);
            self.latencies_from_ack
                .push(if acked == 0 { 0 } else { (t - acked).max(0) });
            self.delivered_times.push(t);
        }
        self.last_delivery = self.last_delivery.max(t);
        let state = &mut self.incidents[i];
        state.delivered = to as i64;
        if to + 1 == self.ledger.changes && !state.done {
            state.done = true;
            self.done += 1;
        }
    }

    /// Changes that left ServiceNow's record as it was cost no call; once acknowledged
    /// (and so committed), they are delivered.
    fn settle_absorbed(&mut self) {
        let m = self.ledger.changes;
        for i in 0..self.incidents.len() {
            let state = &self.incidents[i];
            if state.done {
                continue;
            }
            let Some(holds) = state.holds else { continue };
            let from = (state.delivered + 1) as usize;
            let last_acked = (from..m)
                .take_while(|&j| self.ledger.acked(i, j) != 0)
                .last();
            let Some(last_acked) = last_acked else {
                continue;
            };
            // Only the newest acknowledged change: the engine reads the incident as
            // it is now, so older ones matter only through it.
            if expected(last_acked, m) == holds && last_acked + 1 == m {
                let at = self.ledger.acked(i, last_acked);
                self.deliver(i, from, last_acked, at);
            }
        }
    }

    pub fn calls_per_incident(&self) -> (f64, u32) {
        let max = self.incidents.iter().map(|s| s.calls).max().unwrap_or(0);
        let mean = self.calls as f64 / self.incidents.len().max(1) as f64;
        (mean, max)
    }

    pub fn max_per_second(&self) -> u32 {
        self.per_second.values().copied().max().unwrap_or(0)
    }

    pub fn unmatched(&self) -> usize {
        self.unmatched.len()
    }
}
