//! Table definitions: which tables exist, their fields, types, labels and lengths
//! (docs/servicenow/TABLE_API.md §3.1 for incident, §4 for sys_choice).

/// How a field's value is stored and rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Text,
    Integer,
    /// Integer with a choice list in sys_choice.
    IntChoice,
    /// String with a choice list in sys_choice.
    TextChoice,
    Boolean,
    DateTime,
    /// Reference to a record of the named table; raw value is a sys_id.
    Reference(&'static str),
    /// Write-only journal input (`work_notes`, `comments`).
    Journal,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub ty: Ty,
    /// Maximum length in characters; longer input is truncated, as an instance does.
    pub max: Option<usize>,
}

const fn f(name: &'static str, label: &'static str, ty: Ty, max: Option<usize>) -> Field {
    Field {
        name,
        label,
        ty,
        max,
    }
}

use Ty::*;

const SYS_FIELDS: &[Field] = &[
    f("sys_id", "Sys ID", Text, Some(32)),
    f("sys_created_on", "Created", DateTime, None),
    f("sys_created_by", "Created by", Text, Some(40)),
    f("sys_updated_on", "Updated", DateTime, None),
    f("sys_updated_by", "Updated by", Text, Some(40)),
    f("sys_mod_count", "Updates", Integer, None),
];

pub(crate) const INCIDENT_FIELDS: &[Field] = &[
    f("number", "Number", Text, Some(40)),
    f("task_effective_number", "Effective number", Text, Some(40)),
    f("short_description", "Short description", Text, Some(160)),
    f("description", "Description", Text, Some(4000)),
    f("state", "State", IntChoice, None),
    f("incident_state", "Incident state", IntChoice, None),
    f("urgency", "Urgency", IntChoice, None),
    f("impact", "Impact", IntChoice, None),
    f("priority", "Priority", IntChoice, None),
    f("severity", "Severity", IntChoice, None),
    f("hold_reason", "On hold reason", IntChoice, None),
    f("category", "Category", TextChoice, Some(40)),
    f("subcategory", "Subcategory", TextChoice, Some(40)),
    f("close_code", "Resolution code", TextChoice, Some(40)),
    f("close_notes", "Resolution notes", Text, Some(4000)),
    f("active", "Active", Boolean, None),
    f("caller_id", "Caller", Reference("sys_user"), None),
    f("assigned_to", "Assigned to", Reference("sys_user"), None),
    f(
        "assignment_group",
        "Assignment group",
        Reference("sys_user_group"),
        None,
    ),
    f("opened_by", "Opened by", Reference("sys_user"), None),
    f("opened_at", "Opened", DateTime, None),
    f("resolved_by", "Resolved by", Reference("sys_user"), None),
    f("resolved_at", "Resolved", DateTime, None),
    f("closed_by", "Closed by", Reference("sys_user"), None),
    f("closed_at", "Closed", DateTime, None),
    f(
        "reopened_by",
        "Last reopened by",
        Reference("sys_user"),
        None,
    ),
    f("reopened_time", "Last reopened at", DateTime, None),
    f("reopen_count", "Reopen count", Integer, None),
    f("reassignment_count", "Reassignment count", Integer, None),
    f("child_incidents", "Child Incidents", Integer, None),
    f(
        "parent_incident",
        "Parent Incident",
        Reference("incident"),
        None,
    ),
    f("correlation_id", "Correlation ID", Text, Some(100)),
    f(
        "correlation_display",
        "Correlation display",
        Text,
        Some(100),
    ),
    f("contact_type", "Channel", TextChoice, Some(40)),
    f("cmdb_ci", "Configuration item", Reference("cmdb_ci"), None),
    f(
        "business_service",
        "Service",
        Reference("cmdb_ci_service"),
        None,
    ),
    f("company", "Company", Reference("core_company"), None),
    f("location", "Location", Reference("cmn_location"), None),
    f("notify", "Notify", IntChoice, None),
    f("escalation", "Escalation", IntChoice, None),
    f("approval", "Approval", TextChoice, Some(40)),
    f("upon_approval", "Upon approval", TextChoice, Some(40)),
    f("upon_reject", "Upon reject", TextChoice, Some(40)),
    f("made_sla", "Made SLA", Boolean, None),
    f("knowledge", "Knowledge", Boolean, None),
    f("work_notes", "Work notes", Journal, None),
    f("comments", "Additional comments", Journal, None),
    f("sys_class_name", "Task type", Text, Some(80)),
    f("sys_domain", "Domain", Reference("sys_user_group"), None),
    f("sys_domain_path", "Domain Path", Text, Some(255)),
];

pub(crate) const CHOICE_FIELDS: &[Field] = &[
    f("name", "Table", Text, Some(80)),
    f("element", "Element", Text, Some(80)),
    f("value", "Value", Text, Some(40)),
    f("label", "Label", Text, Some(255)),
    f("sequence", "Sequence", Integer, None),
    f("inactive", "Inactive", Boolean, None),
    f("language", "Language", Text, Some(40)),
    f("dependent_value", "Dependent value", Text, Some(100)),
    f("hint", "Hint", Text, Some(255)),
];

/// `sys_user_group` and `cmdb_ci`: reference targets, found by `name` (their display
/// field) when a write gives a display value.
pub(crate) const NAMED_FIELDS: &[Field] = &[
    f("name", "Name", Text, Some(255)),
    f("active", "Active", Boolean, None),
];

/// `sys_journal_field`: one row per journal write, as instances keep them; read-only.
pub(crate) const JOURNAL_FIELD_FIELDS: &[Field] = &[
    f("name", "Table name", Text, Some(80)),
    f("element", "Element", Text, Some(40)),
    f("element_id", "Element ID", Text, Some(32)),
    f("value", "Value", Text, None),
];

pub(crate) const USER_FIELDS: &[Field] = &[
    f("user_name", "User ID", Text, Some(40)),
    f("name", "Name", Text, Some(151)),
    f("active", "Active", Boolean, None),
    f(
        "web_service_access_only",
        "Web service access only",
        Boolean,
        None,
    ),
];

/// The kind of a table decides its fields, ACLs and business rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `incident` or a table extending it.
    Incident,
    Choice,
    User,
    /// `sys_user_group`.
    Group,
    /// `cmdb_ci`.
    Ci,
    /// `sys_journal_field`, written by the platform only.
    JournalField,
}

#[derive(Clone, Debug)]
pub(crate) struct TableDef {
    pub name: String,
    pub kind: Kind,
    /// Number prefix (`INC`) for task tables.
    pub prefix: String,
}

impl TableDef {
    pub fn fields(&self) -> impl Iterator<Item = &'static Field> {
        let own = match self.kind {
            Kind::Incident => INCIDENT_FIELDS,
            Kind::Choice => CHOICE_FIELDS,
            Kind::User => USER_FIELDS,
            Kind::Group | Kind::Ci => NAMED_FIELDS,
            Kind::JournalField => JOURNAL_FIELD_FIELDS,
        };
        SYS_FIELDS.iter().chain(own.iter())
    }

    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields().find(|f| f.name == name)
    }

    pub fn has_field(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    /// Tables whose sys_choice rows apply, most specific first: a child table's own
    /// choice list wins over incident's, which wins over task's.
    pub fn choice_tables(&self) -> Vec<&str> {
        match self.kind {
            Kind::Incident if self.name != "incident" => vec![&self.name, "incident", "task"],
            Kind::Incident => vec!["incident", "task"],
            _ => vec![&self.name],
        }
    }
}

/// Parses an `extra_tables` entry: `name` or `name:PREFIX`.
pub(crate) fn parse_extra_table(spec: &str) -> Option<TableDef> {
    let (name, prefix) = match spec.split_once(':') {
        Some((n, p)) => (n.trim(), p.trim()),
        None => (spec.trim(), "INC"),
    };
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !prefix.is_empty()
        && prefix.chars().all(|c| c.is_ascii_alphanumeric());
    valid.then(|| TableDef {
        name: name.to_string(),
        kind: Kind::Incident,
        prefix: prefix.to_string(),
    })
}
