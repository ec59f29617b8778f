-- Alert sources, the alert keys they deduplicate on, and routing rules (issue #5).

-- The ingest URL's secret is looked up by its SHA-256 (indexed, constant work per
-- request) and kept sealed with the instance key so the URL can be shown again.
CREATE TABLE sources (
    id            TEXT PRIMARY KEY,
    team_id       TEXT NOT NULL REFERENCES teams (id),
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    severity_map  TEXT NOT NULL DEFAULT '{}',
    secret_hash   TEXT NOT NULL UNIQUE,
    secret_sealed TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX sources_by_team ON sources (team_id, created_at);

-- The incident an alert key last opened. The primary key makes "one incident per key"
-- a constraint, not a hope; once that incident is resolved the next alert with the key
-- opens a new incident and the row moves to it (in the same transaction).
CREATE TABLE source_alerts (
    source_id   TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    dedup_key   TEXT NOT NULL,
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    PRIMARY KEY (source_id, dedup_key)
);
CREATE INDEX source_alerts_by_incident ON source_alerts (incident_id);

CREATE TABLE routing_rules (
    id         TEXT PRIMARY KEY,
    team_id    TEXT NOT NULL REFERENCES teams (id),
    name       TEXT NOT NULL,
    position   INTEGER NOT NULL,
    conditions TEXT NOT NULL,
    actions    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX routing_rules_by_team ON routing_rules (team_id, position, created_at);
