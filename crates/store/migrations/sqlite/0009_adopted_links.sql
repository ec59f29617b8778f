-- ServiceNow-born incidents (issue #15): a link that adopted a record an agent opened,
-- rather than one Snowbound created. Polls find Snowbound's own records by their
-- correlation_display; adopted ones carry no such mark, so they are listed by sys_id.
ALTER TABLE links ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0;
