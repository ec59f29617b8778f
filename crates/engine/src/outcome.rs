//! What a ServiceNow answer means for the link and for its integration: the table in
//! docs/ARCHITECTURE.md, as one pure function.

use std::time::Duration;

use chrono::{DateTime, Utc};
use snowbound_core::FieldMap;
use snowbound_servicenow::Failure;
use snowbound_store::LeaseOutcome;

use crate::backoff::Backoff;

/// What the runner must do besides completing the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SideEffect {
    None,
    /// 429: nobody calls this integration before the pause ends.
    Pause(Option<Duration>),
    /// 401: the integration waits for new credentials.
    Failing(String),
}

/// The call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Lookup,
    Create,
    Update,
}

/// A failed call's outcome. `attempts` = the link's failed attempts so far.
pub(crate) fn failed(
    failure: Failure,
    call: Call,
    attempts: i64,
    table: &str,
    record_number: Option<&str>,
    backoff: &Backoff,
    now: DateTime<Utc>,
) -> (LeaseOutcome, SideEffect) {
    if let (Failure::Rejected { status: 404, .. }, Call::Update) = (&failure, call) {
        let error = format!(
            "ServiceNow record {} no longer exists in table `{table}` or an ACL hides it (HTTP 404). \
             Snowbound does not re-create it on its own.",
            record_number.unwrap_or_default()
        );
        return (LeaseOutcome::Park { error }, SideEffect::None);
    }
    let error = failure.user_message(table);
    match failure {
        Failure::RateLimited { retry_after, .. } => {
            (LeaseOutcome::Release, SideEffect::Pause(retry_after))
        }
        Failure::Unauthorized { .. } => (LeaseOutcome::Release, SideEffect::Failing(error)),
        Failure::Rejected { .. } => (LeaseOutcome::Park { error }, SideEffect::None),
        Failure::Transient { ambiguous, .. } => {
            let attempt = u32::try_from(attempts).unwrap_or(u32::MAX);
            (
                LeaseOutcome::Retry {
                    at: now + backoff.delay(attempt),
                    error,
                    // Only a create can leave a second record behind; a lookup or an
                    // update repeated is harmless.
                    create_unsure: call == Call::Create && ambiguous,
                    unsure_sent: FieldMap::new(),
                },
                SideEffect::None,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snowbound_servicenow::AuthRefusal;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };

    fn map(failure: Failure, call: Call, attempts: i64) -> (LeaseOutcome, SideEffect) {
        failed(
            failure,
            call,
            attempts,
            "incident",
            Some("INC0010001"),
            &BACKOFF,
            Utc::now(),
        )
    }

    fn transient(ambiguous: bool) -> Failure {
        Failure::Transient {
            ambiguous,
            message: "timed out".into(),
        }
    }

    #[test]
    fn a_transient_failure_retries_within_the_backoff_ceiling() {
        let now = Utc::now();
        let (outcome, effect) = failed(
            transient(false),
            Call::Update,
            3,
            "incident",
            None,
            &BACKOFF,
            now,
        );
        let LeaseOutcome::Retry {
            at, create_unsure, ..
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert!(at >= now && at <= now + chrono::Duration::seconds(8));
        assert!(!create_unsure);
        assert_eq!(effect, SideEffect::None);
    }

    #[test]
    fn only_an_ambiguous_create_leaves_the_link_unsure() {
        let unsure = |failure, call| match map(failure, call, 0).0 {
            LeaseOutcome::Retry { create_unsure, .. } => create_unsure,
            other => panic!("{other:?}"),
        };
        assert!(unsure(transient(true), Call::Create));
        assert!(!unsure(transient(false), Call::Create));
        assert!(!unsure(transient(true), Call::Update));
        assert!(!unsure(transient(true), Call::Lookup));
    }

    #[test]
    fn a_rate_limit_releases_the_link_and_pauses_the_integration() {
        let retry_after = Some(Duration::from_secs(30));
        let failure = Failure::RateLimited {
            retry_after,
            message: "Too many requests".into(),
        };
        let (outcome, effect) = map(failure, Call::Create, 0);
        assert!(matches!(outcome, LeaseOutcome::Release));
        assert_eq!(effect, SideEffect::Pause(retry_after));
    }

    #[test]
    fn unauthorized_releases_the_link_and_fails_the_integration() {
        let failure = Failure::Unauthorized {
            message: "HTTP 401: User Not Authenticated".into(),
            cause: AuthRefusal::BasicCredentials,
        };
        let (outcome, effect) = map(failure, Call::Update, 0);
        assert!(matches!(outcome, LeaseOutcome::Release));
        let SideEffect::Failing(error) = effect else {
            panic!("{effect:?}")
        };
        assert!(error.contains("401"), "{error}");
    }

    #[test]
    fn a_rejection_parks_the_link_with_servicenows_words() {
        let failure = Failure::Rejected {
            status: 403,
            message: "Data Policy Exception".into(),
            detail: Some("Close notes are mandatory".into()),
        };
        let (outcome, effect) = map(failure, Call::Update, 0);
        let LeaseOutcome::Park { error } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(error.contains("Close notes are mandatory"), "{error}");
        assert_eq!(effect, SideEffect::None);
    }

    #[test]
    fn a_404_on_update_parks_as_gone_and_is_never_recreated() {
        let not_found = || Failure::Rejected {
            status: 404,
            message: "No Record found".into(),
            detail: None,
        };
        let LeaseOutcome::Park { error } = map(not_found(), Call::Update, 0).0 else {
            panic!()
        };
        assert!(error.contains("INC0010001 no longer exists"), "{error}");
        assert!(error.contains("does not re-create"), "{error}");
        // A 404 to a create (an unknown table) is an ordinary rejection.
        let LeaseOutcome::Park { error } = map(not_found(), Call::Create, 0).0 else {
            panic!()
        };
        assert!(!error.contains("no longer exists"), "{error}");
    }
}
