//! Cross-node wake-ups: every node LISTENs on its deployment's channel and is told when another node
//! committed a change that makes links due.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

use super::PostgresBackend;
use crate::sql::SqlStore;

const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

impl SqlStore<PostgresBackend> {
    /// Calls `on_change` whenever a transaction of any node (this one included) made
    /// links due. The task reconnects on its own and never ends; abort it to stop.
    /// Notifications can be lost while reconnecting, so `on_change` is also called after
    /// each reconnect — and the engine polls anyway, which bounds any miss.
    pub fn spawn_change_listener<F>(&self, on_change: F) -> JoinHandle<()>
    where
        F: Fn() + Send + Sync + 'static,
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
                on_change();
                loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => on_change(),
                        // The connection dropped; the next try_recv reconnects and
                        // re-LISTENs, but whatever was sent meanwhile is gone.
                        Ok(None) => on_change(),
                        Err(e) => {
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
