#!/bin/sh
# Installs the Debian 12 packages this project needs to build, run and test.
# As root it runs apt-get; otherwise it prints the command to run and fails.
set -eu

PACKAGES="build-essential pkg-config apache2 apache2-dev apache2-utils
libaprutil1-dbd-pgsql postgresql postgresql-contrib libssl-dev zlib1g-dev
libjansson-dev libcurl4-openssl-dev libyaml-dev libcmocka-dev
python3 python3-pytest python3-yaml curl jq wrk
clang clang-tidy clang-format cppcheck valgrind libclang-rt-14-dev"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages:$missing" >&2
    echo "Install them with:  sudo apt-get update && sudo $cmd" >&2
    exit 1
fi
echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
