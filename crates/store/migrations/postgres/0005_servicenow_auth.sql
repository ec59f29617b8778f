-- The secrets of the OAuth and API key authentication types, sealed like the password
-- (crypto.rs); '' means not set. Existing integrations are Basic: they keep their
-- password and have neither.
ALTER TABLE integrations ADD COLUMN client_secret_sealed TEXT NOT NULL DEFAULT '';
ALTER TABLE integrations ADD COLUMN api_key_sealed TEXT NOT NULL DEFAULT '';
