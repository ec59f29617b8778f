-- Inbound sync (issue #15): ServiceNow's changes flowing back into Snowbound.

-- A poke says "read this record"; it never carries field values. One row per
-- (source, record): a storm of pokes for one record bumps `rev` instead of queueing
-- reads, and a poke arriving while the record is being read bumps it too, so the read
-- is repeated (it may have happened before the change). Leased like links, so two
-- nodes never read one poke at once; kept until read, so an accepted poke is never lost.
CREATE TABLE inbound_pokes (
    source_id       TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    sys_id          TEXT NOT NULL,
    table_name      TEXT NOT NULL,
    pokes           INTEGER NOT NULL DEFAULT 1,
    rev             INTEGER NOT NULL DEFAULT 1,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (source_id, sys_id)
);
CREATE INDEX inbound_pokes_due ON inbound_pokes (next_attempt_at);

-- Per source: its poll schedule (`interval_ms` NULL: the source does not poll), the
-- watermark (newest `sys_updated_on` seen, ms) and the last poll's result. Leased, so
-- several nodes never poll one source at once.
CREATE TABLE inbound_polls (
    source_id       TEXT PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    interval_ms     INTEGER,
    watermark       INTEGER,
    next_poll_at    INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    last_poll_at    INTEGER,
    last_records    INTEGER,
    last_error      TEXT,
    last_success_at INTEGER
);
CREATE INDEX inbound_polls_due ON inbound_polls (next_poll_at) WHERE interval_ms IS NOT NULL;

-- Per link: the highest sys_mod_count applied (each ServiceNow update at most once) and
-- the drift / who-wins notes by field (JSON object).
ALTER TABLE links ADD COLUMN inbound_mod_count INTEGER;
ALTER TABLE links ADD COLUMN inbound_notes TEXT NOT NULL DEFAULT '{}';
-- A poke names a record, not an incident.
CREATE INDEX links_by_sys_id ON links (integration_id, sys_id);
