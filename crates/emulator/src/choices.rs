//! The `sys_choice` rows a fresh instance ships for incident and task
//! (docs/servicenow/TABLE_API.md §3.2–§3.4, §4), and lookups over whatever sys_choice holds now.

use std::collections::{BTreeMap, HashMap};

/// (element, value, label, inactive) for table `incident`.
const INCIDENT: &[(&str, &str, &str, bool)] = &[
    ("state", "1", "New", false),
    ("state", "2", "In Progress", false),
    ("state", "3", "On Hold", false),
    ("state", "6", "Resolved", false),
    ("state", "7", "Closed", false),
    ("state", "8", "Canceled", false),
    ("incident_state", "1", "New", false),
    ("incident_state", "2", "In Progress", false),
    ("incident_state", "3", "On Hold", false),
    ("incident_state", "6", "Resolved", false),
    ("incident_state", "7", "Closed", false),
    ("incident_state", "8", "Canceled", false),
    ("urgency", "1", "1 - High", false),
    ("urgency", "2", "2 - Medium", false),
    ("urgency", "3", "3 - Low", false),
    ("impact", "1", "1 - High", false),
    ("impact", "2", "2 - Medium", false),
    ("impact", "3", "3 - Low", false),
    ("priority", "1", "1 - Critical", false),
    ("priority", "2", "2 - High", false),
    ("priority", "3", "3 - Moderate", false),
    ("priority", "4", "4 - Low", false),
    ("priority", "5", "5 - Planning", false),
    ("severity", "1", "1 - High", false),
    ("severity", "2", "2 - Medium", false),
    ("severity", "3", "3 - Low", false),
    ("hold_reason", "1", "Awaiting Caller", false),
    ("hold_reason", "3", "Awaiting Problem", false),
    ("hold_reason", "4", "Awaiting Vendor", false),
    ("hold_reason", "5", "Awaiting Change", false),
    // Current (Utah onward) resolution codes, §3.4.
    ("close_code", "Duplicate", "Duplicate", false),
    ("close_code", "Known error", "Known error", false),
    (
        "close_code",
        "No resolution provided",
        "No resolution provided",
        false,
    ),
    (
        "close_code",
        "Resolved by caller",
        "Resolved by caller",
        false,
    ),
    (
        "close_code",
        "Resolved by change",
        "Resolved by change",
        false,
    ),
    (
        "close_code",
        "Resolved by problem",
        "Resolved by problem",
        false,
    ),
    (
        "close_code",
        "Resolved by request",
        "Resolved by request",
        false,
    ),
    (
        "close_code",
        "Solution provided",
        "Solution provided",
        false,
    ),
    (
        "close_code",
        "Workaround provided",
        "Workaround provided",
        false,
    ),
    ("close_code", "User error", "User error", false),
    // Pre-Utah codes left behind, inactive, on upgraded instances.
    (
        "close_code",
        "Solved (Work Around)",
        "Solved (Work Around)",
        true,
    ),
    (
        "close_code",
        "Solved (Permanently)",
        "Solved (Permanently)",
        true,
    ),
    (
        "close_code",
        "Solved Remotely (Work Around)",
        "Solved Remotely (Work Around)",
        true,
    ),
    (
        "close_code",
        "Solved Remotely (Permanently)",
        "Solved Remotely (Permanently)",
        true,
    ),
    (
        "close_code",
        "Not Solved (Not Reproducible)",
        "Not Solved (Not Reproducible)",
        true,
    ),
    (
        "close_code",
        "Not Solved (Too Costly)",
        "Not Solved (Too Costly)",
        true,
    ),
    (
        "close_code",
        "Closed/Resolved by Caller",
        "Closed/Resolved by Caller",
        true,
    ),
    ("category", "inquiry", "Inquiry / Help", false),
    ("category", "software", "Software", false),
    ("category", "hardware", "Hardware", false),
    ("category", "network", "Network", false),
    ("category", "database", "Database", false),
    ("contact_type", "email", "Email", false),
    ("contact_type", "phone", "Phone", false),
    ("contact_type", "self-service", "Self-service", false),
    ("contact_type", "walk-in", "Walk-in", false),
];

/// (element, value, label) for table `task`, which incident overrides for `state`.
const TASK: &[(&str, &str, &str)] = &[
    ("state", "-5", "Pending"),
    ("state", "1", "Open"),
    ("state", "2", "Work in Progress"),
    ("state", "3", "Closed Complete"),
    ("state", "4", "Closed Incomplete"),
    ("state", "7", "Closed Skipped"),
    ("approval", "not requested", "Not Yet Requested"),
    ("approval", "requested", "Requested"),
    ("approval", "approved", "Approved"),
    ("approval", "rejected", "Rejected"),
    ("upon_approval", "proceed", "Proceed to Next Task"),
    (
        "upon_approval",
        "do_nothing",
        "Wait for a User to Close this task",
    ),
    ("upon_reject", "cancel", "Cancel all future Tasks"),
    ("upon_reject", "goto", "Go to a previous Task"),
    ("notify", "1", "Do Not Notify"),
    ("notify", "2", "Send Email"),
    ("escalation", "0", "Normal"),
    ("escalation", "1", "Moderate"),
    ("escalation", "2", "High"),
    ("escalation", "3", "Overdue"),
];

/// Seed rows as field maps, without sys_id and sys_* fields (the store adds them).
pub(crate) fn seed() -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut push =
        |table: &str, element: &str, value: &str, label: &str, inactive: bool, seq: usize| {
            let mut r = BTreeMap::new();
            for (k, v) in [
                ("name", table),
                ("element", element),
                ("value", value),
                ("label", label),
                ("inactive", if inactive { "true" } else { "false" }),
                ("language", "en"),
                ("dependent_value", ""),
                ("hint", ""),
            ] {
                r.insert(k.to_string(), v.to_string());
            }
            r.insert("sequence".into(), seq.to_string());
            out.push(r);
        };
    let mut seq: HashMap<&str, usize> = HashMap::new();
    for (element, value, label, inactive) in INCIDENT {
        let n = seq.entry(element).or_default();
        *n += 1;
        push("incident", element, value, label, *inactive, *n);
    }
    let mut seq: HashMap<&str, usize> = HashMap::new();
    for (element, value, label) in TASK {
        let n = seq.entry(element).or_default();
        *n += 1;
        push("task", element, value, label, false, *n);
    }
    out
}

/// Lookup over the current sys_choice rows (English only, as the emulator has no
/// per-user language).
#[derive(Default)]
pub(crate) struct ChoiceIndex {
    /// (table, element, value) → (label, inactive)
    by_value: HashMap<(String, String, String), (String, bool)>,
    /// (table, element, label) → value, for `sysparm_input_display_value` and plain
    /// `field=Label` filters.
    by_label: HashMap<(String, String, String), String>,
}

impl ChoiceIndex {
    pub fn build<'a>(rows: impl Iterator<Item = &'a BTreeMap<String, String>>) -> Self {
        let mut idx = ChoiceIndex::default();
        for r in rows {
            let get = |k: &str| r.get(k).cloned().unwrap_or_default();
            if get("language") != "en" && !get("language").is_empty() {
                continue;
            }
            let key = (get("name"), get("element"), get("value"));
            let inactive = get("inactive") == "true";
            idx.by_label
                .entry((key.0.clone(), key.1.clone(), get("label")))
                .or_insert_with(|| key.2.clone());
            idx.by_value.insert(key, (get("label"), inactive));
        }
        idx
    }

    fn find(&self, tables: &[&str], element: &str, value: &str) -> Option<&(String, bool)> {
        tables.iter().find_map(|t| {
            self.by_value
                .get(&(t.to_string(), element.to_string(), value.to_string()))
        })
    }

    /// The label for a stored value; inactive choices still have a label.
    pub fn label(&self, tables: &[&str], element: &str, value: &str) -> Option<&str> {
        self.find(tables, element, value).map(|(l, _)| l.as_str())
    }

    pub fn is_active_choice(&self, tables: &[&str], element: &str, value: &str) -> bool {
        matches!(self.find(tables, element, value), Some((_, false)))
    }

    pub fn value_for_label(&self, tables: &[&str], element: &str, label: &str) -> Option<&str> {
        tables.iter().find_map(|t| {
            self.by_label
                .get(&(t.to_string(), element.to_string(), label.to_string()))
                .map(|s| s.as_str())
        })
    }
}
