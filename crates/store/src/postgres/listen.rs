//! Cross-node news: every node LISTENs on its deployment's channel and hears when any
//! node committed a change that makes links due, or announced what it changed
//! ([`crate::Store::announce`]) so the nodes' caches forget it.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

use super::PostgresBackend;
use crate::sql::SqlStore;

const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// What the change listener hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard<'a> {
    /// LISTEN is (again) in place. Whatever was sent before may have been missed: links
    /// may be due, and anything cached may have changed.
    Listening,
    /// The connection is lost: nothing is heard until the next [`Heard::Listening`].
    Deaf,
    /// Links may be due (a notification without payload).
    LinksDue,
    /// A message of [`crate::Store::announce`].
    Announced(&'a str),
}

impl SqlStore<PostgresBackend> {
    /// Calls `on_heard` with everything heard on the channel from any node (this one
    /// included). The task reconnects on its own and never ends; abort it to stop.
    /// Notifications are lost while the connection is down, so a reconnect says
    /// [`Heard::Listening`] again — and the engine polls anyway, which bounds any miss.
    pub fn spawn_change_listener<F>(&self, on_heard: F) -> JoinHandle<()>
    where
        F: Fn(Heard<'_>) + Send + Sync + 'static,
    {
        let (pool, channel) = (self.db.pool.clone(), self.db.channel.clone());
        tokio::spawn(async move {
            loop {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot connect to LISTEN for changes; polling meanwhile");
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen(&channel).await {
                    tracing::warn!(error = %e, "LISTEN failed; polling meanwhile");
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
                on_heard(Heard::Listening);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(notification)) => match notification.payload() {
                            "" => on_heard(Heard::LinksDue),
                            message => on_heard(Heard::Announced(message)),
                        },
                        // The connection dropped. `try_recv` would reconnect on its own
                        // but not say when; a new listener does, so listeners can trust
                        // what they cache again from then on.
                        Ok(None) => {
                            on_heard(Heard::Deaf);
                            break;
                        }
                        Err(e) => {
                            on_heard(Heard::Deaf);
                            tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                            tokio::time::sleep(RECONNECT_PAUSE).await;
                            break;
                        }
                    }
                }
            }
        })
    }
}
