use chrono::{DateTime, Utc};
use serde::Serialize;

/// Response bodies kept in the API call log are cut here: a list answer or an HTML error
/// page can be large, and the log is stored per integration.
pub const MAX_LOGGED_BODY_BYTES: usize = 64 * 1024;

/// One HTTP call to ServiceNow, as shown in the integration's API call log.
///
/// No request headers are recorded at all, so the `Authorization` and `x-sn-apikey`
/// headers (and with them passwords, tokens and API keys) can never end up here; URLs
/// never carry credentials either (see [`crate::Connection`]). Token requests are logged
/// with their secrets and the tokens they return replaced by `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiCall {
    pub at: DateTime<Utc>,
    pub method: String,
    pub url: String,
    pub request_body: Option<String>,
    /// `None` when no HTTP answer arrived (connect error, timeout before the headers).
    pub status: Option<u16>,
    /// Cut at [`MAX_LOGGED_BODY_BYTES`] on a char boundary.
    pub response_body: Option<String>,
    pub duration_ms: u64,
    /// Transport error (connect, timeout, reset) in words; `None` when an answer was read.
    pub error: Option<String>,
}

impl ApiCall {
    /// A call Snowbound refused to send; kept so the log shows what was attempted.
    pub(crate) fn not_sent(
        method: &reqwest::Method,
        url: &url::Url,
        request_body: Option<String>,
    ) -> ApiCall {
        ApiCall {
            at: chrono::Utc::now(),
            method: method.to_string(),
            url: url.to_string(),
            request_body,
            status: None,
            response_body: None,
            duration_ms: 0,
            error: Some("not sent".into()),
        }
    }
}

/// Decodes lossily (an HTML error page may not be UTF-8) and cuts on a char boundary so the
/// stored text is always valid UTF-8.
pub(crate) fn logged_body(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    truncate_on_char_boundary(&text, MAX_LOGGED_BODY_BYTES).to_owned()
}

pub(crate) fn truncate_on_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_bodies_are_kept_whole() {
        assert_eq!(logged_body(b"{\"result\":{}}"), "{\"result\":{}}");
    }

    #[test]
    fn long_bodies_are_cut_at_64_kib() {
        let body = "a".repeat(MAX_LOGGED_BODY_BYTES + 10);
        assert_eq!(logged_body(body.as_bytes()).len(), MAX_LOGGED_BODY_BYTES);
    }

    #[test]
    fn cut_never_splits_a_multibyte_char() {
        // 'é' is two bytes: an odd limit falls in the middle of one.
        let body = "é".repeat(MAX_LOGGED_BODY_BYTES);
        let cut = logged_body(body.as_bytes());
        assert_eq!(cut.len(), MAX_LOGGED_BODY_BYTES);
        let cut_odd = truncate_on_char_boundary(&body, 5);
        assert_eq!(cut_odd, "éé");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        assert_eq!(logged_body(&[b'o', b'k', 0xff]), "ok\u{fffd}");
    }
}
