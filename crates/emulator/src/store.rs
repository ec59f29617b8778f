//! In-memory records: tables, rows in creation order, numbering and journal entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::auth::User;
use crate::choices::{self, ChoiceIndex};
use crate::schema::{parse_extra_table, Kind, TableDef};

pub(crate) type Record = BTreeMap<String, String>;

/// One journal entry (a `work_notes` or `comments` write), as `sys_journal_field` keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub sys_id: String,
    /// Table of the record the entry belongs to.
    pub name: String,
    /// sys_id of the record the entry belongs to.
    pub element_id: String,
    /// `work_notes` or `comments`.
    pub element: String,
    pub value: String,
    pub sys_created_on: String,
    pub sys_created_by: String,
}

#[derive(Default)]
struct Rows {
    rows: BTreeMap<u64, Record>,
    by_id: HashMap<String, u64>,
}

pub(crate) struct Data {
    defs: BTreeMap<String, TableDef>,
    /// Incident and the tables extending it share one storage, as on an instance where
    /// querying the parent table also returns the children's records.
    storages: HashMap<Kind, Rows>,
    seq: u64,
    /// Next number per prefix; tables sharing a prefix share the sequence.
    counters: HashMap<String, u64>,
    journal: HashMap<String, Vec<JournalEntry>>,
    journal_order: Vec<(String, usize)>,
    user_ids: HashMap<String, String>,
    /// Built on first use after a sys_choice change; every render and write needs it.
    choice_cache: OnceLock<Arc<ChoiceIndex>>,
}

/// Reference targets every emulator has, with fixed sys_ids so tests can name them.
pub const REFERENCE_ROWS: &[(Kind, &str, &str)] = &[
    (
        Kind::Group,
        "Service Desk",
        "d625dccec0a8016700a222a0f7900d06",
    ),
    (
        Kind::Group,
        "Network L2",
        "287ee6fea9fe198100ada7950d0b1b73",
    ),
    (Kind::Group, "Database", "287ebd7da9fe198100f92cc8d1d2154e"),
    (Kind::Ci, "db-1", "27d32778c0a8000b00db970eeaa60f16"),
    (Kind::Ci, "web-1", "27d3f35cc0a8000b001df42d019a418f"),
    (Kind::Ci, "lb-1", "53958ff0c0a801640171ecc40bd0a1a8"),
];

pub(crate) fn new_sys_id() -> String {
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

pub(crate) fn now_string() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

impl Data {
    pub fn new(users: &[User], extra_tables: &[String]) -> Self {
        let mut defs = BTreeMap::new();
        for (name, kind, prefix) in [
            ("incident", Kind::Incident, "INC"),
            ("sys_choice", Kind::Choice, ""),
            ("sys_user", Kind::User, ""),
            ("sys_user_group", Kind::Group, ""),
            ("cmdb_ci", Kind::Ci, ""),
            ("sys_journal_field", Kind::JournalField, ""),
        ] {
            let d = TableDef {
                name: name.into(),
                kind,
                prefix: prefix.into(),
            };
            defs.insert(d.name.clone(), d);
        }
        for spec in extra_tables {
            match parse_extra_table(spec) {
                Some(d) if !defs.contains_key(&d.name) => {
                    defs.insert(d.name.clone(), d);
                }
                _ => tracing::warn!(table = %spec, "ignoring invalid extra table"),
            }
        }
        let mut data = Data {
            defs,
            storages: HashMap::new(),
            seq: 0,
            counters: HashMap::new(),
            journal: HashMap::new(),
            journal_order: Vec::new(),
            user_ids: HashMap::new(),
            choice_cache: OnceLock::new(),
        };
        let now = now_string();
        let system = |mut r: Record, now: &str| {
            r.insert("sys_id".into(), new_sys_id());
            r.insert("sys_created_on".into(), now.to_string());
            r.insert("sys_created_by".into(), "system".into());
            r.insert("sys_updated_on".into(), now.to_string());
            r.insert("sys_updated_by".into(), "system".into());
            r.insert("sys_mod_count".into(), "0".into());
            r
        };
        for row in choices::seed() {
            data.insert(Kind::Choice, system(row, &now));
        }
        for u in users {
            data.upsert_user(u);
        }
        for (kind, name, sys_id) in REFERENCE_ROWS {
            let mut r = Record::new();
            r.insert("name".into(), name.to_string());
            r.insert("active".into(), "true".into());
            let mut r = system(r, &now);
            r.insert("sys_id".into(), sys_id.to_string());
            data.insert(*kind, r);
        }
        data
    }

    pub fn has_sys_id(&self, table: &str, sys_id: &str) -> bool {
        let kind = match table {
            "sys_user_group" => Kind::Group,
            "cmdb_ci" => Kind::Ci,
            "sys_user" => Kind::User,
            "incident" => Kind::Incident,
            _ => return false,
        };
        self.get_any(kind, sys_id).is_some()
    }

    /// The sys_id of the `table` record whose display value is `display`: `name` for
    /// groups, CIs and users (then `user_name`), `number` for incidents.
    pub fn sys_id_for_display(&self, table: &str, display: &str) -> Option<String> {
        let (kind, columns): (Kind, &[&str]) = match table {
            "sys_user_group" => (Kind::Group, &["name"]),
            "cmdb_ci" => (Kind::Ci, &["name"]),
            "sys_user" => (Kind::User, &["name", "user_name"]),
            "incident" => (Kind::Incident, &["number"]),
            _ => return None,
        };
        let rows = self.storages.get(&kind)?;
        columns.iter().find_map(|column| {
            rows.rows
                .values()
                .find(|r| r.get(*column).map(String::as_str) == Some(display))
                .and_then(|r| r.get("sys_id").cloned())
        })
    }

    /// Adds the user's `sys_user` row, or updates its flags if it exists.
    pub fn upsert_user(&mut self, u: &User) {
        let wsao = u.web_service_access_only.to_string();
        if let Some(id) = self.user_ids.get(&u.name).cloned() {
            if let Some(mut r) = self.get_any(Kind::User, &id).cloned() {
                if r.get("web_service_access_only") != Some(&wsao) {
                    r.insert("web_service_access_only".into(), wsao);
                    let count: u64 = r
                        .get("sys_mod_count")
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    r.insert("sys_mod_count".into(), (count + 1).to_string());
                    r.insert("sys_updated_on".into(), now_string());
                    self.replace(Kind::User, r);
                }
            }
            return;
        }
        let now = now_string();
        let mut r = Record::new();
        r.insert("user_name".into(), u.name.clone());
        r.insert("name".into(), u.name.clone());
        r.insert("active".into(), "true".into());
        r.insert("web_service_access_only".into(), wsao);
        r.insert("sys_id".into(), new_sys_id());
        r.insert("sys_created_on".into(), now.clone());
        r.insert("sys_created_by".into(), "system".into());
        r.insert("sys_updated_on".into(), now);
        r.insert("sys_updated_by".into(), "system".into());
        r.insert("sys_mod_count".into(), "0".into());
        self.user_ids.insert(u.name.clone(), r["sys_id"].clone());
        self.insert(Kind::User, r);
    }

    pub fn def(&self, table: &str) -> Option<&TableDef> {
        self.defs.get(table)
    }

    pub fn table_names(&self) -> impl Iterator<Item = &String> {
        self.defs.keys()
    }

    pub fn user_sys_id(&self, name: &str) -> Option<&str> {
        self.user_ids.get(name).map(String::as_str)
    }

    fn in_table(def: &TableDef, rec: &Record) -> bool {
        def.kind != Kind::Incident
            || def.name == "incident"
            || rec.get("sys_class_name").map(String::as_str) == Some(def.name.as_str())
    }

    /// Records visible through `def`, in creation order.
    pub fn visible<'a>(&'a self, def: &'a TableDef) -> impl Iterator<Item = &'a Record> + 'a {
        self.storages
            .get(&def.kind)
            .into_iter()
            .flat_map(|s| s.rows.values())
            .filter(move |r| Self::in_table(def, r))
    }

    pub fn get(&self, def: &TableDef, sys_id: &str) -> Option<&Record> {
        let s = self.storages.get(&def.kind)?;
        let rec = s.rows.get(s.by_id.get(sys_id)?)?;
        Self::in_table(def, rec).then_some(rec)
    }

    /// Looks a record up by sys_id in any storage (for reference display values).
    pub fn get_any(&self, kind: Kind, sys_id: &str) -> Option<&Record> {
        let s = self.storages.get(&kind)?;
        s.rows.get(s.by_id.get(sys_id)?)
    }

    fn touched(&mut self, kind: Kind) {
        if kind == Kind::Choice {
            self.choice_cache = OnceLock::new();
        }
    }

    pub fn insert(&mut self, kind: Kind, rec: Record) {
        self.touched(kind);
        self.seq += 1;
        let s = self.storages.entry(kind).or_default();
        s.by_id.insert(rec["sys_id"].clone(), self.seq);
        s.rows.insert(self.seq, rec);
    }

    pub fn replace(&mut self, kind: Kind, rec: Record) {
        self.touched(kind);
        let s = self.storages.entry(kind).or_default();
        if let Some(seq) = s.by_id.get(&rec["sys_id"]) {
            s.rows.insert(*seq, rec);
        }
    }

    pub fn delete(&mut self, def: &TableDef, sys_id: &str) -> bool {
        if self.get(def, sys_id).is_none() {
            return false;
        }
        self.touched(def.kind);
        let s = self.storages.entry(def.kind).or_default();
        if let Some(seq) = s.by_id.remove(sys_id) {
            s.rows.remove(&seq);
        }
        true
    }

    pub fn next_number(&mut self, prefix: &str) -> String {
        let n = self.counters.entry(prefix.to_string()).or_insert(10001);
        let out = format!("{prefix}{:07}", *n);
        *n += 1;
        out
    }

    pub fn choice_index(&self) -> Arc<ChoiceIndex> {
        self.choice_cache
            .get_or_init(|| {
                Arc::new(ChoiceIndex::build(
                    self.storages
                        .get(&Kind::Choice)
                        .into_iter()
                        .flat_map(|s| s.rows.values()),
                ))
            })
            .clone()
    }

    pub fn add_journal(&mut self, entry: JournalEntry) {
        let list = self.journal.entry(entry.element_id.clone()).or_default();
        self.journal_order
            .push((entry.element_id.clone(), list.len()));
        list.push(entry);
    }

    /// Entries of one record, oldest first.
    pub fn journal_of(&self, sys_id: &str) -> &[JournalEntry] {
        self.journal.get(sys_id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every entry in the order written.
    pub fn journal_all(&self) -> Vec<JournalEntry> {
        self.journal_order
            .iter()
            .filter_map(|(id, i)| self.journal.get(id)?.get(*i).cloned())
            .collect()
    }
}
