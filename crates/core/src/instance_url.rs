//! The one rule for where Snowbound may send an integration's credentials. The server
//! applies it when settings are saved, the ServiceNow client again before every call
//! (and to every address a name resolves to), so a URL stored before a rule changed, or a
//! name that resolves differently later, is caught too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Whether instances on this machine or a private network may be called. Off unless the
/// server runs with `SNOWBOUND_ALLOW_LOCAL_INSTANCES=true` (the demo and tests, whose
/// emulator listens on 127.0.0.1): otherwise any team could point an integration at a
/// service next to Snowbound (databases, caches, cloud metadata) and read its answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstancePolicy {
    /// Plain `http://` and loopback, private and link-local addresses are allowed.
    pub allow_local: bool,
}

impl InstancePolicy {
    pub const PUBLIC_ONLY: InstancePolicy = InstancePolicy { allow_local: false };
    pub const ALLOW_LOCAL: InstancePolicy = InstancePolicy { allow_local: true };

    /// Whether a connection to `ip` may carry credentials.
    pub fn allows_ip(self, ip: IpAddr) -> bool {
        self.allow_local || is_public(ip)
    }
}

/// Parses and checks an instance URL as typed by a user; the answer on failure is a
/// sentence for that user (never repeating a password found in the URL).
pub fn parse_instance_url(raw: &str, policy: InstancePolicy) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("is not a URL ({e})"))?;
    check_instance_url(&url, policy)?;
    Ok(url)
}

/// Checks a parsed instance URL. A host given as an address is checked here; what a name
/// resolves to is checked by the caller (the server when saving, the client's resolver
/// when connecting), since only resolving tells.
pub fn check_instance_url(url: &Url, policy: InstancePolicy) -> Result<(), String> {
    if !url.username().is_empty() || url.password().is_some() {
        // Stored with the settings, they would be shown to every team that sees the
        // integration and written into the API call log.
        return Err(
            "must not contain a username or password; enter them in the username \
                    and password settings"
                .to_owned(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query (?…) or fragment (#…)".to_owned());
    }
    let Some(host) = url.host() else {
        return Err("has no host".to_owned());
    };
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_local => {}
        "http" => {
            return Err(
                "must use https:// (plain http:// is allowed only when Snowbound runs \
                        with SNOWBOUND_ALLOW_LOCAL_INSTANCES=true)"
                    .to_owned(),
            )
        }
        other => return Err(format!("must start with https://, not {other}://")),
    }
    if policy.allow_local {
        return Ok(());
    }
    let local = match host {
        Host::Ipv4(ip) => !is_public(IpAddr::V4(ip)),
        Host::Ipv6(ip) => !is_public(IpAddr::V6(ip)),
        Host::Domain(_) => false,
    };
    if local {
        return Err(LOCAL_REFUSED.to_owned());
    }
    Ok(())
}

/// Why an address is refused, for the save-time check and the connect-time one alike.
pub const LOCAL_REFUSED: &str = "points to a loopback, private or link-local address, which \
     Snowbound does not call unless it runs with SNOWBOUND_ALLOW_LOCAL_INSTANCES=true";

/// An address on the public internet: not this machine, not a private or link-local
/// network, not a special-purpose block a ServiceNow instance can never live in.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared_cgnat = a == 100 && (64..128).contains(&b); // 100.64.0.0/10
    let benchmarking = a == 198 && (b == 18 || b == 19); // 198.18.0.0/15
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || shared_cgnat
        || benchmarking)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00; // fc00::/7
    let link_local = first & 0xffc0 == 0xfe80; // fe80::/10
    let site_local = first & 0xffc0 == 0xfec0; // fec0::/10, deprecated
    let nat64 = ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]; // may embed a private v4
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || unique_local
        || link_local
        || site_local
        || nat64
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFF: InstancePolicy = InstancePolicy::PUBLIC_ONLY;
    const ON: InstancePolicy = InstancePolicy::ALLOW_LOCAL;

    #[test]
    fn https_to_a_public_name_is_accepted() {
        for ok in [
            "https://acme.service-now.com",
            "https://acme.service-now.com/",
            "https://proxy.example/sn",
            "https://93.184.216.34",
            " https://acme.service-now.com ",
        ] {
            assert!(parse_instance_url(ok, OFF).is_ok(), "{ok}");
        }
    }

    #[test]
    fn plain_http_and_local_addresses_need_the_flag() {
        for local in [
            "http://127.0.0.1:8089",
            "http://acme.service-now.com",
            "https://127.0.0.1",
            "https://127.8.9.1:5432",
            "https://[::1]:3306",
            "https://[::ffff:127.0.0.1]",
            "https://10.1.2.3",
            "https://172.16.0.1",
            "https://192.168.1.1",
            "https://169.254.169.254/latest/meta-data",
            "https://[fe80::1]",
            "https://[fd00::1]",
            "https://0.0.0.0",
            "https://100.64.0.1",
            "https://2130706433", // 127.0.0.1 as one decimal number
        ] {
            assert!(parse_instance_url(local, OFF).is_err(), "{local}");
            assert!(parse_instance_url(local, ON).is_ok(), "{local}");
        }
    }

    #[test]
    fn credentials_query_and_fragment_are_refused_even_with_the_flag() {
        for bad in [
            "https://admin:hunter2@acme.service-now.com",
            "https://admin@acme.service-now.com",
            "https://acme.service-now.com/?sysparm=1",
            "https://acme.service-now.com/?",
            "https://acme.service-now.com/#x",
            "http://admin:hunter2@127.0.0.1:8089",
        ] {
            for policy in [OFF, ON] {
                let err = parse_instance_url(bad, policy).unwrap_err();
                assert!(!err.contains("hunter2"), "{err}");
            }
        }
    }

    #[test]
    fn other_schemes_and_non_urls_are_refused() {
        for bad in [
            "ftp://acme",
            "acme.service-now.com",
            "file:///etc/passwd",
            "",
        ] {
            assert!(parse_instance_url(bad, ON).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_addresses() {
        assert!(is_public("93.184.216.34".parse().unwrap()));
        assert!(is_public("2606:2800:220:1::".parse().unwrap()));
        assert!(!is_public("::".parse().unwrap()));
        assert!(!is_public("64:ff9b::a00:1".parse().unwrap()));
        assert!(!is_public("224.0.0.1".parse().unwrap()));
    }
}
