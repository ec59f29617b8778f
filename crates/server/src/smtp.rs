//! The SMTP listener of `email` sources (`SNOWBOUND_SMTP_LISTEN`, off by default): mail
//! to `<secret>@<SNOWBOUND_SMTP_DOMAIN>` becomes an alert of that source. It speaks the
//! receiving side of RFC 5321 that a monitoring tool or a relay uses — EHLO/HELO, MAIL,
//! RCPT, DATA, RSET, NOOP, QUIT — with `SIZE` and `8BITMIME`, no AUTH and no STARTTLS:
//! the address is the credential, as the ingest URL is, so put a relay you trust in front
//! when mail crosses a network you do not. (No maintained Rust crate serves just this
//! much over tokio; parsing the mail itself is `mail-parser`'s, in `core`.)
//!
//! Its promises are the ingest route's: a recipient no email source has is refused at
//! RCPT; `250` after DATA means the alert is committed; a failure to store it answers
//! `451` so the sender keeps the mail and tries again; a mail that cannot become an
//! alert answers `554` saying why; a source over its ingest limit answers `451` too.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use snowbound_core::ingest::email::{self, EmailSettings};
use snowbound_core::source::{Source, SourceKind};
use snowbound_services::ServiceError;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct SmtpLimits {
    /// The largest mail accepted, announced as `SIZE`.
    pub max_message_bytes: usize,
    /// Recipients of one mail at most.
    pub max_recipients: usize,
    pub max_connections: usize,
    /// A command (or a chunk of DATA) must arrive within this.
    pub read_timeout: Duration,
}

impl Default for SmtpLimits {
    fn default() -> Self {
        SmtpLimits {
            max_message_bytes: crate::routes::MAX_BODY_BYTES,
            max_recipients: 20,
            max_connections: 64,
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// RFC 5321's limit on a command line, CRLF included.
const MAX_COMMAND_LINE: usize = 512;
/// Mail lines longer than RFC 5321's 1000 are tolerated up to this (some tools send
/// them); the message limit bounds the rest.
const MAX_DATA_LINE: usize = 64 * 1024;

/// Serves SMTP on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: SmtpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
            () = &mut shutdown => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an SMTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let (state, limits) = (state.clone(), Arc::clone(&limits));
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            if let Err(e) = Session::new(&state, &limits, read, write).run().await {
                tracing::debug!(error = %e, "SMTP connection ended with an error");
            }
            drop(slot);
        });
    }
}

/// What a mail is for once RCPT accepted it.
struct Recipient {
    source: Source,
    settings: EmailSettings,
}

struct Session<'a, R, W> {
    state: &'a AppState,
    limits: &'a SmtpLimits,
    reader: BufReader<R>,
    writer: W,
    mail_from: bool,
    recipients: Vec<Recipient>,
}

enum Line {
    Text(Vec<u8>),
    TooLong,
    Closed,
}

impl<'a, R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Session<'a, R, W> {
    fn new(state: &'a AppState, limits: &'a SmtpLimits, read: R, writer: W) -> Self {
        Session {
            state,
            limits,
            reader: BufReader::new(read),
            writer,
            mail_from: false,
            recipients: Vec::new(),
        }
    }

    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        self.writer.write_all(text.as_bytes()).await?;
        self.writer.write_all(b"\r\n").await?;
        self.writer.flush().await
    }

    /// One line, CRLF (or LF) removed; a line past `max` is read to its end and dropped.
    async fn line(&mut self, max: usize) -> std::io::Result<Line> {
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let mut chunk = Vec::new();
            let limit = (max + 2).saturating_sub(line.len()).max(1) as u64;
            let read = tokio::time::timeout(
                self.limits.read_timeout,
                (&mut self.reader).take(limit).read_until(b'\n', &mut chunk),
            )
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "SMTP read timed out")
            })??;
            if read == 0 {
                return Ok(if line.is_empty() && !too_long {
                    Line::Closed
                } else {
                    Line::TooLong
                });
            }
            let ended = chunk.ends_with(b"\n");
            if !too_long {
                line.extend_from_slice(&chunk);
                if line.len() > max + 2 {
                    too_long = true;
                    line.clear();
                }
            }
            if ended {
                break;
            }
        }
        if too_long {
            return Ok(Line::TooLong);
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        Ok(Line::Text(line))
    }

    async fn run(mut self) -> std::io::Result<()> {
        let domain = self.state.smtp_domain().to_owned();
        self.reply(&format!("220 {domain} Snowbound ESMTP ready"))
            .await?;
        loop {
            let line = match self.line(MAX_COMMAND_LINE).await? {
                Line::Closed => return Ok(()),
                Line::TooLong => {
                    self.reply("500 5.5.2 Line too long").await?;
                    continue;
                }
                Line::Text(line) => String::from_utf8_lossy(&line).into_owned(),
            };
            let (verb, argument) = match line.split_once(' ') {
                Some((verb, rest)) => (verb.to_ascii_uppercase(), rest.trim()),
                None => (line.trim().to_ascii_uppercase(), ""),
            };
            match verb.as_str() {
                "EHLO" => {
                    self.reset();
                    let size = self.limits.max_message_bytes;
                    self.reply(&format!("250-{domain}\r\n250-SIZE {size}\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES"))
                        .await?;
                }
                "HELO" => {
                    self.reset();
                    self.reply(&format!("250 {domain}")).await?;
                }
                "MAIL" => self.mail(argument).await?,
                "RCPT" => self.rcpt(argument, &domain).await?,
                "DATA" => self.data().await?,
                "RSET" => {
                    self.reset();
                    self.reply("250 2.0.0 OK").await?;
                }
                "NOOP" => self.reply("250 2.0.0 OK").await?,
                "VRFY" => self.reply("252 2.1.5 Cannot verify; send the mail").await?,
                "QUIT" => {
                    self.reply(&format!("221 2.0.0 {domain} closing")).await?;
                    return Ok(());
                }
                "STARTTLS" | "AUTH" => {
                    self.reply("502 5.5.1 Not offered here; use a relay for TLS")
                        .await?
                }
                _ => self.reply("502 5.5.2 Command not recognised").await?,
            }
        }
    }

    fn reset(&mut self) {
        self.mail_from = false;
        self.recipients.clear();
    }

    async fn mail(&mut self, argument: &str) -> std::io::Result<()> {
        let Some(rest) = strip_keyword(argument, "FROM:") else {
            return self.reply("501 5.5.4 Syntax: MAIL FROM:<address>").await;
        };
        let declared_size = rest
            .split_whitespace()
            .skip(1)
            .find_map(|param| strip_keyword(param, "SIZE="))
            .and_then(|size| size.parse::<usize>().ok());
        if declared_size.is_some_and(|size| size > self.limits.max_message_bytes) {
            return self.reply("552 5.3.4 Message too big").await;
        }
        self.reset();
        self.mail_from = true;
        self.reply("250 2.1.0 OK").await
    }

    async fn rcpt(&mut self, argument: &str, domain: &str) -> std::io::Result<()> {
        if !self.mail_from {
            return self.reply("503 5.5.1 MAIL first").await;
        }
        let Some(rest) = strip_keyword(argument, "TO:") else {
            return self.reply("501 5.5.4 Syntax: RCPT TO:<address>").await;
        };
        if self.recipients.len() >= self.limits.max_recipients {
            return self.reply("452 4.5.3 Too many recipients").await;
        }
        let address = rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_start_matches('<')
            .trim_end_matches('>');
        let found = match address.rsplit_once('@') {
            Some((local, at)) if at.eq_ignore_ascii_case(domain) => {
                match self
                    .state
                    .services
                    .sources()
                    .by_email_local_part(local)
                    .await
                {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::error!(error = %e, "looking up an email source failed");
                        return self.reply("451 4.3.0 Try again later").await;
                    }
                }
            }
            _ => None,
        };
        match found {
            Some(source) => {
                let settings = source.email.clone().unwrap_or_default();
                self.recipients.push(Recipient { source, settings });
                self.reply("250 2.1.5 OK").await
            }
            None => self.reply("550 5.1.1 No such recipient").await,
        }
    }

    async fn data(&mut self) -> std::io::Result<()> {
        if self.recipients.is_empty() {
            return self.reply("503 5.5.1 RCPT first").await;
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>").await?;
        let mut message = Vec::new();
        let mut too_big = false;
        loop {
            let line = match self.line(MAX_DATA_LINE).await? {
                Line::Closed => return Ok(()),
                Line::TooLong => {
                    too_big = true;
                    continue;
                }
                Line::Text(line) => line,
            };
            if line == b"." {
                break;
            }
            // Dot-stuffing: a line the sender began with a dot carries one more.
            let line = line.strip_prefix(b".").unwrap_or(&line);
            if message.len() + line.len() + 2 > self.limits.max_message_bytes {
                too_big = true;
            }
            if !too_big {
                message.extend_from_slice(line);
                message.extend_from_slice(b"\r\n");
            }
        }
        let recipients = std::mem::take(&mut self.recipients);
        self.mail_from = false;
        if too_big {
            return self.reply("552 5.3.4 Message too big").await;
        }
        let mut answer = "250 2.0.0 Stored".to_owned();
        for recipient in &recipients {
            if let Err(refusal) = self.deliver(recipient, &message).await {
                answer = refusal;
                break;
            }
        }
        self.reply(&answer).await
    }

    /// The alert committed, or the SMTP reply saying why not.
    async fn deliver(&self, recipient: &Recipient, message: &[u8]) -> Result<(), String> {
        let state = self.state;
        let source = &recipient.source;
        let counted = |outcome: &str| {
            if let Some(metrics) = &state.metrics {
                metrics.alerts_ingested(SourceKind::Email, outcome, 1);
            }
        };
        let alert = email::parse(message, source, &recipient.settings).map_err(|e| {
            counted("refused");
            let field = e.field.map(|f| format!("{f}: ")).unwrap_or_default();
            format!("554 5.6.0 Not an alert: {field}{}", e.message)
        })?;
        if let Err(ServiceError::RateLimited { retry_after, .. }) =
            state.services.ingest_limits.admit(source.id, 1)
        {
            counted("rate_limited");
            return Err(format!(
                "451 4.7.0 Over this source's ingest limit; try again in {} s",
                retry_after.as_secs().max(1)
            ));
        }
        let incidents = state.incidents();
        let stored = async {
            let intake = incidents.intake(source.clone()).await?;
            incidents.ingest(&intake, alert).await
        }
        .await;
        match stored {
            Ok(outcome) => {
                counted(outcome.action);
                Ok(())
            }
            Err(e) => {
                counted("failed");
                tracing::warn!(error = %e, source = %source.id, "an emailed alert could not be stored");
                Err("451 4.3.0 Not stored now; try again later".into())
            }
        }
    }
}

/// `argument` without a case-insensitive `keyword` in front.
fn strip_keyword<'s>(argument: &'s str, keyword: &str) -> Option<&'s str> {
    let head = argument.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| argument[keyword.len()..].trim_start())
}

#[cfg(test)]
mod tests {
    use super::strip_keyword;

    #[test]
    fn keywords_match_in_any_case() {
        assert_eq!(
            strip_keyword("from:<a@b> SIZE=10", "FROM:"),
            Some("<a@b> SIZE=10")
        );
        assert_eq!(strip_keyword("TO: <a@b>", "TO:"), Some("<a@b>"));
        assert_eq!(strip_keyword("T", "TO:"), None);
        assert_eq!(strip_keyword("é", "TO:"), None);
    }
}
