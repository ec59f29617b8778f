use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use snowbound_core::instance_url::{check_instance_url, InstancePolicy};
use url::Url;
use uuid::Uuid;

use crate::auth::Auth;

/// Where and as whom to reach one ServiceNow instance, and which table holds the incidents.
#[derive(Clone)]
pub struct Connection {
    /// `https://…` (plain `http://` and local addresses only when the client's
    /// [`InstancePolicy`] allows them). May carry a path prefix (reverse proxy); a trailing
    /// slash makes no difference.
    pub instance_url: Url,
    pub auth: Auth,
    pub table: String,
    /// The integration this is, for the client's token cache (`None`: tokens are cached
    /// by the credentials alone).
    pub integration: Option<Uuid>,
}

impl fmt::Debug for Connection {
    // Written by hand so that no future field change can make a secret printable
    // (`Auth`'s Debug redacts its own).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("instance_url", &self.instance_url.as_str())
            .field("auth", &self.auth)
            .field("table", &self.table)
            .field("integration", &self.integration)
            .finish()
    }
}

/// Checks that an instance URL is one Snowbound may send credentials to under `policy`
/// (the same rule the server applies when settings are saved). The answer is a sentence
/// for the user.
pub fn validate_instance_url(url: &Url, policy: InstancePolicy) -> Result<(), String> {
    check_instance_url(url, policy).map_err(|problem| format!("the instance URL {problem}"))
}

/// Table and field names end up in paths and encoded queries; ServiceNow names are plain
/// identifiers, so anything else (`^`, `/`, spaces) is a settings mistake or an injection.
pub(crate) fn check_identifier(kind: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 80
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid {kind} name {name:?}: ServiceNow names use only letters, digits and _"
        ))
    }
}

pub(crate) fn check_sys_id(sys_id: &str) -> Result<(), String> {
    let valid = !sys_id.is_empty()
        && sys_id.len() <= 64
        && sys_id.chars().all(|c| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(format!("invalid sys_id {sys_id:?}"))
    }
}

/// Everything except RFC 3986 unreserved characters, so `^`, `=`, `&`, `+`, `,` and spaces
/// inside values can never be read as query syntax by ServiceNow or a proxy.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `{instance}/api/now/table/{segments…}?{query}` with every segment and query value
/// percent-encoded.
pub(crate) fn table_api_url(
    instance: &Url,
    policy: InstancePolicy,
    segments: &[&str],
    query: &[(&str, &str)],
) -> Result<Url, String> {
    validate_instance_url(instance, policy)?;
    let mut url = instance.clone();
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|()| format!("the instance URL cannot be a base: {instance}"))?;
        // Drops the empty segment a trailing slash leaves, so `https://x/` and `https://x`
        // give the same path.
        path.pop_if_empty();
        path.extend(["api", "now", "table"]);
        path.extend(segments);
    }
    let query: Vec<String> = query
        .iter()
        .map(|(key, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(key, QUERY_VALUE),
                utf8_percent_encode(value, QUERY_VALUE)
            )
        })
        .collect();
    let query = query.join("&");
    url.set_query((!query.is_empty()).then_some(query.as_str()));
    Ok(url)
}

/// A value inside an encoded query (`field=value^…`): ServiceNow reads `^` as the term
/// separator and `^^` as a literal caret.
pub(crate) fn encoded_query_value(value: &str) -> String {
    value.replace('^', "^^")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn trailing_slash_makes_no_difference() {
        for base in [
            "https://dev1.service-now.com",
            "https://dev1.service-now.com/",
        ] {
            let built =
                table_api_url(&url(base), InstancePolicy::PUBLIC_ONLY, &["incident"], &[]).unwrap();
            assert_eq!(
                built.as_str(),
                "https://dev1.service-now.com/api/now/table/incident"
            );
        }
    }

    #[test]
    fn path_prefix_is_kept() {
        for base in ["https://proxy.example/sn", "https://proxy.example/sn/"] {
            let built = table_api_url(
                &url(base),
                InstancePolicy::PUBLIC_ONLY,
                &["incident", "abc123"],
                &[],
            )
            .unwrap();
            assert_eq!(
                built.as_str(),
                "https://proxy.example/sn/api/now/table/incident/abc123"
            );
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        let built = table_api_url(
            &url("http://127.0.0.1:8080"),
            InstancePolicy::ALLOW_LOCAL,
            &["incident"],
            &[
                ("sysparm_query", "correlation_id=a b&c=d^e+f,g/h%"),
                ("sysparm_limit", "2"),
            ],
        )
        .unwrap();
        assert_eq!(
            built.as_str(),
            "http://127.0.0.1:8080/api/now/table/incident?sysparm_query=correlation_id%3Da%20b%26c%3Dd%5Ee%2Bf%2Cg%2Fh%25&sysparm_limit=2"
        );
        let decoded: Vec<(String, String)> = built.query_pairs().into_owned().collect();
        assert_eq!(decoded[0].1, "correlation_id=a b&c=d^e+f,g/h%");
    }

    #[test]
    fn carets_in_query_values_are_doubled() {
        assert_eq!(encoded_query_value("a^b"), "a^^b");
        assert_eq!(encoded_query_value("plain"), "plain");
    }

    #[test]
    fn the_client_applies_the_core_rule_with_its_policy() {
        let local = url("http://127.0.0.1:4000");
        assert_eq!(
            validate_instance_url(&local, InstancePolicy::ALLOW_LOCAL),
            Ok(())
        );
        let err = validate_instance_url(&local, InstancePolicy::PUBLIC_ONLY).unwrap_err();
        assert!(
            err.starts_with("the instance URL must use https://"),
            "{err}"
        );
        let err = validate_instance_url(
            &url("https://admin:secret@dev1.service-now.com"),
            InstancePolicy::ALLOW_LOCAL,
        )
        .unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn identifiers_are_plain_names() {
        assert!(check_identifier("table", "incident").is_ok());
        assert!(check_identifier("table", "x_acme_ticket").is_ok());
        assert!(check_identifier("table", "").is_err());
        assert!(check_identifier("field", "state^ORactive=true").is_err());
        assert!(check_identifier("table", "incident/../sys_user").is_err());
        assert!(check_sys_id("46d44a5c2f1a1010a3a5f1e1a1b2c3d4").is_ok());
        assert!(check_sys_id("../x").is_err());
    }

    #[test]
    fn debug_never_prints_the_password() {
        let conn = Connection {
            instance_url: url("https://dev1.service-now.com"),
            auth: Auth::Basic {
                username: "snowbound".into(),
                password: secrecy::SecretString::from("hunter2-very-secret"),
            },
            table: "incident".into(),
            integration: None,
        };
        let printed = format!("{conn:?} {conn:#?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("snowbound"));
    }
}
