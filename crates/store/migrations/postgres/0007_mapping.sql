-- Journal notes (issue #17). Journal fields only append, so each timeline entry is
-- written to a link's record at most once: a row is inserted as 'sending' before the
-- write (so a crash or an ambiguous answer leaves a trace that makes the engine check
-- sys_journal_field first) and becomes 'written' once ServiceNow has it.
CREATE TABLE link_journal (
    incident_id    TEXT COLLATE "C" NOT NULL,
    integration_id TEXT COLLATE "C" NOT NULL,
    timeline_id    BIGINT NOT NULL REFERENCES timeline (id) ON DELETE CASCADE,
    state          TEXT NOT NULL,
    at             BIGINT NOT NULL,
    PRIMARY KEY (incident_id, integration_id, timeline_id),
    FOREIGN KEY (incident_id, integration_id)
        REFERENCES links (incident_id, integration_id) ON DELETE CASCADE
);
