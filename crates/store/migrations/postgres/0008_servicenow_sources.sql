-- ServiceNow sources (issue #15): their settings (integration, delivery, poll interval,
-- open filter, transitions) as one JSON document, NULL for the other kinds. JSON rather
-- than columns because the settings are read and written whole, never queried by field.
ALTER TABLE sources ADD COLUMN servicenow TEXT;
