-- Schema version 7: the lookup column. schema.sql makes the digests
-- COLLATE "C" and creates sts_token_authn(), the generated column
-- sts_tokens.authn (what authentication needs of a token, one text value)
-- and the authn column of sts_token_digests before it includes this file;
-- nothing else has to happen once. Adding the column rewrites the token
-- table under its lock (see the README, "Upgrade"). httpd processes of the
-- previous version keep working; install the new module afterwards (it
-- selects authn).

-- Recorded only once the column is there (schema.sql applied without
-- ON_ERROR_STOP may have gone on past a failure).
SELECT NOT EXISTS (SELECT 1 FROM sts_schema_version WHERE version >= 7)
       AND EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = 'sts_tokens'::regclass
                     AND attname = 'authn' AND NOT attisdropped)
    AS sts_needs_0006 \gset
\if :sts_needs_0006
INSERT INTO sts_schema_version (version) VALUES (7);
\endif
