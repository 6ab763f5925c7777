-- Schema version 6: a role holds no comma. The CHECK of earlier versions tested the
-- roles joined with commas, so ARRAY['a,admin'] passed it, and httpd, which
-- reads the roles joined the same way, saw two roles. Applied once, in one
-- transaction, to a database below version 6: if a token stored with SQL
-- holds such a role, the upgrade stops here and changes nothing; find it
-- with
--   SELECT id, name, roles FROM sts_tokens
--   WHERE array_to_string(roles, '') LIKE '%,%';
-- fix its roles (UPDATE sts_tokens SET roles = ... WHERE id = ...) or
-- delete it, and apply schema.sql again.

SELECT NOT EXISTS (SELECT 1 FROM sts_schema_version WHERE version >= 6)
    AS sts_needs_0005 \gset
\if :sts_needs_0005
BEGIN;
ALTER TABLE sts_tokens DROP CONSTRAINT sts_tokens_roles_valid;
ALTER TABLE sts_tokens ADD CONSTRAINT sts_tokens_roles_valid
    CHECK (cardinality(roles) BETWEEN 1 AND 64
           AND array_ndims(roles) = 1
           AND array_position(roles, NULL) IS NULL
           AND array_to_string(roles, '') NOT LIKE '%,%'
           AND array_to_string(roles, ',')
               ~ '^[A-Za-z0-9._:@-]{1,128}(,[A-Za-z0-9._:@-]{1,128})*$');
INSERT INTO sts_schema_version (version) VALUES (6);
COMMIT;
\endif
