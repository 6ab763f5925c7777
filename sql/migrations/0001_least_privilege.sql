-- Schema version 2: least privilege. Applied by schema.sql (which creates
-- the groups sts_lookup and sts_api first), in one transaction, only to a
-- database at version 1.
--
-- Version 1 told administrators to grant httpd's role SELECT, INSERT,
-- UPDATE, DELETE on every table. Each role other than the owner that holds
-- privileges on the module's tables becomes a member of sts_api (if it could
-- write) or sts_lookup (if it could only read), and loses the direct
-- privileges: it keeps working, without UPDATE on tokens or write access to
-- the revision counter and the schema version.

SELECT NOT EXISTS (SELECT 1 FROM sts_schema_version WHERE version >= 2)
    AS sts_needs_0001 \gset
\if :sts_needs_0001
BEGIN;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT a.grantee::regrole::text AS role,
               bool_or(a.privilege_type <> 'SELECT') AS writes
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid IN ('sts_tokens'::regclass, 'sts_token_revision'::regclass,
                        'sts_schema_version'::regclass)
          AND a.grantee <> 0 AND a.grantee <> c.relowner
          AND a.grantee::regrole::text NOT IN ('sts_lookup', 'sts_api')
        GROUP BY a.grantee
    LOOP
        EXECUTE format('GRANT %I TO %s',
                       CASE WHEN r.writes THEN 'sts_api' ELSE 'sts_lookup' END,
                       r.role);
        EXECUTE format('REVOKE ALL ON sts_tokens, sts_token_revision, '
                       'sts_schema_version FROM %s', r.role);
    END LOOP;
END;
$$;
INSERT INTO sts_schema_version (version) VALUES (2);
COMMIT;
\endif
