//! Routing rules (the seed's "advanced routing"): per team, in order, a rule whose
//! `when` matches an incident forwards it to integrations or keeps it out of them.
//! Pure: the incident service feeds the decision into the links it creates.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use regex::{Regex, RegexBuilder};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::model::{Incident, Severity};
use crate::validate::{check_field, check_text, limits, FieldError};

/// Compiled regexes stay small, so a rule cannot make every incident change slow.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
pub const MATCH_VALUE_MAX_CHARS: usize = 1000;

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

/// Every condition given must hold; a rule without conditions matches every incident.
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
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Actions {
    #[serde(default)]
    pub forward_to: Vec<Uuid>,
    #[serde(default)]
    pub exclude_from: Vec<Uuid>,
    /// Later rules are not evaluated once this one matched.
    #[serde(default)]
    pub stop: bool,
    /// ServiceNow fields this rule sets (`assignment_group: "Network L2"`): sent on
    /// create, and on change for fields an integration maps `always`. A field's
    /// mapping says whether the value is a display value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_fields: BTreeMap<String, String>,
}

/// `"v"` is shorthand for `{"equals": "v"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeMatcher {
    Equals(String),
    Contains(String),
    Regex(String),
}

impl AttributeMatcher {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            AttributeMatcher::Equals(v) => ("equals", v),
            AttributeMatcher::Contains(v) => ("contains", v),
            AttributeMatcher::Regex(v) => ("regex", v),
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            AttributeMatcher::Equals(v) => value == v,
            AttributeMatcher::Contains(v) => value.contains(v.as_str()),
            // Validated when the rule was saved; a pattern that no longer compiles
            // (a newer size limit) matches nothing rather than everything.
            AttributeMatcher::Regex(pattern) => compile(pattern).is_ok_and(|re| re.is_match(value)),
        }
    }
}

impl Serialize for AttributeMatcher {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (op, value) = self.parts();
        BTreeMap::from([(op, value)]).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AttributeMatcher {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Plain(String),
            Op(BTreeMap<String, String>),
        }
        let expected = "a string or one of {\"equals\"|\"contains\"|\"regex\": string}";
        let raw = Raw::deserialize(deserializer)
            .map_err(|_| D::Error::custom(format!("expected {expected}")))?;
        let map = match raw {
            Raw::Plain(value) => return Ok(AttributeMatcher::Equals(value)),
            Raw::Op(map) => map,
        };
        let mut entries = map.into_iter();
        match (entries.next(), entries.next()) {
            (Some((op, value)), None) => match op.as_str() {
                "equals" => Ok(AttributeMatcher::Equals(value)),
                "contains" => Ok(AttributeMatcher::Contains(value)),
                "regex" => Ok(AttributeMatcher::Regex(value)),
                other => Err(D::Error::custom(format!(
                    "unknown matcher `{other}`; expected {expected}"
                ))),
            },
            _ => Err(D::Error::custom(format!("expected {expected}"))),
        }
    }
}

// Hand-written like its serde impls: a plain string or a one-key operator object.
impl utoipa::PartialSchema for AttributeMatcher {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let op = |name: &str, description: &str| {
            ObjectBuilder::new()
                .property(name, ObjectBuilder::new().schema_type(Type::String))
                .required(name)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                .description(Some(description))
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("shorthand for {\"equals\": value}")),
            )
            .item(op("equals", "the attribute is exactly this value"))
            .item(op("contains", "the attribute contains this substring"))
            .item(op("regex", "the attribute matches this regular expression"))
            .into()
    }
}

impl utoipa::ToSchema for AttributeMatcher {}

fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

impl Conditions {
    pub fn matches(&self, incident: &Incident) -> bool {
        if let Some(severities) = &self.severity {
            if !severities.contains(&incident.severity) {
                return false;
            }
        }
        if let Some(needle) = &self.title_contains {
            if !incident
                .title
                .to_lowercase()
                .contains(&needle.to_lowercase())
            {
                return false;
            }
        }
        self.attributes.iter().all(|(key, matcher)| {
            incident
                .attributes
                .get(key)
                .is_some_and(|value| matcher.matches(value))
        })
    }
}

/// One integration a rule decided about, and the rule that did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleAction {
    pub integration_id: Uuid,
    pub rule_id: Uuid,
    pub rule_name: String,
}

/// What the rules decided for one incident. An integration appears in at most one list:
/// when rules disagree, the earlier rule wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub forwards: Vec<RuleAction>,
    pub exclusions: Vec<RuleAction>,
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

/// Evaluates the rules of the incident's team in order. Rules of other teams are
/// ignored, so callers may pass every rule they hold.
pub fn evaluate(rules: &[RoutingRule], incident: &Incident) -> Decision {
    let mut ordered: Vec<&RoutingRule> = rules
        .iter()
        .filter(|r| r.team_id == incident.team_id)
        .collect();
    ordered.sort_by_key(|r| (r.position, r.created_at, r.id));
    let mut decision = Decision::default();
    for rule in ordered {
        if !rule.when.matches(incident) {
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
        for &id in &rule.then.forward_to {
            if !decision.decided(id) {
                decision.forwards.push(action(id));
            }
        }
        if rule.then.stop {
            break;
        }
    }
    decision
}

/// The fields the matching rules of the incident's team set, in rule order: an earlier
/// rule's value for a field wins, and `stop` ends the evaluation as it does for forwards.
pub fn set_fields(rules: &[RoutingRule], incident: &Incident) -> BTreeMap<String, String> {
    let mut ordered: Vec<&RoutingRule> = rules
        .iter()
        .filter(|r| r.team_id == incident.team_id)
        .collect();
    ordered.sort_by_key(|r| (r.position, r.created_at, r.id));
    let mut fields = BTreeMap::new();
    for rule in ordered {
        if !rule.when.matches(incident) {
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

/// Problems with a rule's conditions, named by their JSON path. Which integrations the
/// actions may name depends on the store, so the caller checks those.
pub fn validate_conditions(when: &Conditions) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if when.severity.as_ref().is_some_and(Vec::is_empty) {
        errors.push(FieldError::new(
            "when.severity",
            "must list at least one severity; leave it out to match any",
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
            if let Err(e) = compile(pattern) {
                errors.push(FieldError::new(
                    format!("{field}.regex"),
                    format!("not a valid regular expression: {e}"),
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attributes, IncidentStatus};

    fn incident(team: Uuid, severity: Severity, attrs: &[(&str, &str)]) -> Incident {
        let now = Utc::now();
        Incident {
            id: Uuid::now_v7(),
            team_id: team,
            title: "Disk FULL on db-1".into(),
            description: String::new(),
            severity,
            status: IncidentStatus::Open,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Attributes>(),
            resolve_comment: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn rule(team: Uuid, position: i64, when: Conditions, then: Actions) -> RoutingRule {
        let now = Utc::now();
        RoutingRule {
            id: Uuid::now_v7(),
            team_id: team,
            name: format!("rule {position}"),
            position,
            when,
            then,
            created_at: now,
            updated_at: now,
        }
    }

    fn forward(ids: &[Uuid]) -> Actions {
        Actions {
            forward_to: ids.to_vec(),
            ..Actions::default()
        }
    }

    fn exclude(ids: &[Uuid]) -> Actions {
        Actions {
            exclude_from: ids.to_vec(),
            ..Actions::default()
        }
    }

    fn matcher(json: &str) -> AttributeMatcher {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn matchers_parse_from_plain_strings_and_operator_objects() {
        assert_eq!(matcher(r#""db""#), AttributeMatcher::Equals("db".into()));
        assert_eq!(
            matcher(r#"{"contains":"d"}"#),
            AttributeMatcher::Contains("d".into())
        );
        assert_eq!(
            matcher(r#"{"regex":"^d"}"#),
            AttributeMatcher::Regex("^d".into())
        );
        for bad in [
            r#"{"like":"d"}"#,
            r#"{"equals":"a","contains":"b"}"#,
            r#"{}"#,
            "3",
            "null",
        ] {
            assert!(
                serde_json::from_str::<AttributeMatcher>(bad).is_err(),
                "{bad}"
            );
        }
        let json = serde_json::to_string(&AttributeMatcher::Regex("x".into())).unwrap();
        assert_eq!(json, r#"{"regex":"x"}"#);
    }

    #[test]
    fn every_condition_must_hold() {
        let team = Uuid::now_v7();
        let i = incident(
            team,
            Severity::Critical,
            &[("service", "db"), ("env", "prod-eu")],
        );
        let when = |json: &str| serde_json::from_str::<Conditions>(json).unwrap();
        assert!(when("{}").matches(&i));
        assert!(when(r#"{"severity":["critical","warning"]}"#).matches(&i));
        assert!(!when(r#"{"severity":["minor"]}"#).matches(&i));
        assert!(when(r#"{"attributes":{"service":"db"}}"#).matches(&i));
        assert!(!when(r#"{"attributes":{"service":"d"}}"#).matches(&i));
        assert!(when(r#"{"attributes":{"env":{"contains":"prod"}}}"#).matches(&i));
        assert!(when(r#"{"attributes":{"env":{"regex":"^prod-(eu|us)$"}}}"#).matches(&i));
        assert!(!when(r#"{"attributes":{"env":{"regex":"^us"}}}"#).matches(&i));
        assert!(!when(r#"{"attributes":{"missing":{"regex":".*"}}}"#).matches(&i));
        assert!(when(r#"{"title_contains":"disk full"}"#).matches(&i));
        assert!(!when(r#"{"title_contains":"disk full","severity":["warning"]}"#).matches(&i));
    }

    #[test]
    fn all_matching_rules_apply_and_the_earlier_rule_wins_a_conflict() {
        let team = Uuid::now_v7();
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let critical = Conditions {
            severity: Some(vec![Severity::Critical]),
            ..Conditions::default()
        };
        let rules = vec![
            rule(team, 2, Conditions::default(), forward(&[b, c])),
            rule(team, 1, critical.clone(), exclude(&[b])),
            rule(team, 3, critical, forward(&[a])),
            rule(Uuid::now_v7(), 0, Conditions::default(), exclude(&[a])),
        ];
        let d = evaluate(&rules, &incident(team, Severity::Critical, &[]));
        let ids = |actions: &[RuleAction]| -> Vec<Uuid> {
            actions.iter().map(|a| a.integration_id).collect()
        };
        assert_eq!(ids(&d.exclusions), vec![b]);
        assert_eq!(ids(&d.forwards), vec![c, a]);
        assert_eq!(d.forwards[0].rule_name, "rule 2");

        let d = evaluate(&rules, &incident(team, Severity::Minor, &[]));
        assert!(d.exclusions.is_empty());
        assert_eq!(ids(&d.forwards), vec![b, c]);
    }

    #[test]
    fn stop_ends_the_evaluation() {
        let team = Uuid::now_v7();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut first = forward(&[a]);
        first.stop = true;
        let rules = vec![
            rule(team, 1, Conditions::default(), first),
            rule(team, 2, Conditions::default(), forward(&[b])),
        ];
        let d = evaluate(&rules, &incident(team, Severity::Minor, &[]));
        assert_eq!(d.forwards.len(), 1);
        assert_eq!(d.forwards[0].integration_id, a);
    }

    #[test]
    fn set_fields_route_criticals_and_minors_to_different_groups() {
        let team = Uuid::now_v7();
        let sets = |pairs: &[(&str, &str)]| Actions {
            set_fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Actions::default()
        };
        let critical = Conditions {
            severity: Some(vec![Severity::Critical]),
            ..Conditions::default()
        };
        let rules = vec![
            rule(team, 1, critical, sets(&[("assignment_group", "Database")])),
            rule(
                team,
                2,
                Conditions::default(),
                sets(&[
                    ("assignment_group", "Service Desk"),
                    ("category", "software"),
                ]),
            ),
        ];
        let of = |severity| set_fields(&rules, &incident(team, severity, &[]));
        assert_eq!(of(Severity::Critical)["assignment_group"], "Database");
        assert_eq!(of(Severity::Critical)["category"], "software");
        assert_eq!(of(Severity::Minor)["assignment_group"], "Service Desk");
        let json: Actions =
            serde_json::from_str(r#"{"set_fields": {"assignment_group": "Network L2"}}"#).unwrap();
        assert_eq!(json.set_fields["assignment_group"], "Network L2");
        let bad = sets(&[("Bad", "x"), ("ok", "a\u{0}b")]);
        let fields: Vec<String> = validate_set_fields(&bad)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, vec!["then.set_fields", "then.set_fields.ok"]);
    }

    #[test]
    fn validation_names_the_bad_field() {
        let when: Conditions = serde_json::from_str(
            r#"{"severity":[],"title_contains":"","attributes":{"env":{"regex":"(unclosed"}}}"#,
        )
        .unwrap();
        let fields: Vec<String> = validate_conditions(&when)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            vec![
                "when.severity",
                "when.title_contains",
                "when.attributes.env.regex"
            ]
        );
    }
}
