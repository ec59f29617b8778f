//! Several writing statements of one transaction, sent together where the driver takes
//! them so. sqlx runs each SQLite statement on the connection's own thread, and every
//! statement is a hand-off there and back; SQLite takes a `;`-separated script with one
//! argument list in a single hand-off, so a group commit's inserts cost one instead of
//! one per table. PostgreSQL's extended protocol takes one statement with arguments at a
//! time: there the statements go one by one.

use super::dialect::WriteTx;
use super::statement::{Arg, Sql};
use crate::Result;

/// Far below either driver's bind limit per statement (SQLite 32 766, PostgreSQL
/// 65 535), and large enough that a full group commit takes one or two statements.
const ARGS_PER_STATEMENT: usize = 8_000;

pub(super) struct Script<'r> {
    /// One text for all statements (SQLite), else one per statement.
    together: bool,
    statements: Vec<Sql<'r>>,
}

impl<'r> Script<'r> {
    pub(super) fn for_tx<T: WriteTx>(_tx: &T) -> Self {
        Script {
            together: T::MULTI_STATEMENT,
            statements: Vec::new(),
        }
    }

    /// A new statement beginning with `head`; its placeholders number on from the
    /// script's (one argument list serves every statement of a script sent together),
    /// so `head` holds none: arguments go in with `push_bind` and `push_row` only.
    pub(super) fn start(&mut self, head: &'static str) -> &mut Sql<'r> {
        debug_assert!(
            !head.contains('$'),
            "a script's statement text binds by push_bind: {head}"
        );
        match self.statements.last_mut() {
            Some(last) if self.together => {
                last.push("; ").push(head);
            }
            _ => self.statements.push(Sql::new(head)),
        }
        self.statements
            .last_mut()
            .expect("a statement was just started")
    }

    /// `head`, then `items` as rows of a multi-row `VALUES` list, then `tail`, in as many
    /// statements as the bind limit needs; nothing for no items.
    pub(super) fn insert_rows<T>(
        &mut self,
        head: &'static str,
        tail: &'static str,
        items: &'r [T],
        row: impl Fn(&'r T) -> Vec<Arg<'r>>,
    ) {
        let Some(first) = items.first() else {
            return;
        };
        let per_statement = (ARGS_PER_STATEMENT / row(first).len().max(1)).max(1);
        for chunk in items.chunks(per_statement) {
            let sql = self.start(head);
            for (n, item) in chunk.iter().enumerate() {
                sql.push_row(n == 0, row(item));
            }
            sql.push(tail);
        }
    }

    pub(super) async fn run(self, tx: &mut impl WriteTx) -> Result<()> {
        for sql in self.statements {
            tx.execute(sql).await?;
        }
        Ok(())
    }
}
