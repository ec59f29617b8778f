-- Wrong passwords counted per key ("account:<email folded>" or "address:<ip>"), so a
-- login limit holds on every node and across restarts. Rows whose last failure is older
-- than the forgetting time are pruned whenever a failure is counted, so guessing with
-- made-up emails cannot grow the table without bound.

CREATE TABLE login_failures (
    key             TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL,
    locked_until    INTEGER
);
CREATE INDEX login_failures_by_age ON login_failures (last_failure_at);
