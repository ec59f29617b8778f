//! Users, Basic authentication, role checks and per-user rate limits
//! (docs/servicenow/TABLE_API.md §1.6 401 row, §4 access, §5 rate limiting, §6), and the
//! user flags the Basic authentication restriction looks at
//! (docs/servicenow/AUTH_AND_INBOUND.md §1.1).

use std::str::FromStr;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::errors::SnError;
use crate::schema::Kind;

/// An emulator user. Parse one from `NAME:PASSWORD:ROLE[,ROLE…][:OPTIONS]`, where the
/// optional OPTIONS is a comma list of `N/s` and `N/h` (rate limits) and `wsao` (web
/// service access only), e.g. `bot:pw:itil:5/s,1000/h,wsao`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub password: String,
    pub roles: Vec<String>,
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// "Web service access only" on the `sys_user` record: such an account passes the
    /// Basic authentication restriction (AUTH_AND_INBOUND.md §1.1).
    #[serde(default)]
    pub web_service_access_only: bool,
}

/// A user's rate-limit rule; `None` means no limit of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_second: Option<u32>,
    pub per_hour: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid user {0:?}: expected NAME:PASSWORD:ROLE[,ROLE...][:N/s,N/h,wsao]")]
pub struct UserParseError(pub String);

impl User {
    pub fn new(name: &str, password: &str, roles: &[&str]) -> Self {
        User {
            name: name.to_string(),
            password: password.to_string(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            rate_limit: RateLimit::default(),
            web_service_access_only: false,
        }
    }

    /// Flags the account "web service access only" (passes the Basic restriction, §1.1).
    pub fn web_service_only(mut self) -> Self {
        self.web_service_access_only = true;
        self
    }

    pub fn with_rate_limit(mut self, per_second: Option<u32>, per_hour: Option<u32>) -> Self {
        self.rate_limit = RateLimit {
            per_second,
            per_hour,
        };
        self
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    fn any_role(&self, roles: &[&str]) -> bool {
        self.has_role("admin") || roles.iter().any(|r| self.has_role(r))
    }

    pub(crate) fn can_read(&self, kind: Kind) -> bool {
        match kind {
            Kind::Incident => self.any_role(&[
                "itil",
                "sn_incident_write",
                "sn_incident_read",
                "incident_reader",
            ]),
            Kind::Choice => self.any_role(&["personalize_choices"]),
            Kind::User | Kind::Group | Kind::Ci => true,
            // Journal rows are read by whoever may read the records they belong to.
            Kind::JournalField => self.can_read(Kind::Incident),
        }
    }

    pub(crate) fn can_write(&self, kind: Kind) -> bool {
        match kind {
            Kind::Incident => self.any_role(&["itil", "sn_incident_write"]),
            Kind::Choice => self.any_role(&["personalize_choices"]),
            Kind::User | Kind::Group | Kind::Ci => self.any_role(&[]),
            Kind::JournalField => false,
        }
    }

    /// Admins may still change a Closed record; everyone else finds it locked, as
    /// instances' ACLs make Closed incidents read-only.
    pub(crate) fn may_change_closed(&self) -> bool {
        self.has_role("admin")
    }

    /// Deleting incidents is an admin job on a base instance; itil may not.
    pub(crate) fn can_delete(&self, kind: Kind) -> bool {
        match kind {
            Kind::Choice => self.any_role(&["personalize_choices"]),
            _ => self.any_role(&[]),
        }
    }
}

/// The OPTIONS part of a user spec: rate limits and flags.
#[derive(Default)]
struct UserOptions {
    rate_limit: RateLimit,
    web_service_access_only: bool,
}

fn parse_options(s: &str) -> Option<UserOptions> {
    let mut opts = UserOptions::default();
    let rl = &mut opts.rate_limit;
    for part in s.split(',') {
        if part.trim() == "wsao" {
            opts.web_service_access_only = true;
            continue;
        }
        let (n, unit) = part.trim().split_once('/')?;
        let n: u32 = n.trim().parse().ok()?;
        match unit.trim() {
            "s" | "sec" | "second" => rl.per_second = Some(n),
            "h" | "hour" => rl.per_hour = Some(n),
            _ => return None,
        }
    }
    Some(opts)
}

impl FromStr for User {
    type Err = UserParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || UserParseError(s.to_string());
        let (name, rest) = s.split_once(':').ok_or_else(err)?;
        let (rest, options) = match rest.rsplit_once(':') {
            Some((head, tail)) if head.contains(':') => match parse_options(tail) {
                Some(o) => (head, o),
                None => (rest, UserOptions::default()),
            },
            _ => (rest, UserOptions::default()),
        };
        // The password may itself contain ':'; roles are after the last one.
        let (password, roles) = rest.rsplit_once(':').ok_or_else(err)?;
        if name.is_empty() {
            return Err(err());
        }
        Ok(User {
            name: name.to_string(),
            password: password.to_string(),
            roles: roles
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
            rate_limit: options.rate_limit,
            web_service_access_only: options.web_service_access_only,
        })
    }
}

/// Resolves the `Authorization` header to a configured user; anything else is the
/// standard 401 (a wrong password answers exactly like a missing header, §1.6).
pub(crate) fn authenticate<'a>(
    users: &'a [User],
    authorization: Option<&str>,
) -> Result<&'a User, SnError> {
    let header = authorization.ok_or_else(SnError::unauthenticated)?;
    let (scheme, encoded) = header
        .trim()
        .split_once(' ')
        .ok_or_else(SnError::unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(SnError::unauthenticated());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| SnError::unauthenticated())?;
    let decoded = String::from_utf8(decoded).map_err(|_| SnError::unauthenticated())?;
    let (name, password) = decoded
        .split_once(':')
        .ok_or_else(SnError::unauthenticated)?;
    users
        .iter()
        .find(|u| u.name == name && u.password == password)
        .ok_or_else(SnError::unauthenticated)
}

/// Fixed-window counters for one user.
#[derive(Default, Debug, Clone)]
pub(crate) struct RateWindow {
    second: u64,
    second_count: u32,
    hour: u64,
    hour_count: u32,
}

/// Headers an instance adds for a rate-limit rule (§5).
pub(crate) struct RateHeaders {
    pub limit: u64,
    pub reset: u64,
    pub rule: String,
}

/// Rule sys_ids are stable per user so a client can log them meaningfully.
pub(crate) fn rule_id(user: &str, unit: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in user.bytes().chain(unit.bytes()) {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    format!("{h:032x}")
}

/// Counts one request against the user's rule; Err is the 429 answer.
pub(crate) fn check_rate(
    limit: &RateLimit,
    window: &mut RateWindow,
    user: &str,
    now_secs: u64,
) -> Result<Option<RateHeaders>, SnError> {
    if limit.per_second.is_none() && limit.per_hour.is_none() {
        return Ok(None);
    }
    if window.second != now_secs {
        window.second = now_secs;
        window.second_count = 0;
    }
    let hour = now_secs / 3600 * 3600;
    if window.hour != hour {
        window.hour = hour;
        window.hour_count = 0;
    }
    let reject = |n: u32, unit: &str, reset: u64| {
        SnError::rate_limited(n as u64, unit)
            .header(
                "retry-after",
                reset.saturating_sub(now_secs).max(1).to_string(),
            )
            .header("x-ratelimit-limit", n.to_string())
            .header("x-ratelimit-reset", reset.to_string())
            .header("x-ratelimit-rule", rule_id(user, unit))
    };
    if let Some(n) = limit.per_second {
        if window.second_count >= n {
            return Err(reject(n, "second", now_secs + 1));
        }
    }
    if let Some(n) = limit.per_hour {
        if window.hour_count >= n {
            return Err(reject(n, "hour", hour + 3600));
        }
    }
    window.second_count += 1;
    window.hour_count += 1;
    Ok(Some(match (limit.per_hour, limit.per_second) {
        (Some(n), _) => RateHeaders {
            limit: n as u64,
            reset: hour + 3600,
            rule: rule_id(user, "hour"),
        },
        (None, n) => RateHeaders {
            limit: n.unwrap_or(0) as u64,
            reset: now_secs + 1,
            rule: rule_id(user, "second"),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_forms() {
        let u: User = "bot:s3:cr:et:itil,personalize_choices".parse().unwrap();
        assert_eq!(u.name, "bot");
        assert_eq!(u.password, "s3:cr:et");
        assert_eq!(u.roles, vec!["itil", "personalize_choices"]);
        let u: User = "bot:pw:itil:5/s,100/h".parse().unwrap();
        assert_eq!(u.password, "pw");
        assert_eq!(u.rate_limit.per_second, Some(5));
        assert_eq!(u.rate_limit.per_hour, Some(100));
        let u: User = "nobody:pw:".parse().unwrap();
        assert!(u.roles.is_empty());
        assert!("justname".parse::<User>().is_err());
        assert!(":pw:admin".parse::<User>().is_err());
        let u: User = "bot:p:w:itil:wsao".parse().unwrap();
        assert_eq!(u.password, "p:w");
        assert!(u.web_service_access_only);
        assert!(u.rate_limit.per_second.is_none());
        let u: User = "bot:pw:itil:2/s,wsao".parse().unwrap();
        assert!(u.web_service_access_only);
        assert_eq!(u.rate_limit.per_second, Some(2));
        assert!(
            !"bot:pw:itil"
                .parse::<User>()
                .unwrap()
                .web_service_access_only
        );
    }

    #[test]
    fn rate_window_rejects_then_recovers() {
        let rl = RateLimit {
            per_second: Some(2),
            per_hour: None,
        };
        let mut w = RateWindow::default();
        assert!(check_rate(&rl, &mut w, "u", 100).is_ok());
        assert!(check_rate(&rl, &mut w, "u", 100).is_ok());
        let e = check_rate(&rl, &mut w, "u", 100).err().unwrap();
        assert_eq!(e.status.as_u16(), 429);
        assert!(check_rate(&rl, &mut w, "u", 101).is_ok());
    }
}
