//! Which database a [`TestApp`](crate::TestApp) runs on.

/// SQLite in the test's temporary directory, or PostgreSQL in a fresh schema (dropped with
/// the app) of `SNOWBOUND_TEST_POSTGRES_URL`, or, when it is unset, of a throwaway cluster
/// the test process starts from the installed PostgreSQL binaries. PostgreSQL that cannot
/// be reached or started fails the test: the PostgreSQL half of a suite never skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
}

/// Runs each listed `async fn name(backend: Backend)` of the enclosing module once per
/// backend, as the tests `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )+
        }
    };
}
