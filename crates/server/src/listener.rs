//! Accepting HTTP connections so that slow or idle clients cannot stop alert intake.
//! `axum::serve` bounds nothing: a client that sends a header line every few seconds
//! holds its connection (and a file descriptor) forever, and a thousand of them exhaust
//! the process's descriptors, so `/healthz` and `/ingest` stop answering. [`serve`]
//! bounds each way a connection can be held without being served:
//!
//! - **headers**: a request head must arrive within `header_read_timeout`, counted from
//!   when the connection is ready for it; hyper counts a kept-alive connection waiting
//!   for its next request the same way, so this is also the idle timeout;
//! - **bodies**: a request body must arrive completely within `body_read_timeout`;
//! - **connections**: at most `max_connections` are open at once. At the cap, new ones
//!   wait in the kernel's accept queue rather than being refused: the timeouts above
//!   free a slot within seconds, and a waiting sender is then served, not reset.
//!
//! HTTP/1.1 only: every sender we serve (Alertmanager, scripts, browsers over plain
//! HTTP) speaks it, and h2c's handshake has no such bounds in hyper.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt;

use crate::client_address::{client_address, ClientAddress};

pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The default cap never exceeds this, however many descriptors the process may open.
pub const MAX_CONNECTIONS_CEILING: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    /// Take the client's address from the last `X-Forwarded-For` entry (behind a
    /// reverse proxy) rather than from the TCP peer.
    pub trust_forwarded_for: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: default_max_connections(),
            trust_forwarded_for: false,
        }
    }
}

/// Half the process's open-file limit (the rest is for the database, ServiceNow calls
/// and files), within 64..=[`MAX_CONNECTIONS_CEILING`]; 512 where the limit is unknown.
pub fn default_max_connections() -> usize {
    open_files_limit()
        .map(|limit| (limit / 2).clamp(64, MAX_CONNECTIONS_CEILING))
        .unwrap_or(512)
}

fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files  <soft>  <hard>  files"; the soft limit is the one enforced.
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting and waits for the requests in flight (idle connections close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let router = router.layer(axum::middleware::map_request_with_state(
        limits.body_read_timeout,
        with_body_deadline,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: pause
                    // briefly instead of spinning, then go on accepting.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let trust_forwarded_for = limits.trust_forwarded_for;
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: Request<hyper::body::Incoming>| {
                let address = client_address(peer.ip(), request.headers(), trust_forwarded_for);
                request.extensions_mut().insert(ClientAddress(address));
                request
            },
        ));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts and clients that hang up end up here; nothing to act on.
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn with_body_deadline(State(limit): State<Duration>, request: Request) -> Request {
    request.map(|body| Body::new(DeadlineBody::new(body, limit)))
}

/// The error a body read answers once its deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTooSlow;

/// A body that fails once its deadline passes, however steadily the bytes trickle in.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Body, limit: Duration) -> Self {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if !this.inner.is_end_stream() && this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow))));
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `err` (a body rejection, at any depth) comes from a missed body deadline.
pub(crate) fn is_body_too_slow(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<BodyTooSlow>() {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_descriptors_for_everything_else() {
        let cap = default_max_connections();
        assert!((64..=MAX_CONNECTIONS_CEILING).contains(&cap));
        if let Some(limit) = open_files_limit() {
            assert!(cap <= limit.max(128) / 2, "{cap} of {limit}");
        }
    }
}
