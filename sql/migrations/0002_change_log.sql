-- Schema version 3: the change log. Applied by schema.sql, which creates
-- sts_token_changes, sts_token_revision.horizon and the statement triggers
-- recording every change (and drops version 2's row triggers) before it
-- includes this file; nothing else has to happen once. httpd processes of
-- the previous version keep working meanwhile (the revision still moves on
-- every change); restart httpd with the new module afterwards.

SELECT NOT EXISTS (SELECT 1 FROM sts_schema_version WHERE version >= 3)
    AS sts_needs_0002 \gset
\if :sts_needs_0002
INSERT INTO sts_schema_version (version) VALUES (3);
\endif
