//! Routing rules (the seed's "advanced routing", grown to the reference product's): per
//! team, top to bottom, a rule whose `when` matches an incident acts on it — forwards it
//! to integrations or keeps it out of them, changes its severity or attributes, discards
//! the alert that would open it, holds its links for a delay — and `stop` ends the
//! evaluation. A rule fires at most once per incident: the caller passes the rules that
//! fired already, and their actions are not repeated (their exclusions and `stop` still
//! hold while they match, since those describe the incident, not an event).
//! Pure: the incident service feeds the decision into the links and history it writes.

mod matcher;
mod window;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use matcher::AttributeMatcher;
pub use window::{Day, TimeWindow};

use crate::model::{Incident, IncidentStatus, Severity};
use crate::validate::{check_field, check_text, limits, FieldError};

pub const MATCH_VALUE_MAX_CHARS: usize = 1000;
/// A day: longer holds are better served by the incident never reaching the rule.
pub const DELAY_MAX_SECONDS: u32 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoutingRule {
    pub id: Uuid,
    pub team_id: Uuid,
    pub name: String,
    /// Rules of a team are evaluated by ascending position (then age).
    pub position: i64,
    pub when: Conditions,
    pub then: Actions,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How the conditions given combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    #[default]
    All,
    Any,
}

impl Match {
    fn is_all(&self) -> bool {
        *self == Match::All
    }
}

/// The conditions given must all hold (`match: "any"`: one of them); a rule without
/// conditions matches every incident. `time_window` is not one of them: outside its
/// window a rule does nothing, whatever `match` says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Vec<Severity>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, AttributeMatcher>,
    /// Case-insensitive substring of the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Vec<IncidentStatus>>,
    /// The alert sources the incident came from; an incident opened by a person or
    /// through the API has no source and matches none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ids: Option<Vec<Uuid>>,
    #[serde(default, rename = "match", skip_serializing_if = "Match::is_all")]
    pub combine: Match,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Actions {
    #[serde(default)]
    pub forward_to: Vec<Uuid>,
    #[serde(default)]
    pub exclude_from: Vec<Uuid>,
    /// Later rules are not evaluated once this one matched (false: continue).
    #[serde(default)]
    pub stop: bool,
    /// ServiceNow fields this rule sets (`assignment_group: "Network L2"`): sent on
    /// create, and on change for fields an integration maps `always`. A field's
    /// mapping says whether the value is a display value. Unlike the other actions
    /// these describe the record while the rule matches, so they are evaluated at
    /// each sync rather than once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_fields: BTreeMap<String, String>,
    /// The incident's severity becomes this; later rules see the new severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_severity: Option<Severity>,
    /// Attributes set (added or replaced) on the incident; later rules see them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_attributes: BTreeMap<String, String>,
    /// An alert matching this rule opens no incident (answered, counted, and in the
    /// routing history). Only alerts are discarded: a person opening an incident meant it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discard: bool,
    /// Every link the incident gets while this rule fires (its forwards, and `always`
    /// integrations) waits this long; resolved by then, nothing reaches ServiceNow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<u32>,
}

impl Actions {
    /// Whether the rule does anything at all when it matches.
    pub fn is_empty(&self) -> bool {
        self.forward_to.is_empty()
            && self.exclude_from.is_empty()
            && !self.stop
            && self.set_fields.is_empty()
            && self.set_severity.is_none()
            && self.set_attributes.is_empty()
            && !self.discard
            && self.delay_seconds.is_none()
    }
}

impl Conditions {
    /// Whether the rule applies to `incident` at `now`.
    pub fn matches(&self, incident: &Incident, now: DateTime<Utc>) -> bool {
        if let Some(window) = &self.time_window {
            if !window.contains(now) {
                return false;
            }
        }
        let mut checks: Vec<Box<dyn Fn() -> bool + '_>> = Vec::new();
        if let Some(severities) = &self.severity {
            checks.push(Box::new(move || severities.contains(&incident.severity)));
        }
        if let Some(statuses) = &self.status {
            checks.push(Box::new(move || statuses.contains(&incident.status)));
        }
        if let Some(sources) = &self.source_ids {
            checks.push(Box::new(move || {
                incident.source_id.is_some_and(|s| sources.contains(&s))
            }));
        }
        if let Some(needle) = &self.title_contains {
            checks.push(Box::new(move || {
                incident
                    .title
                    .to_lowercase()
                    .contains(&needle.to_lowercase())
            }));
        }
        for (key, matcher) in &self.attributes {
            checks.push(Box::new(move || {
                matcher.matches(incident.attributes.get(key).map(String::as_str))
            }));
        }
        if checks.is_empty() {
            return true;
        }
        match self.combine {
            Match::All => checks.iter().all(|check| check()),
            Match::Any => checks.iter().any(|check| check()),
        }
    }
}

/// A rule, as the decision names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    pub rule_id: Uuid,
    pub rule_name: String,
}

impl RuleRef {
    fn of(rule: &RoutingRule) -> Self {
        RuleRef {
            rule_id: rule.id,
            rule_name: rule.name.clone(),
        }
    }
}

/// One integration a rule decided about, and the rule that did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleAction {
    pub integration_id: Uuid,
    pub rule_id: Uuid,
    pub rule_name: String,
}

/// Something a firing rule changed on the incident, for its timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Severity { from: Severity, to: Severity },
    Attribute { key: String, value: String },
}

/// What the rules decided for one incident. An integration appears in at most one list:
/// when rules disagree, the earlier rule wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub forwards: Vec<RuleAction>,
    pub exclusions: Vec<RuleAction>,
    /// The incident after the firing rules' `set_severity` and `set_attributes`.
    pub incident: Incident,
    /// Rules that fired now, for the first time for this incident, in order.
    pub fired: Vec<RuleRef>,
    /// What each firing rule changed on the incident, with the rule.
    pub edits: Vec<(RuleRef, Edit)>,
    /// The rule that discards the alert: no incident is opened.
    pub discard: Option<RuleRef>,
    /// The longest delay of the firing rules: the links made now wait that long.
    pub hold: Option<(RuleRef, u32)>,
}

impl Decision {
    pub fn excluded_ids(&self) -> Vec<Uuid> {
        self.exclusions.iter().map(|a| a.integration_id).collect()
    }

    pub fn is_excluded(&self, integration_id: Uuid) -> bool {
        self.exclusions
            .iter()
            .any(|a| a.integration_id == integration_id)
    }

    fn decided(&self, integration_id: Uuid) -> bool {
        self.is_excluded(integration_id)
            || self
                .forwards
                .iter()
                .any(|a| a.integration_id == integration_id)
    }
}

/// The team's rules in evaluation order; rules of other teams are left out, so callers
/// may pass every rule they hold.
fn ordered(rules: &[RoutingRule], team_id: Uuid) -> Vec<&RoutingRule> {
    let mut ordered: Vec<&RoutingRule> = rules.iter().filter(|r| r.team_id == team_id).collect();
    ordered.sort_by_key(|r| (r.position, r.created_at, r.id));
    ordered
}

/// Evaluates the rules of the team of an incident about to open, at `now`; an alert's
/// incident may be discarded.
pub fn evaluate_open(rules: &[RoutingRule], incident: &Incident, now: DateTime<Utc>) -> Decision {
    run(rules, incident, now, &[], true)
}

/// Evaluates the rules of the incident's team top to bottom at `now`, after a change.
/// `fired` are the rules that fired for this incident before: they do not act again. An
/// incident that exists is not discarded: a discarding rule matching it does nothing.
pub fn evaluate(
    rules: &[RoutingRule],
    incident: &Incident,
    now: DateTime<Utc>,
    fired: &[Uuid],
) -> Decision {
    run(rules, incident, now, fired, false)
}

/// Each rule sees the incident as the rules above it left it.
fn run(
    rules: &[RoutingRule],
    incident: &Incident,
    now: DateTime<Utc>,
    fired: &[Uuid],
    opening: bool,
) -> Decision {
    let mut decision = Decision {
        forwards: Vec::new(),
        exclusions: Vec::new(),
        incident: incident.clone(),
        fired: Vec::new(),
        edits: Vec::new(),
        discard: None,
        hold: None,
    };
    for rule in ordered(rules, incident.team_id) {
        if !rule.when.matches(&decision.incident, now) {
            continue;
        }
        let action = |integration_id| RuleAction {
            integration_id,
            rule_id: rule.id,
            rule_name: rule.name.clone(),
        };
        // Exclusions first: a rule that both forwards and excludes the same integration
        // is contradictory, and keeping an incident out is the safe reading.
        for &id in &rule.then.exclude_from {
            if !decision.decided(id) {
                decision.exclusions.push(action(id));
            }
        }
        let first_time = !fired.contains(&rule.id);
        if first_time {
            decision.fired.push(RuleRef::of(rule));
            fire(rule, opening, &mut decision);
            if decision.discard.is_some() {
                break;
            }
        }
        if rule.then.stop {
            break;
        }
    }
    decision
}

/// A rule's one-time actions.
fn fire(rule: &RoutingRule, opening: bool, decision: &mut Decision) {
    let then = &rule.then;
    if then.discard && opening && decision.incident.source_id.is_some() {
        decision.discard = Some(RuleRef::of(rule));
        return;
    }
    for &id in &then.forward_to {
        if !decision.decided(id) {
            decision.forwards.push(RuleAction {
                integration_id: id,
                rule_id: rule.id,
                rule_name: rule.name.clone(),
            });
        }
    }
    if let Some(to) = then.set_severity {
        let from = decision.incident.severity;
        if from != to {
            decision.incident.severity = to;
            decision
                .edits
                .push((RuleRef::of(rule), Edit::Severity { from, to }));
        }
    }
    for (key, value) in &then.set_attributes {
        if decision.incident.attributes.get(key) != Some(value) {
            decision
                .incident
                .attributes
                .insert(key.clone(), value.clone());
            decision.edits.push((
                RuleRef::of(rule),
                Edit::Attribute {
                    key: key.clone(),
                    value: value.clone(),
                },
            ));
        }
    }
    if let Some(delay) = then.delay_seconds {
        if decision.hold.as_ref().is_none_or(|(_, d)| delay > *d) {
            decision.hold = Some((RuleRef::of(rule), delay));
        }
    }
}

/// What the rules that fired for an incident before make of an alert's update of it:
/// the severity and attributes they set stay set, so the next repeat of the alert does
/// not undo them (the rules do not fire again, their edit simply sticks).
pub fn keep_rule_edits(
    rules: &[RoutingRule],
    team_id: Uuid,
    fired: &[Uuid],
    severity: &mut Severity,
    attributes: &mut Option<crate::model::Attributes>,
) {
    for rule in ordered(rules, team_id) {
        if !fired.contains(&rule.id) {
            continue;
        }
        if let Some(set) = rule.then.set_severity {
            *severity = set;
        }
        if let Some(attributes) = attributes.as_mut() {
            for (key, value) in &rule.then.set_attributes {
                attributes.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The fields the matching rules of the incident's team set at `now`, in rule order: an
/// earlier rule's value for a field wins, and `stop` ends the evaluation as it does for
/// forwards.
pub fn set_fields(
    rules: &[RoutingRule],
    incident: &Incident,
    now: DateTime<Utc>,
) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    for rule in ordered(rules, incident.team_id) {
        if !rule.when.matches(incident, now) {
            continue;
        }
        for (field, value) in &rule.then.set_fields {
            fields.entry(field.clone()).or_insert_with(|| value.clone());
        }
        if rule.then.stop {
            break;
        }
    }
    fields
}

/// Longest value a rule may set, in characters.
pub const SET_FIELD_VALUE_MAX_CHARS: usize = 4000;

/// Problems with a rule's `then.set_fields`, named by their JSON path.
pub fn validate_set_fields(then: &Actions) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (field, value) in &then.set_fields {
        if !crate::validate::is_servicenow_name(field) {
            errors.push(FieldError::new(
                "then.set_fields",
                "field names must be ServiceNow names (lowercase letters, digits and _)",
            ));
        } else if let Err(e) = check_field(
            &format!("then.set_fields.{field}"),
            value,
            SET_FIELD_VALUE_MAX_CHARS,
        ) {
            errors.push(e);
        }
    }
    errors
}

/// Problems with a rule's actions that need no store, named by their JSON path.
pub fn validate_actions(then: &Actions) -> Vec<FieldError> {
    let mut errors = validate_set_fields(then);
    for (key, value) in &then.set_attributes {
        if key.is_empty() {
            errors.push(FieldError::new(
                "then.set_attributes",
                "attribute names must not be empty",
            ));
        } else if let Err(message) = check_text(key, limits::ATTRIBUTE_NAME) {
            errors.push(FieldError::new(
                "then.set_attributes",
                format!("an attribute name {message}"),
            ));
        } else if let Err(e) = check_field(
            &format!("then.set_attributes.{key}"),
            value,
            limits::ATTRIBUTE_VALUE,
        ) {
            errors.push(e);
        }
    }
    if let Some(delay) = then.delay_seconds {
        if delay == 0 || delay > DELAY_MAX_SECONDS {
            errors.push(FieldError::new(
                "then.delay_seconds",
                format!("must be between 1 and {DELAY_MAX_SECONDS} seconds; leave it out to send at once"),
            ));
        }
    }
    if then.discard
        && (!then.forward_to.is_empty()
            || then.delay_seconds.is_some()
            || then.set_severity.is_some()
            || !then.set_attributes.is_empty())
    {
        errors.push(FieldError::new(
            "then.discard",
            "a rule that discards the alert cannot also forward, delay or change it",
        ));
    }
    errors
}

/// Problems with a rule's conditions, named by their JSON path. Which integrations and
/// sources the rule may name depends on the store, so the caller checks those.
pub fn validate_conditions(when: &Conditions) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if when.severity.as_ref().is_some_and(Vec::is_empty) {
        errors.push(FieldError::new(
            "when.severity",
            "must list at least one severity; leave it out to match any",
        ));
    }
    if when.status.as_ref().is_some_and(Vec::is_empty) {
        errors.push(FieldError::new(
            "when.status",
            "must list at least one status; leave it out to match any",
        ));
    }
    if when.source_ids.as_ref().is_some_and(Vec::is_empty) {
        errors.push(FieldError::new(
            "when.source_ids",
            "must list at least one source; leave it out to match any",
        ));
    }
    if let Some(title) = &when.title_contains {
        if title.is_empty() {
            errors.push(FieldError::new("when.title_contains", "must not be empty"));
        } else if let Err(e) = check_field("when.title_contains", title, MATCH_VALUE_MAX_CHARS) {
            errors.push(e);
        }
    }
    for (key, matcher) in &when.attributes {
        let (op, value) = matcher.parts();
        let field = format!("when.attributes.{key}");
        if key.is_empty() {
            errors.push(FieldError::new(
                "when.attributes",
                "attribute names must not be empty",
            ));
        } else if let Err(message) = check_text(key, limits::ATTRIBUTE_NAME) {
            // Not named in the path: the name may be the very text that is wrong.
            errors.push(FieldError::new(
                "when.attributes",
                format!("an attribute name {message}"),
            ));
        } else if let Err(e) = check_field(&format!("{field}.{op}"), value, MATCH_VALUE_MAX_CHARS) {
            errors.push(e);
        } else if let AttributeMatcher::Regex(pattern) = matcher {
            if let Err(e) = matcher::compile(pattern) {
                errors.push(FieldError::new(
                    format!("{field}.regex"),
                    format!("not a valid regular expression: {e}"),
                ));
            }
        }
    }
    if let Some(window) = &when.time_window {
        errors.extend(window.validate());
    }
    errors
}

#[cfg(test)]
mod tests;
