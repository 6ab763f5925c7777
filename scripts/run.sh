#!/bin/sh
# `make run`: a private PostgreSQL and httpd with the module on 127.0.0.1:8080,
# everything under ./run/. Ctrl-C stops both.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${STS_PORT:-8080}
PGPORT=${STS_PGPORT:-54329}
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null |
    sort -V | tail -n 1)
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

if [ -z "$PGBIN" ]; then
    echo "run.sh: PostgreSQL is not installed (run scripts/deps.sh)" >&2
    exit 1
fi
if [ ! -f "$ROOT/modules/mod_sts_token.so" ]; then
    echo "run.sh: modules/mod_sts_token.so is missing: run \`make\` first" >&2
    exit 1
fi

# Runs a PostgreSQL command as the cluster's owner (from /, which the
# postgres user can always enter).
as_pg() {
    if [ "$IS_ROOT" -eq 1 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Everything lives in ./run/ (or STS_RUN_DIR). As root, PostgreSQL runs as
# the postgres user and httpd's children as www-data: both must be able to
# enter the run dir. A clone below /root is not enterable by them, so then
# the run dir moves to /var/tmp (STS_RUN_FALLBACK) and ./run becomes a
# symlink to it (the README's run/bootstrap.token and run/httpd/error.log
# stay true).
reachable() {
    { runuser -u postgres -- test -x "$1" &&
        runuser -u www-data -- test -x "$1"; } 2>/dev/null
}
RUN=${STS_RUN_DIR:-$ROOT/run}
mkdir -p "$(dirname "$RUN")"
if [ "$IS_ROOT" -eq 1 ] && ! reachable "$(dirname "$RUN")"; then
    link=""
    [ -z "${STS_RUN_DIR:-}" ] && link=$RUN
    RUN=${STS_RUN_FALLBACK:-/var/tmp/mod_sts_token-run}
    echo "run.sh: $ROOT is not reachable by the postgres and www-data users;" \
        "using $RUN${link:+ (./run links to it)}" >&2
    mkdir -p "$RUN"
    # root's secrets in a world-writable /var/tmp: only in a directory of its own.
    if [ -L "$RUN" ] || [ "$(stat -c %u "$RUN")" -ne 0 ]; then
        echo "run.sh: $RUN is not a directory owned by root; remove it" >&2
        exit 1
    fi
    if [ -n "$link" ]; then
        if [ -L "$link" ] || [ ! -e "$link" ] || rmdir "$link" 2>/dev/null; then
            ln -sfn "$RUN" "$link"
        else
            echo "run.sh: $link is a directory of its own (not used)" >&2
        fi
    fi
fi
mkdir -p "$RUN"
chmod 755 "$RUN"
RUN=$(cd "$RUN" && pwd)

mkdir -p "$RUN/pgsock" "$RUN/httpd/htdocs/protected" "$RUN/httpd/cgi-bin"
chmod 755 "$RUN/pgsock" "$RUN/httpd" "$RUN/httpd/htdocs" \
    "$RUN/httpd/htdocs/protected" "$RUN/httpd/cgi-bin"
[ "$IS_ROOT" -eq 1 ] && chown postgres "$RUN/pgsock"
echo "hello from behind a service token" > "$RUN/httpd/htdocs/protected/index.html"
echo "mod_sts_token demo" > "$RUN/httpd/htdocs/index.html"
cp "$ROOT"/tests/integration/cgi/* "$RUN/httpd/cgi-bin/"
chmod 755 "$RUN"/httpd/cgi-bin/*
chmod 644 "$RUN/httpd/htdocs/index.html" "$RUN/httpd/htdocs/protected/index.html"

# Who may be which role: this script's user (root or you) and the cluster's
# owner are the administrator, postgres; httpd's children are sts.
ME=$(id -un)
if [ "$IS_ROOT" -eq 1 ]; then
    HTTPD_OS_USER=www-data
else
    HTTPD_OS_USER=$ME
fi
if [ ! -f "$RUN/pgdata/PG_VERSION" ]; then
    mkdir -p "$RUN/pgdata"
    chmod 700 "$RUN/pgdata"
    [ "$IS_ROOT" -eq 1 ] && chown postgres "$RUN/pgdata"
    as_pg "$PGBIN/initdb" -D "$RUN/pgdata" --auth-local=peer \
        --auth-host=scram-sha-256 -U postgres -E UTF8 >/dev/null
fi
# The README's database set-up: peer authentication on the socket, no trust
# (nobody can log in over TCP: no role has a password). Written at every
# start, so a run directory from an older `make run`, which trusted every
# local user, is brought into line.
as_pg sh -c "printf 'sts postgres postgres\nsts %s postgres\nsts %s sts\n' \
    '$ME' '$HTTPD_OS_USER' > '$RUN/pgdata/pg_ident.conf' &&
    printf 'local all all peer map=sts\nhost all all 127.0.0.1/32 scram-sha-256\n' \
    > '$RUN/pgdata/pg_hba.conf'"
if as_pg "$PGBIN/pg_ctl" -D "$RUN/pgdata" status >/dev/null 2>&1; then
    echo "run.sh: a PostgreSQL from an earlier \`make run\` is still running in" \
        "$RUN/pgdata; stop it with:" >&2
    pre=""
    [ "$IS_ROOT" -eq 1 ] && pre="runuser -u postgres -- "
    echo "  $pre$PGBIN/pg_ctl -D $RUN/pgdata -m fast stop" >&2
    exit 1
fi
if ! as_pg "$PGBIN/pg_ctl" -D "$RUN/pgdata" -l "$RUN/pgsock/postgres.log" -w \
    -o "-k $RUN/pgsock -c listen_addresses=127.0.0.1 -p $PGPORT" start >/dev/null; then
    echo "run.sh: PostgreSQL did not start (port $PGPORT taken? set STS_PGPORT);" \
        "its log:" >&2
    tail -n 20 "$RUN/pgsock/postgres.log" >&2
    exit 1
fi

HTTPD_PID=""
cleanup() {
    trap - INT TERM EXIT
    if [ -n "$HTTPD_PID" ] && kill -0 "$HTTPD_PID" 2>/dev/null; then
        kill -TERM "$HTTPD_PID" 2>/dev/null || true
        wait "$HTTPD_PID" 2>/dev/null || true
    fi
    as_pg "$PGBIN/pg_ctl" -D "$RUN/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    echo "stopped httpd and PostgreSQL"
}
trap cleanup INT TERM EXIT

# The schema belongs to postgres (schema.sql is idempotent and applies
# pending migrations); httpd connects as role sts, a member of sts_api only:
# token lookups and the token API, no UPDATE, no DDL.
PSQL="psql -h $RUN/pgsock -p $PGPORT -U postgres -qAtX -v ON_ERROR_STOP=1"
$PSQL -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'sts'" |
    grep -q 1 || $PSQL -d postgres -c "CREATE DATABASE sts"
$PSQL -d sts -f "$ROOT/sql/schema.sql"
$PSQL -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = 'sts'" |
    grep -q 1 || $PSQL -d postgres -c "CREATE ROLE sts LOGIN"
$PSQL -d sts -c "GRANT sts_api TO sts"

BOOT="$RUN/bootstrap.token"
if [ ! -s "$BOOT" ]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$BOOT")
fi
chmod 600 "$BOOT"

if [ "$IS_ROOT" -eq 1 ]; then
    USER_DEFINE=""
    RUN_AS=www-data
else
    USER_DEFINE="-DSTS_NO_USER"
    RUN_AS=$(id -un)
fi
export STS_ROOT="$ROOT" STS_RUN="$RUN/httpd" STS_DOCROOT="$RUN/httpd/htdocs"
export STS_CGI_DIR="$RUN/httpd/cgi-bin"
export STS_LISTEN="127.0.0.1:$PORT" STS_USER="$RUN_AS" STS_BOOTSTRAP="$BOOT"
export STS_DBD_PARAMS="host=$RUN/pgsock port=$PGPORT dbname=sts user=sts connect_timeout=2 options='-c statement_timeout=2000'"
export STS_LOGLEVEL="${STS_LOGLEVEL:-info}" STS_EXTRA_CONF="$RUN/httpd/extra*.conf"

URL="http://127.0.0.1:$PORT"
cat <<MSG

mod_sts_token is running: httpd on $URL, PostgreSQL on $RUN/pgsock (port $PGPORT).
Logs: $RUN/httpd/error.log, $RUN/httpd/access.log. Ctrl-C stops both.
In another shell:

  BOOT=\$(cat $BOOT)     # the bootstrap secret: roles stackstate-admin

  # no token / a bad token: 401 with WWW-Authenticate: ApiKey realm="sts-demo"
  curl -si $URL/protected/

  # create a token through the API (its secret is in this answer only)
  TOKEN=\$(curl -s -H "X-API-Key: \$BOOT" -H 'Content-Type: application/json' \\
      -d '{"name":"my-service-token","roles":["stackstate-k8s-troubleshooter"]}' \\
      $URL/api/security/tokens | jq -r .token)

  # call a protected URL with it, either header form
  curl -si -H "X-API-Key: \$TOKEN"            $URL/protected/
  curl -si -H "Authorization: ApiKey \$TOKEN" $URL/protected/
  curl -s -H "X-API-Key: \$TOKEN"            $URL/cgi-bin/env.cgi | grep STS_

  # list tokens (with their ids), delete one, server info
  curl -s -H "X-API-Key: \$BOOT" $URL/api/security/tokens | jq .
  curl -si -X DELETE -H "X-API-Key: \$BOOT" $URL/api/security/tokens/<id>
  curl -s -H "X-API-Key: \$BOOT" $URL/api/server/info | jq .

  # or with the CLI (the token from a file, never on the command line)
  bin/sts context save --name local --url $URL --service-token-file $BOOT
  bin/sts service-token create --name ci-bot --roles stackstate-k8s-troubleshooter
  bin/sts service-token list
  bin/sts service-token delete --id <id>

MSG
# In a non-interactive shell a background job ignores SIGINT: Ctrl-C reaches
# this script, whose trap stops httpd (by PID) and PostgreSQL.
# shellcheck disable=SC2086
# httpd loads a copy of the module: `make` rewrites modules/mod_sts_token.so
# in place, which would crash running children. Rebuilt? Ctrl-C, make run.
cp "$ROOT/modules/mod_sts_token.so" "$RUN/httpd/mod_sts_token.so.tmp"
mv -f "$RUN/httpd/mod_sts_token.so.tmp" "$RUN/httpd/mod_sts_token.so"
apache2 -f "$ROOT/conf/httpd.conf" -DFOREGROUND $USER_DEFINE \
    -C "Define STS_MODULE $RUN/httpd/mod_sts_token.so" &
HTTPD_PID=$!
rc=0
wait "$HTTPD_PID" || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ]; then
    echo "run.sh: httpd exited with status $rc; the end of its error log:" >&2
    tail -n 15 "$RUN/httpd/error.log" >&2 2>/dev/null || true
    exit "$rc"
fi
