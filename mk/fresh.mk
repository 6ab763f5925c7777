# The README's two commands on a brand-new Debian 12 machine, as root, from
# a fresh clone of HEAD (commit first) with cold apt:
# ../shared/tools/fresh-debian/ runs them in a throw-away copy of a pristine
# minimal root filesystem (debootstrap; built once, ~3 min, by `base`).
# Only a fresh machine shows a package missing from scripts/deps.sh: run it
# before calling a change to the dependencies, the Makefile, scripts/ or CI
# done. Not part of .ci/run (CI already starts from a clean clone). Needs
# root and debootstrap; each command's log is in /var/tmp/fresh-logs/.
#
#   make fresh-check     the make run quickstart (scenarios/make-run.sh),
#                        then make test, from /root/mod_sts_token
#   make fresh-check FRESH_ARGS="--dest /srv/mod_sts_token"   a world-readable dir
#   make fresh-check FRESH_ARGS="--apt-cache /var/tmp/fresh-apt-cache"
#                        reuse downloaded .debs (faster, no longer cold)
#   make fresh-check FRESH_ARGS="--env STS_PORT=38090 --env STS_PGPORT=54350"

FRESH_DIR ?= ../shared/tools/fresh-debian
FRESH_ARGS ?=
.PHONY: fresh-check

fresh-check:
	@test -x $(FRESH_DIR)/fresh-debian.sh || { echo "fresh-check:" \
	    "$(FRESH_DIR)/fresh-debian.sh is missing (set FRESH_DIR)" >&2; exit 1; }
	@git diff --quiet HEAD -- || echo "fresh-check: uncommitted changes are" \
	    "not part of the check: the machine clones HEAD" >&2
	$(FRESH_DIR)/fresh-debian.sh base
	$(FRESH_DIR)/fresh-debian.sh run --name fresh-check-run --timeout 2400 \
	    $(FRESH_ARGS) --script $(FRESH_DIR)/scenarios/make-run.sh
	$(FRESH_DIR)/fresh-debian.sh run --name fresh-check-test --timeout 3600 \
	    $(FRESH_ARGS) -- make test
