//! Emails from monitoring tools that can only send mail, parsed into an [`Alert`]: the
//! subject is the title, the text body the description; patterns over the subject say
//! the severity and whether the mail resolves the alert. One alert's mails — the first,
//! its repeats and the replies to it — share a key: the thread's root message id
//! (`References`, then `In-Reply-To`, then the mail's own `Message-ID`), or what the
//! source's `dedup_pattern` captures from the subject when the tool does not thread.
//!
//! MIME (multipart, encoded words, transfer encodings, charsets) is `mail-parser`'s.

use mail_parser::{HeaderValue, MessageParser};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{checked_key, Alert, AlertEvent, AlertFields};
use crate::json::{BodyError, BodyErrorKind};
use crate::model::Severity;
use crate::source::Source;
use crate::validate::{cut, limits, replace_nul, FieldError};

/// `(?i)` patterns cover the words tools put in subjects.
pub const DEFAULT_SEVERITY_PATTERN: &str = r"(?i)\b(critical|warning|minor)\b";
pub const DEFAULT_RESOLVED_PATTERN: &str = r"(?i)\b(resolved|recovered)\b";
const PATTERN_MAX_CHARS: usize = 500;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// An `email` source's settings (`email:{…}` in the API); every one has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// Its first capture group (or the whole match) is the severity word, mapped
    /// through the source's `severity_map`.
    #[serde(default = "default_severity_pattern")]
    pub severity_pattern: String,
    /// A subject it matches resolves the alert.
    #[serde(default = "default_resolved_pattern")]
    pub resolved_pattern: String,
    /// For tools that do not thread their mails: the first capture group (or the whole
    /// match) is the alert's key. Unset: the thread's root message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_pattern: Option<String>,
    /// When the severity pattern finds nothing the source knows.
    #[serde(default = "default_severity")]
    pub default_severity: Severity,
}

fn default_severity_pattern() -> String {
    DEFAULT_SEVERITY_PATTERN.into()
}

fn default_resolved_pattern() -> String {
    DEFAULT_RESOLVED_PATTERN.into()
}

fn default_severity() -> Severity {
    Severity::Warning
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            severity_pattern: default_severity_pattern(),
            resolved_pattern: default_resolved_pattern(),
            dedup_pattern: None,
            default_severity: default_severity(),
        }
    }
}

fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Problems with the settings, named by their path (`email.resolved_pattern`).
pub fn validate_email_settings(settings: &EmailSettings) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let patterns = [
        ("email.severity_pattern", Some(&settings.severity_pattern)),
        ("email.resolved_pattern", Some(&settings.resolved_pattern)),
        ("email.dedup_pattern", settings.dedup_pattern.as_ref()),
    ];
    for (field, pattern) in patterns {
        let Some(pattern) = pattern else { continue };
        if pattern.trim().is_empty() {
            errors.push(FieldError::new(field, "must not be empty"));
        } else if pattern.chars().count() > PATTERN_MAX_CHARS {
            errors.push(FieldError::new(
                field,
                format!("must be at most {PATTERN_MAX_CHARS} characters"),
            ));
        } else if let Err(e) = compile(pattern) {
            errors.push(FieldError::new(
                field,
                format!("not a valid regular expression: {e}"),
            ));
        }
    }
    errors
}

/// The text a pattern picked out: its first capture group, else the whole match.
fn captured<'s>(pattern: &str, subject: &'s str) -> Option<&'s str> {
    let re = compile(pattern).ok()?;
    let caps = re.captures(subject)?;
    caps.get(1).or_else(|| caps.get(0)).map(|m| m.as_str())
}

/// A message id without its angle brackets.
fn bare_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty()).then(|| id.to_owned())
}

fn first_id(value: &HeaderValue<'_>) -> Option<String> {
    value.as_text_list()?.iter().find_map(|id| bare_id(id))
}

/// "Re: Fwd: [RESOLVED] Disk full" and "[RESOLVED] Disk full" are one alert's subjects.
fn without_reply_prefixes(subject: &str) -> &str {
    let mut rest = subject.trim();
    loop {
        let lower = rest.to_ascii_lowercase();
        let cut = ["re:", "fw:", "fwd:", "aw:", "wg:"]
            .iter()
            .find(|p| lower.starts_with(*p))
            .map(|p| p.len());
        match cut {
            Some(n) => rest = rest[n..].trim_start(),
            None => return rest,
        }
    }
}

/// Parses one mail as it arrived over SMTP (headers and body). A mail without a subject
/// is refused naming `subject`; anything else that reads as a mail becomes an alert.
pub fn parse(raw: &[u8], source: &Source, settings: &EmailSettings) -> Result<Alert, BodyError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| BodyError {
            kind: BodyErrorKind::Malformed,
            field: None,
            message: "not an email message".into(),
        })?;
    let subject = replace_nul(message.subject().unwrap_or_default().trim().to_owned());
    if subject.is_empty() {
        return Err(BodyError::field(
            "subject",
            "is required: it becomes the title",
        ));
    }
    let subject_key = without_reply_prefixes(&subject);
    let key = match settings
        .dedup_pattern
        .as_deref()
        .and_then(|p| captured(p, subject_key))
    {
        Some(key) => format!("pattern:{key}"),
        None => first_id(message.references())
            .or_else(|| first_id(message.in_reply_to()))
            .or_else(|| message.message_id().and_then(bare_id))
            .map(|id| format!("thread:{id}"))
            // A mail without any id: its subject is all that ties repeats together.
            .unwrap_or_else(|| {
                let digest = Sha256::digest(subject_key.as_bytes());
                format!("subject:{}", hex::encode(&digest[..16]))
            }),
    };
    let dedup_key = checked_key(&key, "message_id")?;
    if captured(&settings.resolved_pattern, &subject).is_some() {
        return Ok(Alert {
            dedup_key,
            event: AlertEvent::Resolved,
        });
    }
    let severity = captured(&settings.severity_pattern, &subject)
        .and_then(|word| source.map_severity(word))
        .unwrap_or(settings.default_severity);
    let description = message
        .body_text(0)
        // Mail lines end in CRLF; everything else Snowbound holds ends them in LF.
        .map(|text| {
            cut(
                replace_nul(text.trim().replace("\r\n", "\n")),
                limits::DESCRIPTION,
            )
        })
        .filter(|text| !text.is_empty());
    Ok(Alert {
        dedup_key,
        event: AlertEvent::Firing(AlertFields {
            title: cut(subject, limits::TITLE),
            description,
            severity,
            attributes: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceKind;
    use chrono::Utc;
    use uuid::Uuid;

    fn source() -> Source {
        Source {
            id: Uuid::nil(),
            team_id: Uuid::nil(),
            kind: SourceKind::Email,
            name: "mail".into(),
            severity_map: [("p1".to_owned(), Severity::Critical)].into(),
            servicenow: None,
            grafana: None,
            json: None,
            email: Some(EmailSettings::default()),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn parse_default(raw: &str) -> Alert {
        parse(raw.as_bytes(), &source(), &EmailSettings::default()).unwrap()
    }

    const FIRST: &str = "Message-ID: <a1@nagios.example>\r\nSubject: =?UTF-8?Q?CRITICAL:_Disk_f=C3=BCll_on_db1?=\r\n\
        Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
        /var is 99% full\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>/var is 99% full</p>\r\n--b--\r\n";

    #[test]
    fn an_encoded_multipart_mail_opens_an_alert_keyed_by_its_message_id() {
        let alert = parse_default(FIRST);
        assert_eq!(alert.dedup_key, "thread:a1@nagios.example");
        let AlertEvent::Firing(fields) = alert.event else {
            panic!("firing")
        };
        assert_eq!(fields.title, "CRITICAL: Disk füll on db1");
        assert_eq!(fields.description.as_deref(), Some("/var is 99% full"));
        assert_eq!(fields.severity, Severity::Critical);
    }

    #[test]
    fn a_reply_saying_resolved_resolves_the_threads_root() {
        let reply = "Message-ID: <r9@mail.example>\r\nIn-Reply-To: <a1@nagios.example>\r\n\
            References: <a1@nagios.example> <a2@nagios.example>\r\nSubject: Re: RESOLVED: Disk on db1\r\n\r\nfreed\r\n";
        let alert = parse_default(reply);
        assert_eq!(alert.dedup_key, "thread:a1@nagios.example");
        assert_eq!(alert.event, AlertEvent::Resolved);
    }

    #[test]
    fn a_dedup_pattern_ties_unthreaded_mails_and_the_severity_map_applies() {
        let settings = EmailSettings {
            dedup_pattern: Some(r"Problem (#\d+)".into()),
            severity_pattern: r"\[(P\d)\]".into(),
            ..EmailSettings::default()
        };
        let first = "Message-ID: <x@z>\r\nSubject: [P1] Problem #42 disk\r\n\r\n";
        let alert = parse(first.as_bytes(), &source(), &settings).unwrap();
        assert_eq!(alert.dedup_key, "pattern:#42");
        let AlertEvent::Firing(fields) = alert.event else {
            panic!("firing")
        };
        assert_eq!(fields.severity, Severity::Critical);
        let repeat = "Message-ID: <y@z>\r\nSubject: Fwd: Problem #42 recovered\r\n\r\n";
        let alert = parse(repeat.as_bytes(), &source(), &settings).unwrap();
        assert_eq!(alert.dedup_key, "pattern:#42");
        assert_eq!(alert.event, AlertEvent::Resolved);
    }

    #[test]
    fn unknown_severity_words_fall_back_and_a_mail_without_subject_is_refused() {
        let alert = parse_default("Subject: something odd\r\n\r\nbody");
        assert!(alert.dedup_key.starts_with("subject:"));
        let AlertEvent::Firing(fields) = alert.event else {
            panic!("firing")
        };
        assert_eq!(fields.severity, Severity::Warning);
        let err = parse(
            b"From: a@b\r\n\r\nno subject",
            &source(),
            &EmailSettings::default(),
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("subject"));
    }

    #[test]
    fn bad_patterns_are_named() {
        let settings = EmailSettings {
            resolved_pattern: "(".into(),
            dedup_pattern: Some(" ".into()),
            ..EmailSettings::default()
        };
        let fields: Vec<String> = validate_email_settings(&settings)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["email.resolved_pattern", "email.dedup_pattern"]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for raw in [
            &b""[..],
            b"\xff\xfe",
            b"Subject:",
            b"Subject: =?x?B?////?=\r\n\r\n",
        ] {
            let _ = parse(raw, &source(), &EmailSettings::default());
        }
    }
}
