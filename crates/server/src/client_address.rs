//! Which address a request came from, for the limits that count per client (logins).
//! The listener knows the TCP peer; behind a reverse proxy every peer is the proxy, so
//! when the operator says the proxy is trusted (`SNOWBOUND_TRUST_FORWARDED_FOR`) the
//! address the proxy appended to `X-Forwarded-For` counts instead. Only the last entry
//! is the proxy's own: anything before it the client may have written itself.

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

/// Put in every request's extensions by `listener::serve`. Absent when a router is
/// served some other way: then nothing is counted per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The client's address as the request's handlers should see it.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    if !trust_forwarded_for {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

/// The request's [`ClientAddress`], if the listener gave it one.
pub struct MaybeClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeClientAddress(
            parts.extensions.get::<ClientAddress>().map(|a| a.0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_the_proxys_own_entry_counts_and_only_when_trusted() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let forged = headers(&["6.6.6.6, 203.0.113.9", "198.51.100.4"]);
        assert_eq!(client_address(peer, &forged, false), peer);
        assert_eq!(
            client_address(peer, &forged, true),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
        let one = headers(&["6.6.6.6, 2001:db8::1"]);
        assert_eq!(
            client_address(peer, &one, true),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_address(peer, &headers(&["junk"]), true), peer);
        assert_eq!(client_address(peer, &HeaderMap::new(), true), peer);
    }
}
