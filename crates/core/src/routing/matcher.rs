//! How one attribute condition compares an incident's attribute with the rule's value.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Compiled regexes stay small, so a rule cannot make every incident change slow.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// `"v"` is shorthand for `{"equals": "v"}`. The ordering operators compare numerically
/// when both sides parse as numbers (`"10" > "9"`), else as text, character by character
/// (`"b" > "a"`, and `"10" < "9"` if either side is no number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeMatcher {
    Equals(String),
    NotEquals(String),
    Contains(String),
    NotContains(String),
    Regex(String),
    Gt(String),
    Gte(String),
    Lt(String),
    Lte(String),
}

const EXPECTED: &str = "a string or one of {\"equals\"|\"not_equals\"|\"contains\"|\
\"not_contains\"|\"regex\"|\"gt\"|\"gte\"|\"lt\"|\"lte\": string}";

impl AttributeMatcher {
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            AttributeMatcher::Equals(v) => ("equals", v),
            AttributeMatcher::NotEquals(v) => ("not_equals", v),
            AttributeMatcher::Contains(v) => ("contains", v),
            AttributeMatcher::NotContains(v) => ("not_contains", v),
            AttributeMatcher::Regex(v) => ("regex", v),
            AttributeMatcher::Gt(v) => ("gt", v),
            AttributeMatcher::Gte(v) => ("gte", v),
            AttributeMatcher::Lt(v) => ("lt", v),
            AttributeMatcher::Lte(v) => ("lte", v),
        }
    }

    fn from_parts(op: &str, value: String) -> Option<Self> {
        Some(match op {
            "equals" => AttributeMatcher::Equals(value),
            "not_equals" => AttributeMatcher::NotEquals(value),
            "contains" => AttributeMatcher::Contains(value),
            "not_contains" => AttributeMatcher::NotContains(value),
            "regex" => AttributeMatcher::Regex(value),
            "gt" => AttributeMatcher::Gt(value),
            "gte" => AttributeMatcher::Gte(value),
            "lt" => AttributeMatcher::Lt(value),
            "lte" => AttributeMatcher::Lte(value),
            _ => return None,
        })
    }

    /// The operator as people write it (`!=`, `>=`), for sentences.
    pub fn symbol(&self) -> &'static str {
        match self {
            AttributeMatcher::Equals(_) => "=",
            AttributeMatcher::NotEquals(_) => "≠",
            AttributeMatcher::Contains(_) => "contains",
            AttributeMatcher::NotContains(_) => "does not contain",
            AttributeMatcher::Regex(_) => "matches",
            AttributeMatcher::Gt(_) => ">",
            AttributeMatcher::Gte(_) => "≥",
            AttributeMatcher::Lt(_) => "<",
            AttributeMatcher::Lte(_) => "≤",
        }
    }

    /// `value` is the incident's attribute, `None` when it has none: an absent attribute
    /// is "not equal" to anything and "does not contain" anything, and fails the rest.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let Some(value) = value else {
            return matches!(
                self,
                AttributeMatcher::NotEquals(_) | AttributeMatcher::NotContains(_)
            );
        };
        match self {
            AttributeMatcher::Equals(v) => value == v,
            AttributeMatcher::NotEquals(v) => value != v,
            AttributeMatcher::Contains(v) => value.contains(v.as_str()),
            AttributeMatcher::NotContains(v) => !value.contains(v.as_str()),
            // Validated when the rule was saved; a pattern that no longer compiles
            // (a newer size limit) matches nothing rather than everything.
            AttributeMatcher::Regex(pattern) => compile(pattern).is_ok_and(|re| re.is_match(value)),
            AttributeMatcher::Gt(v) => compare(value, v) == Ordering::Greater,
            AttributeMatcher::Gte(v) => compare(value, v) != Ordering::Less,
            AttributeMatcher::Lt(v) => compare(value, v) == Ordering::Less,
            AttributeMatcher::Lte(v) => compare(value, v) != Ordering::Greater,
        }
    }
}

/// Numbers compare as numbers; anything else as text.
fn compare(value: &str, operand: &str) -> Ordering {
    let number = |s: &str| s.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    match (number(value), number(operand)) {
        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        _ => value.cmp(operand),
    }
}

pub(super) fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
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
            .item(op("not_equals", "the attribute is absent or another value"))
            .item(op("contains", "the attribute contains this substring"))
            .item(op(
                "not_contains",
                "the attribute is absent or lacks this substring",
            ))
            .item(op("regex", "the attribute matches this regular expression"))
            .item(op(
                "gt",
                "greater than (numerically when both are numbers, else as text)",
            ))
            .item(op("gte", "greater than or equal"))
            .item(op("lt", "less than"))
            .item(op("lte", "less than or equal"))
            .into()
    }
}

impl utoipa::ToSchema for AttributeMatcher {}

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
        let raw = Raw::deserialize(deserializer)
            .map_err(|_| D::Error::custom(format!("expected {EXPECTED}")))?;
        let map = match raw {
            Raw::Plain(value) => return Ok(AttributeMatcher::Equals(value)),
            Raw::Op(map) => map,
        };
        let mut entries = map.into_iter();
        match (entries.next(), entries.next()) {
            (Some((op, value)), None) => {
                AttributeMatcher::from_parts(&op, value).ok_or_else(|| {
                    D::Error::custom(format!("unknown matcher `{op}`; expected {EXPECTED}"))
                })
            }
            _ => Err(D::Error::custom(format!("expected {EXPECTED}"))),
        }
    }
}
