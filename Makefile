# mod_sts_token - service tokens for Apache httpd.
#
#   make              build modules/mod_sts_token.so and bin/sts
#   make run          private PostgreSQL + httpd on 127.0.0.1:8080 (foreground)
#   make test         unit + integration tests (installs Debian packages first)
#   make install      install the module, its configuration, sts, the SQL
#                     (mk/install.mk; DESTDIR and PREFIX honoured)
#
# Everything compiled goes below $(BUILD); the module is copied to
# modules/mod_sts_token.so so that the repository root works as a ServerRoot.

APXS ?= apxs
CC ?= gcc
BUILD ?= build
PREFIX ?= /usr/local
MODULE_SO ?= modules/mod_sts_token.so
# Extra flags for sanitizer builds (make test-asan sets them).
SAN ?=

# Read from apxs/pg_config when the Makefile is read: on a fresh machine they
# appear only after `deps`, so `run` and `test` build in a sub-make.
APXS_INCLUDEDIR := $(shell $(APXS) -q INCLUDEDIR 2>/dev/null)
PG_INC := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
APXS_INC := -I$(APXS_INCLUDEDIR) -I$(shell $(APXS) -q APR_INCLUDEDIR 2>/dev/null) \
            -I$(PG_INC) $(shell $(APXS) -q EXTRA_CPPFLAGS 2>/dev/null)
WARN := -Wall -Wextra -Werror
BASE_CFLAGS := -std=gnu11 -O2 -g -fPIC -fstack-protector-strong \
               -D_FORTIFY_SOURCE=2 $(WARN) $(SAN)

# The Apache-free library shared by the module, the CLI, tests and fuzzers.
LIB_SRC := src/token.c src/credentials.c src/api_json.c src/clock.c \
           src/names.c src/outage.c src/roles.c src/token_table.c src/sync.c \
           src/last_use.c
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB_A := $(BUILD)/libsts.a
LIB_LIBS := -ljansson -lcrypto -lz

# The module: record, hooks and the Apache-facing parts.
MOD_SRC := mod_sts_token.c src/authn.c src/authn_basic.c src/authz.c src/store.c src/cache.c \
           src/api.c src/api_base.c src/bootstrap.c src/status.c
MOD_OBJ := $(MOD_SRC:%.c=$(BUILD)/mod/%.o)

ALL_TARGETS := $(MODULE_SO)

.PHONY: all module clean install deps run test unit integration format \
        format-check
all: module-and-friends

# Fragments add targets (CLI, tests, bench, fuzz, checks) to ALL_TARGETS.
include $(sort $(wildcard mk/*.mk))

module-and-friends: $(ALL_TARGETS)
module: $(MODULE_SO)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Isrc -c $< -o $@

$(BUILD)/mod/%.o: %.c
	@test -n "$(APXS_INCLUDEDIR)" || { echo "$(APXS) not found: install the" \
	    "Debian packages first (make deps; make run and make test do it)" >&2; \
	    exit 1; }
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(APXS_INC) -Isrc -c $< -o $@

# The commit for server/info (scripts/commit.sh), rewritten only when it
# changes so that the objects showing it are rebuilt then and only then.
COMMIT_FILE := $(BUILD)/commit.txt
.PHONY: FORCE
$(COMMIT_FILE): FORCE
	@mkdir -p $(dir $@)
	@scripts/commit.sh > $@.tmp; \
	    if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
COMMIT_OBJ := $(BUILD)/mod/src/api.o $(BUILD)/cli/main.o
$(COMMIT_OBJ): $(COMMIT_FILE)
$(COMMIT_OBJ): BASE_CFLAGS += -DSTS_COMMIT='"$(shell cat $(COMMIT_FILE))"'

$(LIB_A): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/mod_sts_token.so: $(MOD_OBJ) $(LIB_A)
	$(CC) -shared $(SAN) $(LDFLAGS) -o $@ $(MOD_OBJ) $(LIB_A) $(LIB_LIBS) -lpq

# Replaced atomically (rename), never rewritten in place: a running httpd
# that mapped the old file keeps working.
$(MODULE_SO): $(BUILD)/mod_sts_token.so
	@mkdir -p $(dir $@)
	cp $< $@.tmp && mv -f $@.tmp $@

# Header dependencies: rebuild everything when a header changes.
$(LIB_OBJ) $(MOD_OBJ): $(wildcard src/*.h) Makefile

deps:
	scripts/deps.sh

run: deps
	$(MAKE) all
	scripts/run.sh

format:
	clang-format -i mod_sts_token.c src/*.[ch] $(wildcard cli/*.[ch] tests/unit/*.c tests/fuzz/*.c)

format-check:
	clang-format --dry-run -Werror mod_sts_token.c src/*.[ch] $(wildcard cli/*.[ch] tests/unit/*.c tests/fuzz/*.c)

clean:
	rm -rf $(BUILD) build-* $(MODULE_SO) bin
