-- Emails match ignoring ASCII case only, as SQLite's NOCASE does: under the "C"
-- collation lower() folds ASCII letters alone, and listings sort by bytes. The unique
-- index on lower(email) is rebuilt with it; folding less can only make more rows
-- distinct, so no existing row conflicts.
ALTER TABLE users ALTER COLUMN email TYPE TEXT COLLATE "C";
