-- Keyset pagination of the incidents list (newest first, ties broken by id): a page is
-- a range scan of one of these, over every team or within one team. They replace the
-- indexes on created_at alone, which left ties to a sort.
CREATE INDEX incidents_keyset ON incidents (created_at, id);
CREATE INDEX incidents_team_keyset ON incidents (team_id, created_at, id);
DROP INDEX incidents_by_time;
DROP INDEX incidents_by_team;
