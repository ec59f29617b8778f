-- Inbound sync (issue #15): ServiceNow's changes flowing back into Snowbound. The
-- PostgreSQL twin of migrations/sqlite/0006_inbound.sql (BIGINT times, "C" ids).

-- A poke says "read this record"; it never carries field values. One row per
-- (source, record): a storm of pokes for one record bumps `rev` instead of queueing
-- reads, and a poke arriving while the record is being read bumps it too, so the read
-- is repeated (it may have happened before the change). Leased like links, so two
-- nodes never read one poke at once; kept until read, so an accepted poke is never lost.
CREATE TABLE inbound_pokes (
    source_id       TEXT COLLATE "C" NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    sys_id          TEXT COLLATE "C" NOT NULL,
    table_name      TEXT NOT NULL,
    pokes           BIGINT NOT NULL DEFAULT 1,
    rev             BIGINT NOT NULL DEFAULT 1,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (source_id, sys_id)
);
CREATE INDEX inbound_pokes_due ON inbound_pokes (next_attempt_at);

-- Per source: its poll schedule (`interval_ms` NULL: the source does not poll), the
-- watermark (newest `sys_updated_on` seen, ms) and the last poll's result. Leased, so
-- several nodes never poll one source at once.
CREATE TABLE inbound_polls (
    source_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    interval_ms     BIGINT,
    watermark       BIGINT,
    next_poll_at    BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    last_poll_at    BIGINT,
    last_records    BIGINT,
    last_error      TEXT,
    last_success_at BIGINT
);
CREATE INDEX inbound_polls_due ON inbound_polls (next_poll_at) WHERE interval_ms IS NOT NULL;

-- Per link: the highest sys_mod_count applied (each ServiceNow update at most once) and
-- the drift / who-wins notes by field (JSON object).
ALTER TABLE links ADD COLUMN inbound_mod_count BIGINT;
ALTER TABLE links ADD COLUMN inbound_notes TEXT NOT NULL DEFAULT '{}';
-- A poke names a record, not an incident.
CREATE INDEX links_by_sys_id ON links (integration_id, sys_id);
