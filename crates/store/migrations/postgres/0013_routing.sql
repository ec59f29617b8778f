-- Routing rules as rich as the reference product's (#19).

-- The alert source that opened an incident, for `when.source_ids` (NULL: a person, the
-- API or ServiceNow opened it).
ALTER TABLE incidents ADD COLUMN source_id TEXT COLLATE "C";

-- A link made while a rule's delay runs: nothing is sent before hold_until (it is the
-- link's first next_attempt_at), and a resolve before then deletes the link unsent.
ALTER TABLE links ADD COLUMN hold_until BIGINT;
ALTER TABLE links ADD COLUMN hold_rule_id TEXT;
ALTER TABLE links ADD COLUMN hold_rule_name TEXT;

-- The routing history, and what makes a rule fire once per incident: a row per rule that
-- fired for an incident (kind 'fired'), per alert a rule discarded (no incident), and per
-- held link a resolve cancelled. Rules are named, not referenced: history outlives them.
CREATE TABLE rule_firings (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id     TEXT COLLATE "C" NOT NULL,
    rule_id     TEXT COLLATE "C" NOT NULL,
    rule_name   TEXT NOT NULL,
    incident_id TEXT COLLATE "C" REFERENCES incidents (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX rule_firings_by_team ON rule_firings (team_id, id);
CREATE INDEX rule_firings_by_incident ON rule_firings (incident_id, rule_id);
