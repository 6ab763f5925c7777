#!/bin/sh
# `make run`: a private PostgreSQL and httpd with the module on 127.0.0.1:8080,
# everything under ./run/. Ctrl-C stops both.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN="$ROOT/run"
PORT=${STS_PORT:-8080}
PGPORT=${STS_PGPORT:-54329}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

mkdir -p "$RUN/pgsock" "$RUN/httpd/htdocs/protected"
chmod 755 "$RUN" "$RUN/pgsock" "$RUN/httpd" "$RUN/httpd/htdocs" "$RUN/httpd/htdocs/protected"
[ "$(id -u)" -eq 0 ] && chmod 755 "$ROOT" && chown postgres "$RUN/pgsock"
echo "hello from behind a service token" > "$RUN/httpd/htdocs/protected/index.html"
echo "mod_sts_token demo" > "$RUN/httpd/htdocs/index.html"

if [ ! -f "$RUN/pgdata/PG_VERSION" ]; then
    mkdir -p "$RUN/pgdata"
    chmod 700 "$RUN/pgdata"
    [ "$(id -u)" -eq 0 ] && chown postgres "$RUN/pgdata"
    as_pg "$PGBIN/initdb" -D "$RUN/pgdata" -A trust -U postgres -E UTF8 >/dev/null
fi
as_pg "$PGBIN/pg_ctl" -D "$RUN/pgdata" -l "$RUN/pgsock/postgres.log" -w \
    -o "-k $RUN/pgsock -c listen_addresses=127.0.0.1 -p $PGPORT" start >/dev/null

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

PSQL="psql -h $RUN/pgsock -p $PGPORT -U postgres -qAtX -v ON_ERROR_STOP=1"
$PSQL -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'sts'" | grep -q 1 ||
    $PSQL -d postgres -c "CREATE DATABASE sts"
$PSQL -d sts -f "$ROOT/sql/schema.sql"

BOOT="$RUN/bootstrap.token"
if [ ! -s "$BOOT" ]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$BOOT")
fi
chmod 600 "$BOOT"

if [ "$(id -u)" -eq 0 ]; then USER_DEFINE=""; RUN_AS=www-data; else USER_DEFINE="-DSTS_NO_USER"; RUN_AS=$(id -un); fi
export STS_ROOT="$ROOT" STS_RUN="$RUN/httpd" STS_DOCROOT="$RUN/httpd/htdocs"
export STS_LISTEN="127.0.0.1:$PORT" STS_USER="$RUN_AS" STS_BOOTSTRAP="$BOOT"
export STS_DBD_PARAMS="host=$RUN/pgsock port=$PGPORT dbname=sts user=postgres connect_timeout=2 options='-c statement_timeout=2000'"
export STS_LOGLEVEL="${STS_LOGLEVEL:-info}" STS_EXTRA_CONF="$RUN/httpd/extra*.conf"

URL="http://127.0.0.1:$PORT"
cat <<MSG

mod_sts_token is running: httpd on $URL, PostgreSQL on $RUN/pgsock (port $PGPORT).
Logs: $RUN/httpd/error.log, $RUN/httpd/access.log. Ctrl-C stops both.

  BOOT=\$(cat $BOOT)                     # the bootstrap secret (admin)

  # create a token (its secret is shown once, in this answer)
  curl -s -H "X-API-Key: \$BOOT" -H 'Content-Type: application/json' \\
       -d '{"name":"my-service-token","roles":["stackstate-k8s-troubleshooter"]}' \\
       $URL/api/security/tokens
  TOKEN=svctok-...                       # the "token" from that answer

  # call a protected URL with it, either header form
  curl -i -H "X-API-Key: \$TOKEN"            $URL/protected/
  curl -i -H "Authorization: ApiKey \$TOKEN" $URL/protected/

  # list tokens, delete one (the list shows the ids)
  curl -s -H "X-API-Key: \$BOOT" $URL/api/security/tokens
  curl -i -X DELETE -H "X-API-Key: \$BOOT" $URL/api/security/tokens/<id>

  # or with the CLI
  bin/sts context save --name local --url $URL --service-token \$BOOT
  bin/sts service-token list

MSG
apache2 -f "$ROOT/conf/httpd.conf" -DFOREGROUND $USER_DEFINE &
HTTPD_PID=$!
wait "$HTTPD_PID"
