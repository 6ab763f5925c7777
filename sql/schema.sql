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
    digest            text        COLLATE "C" NOT NULL
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
    ADD COLUMN IF NOT EXISTS previous_digest text COLLATE "C"
        CONSTRAINT sts_tokens_previous_digest_hex
        CHECK (previous_digest ~ '^[0-9a-f]{64}$'),
    ADD COLUMN IF NOT EXISTS previous_until bigint;
CREATE UNIQUE INDEX IF NOT EXISTS sts_tokens_previous_digest_key
    ON sts_tokens (previous_digest) WHERE previous_digest IS NOT NULL;

-- Digests compare byte-wise (COLLATE "C"): hex needs no locale, and an
-- index probe through the database's collation cost a lookup 2,200 more
-- instructions (bench/RESULTS.md). A table of schema version 6 or older
-- gets it here, before the lookup column below depends on previous_digest
-- (its indexes are rebuilt, the rows stay; the view reading the columns
-- is made again below).
DO $$
DECLARE
    col name;
BEGIN
    FOR col IN
        SELECT attname FROM pg_attribute
        WHERE attrelid = 'sts_tokens'::regclass
          AND attname IN ('digest', 'previous_digest')
          AND attcollation <> (SELECT oid FROM pg_collation
                               WHERE collname = 'C'
                                 AND collnamespace = 'pg_catalog'::regnamespace)
    LOOP
        DROP VIEW IF EXISTS sts_token_digests;
        EXECUTE format('ALTER TABLE sts_tokens ALTER COLUMN %I TYPE text '
                       'COLLATE "C"', col);
    END LOOP;
END;
$$;

-- What authentication needs of a token, as one text value computed when
-- the token is written (sts_tokens.authn): "id<TAB>expiration<TAB>previous
-- until<TAB>roles joined by ','<TAB>name", -1 for no expiration and for no
-- previous digest. A lookup returns this one column instead of evaluating
-- expressions on every execution, so it costs what mod_authn_dbd's
-- password query costs (bench/RESULTS.md). Immutable: the text output of
-- these types depends on no setting. No field holds a tab (the CHECKs of
-- the name and the roles). Its search path is pg_catalog's alone: it runs
-- in the SECURITY DEFINER functions' writes too, where a function or
-- operator a caller created elsewhere must not stand in for the built-in
-- ones. Whoever writes tokens must be allowed to execute it (sts_api).
CREATE OR REPLACE FUNCTION sts_token_authn(id bigint, expiration bigint,
                                           previous_digest text,
                                           previous_until bigint,
                                           roles text[], name text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT id::text || E'\t' || COALESCE(expiration, -1)::text || E'\t'
           || CASE WHEN previous_digest IS NULL THEN -1
                   ELSE COALESCE(previous_until, -1) END::text || E'\t'
           || array_to_string(roles, ',') || E'\t' || name
$$;
-- Adding it to an existing table rewrites the table (schema version 7).
ALTER TABLE sts_tokens ADD COLUMN IF NOT EXISTS authn text
    GENERATED ALWAYS AS (sts_token_authn(id, expiration, previous_digest,
                                         previous_until, roles, name)) STORED;

-- Every digest that authenticates, with what authentication needs of its
-- token: each token's digest, and the previous digest a rotation left
-- alive (until: when it stops; -1 for a current digest). retire: the token
-- still has such a previous digest, which the first use of this digest
-- retires. authn: sts_tokens.authn. The change read and the page read
-- select (authn, until) from this, and a lookup reads sts_tokens by
-- digest, then this for a digest that is no token's current one, so the
-- token tables hold exactly what a lookup returns. The columns between
-- digest and authn spell authn out for people (and for modules older than
-- schema version 7).
CREATE OR REPLACE VIEW sts_token_digests AS
    SELECT * FROM (
        SELECT digest, id, name, array_to_string(roles, ',') AS roles,
               COALESCE(expiration, -1) AS expiration, -1::bigint AS until,
               (previous_digest IS NOT NULL AND
                previous_until > (extract(epoch FROM now()) * 1000)::bigint)
                   AS retire,
               authn
        FROM sts_tokens
        UNION ALL
        SELECT previous_digest, id, name, array_to_string(roles, ','),
               COALESCE(expiration, -1), previous_until, false, authn
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
    sts_token_authn(bigint, bigint, text, bigint, text[], text),
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
GRANT EXECUTE ON FUNCTION
    sts_token_authn(bigint, bigint, text, bigint, text[], text) TO sts_api;
GRANT EXECUTE ON FUNCTION sts_token_rotate(bigint, text, bigint, bigint)
    TO sts_api;
GRANT SELECT ON sts_token_last_use TO sts_api;
COMMIT;

-- Migrations, in order; each applies only to a database that lacks it.
\ir migrations/0001_least_privilege.sql
\ir migrations/0002_change_log.sql
\ir migrations/0003_rotation.sql
\ir migrations/0004_last_use.sql
\ir migrations/0005_role_commas.sql
\ir migrations/0006_lookup_column.sql
