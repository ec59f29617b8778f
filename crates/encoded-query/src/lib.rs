//! ServiceNow encoded queries (`sysparm_query`), docs/servicenow/TABLE_API.md §2.4.
//!
//! [`parse`] is pure and total: any input gives a [`Query`]; terms it cannot understand
//! are dropped, because a real instance silently ignores invalid parts of a query.
//! Values written as `javascript:gs.dateGenerate('2026-12-01','10:00:00')` (and the other
//! date helpers of [`script_value`]) stay text until [`Query::resolve_scripts`] turns
//! them into date-times at a given moment (docs/servicenow/AUTH_AND_INBOUND.md §2.3).

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A parsed encoded query.
///
/// Precedence as on a real instance: `^OR` binds tighter than `^`, and `^NQ` starts a new
/// query OR'ed with the previous ones. So `a^b^ORc^NQd` is `(a AND (b OR c)) OR d`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Top-level alternatives (separated by `^NQ`); a record matches if any block matches.
    pub blocks: Vec<Block>,
    /// `ORDERBY` / `ORDERBYDESC` terms in the order given.
    pub order: Vec<OrderBy>,
}

/// Clauses AND'ed together; each clause is a list of conditions OR'ed together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block {
    pub clauses: Vec<Vec<Condition>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderBy {
    pub field: String,
    pub descending: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    NotLike,
    StartsWith,
    EndsWith,
    In,
    NotIn,
    IsEmpty,
    IsNotEmpty,
    Anything,
    EmptyString,
    Between,
    SameAs,
    NSameAs,
}

/// Longest spellings first so that `NOT IN` is not read as a field ending in "NOT ".
const OPERATORS: &[(&str, Op)] = &[
    ("ISNOTEMPTY", Op::IsNotEmpty),
    ("ISEMPTY", Op::IsEmpty),
    ("EMPTYSTRING", Op::EmptyString),
    ("ANYTHING", Op::Anything),
    ("STARTSWITH", Op::StartsWith),
    ("ENDSWITH", Op::EndsWith),
    ("NOT LIKE", Op::NotLike),
    ("NOTLIKE", Op::NotLike),
    ("NOT IN", Op::NotIn),
    ("NOTIN", Op::NotIn),
    ("NSAMEAS", Op::NSameAs),
    ("SAMEAS", Op::SameAs),
    ("BETWEEN", Op::Between),
    ("LIKE", Op::Like),
    ("IN", Op::In),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("=", Op::Eq),
    ("<", Op::Lt),
    (">", Op::Gt),
];

/// Operators that take no value: anything after them is ignored.
fn is_unary(op: Op) -> bool {
    matches!(
        op,
        Op::IsEmpty | Op::IsNotEmpty | Op::Anything | Op::EmptyString
    )
}

/// Parses an encoded query. Never panics; unknown or malformed terms are dropped.
pub fn parse(input: &str) -> Query {
    let mut query = Query::default();
    let mut block = Block::default();
    for (i, raw) in input.split('^').enumerate() {
        // `^NQ` is glued to the next term (`a=1^NQb=2`) and starts a new OR'ed block.
        let raw = match raw.strip_prefix("NQ") {
            Some(rest) if i > 0 => {
                if !block.clauses.is_empty() {
                    query.blocks.push(std::mem::take(&mut block));
                }
                rest
            }
            _ => raw,
        };
        // The first term has no `^` before it, so an `OR` prefix there is a field name.
        let (is_or, term) = match raw.strip_prefix("OR") {
            Some(rest) if i > 0 && !rest.starts_with("DERBY") => (true, rest),
            _ => (false, raw),
        };
        if term.is_empty() || term == "EQ" {
            continue;
        }
        if let Some(field) = term.strip_prefix("ORDERBYDESC") {
            push_order(&mut query, field, true);
            continue;
        }
        if let Some(field) = term.strip_prefix("ORDERBY") {
            push_order(&mut query, field, false);
            continue;
        }
        if term.starts_with("GROUPBY") {
            continue;
        }
        let Some(cond) = parse_condition(term) else {
            continue;
        };
        match block.clauses.last_mut() {
            Some(clause) if is_or => clause.push(cond),
            _ => block.clauses.push(vec![cond]),
        }
    }
    if !block.clauses.is_empty() {
        query.blocks.push(block);
    }
    query
}

fn push_order(query: &mut Query, field: &str, descending: bool) {
    if is_field_name(field) {
        query.order.push(OrderBy {
            field: field.to_string(),
            descending,
        });
    }
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_field_char)
}

/// Field names on an instance are lower case, which is what separates them from the
/// upper-case operator words (`short_descriptionLIKEdisk`).
fn parse_condition(term: &str) -> Option<Condition> {
    let split = term.find(|c: char| !is_field_char(c)).unwrap_or(term.len());
    let (field, rest) = term.split_at(split);
    if field.is_empty() {
        return None;
    }
    let (op, value) = OPERATORS
        .iter()
        .find_map(|(word, op)| rest.strip_prefix(word).map(|v| (*op, v)))?;
    let value = if is_unary(op) { "" } else { value };
    Some(Condition {
        field: field.to_string(),
        op,
        value: value.to_string(),
    })
}

/// The date-time (`YYYY-MM-DD HH:MM:SS`, UTC) a `javascript:gs.…` query value evaluates
/// to at `now`, or `None` for anything else. Knows `dateGenerate(date, time|'start'|'end')`,
/// `beginningOfToday()`, `endOfToday()`, `beginningOfYesterday()`, `endOfYesterday()`,
/// `nowDateTime()`, `daysAgo(n)`, `daysAgoStart(n)`, `daysAgoEnd(n)`, `hoursAgo(n)`,
/// `minutesAgo(n)`.
pub fn script_value(value: &str, now: chrono::NaiveDateTime) -> Option<String> {
    use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
    let script = value.trim().strip_prefix("javascript:")?.trim();
    let script = script.trim_end_matches(';').trim();
    let call = script.strip_prefix("gs.")?;
    let open = call.find('(')?;
    let name = call[..open].trim();
    let inner = call[open + 1..].strip_suffix(')')?;
    let args: Vec<&str> = inner
        .split(',')
        .map(|a| a.trim().trim_matches(|c| c == '\'' || c == '"'))
        .filter(|a| !a.is_empty())
        .collect();
    let start = |d: NaiveDate| d.and_time(NaiveTime::MIN);
    let end = |d: NaiveDate| d.and_hms_opt(23, 59, 59);
    let n = || -> Option<i64> { args.first()?.parse().ok() };
    let ago = |d: Option<Duration>| now.checked_sub_signed(d?);
    let at: NaiveDateTime = match (name, args.as_slice()) {
        ("dateGenerate", [date, time]) => {
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
            match *time {
                "start" => start(date),
                "end" => end(date)?,
                t => date.and_time(NaiveTime::parse_from_str(t, "%H:%M:%S").ok()?),
            }
        }
        ("beginningOfToday", []) => start(now.date()),
        ("endOfToday", []) => end(now.date())?,
        ("beginningOfYesterday", []) => start(now.date().pred_opt()?),
        ("endOfYesterday", []) => end(now.date().pred_opt()?)?,
        ("nowDateTime", []) => now,
        ("daysAgo", [_]) => ago(Duration::try_days(n()?))?,
        ("daysAgoStart", [_]) => start(ago(Duration::try_days(n()?))?.date()),
        ("daysAgoEnd", [_]) => end(ago(Duration::try_days(n()?))?.date())?,
        ("hoursAgo", [_]) => ago(Duration::try_hours(n()?))?,
        ("minutesAgo", [_]) => ago(Duration::try_minutes(n()?))?,
        _ => return None,
    };
    Some(at.format("%Y-%m-%d %H:%M:%S").to_string())
}

impl Query {
    /// Evaluates `javascript:gs.…` date values at `now` (UTC, as raw values are); values
    /// that are not such a script are left as they are.
    pub fn resolve_scripts(&mut self, now: chrono::NaiveDateTime) {
        let resolve = |v: &str| script_value(v, now).unwrap_or_else(|| v.to_string());
        for block in &mut self.blocks {
            for clause in &mut block.clauses {
                for c in clause.iter_mut() {
                    c.value = if c.op == Op::Between {
                        c.value
                            .split('@')
                            .map(resolve)
                            .collect::<Vec<_>>()
                            .join("@")
                    } else {
                        resolve(&c.value)
                    };
                }
            }
        }
    }

    /// Drops conditions and orderings on fields the table does not have, as a real
    /// instance does (`glide.invalid_query.returns_no_rows=false`, the default).
    pub fn retain_known(&mut self, known: impl Fn(&str) -> bool) {
        for block in &mut self.blocks {
            for clause in &mut block.clauses {
                clause.retain(|c| {
                    known(&c.field)
                        && (!matches!(c.op, Op::SameAs | Op::NSameAs) || known(&c.value))
                });
            }
            block.clauses.retain(|c| !c.is_empty());
        }
        self.order.retain(|o| known(&o.field));
    }

    /// True when the record satisfies the query. No conditions means every record.
    pub fn matches(&self, record: &BTreeMap<String, String>) -> bool {
        let blocks: Vec<&Block> = self
            .blocks
            .iter()
            .filter(|b| !b.clauses.is_empty())
            .collect();
        blocks.is_empty()
            || blocks.iter().any(|b| {
                b.clauses
                    .iter()
                    .all(|clause| clause.iter().any(|c| c.matches(record)))
            })
    }

    /// Compares two records by the `ORDERBY` terms (stable sort keeps creation order).
    pub fn compare(&self, a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Ordering {
        for o in &self.order {
            let empty = String::new();
            let x = a.get(&o.field).unwrap_or(&empty);
            let y = b.get(&o.field).unwrap_or(&empty);
            let ord = compare_values(x, y);
            let ord = if o.descending { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
}

/// Integer-looking values compare as numbers (state 10 after state 9); everything else,
/// including `YYYY-MM-DD HH:MM:SS` dates, compares as text.
pub fn compare_values(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.cmp(b),
    }
}

impl Condition {
    pub fn matches(&self, record: &BTreeMap<String, String>) -> bool {
        let empty = String::new();
        let actual = record.get(&self.field).unwrap_or(&empty);
        let v = self.value.as_str();
        // LIKE-family operators are case-insensitive on an instance (database collation);
        // `=` is documented as case-sensitive.
        let lower = || actual.to_lowercase();
        match self.op {
            Op::Eq => actual == v,
            Op::Ne => actual != v,
            Op::Lt => compare_values(actual, v) == Ordering::Less && !actual.is_empty(),
            Op::Le => compare_values(actual, v) != Ordering::Greater && !actual.is_empty(),
            Op::Gt => compare_values(actual, v) == Ordering::Greater,
            Op::Ge => compare_values(actual, v) != Ordering::Less,
            Op::Like => lower().contains(&v.to_lowercase()),
            Op::NotLike => !lower().contains(&v.to_lowercase()),
            Op::StartsWith => lower().starts_with(&v.to_lowercase()),
            Op::EndsWith => lower().ends_with(&v.to_lowercase()),
            Op::In => v.split(',').any(|x| x == actual),
            Op::NotIn => !v.split(',').any(|x| x == actual),
            Op::IsEmpty | Op::EmptyString => actual.is_empty(),
            Op::IsNotEmpty => !actual.is_empty(),
            Op::Anything => true,
            Op::Between => match v.split_once('@') {
                Some((lo, hi)) => {
                    !actual.is_empty()
                        && compare_values(actual, lo) != Ordering::Less
                        && compare_values(actual, hi) != Ordering::Greater
                }
                None => false,
            },
            Op::SameAs => record.get(v).unwrap_or(&empty) == actual,
            Op::NSameAs => record.get(v).unwrap_or(&empty) != actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn and_or_precedence_matches_instance() {
        // §2.4: `^OR` binds to the previous term, `^` ANDs.
        let q = parse("active=true^state=1^ORstate=2");
        assert_eq!(q.blocks.len(), 1);
        assert_eq!(q.blocks[0].clauses.len(), 2);
        assert!(q.matches(&rec(&[("active", "true"), ("state", "2")])));
        assert!(!q.matches(&rec(&[("active", "false"), ("state", "2")])));
        assert!(!q.matches(&rec(&[("active", "true"), ("state", "3")])));
    }

    #[test]
    fn nq_starts_new_block() {
        let q = parse("state=1^NQstate=7");
        assert_eq!(q.blocks.len(), 2);
        assert!(q.matches(&rec(&[("state", "7")])));
    }

    #[test]
    fn operators() {
        let r = rec(&[
            ("short_description", "Disk Full on db1"),
            ("state", "6"),
            ("x", ""),
        ]);
        let m = |q: &str| parse(q).matches(&r);
        assert!(m("short_descriptionLIKEdisk"));
        assert!(m("short_descriptionNOT LIKEcpu"));
        assert!(m("short_descriptionSTARTSWITHdisk"));
        assert!(m("short_descriptionENDSWITHdb1"));
        assert!(m("stateIN1,6,7"));
        assert!(!m("stateNOT IN1,6,7"));
        assert!(m("state!=1"));
        assert!(m("xISEMPTY"));
        assert!(!m("xISNOTEMPTY"));
        assert!(m("state>=6^state<7"));
        assert!(m("stateBETWEEN5@6"));
        assert!(!m("state=7"));
    }

    #[test]
    fn date_comparisons_with_literals_and_date_generate() {
        // §2.3: watermark queries compare raw UTC date-times.
        let now = chrono::NaiveDate::from_ymd_opt(2026, 12, 3)
            .unwrap()
            .and_hms_opt(12, 30, 0)
            .unwrap();
        let r = rec(&[("sys_updated_on", "2026-12-01 10:00:00"), ("x", "")]);
        let m = |q: &str| {
            let mut q = parse(q);
            q.resolve_scripts(now);
            q.matches(&r)
        };
        assert!(m("sys_updated_on>=2026-12-01 10:00:00"));
        assert!(!m("sys_updated_on>2026-12-01 10:00:00"));
        assert!(m("sys_updated_on<2026-12-01 10:00:01"));
        assert!(m("sys_updated_on<=2026-12-01 10:00:00"));
        assert!(m(
            "sys_updated_on>=javascript:gs.dateGenerate('2026-12-01','10:00:00')"
        ));
        assert!(!m(
            "sys_updated_on>javascript:gs.dateGenerate('2026-12-01','10:00:00')"
        ));
        assert!(m("sys_updated_onBETWEENjavascript:gs.dateGenerate('2026-12-01','start')@javascript:gs.dateGenerate('2026-12-01','end')"));
        assert!(m("sys_updated_on<javascript:gs.daysAgoStart(1)"));
        assert!(!m("sys_updated_on>javascript:gs.hoursAgo(1)"));
        assert!(m(
            "xISEMPTY^sys_updated_on>2026-12-02^NQsys_updated_on<2026-12-02"
        ));
        // An empty date is neither before nor after anything.
        let empty = rec(&[("sys_updated_on", "")]);
        assert!(!parse("sys_updated_on<2026-12-01").matches(&empty));
        assert!(!parse("sys_updated_on>2026-12-01").matches(&empty));
    }

    #[test]
    fn script_values() {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 12, 3)
            .unwrap()
            .and_hms_opt(12, 30, 5)
            .unwrap();
        let v = |s: &str| script_value(s, now);
        assert_eq!(
            v("javascript:gs.dateGenerate('2026-12-01','10:00:00')").as_deref(),
            Some("2026-12-01 10:00:00")
        );
        assert_eq!(
            v("javascript:gs.dateGenerate(\"2026-12-01\", 'end');").as_deref(),
            Some("2026-12-01 23:59:59")
        );
        assert_eq!(
            v("javascript:gs.beginningOfToday()").as_deref(),
            Some("2026-12-03 00:00:00")
        );
        assert_eq!(
            v("javascript:gs.endOfYesterday()").as_deref(),
            Some("2026-12-02 23:59:59")
        );
        assert_eq!(
            v("javascript:gs.minutesAgo(30)").as_deref(),
            Some("2026-12-03 12:00:05")
        );
        assert_eq!(
            v("javascript:gs.daysAgoEnd(2)").as_deref(),
            Some("2026-12-01 23:59:59")
        );
        for bad in [
            "2026-12-01",
            "javascript:gs.dateGenerate('2026-13-01','10:00:00')",
            "javascript:gs.daysAgo(99999999999999)",
            "javascript:gs.nosuch()",
            "javascript:gs.daysAgo(",
            "javascript:",
            "javascript:gs.(",
        ] {
            assert_eq!(v(bad), None, "{bad}");
        }
    }

    #[test]
    fn order_terms() {
        let q = parse("active=true^ORDERBYDESCnumber^ORDERBYstate");
        assert_eq!(
            q.order,
            vec![
                OrderBy {
                    field: "number".into(),
                    descending: true
                },
                OrderBy {
                    field: "state".into(),
                    descending: false
                }
            ]
        );
        assert_eq!(compare_values("10", "9"), Ordering::Greater);
    }

    #[test]
    fn unknown_fields_are_dropped() {
        let mut q = parse("nosuch=1^state=6^ORDERBYbogus");
        q.retain_known(|f| f == "state");
        assert!(q.matches(&rec(&[("state", "6")])));
        assert!(q.order.is_empty());
        let mut q = parse("nosuch=1");
        q.retain_known(|f| f == "state");
        assert!(q.matches(&rec(&[("state", "1")])));
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            "",
            "^",
            "^^^OR",
            "OR",
            "=",
            "ORDERBY",
            "a",
            "é=ü^ORé",
            "aBETWEEN",
            "\u{0}^OR\u{ffff}",
            "ORa=1",
            "a=1^ORNQ",
            "^NQ^NQ",
            "state=1^OR",
            "a\u{301}LIKE",
        ] {
            let q = parse(s);
            let _ = q.matches(&rec(&[("a", "1")]));
        }
        // Every prefix of a multi-byte string, to exercise char boundaries.
        let s = "short_descriptionLIKEé€😀^ORstateIN1,2^NQx!=y^ORDERBYDESCz";
        for i in 0..=s.len() {
            if s.is_char_boundary(i) {
                let _ = parse(&s[..i]);
            }
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        use rand::{Rng, SeedableRng};
        let pieces = [
            "^",
            "^OR",
            "^NQ",
            "OR",
            "NQ",
            "ORDERBY",
            "ORDERBYDESC",
            "=",
            "!=",
            "<",
            ">=",
            "LIKE",
            "NOT IN",
            "IN",
            "ISEMPTY",
            "BETWEEN",
            "@",
            ",",
            "state",
            "a.b",
            "é",
            "😀",
            "\u{0}",
            " ",
            "SAMEAS",
            "x",
            "1",
            "javascript:gs.daysAgo(",
            "javascript:gs.dateGenerate('2026-01-01','",
            "')",
            "start",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let r = rec(&[("state", "1"), ("x", "")]);
        for _ in 0..20_000 {
            let n = rng.gen_range(0..12);
            let s: String = (0..n)
                .map(|_| pieces[rng.gen_range(0..pieces.len())])
                .collect();
            let mut q = parse(&s);
            q.resolve_scripts(chrono::NaiveDateTime::MIN);
            let _ = q.matches(&r);
            let _ = q.compare(&r, &r);
            q.retain_known(|f| f == "state");
        }
    }
}
