-- Due links of one integration in due order. Leasing for one integration (and, while
-- another integration is failing or paused, for each open one in turn) is then a range
-- scan of its own due links, never a walk past another integration's backlog: with an
-- instance down and an alert storm queueing behind it, every lease used to read the
-- whole backlog to find none of it leasable.
CREATE INDEX links_due_by_integration ON links (integration_id, next_attempt_at)
    WHERE state IN ('pending', 'retrying');
