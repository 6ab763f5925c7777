#!/bin/bash
# The Debian packages on a fresh Debian 12, set up the README's way (make
# deb-check runs it in a throw-away machine of ../shared/tools/fresh-debian,
# with the .debs built by `make deb` in ../shared/). As root, from the clone:
#
#   install the packages with apt (apache2, postgresql, curl alongside);
#   PostgreSQL as documented (runuser -u postgres, peer authentication,
#   schema.sql, GRANT sts_api TO "www-data"), a bootstrap secret, a2enmod
#   sts_token, a2enconf sts-token-locations with two examples uncommented;
#   then: 401 / token created through the API / 200, the sts CLI, the role
#   cannot update tokens, an upgrade to the next version the README's way
#   (schema, apt-get install) reloads apache2 into the new module while it
#   answers every request and keeps the admin's configuration (and does not
#   reload it while configtest fails, saying why), a bootstrap file gone bad
#   refused by apache2ctl graceful while the server keeps answering,
#   a2dismod fails closed (403), PostgreSQL stopped (503 with Retry-After,
#   one log line), and the package removed (module disabled, locations
#   still denied).
#
# The machine runs no services (policy-rc.d): PostgreSQL is started with
# pg_ctlcluster on its unix socket only (no TCP: the network is the host's),
# apache2 with apache2ctl on 127.0.0.1:$STS_PORT. Only while upgrading may
# apache2 be reloaded or restarted by the package (as on a real machine).
set -euo pipefail
PORT=${STS_PORT:-38115}
URL=http://127.0.0.1:$PORT
DEBS=$(cd ../shared && pwd)
T0=$(date +%s)
BOOT=""

log() { echo "[fresh-install $(date -u +%H:%M:%S) +$(($(date +%s) - T0))s] $*"; }
fail() { log "FAILED: $*"; tail -n 30 /var/log/apache2/error.log 2>/dev/null || true; exit 1; }
run() { log "\$ $*"; "$@"; }
# Whatever ends the script: the upgrade's request loop stops and the
# machine's policy-rc.d is put back.
LOOP=""
cleanup() {
    touch /tmp/upgrade.done
    [ -z "$LOOP" ] || kill "$LOOP" 2>/dev/null || true
    [ ! -e /tmp/policy-rc.d.deny ] || mv /tmp/policy-rc.d.deny /usr/sbin/policy-rc.d
}
trap cleanup EXIT
# The status of a request (000: none within 10 s); secrets never printed.
status() { curl -s -m 10 -o /dev/null -w '%{http_code}' "$@" || true; }
expect() {
    local want=$1; shift
    local got
    got=$(status "$@")
    [ "$got" = "$want" ] || fail "expected $want, got $got: curl ${*//$BOOT/<BOOT>}"
    log "  $got as expected: ${*: -1}"
}

log "packages: $(cd "$DEBS" && ls *.deb | tr '\n' ' ')"
run apt-get update -q
run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    apache2 postgresql curl \
    "$DEBS"/libapache2-mod-sts-token_*_amd64.deb "$DEBS"/sts-token-cli_*_amd64.deb
dpkg -l libapache2-mod-sts-token sts-token-cli | tail -n 2
[ -e /etc/apache2/mods-enabled/sts_token.load ] && fail "installing enabled the module"
[ -f /usr/share/man/man1/sts.1.gz ] || fail "no sts(1)"

log "PostgreSQL: the cluster Debian created, unix socket only"
PGVER=$(ls /etc/postgresql)
sed -i "s/^#\?listen_addresses.*/listen_addresses = ''/" /etc/postgresql/"$PGVER"/main/postgresql.conf
run pg_ctlcluster "$PGVER" main start
run runuser -u postgres -- createdb sts
run runuser -u postgres -- psql -v ON_ERROR_STOP=1 -d sts -f /usr/share/libapache2-mod-sts-token/sql/schema.sql
run runuser -u postgres -- createuser www-data
run runuser -u postgres -- psql -d sts -c 'GRANT sts_api TO "www-data"'

log "bootstrap secret, module, locations"
(umask 077 && openssl rand -hex 32 >/etc/apache2/sts-bootstrap.token)
BOOT=$(cat /etc/apache2/sts-bootstrap.token)
sed -i 's|^    #STSTokenBootstrap |    STSTokenBootstrap |' /etc/apache2/mods-available/sts_token.conf
grep -q '^    STSTokenBootstrap /etc/apache2/sts-bootstrap.token' \
    /etc/apache2/mods-available/sts_token.conf || fail "STSTokenBootstrap not enabled"
# The examples "a protected area" and "the token management API".
awk '/^# --- example: (a protected area|the token management API)/ { on = 1; print; next }
     /^# --- end ---/ { on = 0 }
     on { sub(/^#/, "") }
     { print }' /etc/apache2/conf-available/sts-token-locations.conf >/tmp/loc.conf
cat /tmp/loc.conf >/etc/apache2/conf-available/sts-token-locations.conf
mkdir -p /var/www/html/protected
echo "behind a service token" >/var/www/html/protected/index.html
sed -i "s/^Listen 80$/Listen 127.0.0.1:$PORT/" /etc/apache2/ports.conf
sed -i "s/<VirtualHost \*:80>/<VirtualHost *:$PORT>/" /etc/apache2/sites-available/000-default.conf
run a2enmod sts_token
[ -e /etc/apache2/mods-enabled/dbd.load ] || fail "a2enmod sts_token did not enable dbd"
run a2enconf sts-token-locations
run apache2ctl configtest
run apache2ctl start
for _ in $(seq 1 50); do [ "$(status $URL/)" = 200 ] && break; sleep 0.2; done

log "end to end"
expect 401 $URL/protected/
TOKEN=$(curl -s -H "X-API-Key: $BOOT" -H 'Content-Type: application/json' \
    -d '{"name":"fresh-ci","roles":["reader"]}' \
    $URL/api/security/tokens | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || fail "no token created"
log "  created token fresh-ci (secret not shown)"
expect 200 -H "X-API-Key: $TOKEN" $URL/protected/
expect 200 -H "Authorization: ApiKey $TOKEN" $URL/protected/
expect 403 -H "X-API-Key: $TOKEN" $URL/api/security/tokens
export STS_CLI_URL=$URL STS_CLI_SERVICE_TOKEN=$BOOT NO_COLOR=1
sts service-token create --name fresh-cli --roles reader | sed -E 's/svctok-[0-9a-z]+/svctok-<SECRET>/'
sts service-token list | tee /tmp/list.txt
grep -q fresh-ci /tmp/list.txt && grep -q fresh-cli /tmp/list.txt || fail "sts list"
ID=$(awk -F' *[|] *' '$2 == "fresh-cli" { print $1 }' /tmp/list.txt)
run sts service-token delete "$ID"

log "least privilege: httpd's role cannot update tokens"
if (cd / && runuser -u www-data -- psql -d sts -c "UPDATE sts_tokens SET roles = '{stackstate-admin}'") 2>/tmp/upd.err; then
    fail "www-data could update tokens"
fi
grep -q "permission denied" /tmp/upd.err || fail "$(cat /tmp/upd.err)"
log "  refused: $(cat /tmp/upd.err)"

log "upgrade, the README's way, while apache2 serves"
VER=$(dpkg-query -W -f '${Version}' libapache2-mod-sts-token)
SO=/usr/lib/apache2/modules/mod_sts_token.so
PARENT=$(cat /var/run/apache2/apache2.pid)
# The inode of the module apache2's parent runs, and of the installed file.
so_inode() { awk -v so="$SO" '$6 == so { print $5; exit }' /proc/"$PARENT"/maps; }
file_inode() { stat -c %i "$SO"; }
# runs_inode I: waits up to 10 s for the parent to run the module of inode I.
runs_inode() {
    for _ in $(seq 1 50); do [ "$(so_inode)" = "$1" ] && return 0; sleep 0.2; done
    return 1
}
[ "$(so_inode)" = "$(file_inode)" ] || fail "apache2 does not map $SO"
# next_deb N: this package repacked as VERSION+upgradeN into /tmp/upgradeN/
# (dpkg replaces every file, the module by a new inode, as a real upgrade).
next_deb() {
    rm -rf /tmp/next "/tmp/upgrade$1" && mkdir "/tmp/upgrade$1"
    dpkg-deb -R "$DEBS"/libapache2-mod-sts-token_*_amd64.deb /tmp/next
    sed -i "s/^Version: .*/Version: $VER+upgrade$1/" /tmp/next/DEBIAN/control
    dpkg-deb -b /tmp/next "/tmp/upgrade$1/" >/dev/null
}
# upgrade N: the README's steps with /tmp/upgradeN/ as build/deb/, while a
# request every 50 ms goes to apache2 (until requests_ok); apt's output in
# /tmp/apt.out.
upgrade() {
    rm -f /tmp/upgrade.done /tmp/during.txt
    (while [ ! -e /tmp/upgrade.done ]; do
        echo "$(status -H "X-API-Key: $TOKEN" "$URL/protected/")" >>/tmp/during.txt
        sleep 0.05
    done) &
    LOOP=$!
    (
        cd "/tmp/upgrade$1"
        deb=$(ls ./libapache2-mod-sts-token_*.deb)   # exactly one
        new=$(mktemp -d) && chmod 755 "$new" && dpkg-deb -x "$deb" "$new"
        run runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d sts -f "$new/usr/share/libapache2-mod-sts-token/sql/schema.sql"
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" 2>&1 | tee /tmp/apt.out
        rm -rf "$new"
    )
    local schema
    schema=$(runuser -u postgres -- psql -d sts -Atc 'SELECT max(version) FROM sts_schema_version')
    log "  schema version $schema"
    [ "$(dpkg-query -W -f '${Version}' libapache2-mod-sts-token)" = "$VER+upgrade$1" ] ||
        fail "not upgraded to $VER+upgrade$1"
}
# requests_ok: stops the requests; each must have been answered 200.
requests_ok() {
    touch /tmp/upgrade.done
    wait "$LOOP"
    LOOP=""
    local n bad
    n=$(grep -c . /tmp/during.txt || true)
    bad=$(grep -vc '^200$' /tmp/during.txt || true)
    [ "$n" -ge 10 ] && [ "$bad" = 0 ] ||
        fail "requests during the upgrade: $n, not 200: $(grep -v '^200$' /tmp/during.txt | sort | uniq -c | tr '\n' ' ')"
    log "  $n requests during the upgrade, all 200"
}
# What services may do meanwhile: reload apache2 (listening on
# 127.0.0.1:$PORT only), or restart it, so that a package restarting it
# shows in the parent's PID instead of being hidden by the policy; nothing
# else (fresh-debian's policy denies all).
cp /usr/sbin/policy-rc.d /tmp/policy-rc.d.deny
cat >/usr/sbin/policy-rc.d <<'EOF'
#!/bin/sh
# fresh-install.sh: apache2 may be reloaded or restarted, nothing else runs
case " $* " in
*" apache2 reload "* | *" apache2 restart "*) exit 0 ;;
esac
exit 101
EOF
next_deb 1
upgrade 1
runs_inode "$(file_inode)" || true
[ "$(cat /var/run/apache2/apache2.pid)" = "$PARENT" ] || fail "apache2 was stopped, not reloaded"
[ "$(so_inode)" = "$(file_inode)" ] ||
    fail "apache2 still runs the old module (inode $(so_inode), the file's $(file_inode))"
log "  apache2's parent (PID $PARENT, not restarted) maps the new module (inode $(so_inode))"
sleep 1 # requests to the new generation too
requests_ok
[ -e /etc/apache2/mods-enabled/sts_token.load ] || fail "the upgrade disabled the module"
grep -q '^    STSTokenBootstrap /etc/apache2/sts-bootstrap.token' \
    /etc/apache2/mods-available/sts_token.conf || fail "the upgrade lost the admin's sts_token.conf"
cmp -s /tmp/loc.conf /etc/apache2/conf-available/sts-token-locations.conf ||
    fail "the upgrade lost the admin's sts-token-locations.conf"
log "  the admin's configuration kept, the module still enabled"
expect 200 -H "X-API-Key: $TOKEN" $URL/protected/

log "upgrade while apache2ctl configtest fails: apache2 keeps running the module it has"
chmod 644 /etc/apache2/sts-bootstrap.token
RUNNING=$(so_inode)
next_deb 2
upgrade 2
grep -q "apache2_reload: Your configuration is broken" /tmp/apt.out || fail "apt did not say why apache2 was not reloaded"
grep -q "apache2_reload: .*STSTokenBootstrap" /tmp/apt.out || fail "apt did not show configtest's reason"
log "  apt said: $(grep -m1 'apache2_reload: .*STSTokenBootstrap' /tmp/apt.out)"
sleep 2 # what a reload would have taken
requests_ok
[ "$(so_inode)" = "$RUNNING" ] || fail "apache2 reloaded a configuration configtest refuses"
mv /tmp/policy-rc.d.deny /usr/sbin/policy-rc.d
chmod 600 /etc/apache2/sts-bootstrap.token
run apache2ctl graceful
runs_inode "$(file_inode)" || fail "apache2ctl graceful did not load the new module"
log "  the configuration mended, apache2ctl graceful loads the new module (inode $(so_inode))"
expect 200 -H "X-API-Key: $TOKEN" $URL/protected/

log "reload safety: a bootstrap file gone bad"
chmod 644 /etc/apache2/sts-bootstrap.token
if apache2ctl graceful >/tmp/graceful.out 2>&1; then fail "graceful accepted a 0644 bootstrap file"; fi
log "  apache2ctl graceful refused: $(grep -m1 STSTokenBootstrap /tmp/graceful.out)"
chmod 600 /etc/apache2/sts-bootstrap.token
chown www-data /etc/apache2/sts-bootstrap.token
if apache2ctl configtest >/tmp/configtest.out 2>&1; then fail "configtest accepted a www-data-owned bootstrap file"; fi
log "  configtest refused: $(grep -m1 STSTokenBootstrap /tmp/configtest.out)"
chown root /etc/apache2/sts-bootstrap.token
sleep 1
expect 200 -H "X-API-Key: $TOKEN" $URL/protected/

log "database outage"
run pg_ctlcluster "$PGVER" main stop
curl -s -D /tmp/h.txt -o /dev/null -H "X-API-Key: $TOKEN" $URL/protected/
log "  a cached token: $(head -n 1 /tmp/h.txt | tr -d '\r')"
hdrs=$(curl -s -D - -o /dev/null -H "X-API-Key: $BOOT" $URL/api/security/tokens | tr -d '\r')
echo "$hdrs" | head -n 1 | grep -q " 503" || fail "API with PostgreSQL down: $(echo "$hdrs" | head -n 1)"
echo "$hdrs" | grep -qi '^Retry-After: [0-9]' || fail "no Retry-After on 503"
log "  token API: 503 with $(echo "$hdrs" | grep -i '^Retry-After')"
run pg_ctlcluster "$PGVER" main start
for _ in $(seq 1 50); do
    [ "$(status -H "X-API-Key: $BOOT" $URL/api/security/tokens)" = 200 ] && break
    sleep 0.2
done
expect 200 -H "X-API-Key: $BOOT" $URL/api/security/tokens

log "fail closed: a2dismod sts_token"
run a2dismod sts_token
run apache2ctl graceful
sleep 2
expect 403 -H "X-API-Key: $TOKEN" $URL/protected/
expect 403 -H "X-API-Key: $BOOT" $URL/api/server/info
expect 200 $URL/
run a2enmod sts_token
run apache2ctl graceful
sleep 2
expect 200 -H "X-API-Key: $TOKEN" $URL/protected/

log "package removed: the module is disabled, the locations still deny"
run apache2ctl stop
sleep 1
run env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q libapache2-mod-sts-token
[ -e /etc/apache2/mods-enabled/sts_token.load ] && fail "module still enabled after remove"
run apache2ctl configtest
run apache2ctl start
for _ in $(seq 1 50); do [ "$(status $URL/)" = 200 ] && break; sleep 0.2; done
expect 403 $URL/protected/
expect 403 -H "X-API-Key: $TOKEN" $URL/protected/
run apache2ctl stop
run pg_ctlcluster "$PGVER" main stop
log "error log lines of the module:"
grep -c 'sts_token' /var/log/apache2/error.log || true
log "PASSED"
