-- Schema version 5: last use. Applied by schema.sql, which creates
-- sts_token_last_use and sts_token_note_use (and grants EXECUTE on it to
-- sts_lookup, SELECT on the table to sts_api) before it includes this
-- file; nothing else has to happen once. Apply the schema before
-- installing the module that records last use: its statements need them.

SELECT NOT EXISTS (SELECT 1 FROM sts_schema_version WHERE version >= 5)
    AS sts_needs_0004 \gset
\if :sts_needs_0004
INSERT INTO sts_schema_version (version) VALUES (5);
\endif
