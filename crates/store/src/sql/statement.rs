//! A statement as the shared code writes it: one SQL text with `$1…$n` placeholders and
//! its arguments. Both sqlx drivers bind `$n` by number (SQLite too), so the same text
//! runs on either backend; [`Sql::query`] hands it to the one in use.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::database::Database;
use sqlx::query::Query;
use sqlx::{Encode, Type};
use uuid::Uuid;

/// Every column is text (ids, names, JSON), an integer (times in milliseconds, counts)
/// or a flag, so three shapes of argument cover the schema.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
    Flag(bool),
}

#[derive(Debug, Clone)]
pub struct Sql<'a> {
    text: Cow<'static, str>,
    args: Vec<Arg<'a>>,
}

impl<'a> Sql<'a> {
    pub fn new(text: impl Into<Cow<'static, str>>) -> Self {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// Binds the next `$n`.
    pub fn bind(mut self, arg: impl Into<Arg<'a>>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends text, for statements assembled from optional filters.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.to_mut().push_str(text);
        self
    }

    /// Appends a placeholder for `arg`.
    pub fn push_bind(&mut self, arg: impl Into<Arg<'a>>) -> &mut Self {
        self.args.push(arg.into());
        let placeholder = format!("${}", self.args.len());
        self.push(&placeholder)
    }

    /// Appends `IN ($n, …)`; `IN (NULL)`, which matches nothing, for no values.
    pub fn push_in<A: Into<Arg<'a>>>(&mut self, values: impl IntoIterator<Item = A>) -> &mut Self {
        self.push(" IN (");
        let mut empty = true;
        for value in values {
            if !empty {
                self.push(", ");
            }
            self.push_bind(value);
            empty = false;
        }
        if empty {
            self.push("NULL");
        }
        self.push(")")
    }

    /// Appends one `(…)` row of a multi-row `VALUES` list, after a comma unless `first`.
    pub fn push_row(
        &mut self,
        first: bool,
        values: impl IntoIterator<Item = Arg<'a>>,
    ) -> &mut Self {
        self.push(if first { "(" } else { ", (" });
        for (n, value) in values.into_iter().enumerate() {
            if n > 0 {
                self.push(", ");
            }
            self.push_bind(value);
        }
        self.push(")")
    }

    /// Room for `rows` more rows the size of the ones pushed so far (one row pushed:
    /// about as many more as it took).
    pub fn reserve_rows(&mut self, rows: usize) {
        let (text, args) = (self.text.len(), self.args.len());
        self.text.to_mut().reserve(text * rows);
        self.args.reserve(args * rows);
    }

    /// How many arguments are bound so far.
    pub fn arg_count(&self) -> usize {
        self.args.len()
    }

    /// The statement with SQLite's anonymous `?` for `$1…$n` when those appear once each
    /// and in order (as every multi-row statement has them). SQLite keeps `$n` names in
    /// a list it searches for each one as it parses, and again as each is bound: work
    /// quadratic in the arguments, 22 ms for a 260-row insert of incidents. `?`s are
    /// numbered as they come. Small statements keep their text (nothing to gain).
    pub fn with_anonymous_placeholders(mut self) -> Self {
        const WORTH_IT: usize = 32;
        if self.args.len() < WORTH_IT {
            return self;
        }
        if let Some(text) = anonymous_placeholders(&self.text, self.args.len()) {
            self.text = Cow::Owned(text);
        }
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The statement as a sqlx query of backend `DB`.
    pub fn query<'q, DB>(&'q self) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
    where
        DB: Database,
        Option<&'q str>: Encode<'q, DB> + Type<DB>,
        Option<i64>: Encode<'q, DB> + Type<DB>,
        bool: Encode<'q, DB> + Type<DB>,
    {
        self.args
            .iter()
            .fold(sqlx::query(&self.text), |query, arg| match arg {
                Arg::Text(text) => query.bind(text.as_deref()),
                Arg::Int(int) => query.bind(*int),
                Arg::Flag(flag) => query.bind(*flag),
            })
    }
}

/// `text` with `$1…$count` (outside quoted literals) turned into `?`, or `None` unless
/// each of them appears exactly once and in order.
fn anonymous_placeholders(text: &str, count: usize) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut next, mut quoted, mut copied, mut i) = (1usize, false, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'$' if !quoted => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits > 0 {
                    let number: usize = text[i + 1..i + 1 + digits].parse().ok()?;
                    if number != next {
                        return None;
                    }
                    next += 1;
                    out.push_str(&text[copied..i]);
                    out.push('?');
                    i += 1 + digits;
                    copied = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    (next == count + 1).then_some(out)
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(text: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(text)))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(text: &'a String) -> Self {
        Arg::Text(Some(Cow::Borrowed(text)))
    }
}

impl From<String> for Arg<'_> {
    fn from(text: String) -> Self {
        Arg::Text(Some(Cow::Owned(text)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(text: Option<&'a str>) -> Self {
        Arg::Text(text.map(Cow::Borrowed))
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(text: &'a Option<String>) -> Self {
        Arg::Text(text.as_deref().map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(text: Option<String>) -> Self {
        Arg::Text(text.map(Cow::Owned))
    }
}

/// Ids are stored as their hyphenated text.
impl From<Uuid> for Arg<'_> {
    fn from(id: Uuid) -> Self {
        Arg::Text(Some(Cow::Owned(id.to_string())))
    }
}

impl From<Option<Uuid>> for Arg<'_> {
    fn from(id: Option<Uuid>) -> Self {
        Arg::Text(id.map(|id| Cow::Owned(id.to_string())))
    }
}

impl From<i64> for Arg<'_> {
    fn from(int: i64) -> Self {
        Arg::Int(Some(int))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(int: Option<i64>) -> Self {
        Arg::Int(int)
    }
}

/// Times are stored as milliseconds since the Unix epoch: they compare and index exactly.
impl From<DateTime<Utc>> for Arg<'_> {
    fn from(time: DateTime<Utc>) -> Self {
        Arg::Int(Some(time.timestamp_millis()))
    }
}

impl From<bool> for Arg<'_> {
    fn from(flag: bool) -> Self {
        Arg::Flag(flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order_of_binding() {
        let mut sql = Sql::new("SELECT * FROM t WHERE a = $1").bind(1i64);
        sql.push(" AND b = ").push_bind("x");
        sql.push(" AND c").push_in([2i64, 3]);
        assert_eq!(
            sql.text(),
            "SELECT * FROM t WHERE a = $1 AND b = $2 AND c IN ($3, $4)"
        );
        assert_eq!(sql.args.len(), 4);
    }

    #[test]
    fn placeholders_in_order_once_each_become_anonymous() {
        let mut sql = Sql::new("INSERT INTO t (a, b) VALUES ");
        for n in 0..20 {
            sql.push_row(n == 0, [Arg::from(n as i64), Arg::from("'$9'")]);
        }
        sql.push(" ON CONFLICT (a) DO UPDATE SET b = '$1'");
        let sql = sql.with_anonymous_placeholders();
        assert!(sql
            .text()
            .starts_with("INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"));
        assert!(sql
            .text()
            .ends_with("(?, ?) ON CONFLICT (a) DO UPDATE SET b = '$1'"));
        assert_eq!(sql.text().matches('?').count(), 40);
    }

    #[test]
    fn placeholders_repeated_or_out_of_order_are_kept() {
        let args = |sql: Sql<'static>| (0..40).fold(sql, |sql, n| sql.bind(n as i64));
        let repeated = args(Sql::new("SELECT $1, $1"));
        assert_eq!(
            repeated.with_anonymous_placeholders().text(),
            "SELECT $1, $1"
        );
        assert_eq!(anonymous_placeholders("SELECT $2, $1", 2), None);
        assert_eq!(anonymous_placeholders("SELECT $1", 2), None);
        assert_eq!(
            anonymous_placeholders("SELECT $1, '$2', $2", 2).as_deref(),
            Some("SELECT ?, '$2', ?")
        );
    }

    #[test]
    fn rows_of_a_values_list_are_comma_separated_and_numbered_on() {
        let mut sql = Sql::new("INSERT INTO t (a, b) VALUES ");
        sql.push_row(true, [Arg::from(1i64), Arg::from("x")]);
        sql.push_row(false, [Arg::from(2i64), Arg::from("y")]);
        assert_eq!(sql.text(), "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
        assert_eq!(sql.arg_count(), 4);
    }

    #[test]
    fn an_empty_in_list_matches_nothing() {
        let mut sql = Sql::new("SELECT * FROM t WHERE id");
        sql.push_in(Vec::<i64>::new());
        assert_eq!(sql.text(), "SELECT * FROM t WHERE id IN (NULL)");
    }
}
