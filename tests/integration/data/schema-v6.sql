-- Frozen copy of sql/schema.sql at schema version 6 (a role holds no
-- comma), with its migrations (0001-0005) inlined: a base of the upgrade
-- test in test_schema.py. Do not edit.
-- mod_sts_token schema (PostgreSQL 12+). Idempotent: safe to apply again,
-- which is also how an existing database is upgraded (the migrations at the
-- end apply what it lacks). Apply it as the role that is to own the schema,
-- with psql -f (the migrations are included relative to this file):
--   runuser -u postgres -- psql -v ON_ERROR_STOP=1 -d sts -f schema.sql
-- Only the SHA-256 digest of a token is stored, never the token itself.

SET client_min_messages = warning;
-- The trigger functions below run as the schema's owner (SECURITY DEFINER);
-- their search_path, captured from this one, names this schema and then
-- pg_temp, so a caller's temporary table cannot stand in for ours.
SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp',
                  false) \g /dev/null

BEGIN;

CREATE TABLE IF NOT EXISTS sts_tokens (
    id                bigint      PRIMARY KEY
                      CONSTRAINT sts_tokens_id_range
                      CHECK (id BETWEEN 1 AND 9007199254740991),
    name              text        NOT NULL
                      CONSTRAINT sts_tokens_name_valid
                      CHECK (char_length(name) BETWEEN 1 AND 255
                             AND name !~ '[[:cntrl:]]'),
    description       text
                      CONSTRAINT sts_tokens_description_valid
                      CHECK (char_length(description) <= 1024),
    digest            text        NOT NULL
                      CONSTRAINT sts_tokens_digest_hex
                      CHECK (digest ~ '^[0-9a-f]{64}$'),
    roles             text[]      NOT NULL
                      CONSTRAINT sts_tokens_roles_valid
                      CHECK (cardinality(roles) BETWEEN 1 AND 64
                             AND array_ndims(roles) = 1
                             AND array_position(roles, NULL) IS NULL
                             AND array_to_string(roles, '') NOT LIKE '%,%'
                             AND array_to_string(roles, ',')
                                 ~ '^[A-Za-z0-9._:@-]{1,128}(,[A-Za-z0-9._:@-]{1,128})*$'),
    expiration        bigint
                      CONSTRAINT sts_tokens_expiration_positive
                      CHECK (expiration > 0),
    dedicated_subject text
                      CONSTRAINT sts_tokens_subject_valid
                      CHECK (char_length(dedicated_subject) BETWEEN 1 AND 255
                             AND dedicated_subject !~ '[[:cntrl:]]'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX IF NOT EXISTS sts_tokens_digest_key ON sts_tokens (digest);
CREATE INDEX IF NOT EXISTS sts_tokens_name_idx ON sts_tokens (name, id);

-- Rotation with overlap (sts_token_rotate): the digest a rotation replaced
-- keeps authenticating until previous_until (epoch ms) or until the new
-- secret is first used (sts_token_retire_previous), whichever comes first.
ALTER TABLE sts_tokens
    ADD COLUMN IF NOT EXISTS previous_digest text
        CONSTRAINT sts_tokens_previous_digest_hex
        CHECK (previous_digest ~ '^[0-9a-f]{64}$'),
    ADD COLUMN IF NOT EXISTS previous_until bigint;
CREATE UNIQUE INDEX IF NOT EXISTS sts_tokens_previous_digest_key
    ON sts_tokens (previous_digest) WHERE previous_digest IS NOT NULL;

-- Every digest that authenticates, with what authentication needs of its
-- token: each token's digest, and the previous digest a rotation left
-- alive (until: when it stops; -1 for a current digest). retire: the token
-- still has such a previous digest, which the first use of this digest
-- retires. The lookup, the change read and the page read all select this,
-- so the token tables hold exactly what a lookup returns.
CREATE OR REPLACE VIEW sts_token_digests AS
    SELECT * FROM (
        SELECT digest, id, name, array_to_string(roles, ',') AS roles,
               COALESCE(expiration, -1) AS expiration, -1::bigint AS until,
               (previous_digest IS NOT NULL AND
                previous_until > (extract(epoch FROM now()) * 1000)::bigint)
                   AS retire
        FROM sts_tokens
        UNION ALL
        SELECT previous_digest, id, name, array_to_string(roles, ','),
               COALESCE(expiration, -1), previous_until, false
        FROM sts_tokens) d
    -- Out here, not in the second branch: the planner then pushes a join's
    -- digest condition into both branches (an index lookup in each).
    WHERE digest IS NOT NULL
      AND (until = -1 OR until > (extract(epoch FROM now()) * 1000)::bigint);

-- The revision counter and the change log. Every statement that changes
-- sts_tokens moves the revision by one and records, under that revision,
-- the digests (current and previous) of every token it inserted, updated
-- or deleted. Each httpd
-- process knows the set of valid digests: it reads sts_tokens once, then
-- about four times a second the changes after the revision it applied,
-- each with the token's current row, so a deletion reaches every host
-- within a second and nothing is ever flushed. The revision row is locked
-- by each change until it commits, so revisions commit in order.
-- Changes older than an hour are pruned; horizon is the highest pruned
-- revision: a process behind it reads sts_tokens again. Without the row
-- nothing can be recorded: every process then distrusts its table (every
-- token is looked up) and reads all tokens again once the row is back.
CREATE TABLE IF NOT EXISTS sts_token_revision (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision  bigint  NOT NULL DEFAULT 0
);
ALTER TABLE sts_token_revision
    ADD COLUMN IF NOT EXISTS horizon bigint NOT NULL DEFAULT 0;
INSERT INTO sts_token_revision (singleton, revision) VALUES (true, 0)
    ON CONFLICT (singleton) DO NOTHING;

CREATE TABLE IF NOT EXISTS sts_token_changes (
    revision   bigint      NOT NULL,
    digest     text        NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (revision, digest)
);

DROP TRIGGER IF EXISTS sts_tokens_revision ON sts_tokens;
DROP TRIGGER IF EXISTS sts_tokens_revision_truncate ON sts_tokens;
DROP FUNCTION IF EXISTS sts_token_bump_revision();
DROP FUNCTION IF EXISTS sts_token_bump_revision_stmt();

CREATE OR REPLACE FUNCTION sts_token_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- SECURITY DEFINER: httpd's role may read the revision and the change log,
-- never write them.
CREATE OR REPLACE FUNCTION sts_token_record_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    rev bigint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- Every process reads sts_tokens again.
        UPDATE sts_token_revision
            SET revision = revision + 1, horizon = revision + 1;
        DELETE FROM sts_token_changes;
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM sts_new_rows) THEN
            RETURN NULL;
        END IF;
        UPDATE sts_token_revision SET revision = revision + 1
            RETURNING revision INTO rev;
        IF rev IS NULL THEN
            RETURN NULL; -- no revision row: see sts_token_revision
        END IF;
        INSERT INTO sts_token_changes (revision, digest)
            SELECT rev, d FROM sts_new_rows,
                LATERAL (VALUES (digest), (previous_digest)) v(d)
            WHERE d IS NOT NULL ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM sts_old_rows) THEN
            RETURN NULL;
        END IF;
        UPDATE sts_token_revision SET revision = revision + 1
            RETURNING revision INTO rev;
        IF rev IS NULL THEN
            RETURN NULL; -- no revision row: see sts_token_revision
        END IF;
        INSERT INTO sts_token_changes (revision, digest)
            SELECT rev, d FROM sts_old_rows,
                LATERAL (VALUES (digest), (previous_digest)) v(d)
            WHERE d IS NOT NULL ON CONFLICT DO NOTHING;
    ELSE
        IF NOT EXISTS (SELECT 1 FROM sts_new_rows) THEN
            RETURN NULL;
        END IF;
        UPDATE sts_token_revision SET revision = revision + 1
            RETURNING revision INTO rev;
        IF rev IS NULL THEN
            RETURN NULL; -- no revision row: see sts_token_revision
        END IF;
        INSERT INTO sts_token_changes (revision, digest)
            SELECT rev, d FROM (SELECT digest, previous_digest FROM sts_old_rows
                                UNION ALL
                                SELECT digest, previous_digest FROM sts_new_rows) r,
                LATERAL (VALUES (r.digest), (r.previous_digest)) v(d)
            WHERE d IS NOT NULL ON CONFLICT DO NOTHING;
    END IF;
    IF rev % 256 = 0 THEN
        WITH gone AS (
            DELETE FROM sts_token_changes
                WHERE changed_at < now() - interval '1 hour'
                RETURNING revision)
        UPDATE sts_token_revision
            SET horizon = GREATEST(horizon, (SELECT max(revision) FROM gone))
            WHERE EXISTS (SELECT 1 FROM gone);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS sts_tokens_touch ON sts_tokens;
CREATE TRIGGER sts_tokens_touch
    BEFORE UPDATE ON sts_tokens
    FOR EACH ROW EXECUTE FUNCTION sts_token_touch();
DROP TRIGGER IF EXISTS sts_tokens_changes_insert ON sts_tokens;
CREATE TRIGGER sts_tokens_changes_insert
    AFTER INSERT ON sts_tokens REFERENCING NEW TABLE AS sts_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sts_token_record_changes();
DROP TRIGGER IF EXISTS sts_tokens_changes_update ON sts_tokens;
CREATE TRIGGER sts_tokens_changes_update
    AFTER UPDATE ON sts_tokens
    REFERENCING OLD TABLE AS sts_old_rows NEW TABLE AS sts_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sts_token_record_changes();
DROP TRIGGER IF EXISTS sts_tokens_changes_delete ON sts_tokens;
CREATE TRIGGER sts_tokens_changes_delete
    AFTER DELETE ON sts_tokens REFERENCING OLD TABLE AS sts_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sts_token_record_changes();
DROP TRIGGER IF EXISTS sts_tokens_changes_truncate ON sts_tokens;
CREATE TRIGGER sts_tokens_changes_truncate
    AFTER TRUNCATE ON sts_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION sts_token_record_changes();

-- Rotation, the token API's (sts_api): a new digest for token p_id, its
-- expiration set to p_expiration unless NULL. The digest it replaces stays
-- valid for p_grace_ms (0: not at all); a previous digest an earlier
-- rotation left dies at once. SECURITY DEFINER: the API may change a
-- token's digest this way only, never update tokens. Returns the token
-- (no row: no such id), the digest replaced, until when it stays valid
-- (NULL: not at all) and the previous digest that died (NULL: none).
CREATE OR REPLACE FUNCTION sts_token_rotate(p_id bigint, p_digest text,
                                            p_grace_ms bigint,
                                            p_expiration bigint)
RETURNS TABLE (name text, roles text, expiration bigint, updated_ms bigint,
               replaced text, replaced_until bigint, dropped text)
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    UPDATE sts_tokens t SET
        digest = p_digest,
        previous_digest = CASE WHEN p_grace_ms > 0 THEN o.digest END,
        previous_until = CASE WHEN p_grace_ms > 0 THEN
            (extract(epoch FROM now()) * 1000)::bigint + p_grace_ms END,
        expiration = COALESCE(p_expiration, t.expiration)
    FROM (SELECT id, digest, previous_digest FROM sts_tokens
          WHERE id = p_id FOR UPDATE) o
    WHERE t.id = o.id
    RETURNING t.name, array_to_string(t.roles, ','),
              COALESCE(t.expiration, -1),
              (extract(epoch FROM t.updated_at) * 1000)::bigint,
              o.digest, t.previous_until, o.previous_digest;
$$;

-- The first use of a rotated token's new digest p_digest retires the
-- previous one (authentication's, sts_lookup: it may do nothing else to
-- tokens). Returns the digest retired, NULL when there was none.
CREATE OR REPLACE FUNCTION sts_token_retire_previous(p_id bigint,
                                                     p_digest text)
RETURNS text
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    UPDATE sts_tokens t SET previous_digest = NULL, previous_until = NULL
    FROM (SELECT id, previous_digest FROM sts_tokens
          WHERE id = p_id AND digest = p_digest
            AND previous_digest IS NOT NULL FOR UPDATE) o
    WHERE t.id = o.id
    RETURNING o.previous_digest;
$$;

-- When and from which client address each token was last used. httpd
-- writes it only through sts_token_note_use: in batches, each process at
-- most once a minute per token, and a row at most once a minute whatever
-- the number of processes and hosts. A separate table, so a use neither
-- touches sts_tokens nor moves the revision. Deleting a token deletes its
-- row. Client addresses are personal data in some jurisdictions: only the
-- owner and sts_api (the token API lists them) may read them.
CREATE TABLE IF NOT EXISTS sts_token_last_use (
    token_id       bigint      PRIMARY KEY
                   REFERENCES sts_tokens (id) ON DELETE CASCADE,
    used_at        timestamptz NOT NULL,
    client_address inet
);

-- Records uses (parallel arrays: token id, epoch ms, client address or
-- ''), the latest per token; a token's row is written only when the use
-- is a minute or more after the one it holds, and never in the future.
-- Tokens deleted meanwhile are skipped (one deleted while this runs: tried
-- once more, without it). Returns the rows written.
CREATE OR REPLACE FUNCTION sts_token_note_use(ids bigint[], used_ms bigint[],
                                              addresses text[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    n integer;
BEGIN
    FOR attempt IN 1..2 LOOP
        BEGIN
            INSERT INTO sts_token_last_use AS l
                (token_id, used_at, client_address)
            SELECT DISTINCT ON (u.id) u.id,
                   LEAST(to_timestamp(u.ms / 1000.0), now()),
                   NULLIF(u.addr, '')::inet
            FROM unnest(ids, used_ms, addresses) AS u (id, ms, addr)
            WHERE EXISTS (SELECT 1 FROM sts_tokens t WHERE t.id = u.id)
            ORDER BY u.id, u.ms DESC
            ON CONFLICT (token_id) DO UPDATE
                SET used_at = EXCLUDED.used_at,
                    client_address = EXCLUDED.client_address
                WHERE l.used_at <= EXCLUDED.used_at - interval '1 minute';
            GET DIAGNOSTICS n = ROW_COUNT;
            RETURN n;
        EXCEPTION WHEN foreign_key_violation THEN
            IF attempt = 2 THEN
                RAISE;
            END IF;
        END;
    END LOOP;
    RETURN 0;
END;
$$;

-- Schema version, for the migrations in sql/migrations/.
CREATE TABLE IF NOT EXISTS sts_schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sts_schema_version (version) VALUES (1) ON CONFLICT DO NOTHING;

-- Least privilege: httpd's login role gets one of two groups (README,
-- "The database"). sts_lookup: what authentication needs (token lookups,
-- the change reads, retiring a rotated token's previous digest, recording
-- last use through sts_token_note_use); sts_api: that and what the token
-- API needs (create, delete, rotate, list with last use). Nobody but the
-- owner may update tokens (except through sts_token_rotate and
-- sts_token_retire_previous), write the revision counter, the last uses
-- (except through sts_token_note_use) or the schema
-- version, truncate or change the schema.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sts_lookup') THEN
        CREATE ROLE sts_lookup NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sts_api') THEN
        CREATE ROLE sts_api NOLOGIN;
    END IF;
END;
$$;
GRANT sts_lookup TO sts_api;
REVOKE ALL ON sts_tokens, sts_token_revision, sts_token_changes,
    sts_token_digests, sts_token_last_use, sts_schema_version FROM PUBLIC;
REVOKE ALL ON FUNCTION sts_token_touch(), sts_token_record_changes(),
    sts_token_rotate(bigint, text, bigint, bigint),
    sts_token_retire_previous(bigint, text),
    sts_token_note_use(bigint[], bigint[], text[]) FROM PUBLIC;
GRANT SELECT ON sts_tokens, sts_token_revision, sts_token_changes,
    sts_token_digests TO sts_lookup;
GRANT EXECUTE ON FUNCTION sts_token_retire_previous(bigint, text)
    TO sts_lookup;
GRANT EXECUTE ON FUNCTION sts_token_note_use(bigint[], bigint[], text[])
    TO sts_lookup;
GRANT INSERT, DELETE ON sts_tokens TO sts_api;
GRANT EXECUTE ON FUNCTION sts_token_rotate(bigint, text, bigint, bigint)
    TO sts_api;
GRANT SELECT ON sts_token_last_use TO sts_api;
COMMIT;

-- Migrations, in order; each applies only to a database that lacks it.
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

-- Schema version 4: rotation with overlap. Applied by schema.sql, which
-- adds sts_tokens.previous_digest and previous_until, the view
-- sts_token_digests, the functions sts_token_rotate and
-- sts_token_retire_previous and the change log's recording of previous
-- digests before it includes this file; nothing else has to happen once.
-- httpd processes of the previous version keep working meanwhile (they
-- know no previous digests: a rotated token's old secret stops working for
-- them at once); restart httpd with the new module afterwards.

SELECT NOT EXISTS (SELECT 1 FROM sts_schema_version WHERE version >= 4)
    AS sts_needs_0003 \gset
\if :sts_needs_0003
INSERT INTO sts_schema_version (version) VALUES (4);
\endif

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

