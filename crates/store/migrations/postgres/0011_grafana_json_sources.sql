-- Grafana and JSON-mapping sources (issue #19). A grafana source's signature settings and
-- a json source's mapping are JSON documents read and written whole (NULL for the other
-- kinds); the Grafana shared secret is sealed like integration passwords ('' = not set).
ALTER TABLE sources ADD COLUMN grafana TEXT;
ALTER TABLE sources ADD COLUMN json_mapping TEXT;
ALTER TABLE sources ADD COLUMN hmac_secret_sealed TEXT NOT NULL DEFAULT '';

-- The last payloads a json source received (a bounded ring, pruned on every insert), so
-- its admin can build and test the mapping on real bodies.
CREATE TABLE source_payloads (
    id          TEXT PRIMARY KEY,
    source_id   TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    received_at BIGINT NOT NULL,
    body        TEXT NOT NULL,
    truncated   BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX source_payloads_by_source ON source_payloads (source_id, received_at, id);
