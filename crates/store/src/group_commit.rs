//! Group commit for incident writes: writers that arrive while a commit is in flight
//! share the next one. Durability is paid per commit (an fsync on SQLite, a WAL flush on
//! PostgreSQL), so under load the cost per alert falls as the batches grow, and nobody
//! waits for a batch to fill: a lone write commits at once.

use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::types::IncidentWrite;
use crate::{Result, Store, StoreError};

/// The most writes one transaction takes; more wait for the next commit.
pub const MAX_BATCH: usize = 512;

struct Pending {
    write: IncidentWrite,
    answer: oneshot::Sender<Result<()>>,
}

/// A cloneable handle; the committers stop when the last handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts `committers` tasks that each commit one batch at a time: one is right for
    /// SQLite (one writer anyway), a few let PostgreSQL overlap commits.
    pub fn start(store: Arc<dyn Store>, committers: usize) -> Self {
        let (queue, receiver) = mpsc::channel(MAX_BATCH * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        // The committers hold the store weakly: whoever started them owns it, and once
        // they let it go (a node shutting down) the database is released at once — on
        // SQLite its lock file too, so a restart in the same process can open it.
        let store = Arc::downgrade(&store);
        for _ in 0..committers.max(1) {
            tokio::spawn(commit_batches(store.clone(), receiver.clone()));
        }
        GroupCommit { queue }
    }

    /// Writes `write` in the next group commit; answers once that commit is on disk, with
    /// this write's own answer (see [`Store::write_incidents`]).
    pub async fn write(&self, write: IncidentWrite) -> Result<()> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Pending { write, answer })
            .await
            .map_err(|_| StoreError::Corrupt("the group committer has stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Corrupt("the group committer has stopped".into()))?
    }
}

/// While writes keep arriving, a committer yields to the tasks about to send theirs up
/// to this often before it commits (never waiting on a clock: a lone write commits at
/// once). A commit's fixed cost (its fsync, its statements) is then shared by more.
const YIELDS_TO_FILL: usize = 16;

async fn commit_batches(store: Weak<dyn Store>, receiver: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    let mut last_batch = 0;
    loop {
        let batch = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut batch = vec![first];
            let drain = |receiver: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>| {
                while batch.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
            };
            drain(&mut receiver, &mut batch);
            // Only under load (the last batch was shared): alone, nobody else is coming.
            if last_batch > 1 {
                let mut idle = 0;
                for _ in 0..YIELDS_TO_FILL {
                    let before = batch.len();
                    tokio::task::yield_now().await;
                    drain(&mut receiver, &mut batch);
                    idle = if batch.len() == before { idle + 1 } else { 0 };
                    if idle == 2 || batch.len() >= MAX_BATCH {
                        break;
                    }
                }
            }
            last_batch = batch.len();
            batch
        };
        let Some(store) = store.upgrade() else {
            for pending in batch {
                let _ = pending
                    .answer
                    .send(Err(StoreError::Corrupt("the store has been closed".into())));
            }
            return;
        };
        commit(&*store, batch).await;
    }
}

async fn commit(store: &dyn Store, batch: Vec<Pending>) {
    let (writes, answers): (Vec<IncidentWrite>, Vec<_>) =
        batch.into_iter().map(|p| (p.write, p.answer)).unzip();
    match store.write_incidents(&writes).await {
        Ok(answered) => {
            for (answer, result) in answers.into_iter().zip(answered) {
                let _ = answer.send(result);
            }
        }
        // The transaction failed as a whole (one write the database refused, a deadlock
        // with another node, a full disk): nothing was written. Alone, each write gets
        // the answer that is really its own, and one bad write cannot fail its neighbours.
        Err(error) if writes.len() == 1 => {
            if let Some(answer) = answers.into_iter().next() {
                let _ = answer.send(Err(error));
            }
        }
        Err(_) => {
            for (write, answer) in writes.iter().zip(answers) {
                let result = match store.write_incidents(std::slice::from_ref(write)).await {
                    Ok(mut results) => results.pop().unwrap_or(Ok(())),
                    Err(error) => Err(error),
                };
                let _ = answer.send(result);
            }
        }
    }
}
