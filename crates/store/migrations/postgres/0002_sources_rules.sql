-- Alert sources, the alert keys they deduplicate on, and routing rules (issue #5), as in
-- migrations/sqlite/0002_sources_rules.sql.

CREATE TABLE sources (
    id            TEXT COLLATE "C" PRIMARY KEY,
    team_id       TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    severity_map  TEXT NOT NULL DEFAULT '{}',
    secret_hash   TEXT NOT NULL UNIQUE,
    secret_sealed TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX sources_by_team ON sources (team_id, created_at);

CREATE TABLE source_alerts (
    source_id   TEXT COLLATE "C" NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    dedup_key   TEXT NOT NULL,
    incident_id TEXT COLLATE "C" NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    PRIMARY KEY (source_id, dedup_key)
);
CREATE INDEX source_alerts_by_incident ON source_alerts (incident_id);

CREATE TABLE routing_rules (
    id         TEXT COLLATE "C" PRIMARY KEY,
    team_id    TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    name       TEXT NOT NULL,
    position   BIGINT NOT NULL,
    conditions TEXT NOT NULL,
    actions    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX routing_rules_by_team ON routing_rules (team_id, position, created_at);
