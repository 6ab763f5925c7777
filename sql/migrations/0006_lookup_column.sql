-- Schema version 7: the lookup column. schema.sql makes the digests
-- COLLATE "C" and creates sts_token_authn(), the generated column
-- sts_tokens.authn (what authentication needs of a token, one text value)
-- and the authn column of sts_token_digests before it includes this file;
-- nothing else has to happen once. Adding the column rewrites the token
-- table under its lock (see the README, "Upgrade"). httpd processes of the
-- previous version keep working; install the new module afterwards (it
-- selects authn).

SELECT NOT EXISTS (SELECT 1 FROM sts_schema_version WHERE version >= 7)
    AS sts_needs_0006 \gset
\if :sts_needs_0006
INSERT INTO sts_schema_version (version) VALUES (7);
\endif
