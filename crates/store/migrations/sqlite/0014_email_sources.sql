-- Email sources (issue #19): their subject patterns as one JSON document (NULL for the
-- other kinds). The address is the source's ingest secret, so nothing else is stored.
ALTER TABLE sources ADD COLUMN email TEXT;
