-- Audit trail (issue #19): who changed which integration, source, rule, token or user,
-- when, and a field-level diff with secrets already masked (core::audit). Bounded:
-- every insert prunes all but the newest AUDIT_EVENTS_KEPT rows.
CREATE TABLE audit_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    object_type TEXT COLLATE "C" NOT NULL,
    object_id   TEXT COLLATE "C" NOT NULL,
    action      TEXT NOT NULL,
    changes     TEXT NOT NULL
);
CREATE INDEX audit_events_by_object ON audit_events (object_type, object_id, id);
