//! "Test Connection": tells a person setting up an integration, in plain words, what works
//! and what to fix. It only reads (one row of the table, one row of sys_choice).

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use url::Url;

use crate::api_call::ApiCall;
use crate::auth::Auth;
use crate::classify::Failure;
use crate::client::{Client, Sent, EXCLUDE_LINKS};
use crate::connection::{check_identifier, validate_instance_url, Connection};
use crate::oauth::Want;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TestReport {
    /// Every check passed. The sys_choice check never fails the test: choice lists are a
    /// convenience, its problems show up as warnings.
    pub ok: bool,
    pub checks: Vec<Check>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

pub(crate) const CHECK_INSTANCE: &str = "Instance reachable";
pub(crate) const CHECK_TOKEN: &str = "Token obtained";
pub(crate) const CHECK_CREDENTIALS: &str = "Credentials accepted";
pub(crate) const CHECK_TABLE: &str = "Table readable";
pub(crate) const CHECK_CHOICES: &str = "sys_choice readable";

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
    warnings: Vec<String>,
    calls: Vec<ApiCall>,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.to_owned(),
            ok,
            detail: detail.into(),
        });
    }

    fn skip(&mut self, names: &[&str], because: &str) {
        for name in names {
            self.check(name, false, format!("Not checked: {because}."));
        }
    }

    fn finish(self) -> (TestReport, Vec<ApiCall>) {
        let ok = self.checks.iter().all(|c| c.ok);
        (
            TestReport {
                ok,
                checks: self.checks,
                warnings: self.warnings,
            },
            self.calls,
        )
    }
}

impl Client {
    /// Checks, in order: the instance answers, (OAuth) a token is issued, the
    /// credentials are accepted, the table exists and can be read, sys_choice can be
    /// read. Never writes anything.
    pub async fn test_connection(&self, conn: &Connection) -> (TestReport, Vec<ApiCall>) {
        let mut report = Report::default();
        let oauth = conn.auth.is_oauth();
        let after_instance: &[&str] = if oauth {
            &[CHECK_TOKEN, CHECK_CREDENTIALS, CHECK_TABLE, CHECK_CHOICES]
        } else {
            &[CHECK_CREDENTIALS, CHECK_TABLE, CHECK_CHOICES]
        };
        if let Err(problem) = validate_instance_url(&conn.instance_url, self.instance_policy()) {
            report.check(CHECK_INSTANCE, false, format!("The {problem}."));
            report.skip(after_instance, "the instance URL is not usable");
            return report.finish();
        }
        if oauth && !self.token_check(&mut report, conn).await {
            return report.finish();
        }
        let table = conn.table.as_str();
        let table_probe = check_identifier("table", table).and_then(|()| {
            self.table_url(
                conn,
                &[],
                &[
                    ("sysparm_limit", "1"),
                    ("sysparm_fields", "sys_id"),
                    EXCLUDE_LINKS,
                ],
            )
        });
        let sent = match table_probe {
            Ok(url) => self.send(conn, Method::GET, url, None).await,
            Err(problem) => {
                // Still worth checking the instance and credentials, through sys_choice.
                let sent = self.probe_choices(conn).await;
                let reached = oauth || instance_check(&mut report, conn, &sent);
                if reached && credentials_check(&mut report, conn, &sent) {
                    report.check(
                        CHECK_TABLE,
                        false,
                        format!("The table setting is not usable: {problem}."),
                    );
                    choices_check(&mut report, sent);
                } else {
                    report.calls.extend(sent.into_calls());
                    report.skip(&[CHECK_TABLE, CHECK_CHOICES], "see above");
                }
                return report.finish();
            }
        };

        // With OAuth the token request already showed the instance answering.
        if !oauth && !instance_check(&mut report, conn, &sent) {
            report.calls.extend(sent.into_calls());
            report.skip(after_instance, "the instance did not answer");
            return report.finish();
        }
        if !credentials_check(&mut report, conn, &sent) {
            report.calls.extend(sent.into_calls());
            report.skip(
                &[CHECK_TABLE, CHECK_CHOICES],
                "the credentials were refused",
            );
            return report.finish();
        }
        table_check(&mut report, table, &sent);
        report.calls.extend(sent.into_calls());
        let choices = self.probe_choices(conn).await;
        choices_check(&mut report, choices);
        report.finish()
    }

    /// A new token from the original grant (not the cached one: the point is to see
    /// the credentials work now), reported as the instance check and its own check.
    async fn token_check(&self, report: &mut Report, conn: &Connection) -> bool {
        let host = conn
            .instance_url
            .host_str()
            .unwrap_or("the instance")
            .to_owned();
        let mut calls = Vec::new();
        let got = self.bearer(conn, Want::Fresh, &mut calls).await;
        let status = calls.last().and_then(|call| call.status);
        report.calls.extend(calls);
        let Some(status) = status else {
            let why = match &got {
                Err(failure) => failure.to_string(),
                Ok(_) => "no answer".to_owned(),
            };
            report.check(
                CHECK_INSTANCE,
                false,
                format!("Could not reach {host}: {why}."),
            );
            report.skip(
                &[CHECK_TOKEN, CHECK_CREDENTIALS, CHECK_TABLE, CHECK_CHOICES],
                "the instance did not answer",
            );
            return false;
        };
        report.check(
            CHECK_INSTANCE,
            true,
            format!(
                "{host} answered the token request {} (HTTP {status}).",
                transport_words(&conn.instance_url)
            ),
        );
        match got {
            Ok(bearer) => {
                let grant = match &conn.auth {
                    Auth::OAuthPassword { .. } => "password grant",
                    _ => "client credentials grant",
                };
                report.check(
                    CHECK_TOKEN,
                    true,
                    format!(
                        "ServiceNow issued an access token ({grant}, valid for {} s); Snowbound \
                         renews it before it expires.",
                        bearer.lifetime.as_secs()
                    ),
                );
                true
            }
            Err(failure) => {
                report.check(CHECK_TOKEN, false, failure.user_message(&conn.table));
                report.skip(
                    &[CHECK_CREDENTIALS, CHECK_TABLE, CHECK_CHOICES],
                    "no token was obtained",
                );
                false
            }
        }
    }

    /// One sys_choice row for the table or task, the same rows `choices` reads.
    async fn probe_choices(&self, conn: &Connection) -> Sent {
        let query = match check_identifier("table", &conn.table) {
            Ok(()) => format!("name={}^ORname=task", conn.table),
            Err(_) => "name=task".to_owned(),
        };
        let url = self
            .table_url_for(
                conn,
                "sys_choice",
                &[],
                &[
                    ("sysparm_query", &query),
                    ("sysparm_fields", "value"),
                    ("sysparm_limit", "1"),
                    EXCLUDE_LINKS,
                ],
            )
            .expect("instance URL was validated and all names are constants");
        self.send(conn, Method::GET, url, None).await
    }
}

/// Did any HTTP answer come from ServiceNow? An HTML page in place of JSON counts as no:
/// that is a hibernating developer instance or a proxy, not the Table API.
fn instance_check(report: &mut Report, conn: &Connection, sent: &Sent) -> bool {
    let url = &conn.instance_url;
    let host = url.host_str().unwrap_or("the instance");
    let html_instead_of_json = matches!(
        &sent.outcome,
        Err(Failure::Transient { ambiguous: false, message }) if message.contains("HTML page")
    );
    let Some(status) = sent.call.status else {
        let why = match &sent.outcome {
            Err(failure) => failure.to_string(),
            Ok(_) => "no answer".to_owned(),
        };
        report.check(
            CHECK_INSTANCE,
            false,
            format!("Could not reach {host}: {why}."),
        );
        return false;
    };
    if let (true, Err(failure)) = (html_instead_of_json, &sent.outcome) {
        report.check(CHECK_INSTANCE, false, format!("{failure}."));
        return false;
    }
    report.check(
        CHECK_INSTANCE,
        true,
        format!("{host} answered {} (HTTP {status}).", transport_words(url)),
    );
    true
}

fn transport_words(url: &Url) -> String {
    if url.scheme() == "https" {
        "over TLS (https)".to_owned()
    } else if url.scheme() == "http" {
        "over plain http, unencrypted (allowed only because Snowbound runs with \
         SNOWBOUND_ALLOW_LOCAL_INSTANCES=true, as for the local emulator)"
            .to_owned()
    } else {
        format!("over {}", url.scheme())
    }
}

fn credentials_check(report: &mut Report, conn: &Connection, sent: &Sent) -> bool {
    if let Err(failure @ Failure::Unauthorized { message, .. }) = &sent.outcome {
        report.check(
            CHECK_CREDENTIALS,
            false,
            format!(
                "{} ServiceNow said: {message}.",
                failure.user_message(&conn.table)
            ),
        );
        return false;
    }
    let who = match &conn.auth {
        Auth::Basic { username, .. } => format!("user {username} (Basic authentication)"),
        Auth::OAuthPassword {
            username,
            client_id,
            ..
        } => format!("the OAuth token of user {username} (client {client_id})"),
        Auth::OAuthClientCredentials { client_id, .. } => {
            format!("the OAuth token of client {client_id} (it acts as the OAuth Application User)")
        }
        Auth::ApiKey { .. } => "the API key".to_owned(),
    };
    report.check(
        CHECK_CREDENTIALS,
        true,
        format!("ServiceNow accepted {who}."),
    );
    true
}

fn table_check(report: &mut Report, table: &str, sent: &Sent) {
    match &sent.outcome {
        Ok(Value::Array(rows)) => {
            let seen = if rows.is_empty() {
                " No rows were visible (the table is empty or read ACLs hide them)."
            } else {
                ""
            };
            report.check(
                CHECK_TABLE,
                true,
                format!(
                    "Table {table} exists and can be read (a one-row read; nothing was \
                     created).{seen} Write rights show at the first create."
                ),
            );
        }
        Ok(_) => {
            let failure = sent.unexpected(false);
            report.check(CHECK_TABLE, false, failure.to_string());
        }
        Err(failure) => report.check(CHECK_TABLE, false, failure.user_message(table)),
    }
}

/// Never fails the test (see [`TestReport::ok`]); explains in a warning what it means.
fn choices_check(report: &mut Report, sent: Sent) {
    let manual = "Choice lists (state, close code, severity) will need manual values";
    match &sent.outcome {
        Ok(Value::Array(rows)) if !rows.is_empty() => {
            report.check(
                CHECK_CHOICES,
                true,
                "sys_choice can be read: choice lists can be loaded.",
            );
        }
        Ok(_) => {
            report.check(
                CHECK_CHOICES,
                true,
                "sys_choice answered but returned no choices.",
            );
            report.warnings.push(format!(
                "sys_choice returned no choices for this table: read ACLs may be hiding them. \
                 {manual} unless the ServiceNow admin grants read on sys_choice (e.g. the \
                 role personalize_choices or an ACL)."
            ));
        }
        Err(Failure::Rejected {
            status: 403,
            message,
            ..
        }) => {
            report.check(
                CHECK_CHOICES,
                true,
                format!("Not readable (HTTP 403: {message}); optional, see the warning."),
            );
            report.warnings.push(format!(
                "The integration user cannot read sys_choice (HTTP 403). {manual}. To load \
                 them, the ServiceNow admin must grant read on sys_choice, e.g. the role \
                 personalize_choices or an ACL."
            ));
        }
        Err(failure) => {
            report.check(
                CHECK_CHOICES,
                true,
                format!("Could not read sys_choice ({failure}); optional, see the warning."),
            );
            report.warnings.push(format!(
                "Choice lists could not be loaded from sys_choice: {failure}. {manual} until \
                 this works."
            ));
        }
    }
    report.calls.extend(sent.into_calls());
}
