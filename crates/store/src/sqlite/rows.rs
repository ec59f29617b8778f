//! Row conversions for this backend: the shared ones of `crate::rows`, for its row type.

crate::rows::row_conversions!(sqlx::sqlite::SqliteRow);
