//! One reconcile of one leased link: compute what ServiceNow should hold, send the
//! difference, and turn the answer into a [`LeaseOutcome`].

use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use snowbound_core::{
    incident_url, plan_sync, servicenow_fields, FieldMap, Incident, IncidentSnapshot, Integration,
    SyncPlan,
};
use snowbound_servicenow::{ApiCall, Client, Connection, Exchange, Failure, Record};
use snowbound_store::{LeaseOutcome, Link};

use crate::backoff::Backoff;
use crate::rate_limit::{CallPermit, RateLimiter};

/// What the link shows ServiceNow: the frozen snapshot of an `only_on_forwarding`
/// forward, else the live incident. The flag says whether it follows updates.
pub fn subject_of(link: Option<&Link>, incident: &Incident) -> (IncidentSnapshot, bool) {
    match link.and_then(|l| l.snapshot.clone()) {
        Some(snapshot) => (snapshot, false),
        None => (incident.snapshot(), true),
    }
}

pub fn desired_fields(
    subject: &IncidentSnapshot,
    integration: &Integration,
    public_url: &str,
) -> FieldMap {
    servicenow_fields(
        subject,
        &integration.servicenow,
        &incident_url(public_url, subject.id),
    )
}

/// What the runner must do besides completing the lease.
pub(crate) enum SideEffect {
    None,
    /// 429: nobody calls this integration before the pause ends.
    Pause(Option<Duration>),
    /// 401: the integration waits for new credentials.
    Failing(String),
}

pub(crate) struct Reconciled {
    pub outcome: LeaseOutcome,
    pub effect: SideEffect,
    pub calls: Vec<ApiCall>,
}

pub(crate) struct Reconciler<'a> {
    pub client: &'a Client,
    pub backoff: Backoff,
    pub public_url: &'a str,
    pub limiter: Option<&'a RateLimiter>,
}

impl Reconciler<'_> {
    /// Every HTTP call to the instance goes through here first; hold the permit until
    /// the answer is in.
    async fn may_call(&self) -> Option<CallPermit> {
        match self.limiter {
            Some(limiter) => Some(limiter.acquire().await),
            None => None,
        }
    }

    pub async fn run(
        &self,
        link: &Link,
        incident: &Incident,
        integration: &Integration,
        password: SecretString,
    ) -> Reconciled {
        let settings = &integration.servicenow;
        let conn = match url::Url::parse(&settings.instance_url) {
            Ok(instance_url) => Connection {
                instance_url,
                username: settings.username.clone(),
                password,
                table: settings.table.clone(),
            },
            Err(e) => {
                return Reconciled {
                    outcome: LeaseOutcome::Park {
                        error: format!("the instance URL is not valid: {e}"),
                    },
                    effect: SideEffect::None,
                    calls: Vec::new(),
                }
            }
        };
        let (subject, follows_updates) = subject_of(Some(link), incident);
        let desired = desired_fields(&subject, integration, self.public_url);
        let mut calls = Vec::new();

        // After a create whose answer was lost, the record may exist: adopt it rather
        // than create a second one.
        let mut record = link.sys_id.clone().zip(link.number.clone());
        let mut pushed = link.pushed.clone();
        if record.is_none() && link.create_unsure {
            let permit = self.may_call().await;
            let Exchange {
                outcome,
                calls: made,
            } = self
                .client
                .find_by_correlation_id(&conn, &subject.id.to_string())
                .await;
            drop(permit);
            calls.extend(made);
            match outcome {
                Ok(Some(found)) => {
                    record = Some((found.sys_id, found.number));
                    // What the lost create wrote is unknown: send every kept field again.
                    pushed = FieldMap::new();
                }
                Ok(None) => {}
                Err(failure) => return self.failed(link, failure, true, calls, &settings.table),
            }
        }

        let plan = plan_sync(
            &desired,
            &pushed,
            record.is_some(),
            follows_updates,
            settings,
        );
        let (exchange, sent, creating) = match (&plan, &record) {
            (SyncPlan::UpToDate, Some((sys_id, number))) if link.sys_id.is_none() => {
                // Adopted a record that already holds everything.
                return Reconciled {
                    outcome: synced(sys_id.clone(), number.clone(), FieldMap::new(), None),
                    effect: SideEffect::None,
                    calls,
                };
            }
            (SyncPlan::UpToDate, _) => {
                return Reconciled {
                    outcome: LeaseOutcome::UpToDate,
                    effect: SideEffect::None,
                    calls,
                };
            }
            (SyncPlan::Create(fields), _) => {
                let permit = self.may_call().await;
                let exchange = self.client.create(&conn, fields).await;
                drop(permit);
                (exchange, fields, true)
            }
            (SyncPlan::Update(fields), Some((sys_id, _))) => {
                let permit = self.may_call().await;
                let exchange = self.client.update(&conn, sys_id, fields).await;
                drop(permit);
                (exchange, fields, false)
            }
            (SyncPlan::Update(_), None) => unreachable!("plan_sync updates only existing records"),
        };
        calls.extend(exchange.calls);
        match exchange.outcome {
            Ok(Record { sys_id, number, values }) => {
                let (sys_id, number) = match &record {
                    // Some tables return no number on PATCH; keep what we know.
                    Some((known_id, known_number)) if number.is_empty() => (known_id.clone(), known_number.clone()),
                    _ => (sys_id, number),
                };
                let state = values.get(snowbound_core::STATE_FIELD).cloned();
                Reconciled { outcome: synced(sys_id, number, sent.clone(), state), effect: SideEffect::None, calls }
            }
            Err(Failure::Rejected { status: 404, .. }) if !creating => Reconciled {
                outcome: LeaseOutcome::Park {
                    error: format!(
                        "ServiceNow record {} no longer exists in table `{}` or an ACL hides it (HTTP 404). \
                         Snowbound does not re-create it on its own.",
                        record.map(|(_, n)| n).unwrap_or_default(),
                        settings.table
                    ),
                },
                effect: SideEffect::None,
                calls,
            },
            Err(failure) => self.failed(link, failure, creating, calls, &settings.table),
        }
    }

    fn failed(
        &self,
        link: &Link,
        failure: Failure,
        creating: bool,
        calls: Vec<ApiCall>,
        table: &str,
    ) -> Reconciled {
        let error = failure.user_message(table);
        let (outcome, effect) = match failure {
            Failure::RateLimited { retry_after, .. } => {
                (LeaseOutcome::Release, SideEffect::Pause(retry_after))
            }
            Failure::Unauthorized { .. } => (LeaseOutcome::Release, SideEffect::Failing(error)),
            Failure::Rejected { .. } => (LeaseOutcome::Park { error }, SideEffect::None),
            Failure::Transient { ambiguous, .. } => {
                let attempt = u32::try_from(link.attempts).unwrap_or(u32::MAX);
                let at = Utc::now() + self.backoff.delay(attempt);
                (
                    LeaseOutcome::Retry {
                        at,
                        error,
                        create_unsure: creating && ambiguous,
                    },
                    SideEffect::None,
                )
            }
        };
        Reconciled {
            outcome,
            effect,
            calls,
        }
    }
}

fn synced(
    sys_id: String,
    number: String,
    sent: FieldMap,
    servicenow_state: Option<String>,
) -> LeaseOutcome {
    LeaseOutcome::Synced {
        sys_id,
        number,
        sent,
        servicenow_state,
    }
}
