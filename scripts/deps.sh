#!/bin/sh
# Installs the Debian 12 packages this project needs to build, run and test.
# A fast no-op when everything is installed. Otherwise, as root it runs
# apt-get update + install; as another user it prints the command and fails.
#
# One list; add a package on the line of what needs it.
set -eu

PACKAGES="
build-essential pkg-config apache2 apache2-dev apache2-utils
libaprutil1-dbd-pgsql libpq-dev postgresql postgresql-contrib libssl-dev zlib1g-dev
libjansson-dev libcurl4-openssl-dev libyaml-dev libcmocka-dev
python3 python3-pytest python3-yaml curl jq xz-utils git
clang clang-tidy clang-format cppcheck valgrind wrk libclang-rt-14-dev
debhelper dpkg-dev lintian
"

# One dpkg-query for the whole list: prints "name status" for known packages.
# shellcheck disable=SC2086
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' $PACKAGES \
    2>/dev/null | awk '$2 == "ii" { print $1 }') || true
missing=""
for p in $PACKAGES; do
    case " $(echo "$installed" | tr '\n' ' ') " in
    *" $p "*) ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages:$missing" >&2
    echo "Install them with (as root):" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive $cmd" >&2
    exit 1
fi
echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# .ci/run has just updated the package lists.
[ "${STS_DEPS_UPDATED:-0}" = 1 ] || apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
