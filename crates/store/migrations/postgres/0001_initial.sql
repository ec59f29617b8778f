-- The PostgreSQL twin of migrations/sqlite/0001_initial.sql; both backends pass one suite,
-- so the shapes match: TEXT ids, times as BIGINT milliseconds since the Unix epoch (they
-- compare and index exactly), JSON kept as TEXT. Ids and names sort with the "C"
-- collation so listings come out in the same order as on SQLite.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE teams (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    team_ids   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE integrations (
    id              TEXT COLLATE "C" PRIMARY KEY,
    display_name    TEXT COLLATE "C" NOT NULL,
    root_team_id    TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    team_ids        TEXT NOT NULL,
    forwarding      TEXT NOT NULL,
    settings        TEXT NOT NULL,
    password_sealed TEXT NOT NULL,
    failing         TEXT,
    paused_until    BIGINT NOT NULL DEFAULT 0,
    last_success_at BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE incidents (
    id              TEXT COLLATE "C" PRIMARY KEY,
    team_id         TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    title           TEXT NOT NULL,
    description     TEXT NOT NULL,
    severity        TEXT NOT NULL,
    status          TEXT NOT NULL,
    attributes      TEXT NOT NULL,
    resolve_comment TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX incidents_by_team ON incidents (team_id, created_at);
CREATE INDEX incidents_by_time ON incidents (created_at);

CREATE TABLE timeline (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id TEXT COLLATE "C" NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX timeline_by_incident ON timeline (incident_id, id);

CREATE TABLE links (
    incident_id      TEXT COLLATE "C" NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    integration_id   TEXT COLLATE "C" NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    sys_id           TEXT,
    number           TEXT,
    servicenow_state TEXT,
    pushed           TEXT NOT NULL DEFAULT '{}',
    snapshot         TEXT,
    rev              BIGINT NOT NULL DEFAULT 1,
    synced_rev       BIGINT NOT NULL DEFAULT 0,
    state            TEXT NOT NULL DEFAULT 'pending',
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    create_unsure    BOOLEAN NOT NULL DEFAULT FALSE,
    last_synced_at   BIGINT,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (incident_id, integration_id)
);
-- Only links with work waiting are in this index, so leasing costs the same with a
-- million synced links as with none.
CREATE INDEX links_due ON links (next_attempt_at) WHERE state IN ('pending', 'retrying');
CREATE INDEX links_by_integration ON links (integration_id, state);

CREATE TABLE api_calls (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id TEXT COLLATE "C" NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    incident_id    TEXT COLLATE "C",
    at             BIGINT NOT NULL,
    method         TEXT NOT NULL,
    url            TEXT NOT NULL,
    status         BIGINT,
    duration_ms    BIGINT NOT NULL,
    request_body   TEXT,
    response_body  TEXT,
    error          TEXT
);
CREATE INDEX api_calls_by_integration ON api_calls (integration_id, id);
CREATE INDEX api_calls_by_incident ON api_calls (incident_id, id);
