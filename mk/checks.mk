# Checks that find what tests miss (issue 6):
#
#   make fuzz            libFuzzer harnesses, FUZZ_SECONDS each (default 60),
#                        seeded from tests/fuzz/corpus/<harness>/
#   make lint            cppcheck + clang-tidy on the module, src/ and cli/
#   make test-asan       unit + integration tests with ASan/UBSan builds
#   make test-valgrind   module integration tests with httpd -X under valgrind

FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=undefined -Isrc -Icli
FUZZ_DIR := $(BUILD)/fuzz
FUZZERS := fuzz_credentials fuzz_token fuzz_api_json fuzz_cli_config
# Every harness links the whole Apache-free library (LIB_SRC), so a new
# dependency between its files never breaks the fuzz build.
FUZZ_SRC_fuzz_credentials := $(LIB_SRC)
FUZZ_SRC_fuzz_token := $(LIB_SRC)
FUZZ_SRC_fuzz_api_json := $(LIB_SRC)
FUZZ_SRC_fuzz_cli_config := $(filter-out cli/main.c,$(wildcard cli/*.c)) \
                            $(LIB_SRC)

.PHONY: fuzz fuzz-build lint test-asan test-valgrind

$(FUZZ_DIR)/%: tests/fuzz/%.c $(wildcard src/*.[ch] cli/*.[ch])
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRC_$*) -ljansson -lcrypto \
	    -lz -lyaml -lcurl

fuzz-build: $(FUZZERS:%=$(FUZZ_DIR)/%)

# Each harness grows a scratch corpus below $(FUZZ_DIR); the committed seeds
# stay small. A crash leaves crash-* in $(FUZZ_DIR) and fails the target.
fuzz: fuzz-build
	@set -e; for f in $(FUZZERS); do \
	    mkdir -p $(FUZZ_DIR)/corpus-$$f; \
	    echo "== $$f for $(FUZZ_SECONDS) s"; \
	    $(FUZZ_DIR)/$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_DIR)/$$f- -max_len=70000 \
	        $(FUZZ_DIR)/corpus-$$f tests/fuzz/corpus/$$f 2>&1 | \
	        grep -E '^(#[0-9]+[[:space:]]+DONE|stat::|==[0-9]+==|SUMMARY|Done)' || true; \
	    if ls $(FUZZ_DIR)/$$f-crash-* $(FUZZ_DIR)/$$f-leak-* \
	        $(FUZZ_DIR)/$$f-timeout-* >/dev/null 2>&1; then \
	        echo "$$f found a failing input: $$(ls $(FUZZ_DIR)/$$f-*)"; exit 1; fi; \
	done

LINT_SRC := mod_sts_token.c $(wildcard src/*.c) $(wildcard cli/*.c)
LINT_INC := -Isrc -Icli $(APXS_INC)

lint:
	cppcheck --quiet --error-exitcode=1 --std=c11 \
	    --enable=warning,performance,portability --inline-suppr \
	    --suppress=missingIncludeSystem --suppress=missingInclude \
	    -Isrc -Icli $(LINT_SRC)
	clang-tidy --quiet $(LINT_SRC) -- -std=gnu11 $(LINT_INC) -D_GNU_SOURCE

ASAN_BUILD := build-asan
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined

# The module is loaded into an uninstrumented httpd: preload the sanitizer
# runtimes; their reports land in httpd's error log, which the harness
# treats as a crash of the test that caused them.
ASAN_TESTS ?= tests/integration
test-asan:
	$(MAKE) BUILD=$(ASAN_BUILD) SAN="$(ASAN_FLAGS)" \
	    MODULE_SO=$(ASAN_BUILD)/modules/mod_sts_token.so \
	    STS_BIN=$(ASAN_BUILD)/sts $(ASAN_BUILD)/modules/mod_sts_token.so \
	    $(ASAN_BUILD)/sts $(ASAN_BUILD)/tests/mint
	$(MAKE) BUILD=$(ASAN_BUILD) SAN="$(ASAN_FLAGS)" unit
	STS_MODULE=$(CURDIR)/$(ASAN_BUILD)/modules/mod_sts_token.so \
	STS_CLI=$(CURDIR)/$(ASAN_BUILD)/sts STS_BUILD=$(CURDIR)/$(ASAN_BUILD) \
	STS_HTTPD_WRAPPER="env LD_PRELOAD=$$($(CC) -print-file-name=libasan.so):$$($(CC) -print-file-name=libubsan.so) ASAN_OPTIONS=detect_leaks=0" \
	    $(PYTHON) -m pytest -q -p no:cacheprovider $(ASAN_TESTS) $(PYTEST_ARGS)

# valgrind's --quiet logs (one per process) hold only errors: any non-empty
# log fails the target (copies are left in $(VG_DIR)). valgrind follows
# httpd's children, some of which run as www-data (mod_cgid's), so the logs
# are written to a scratch directory below /var/tmp that every user may
# write (sticky, like /tmp): www-data cannot enter a checkout below /root.
# Left out: the load and fault suite (test_faults.py) and tests that
# cannot hold under valgrind -X: a token expiring one second after it is
# minted (the slowdown is 20-50x), every request of 5 s answered by the
# token table (a change read slowed past the 1 s trust window sends a few to
# the database, as it should), the MPM test (-X runs no MPM children to
# log their notice) and the rotation tests that time the 1 s bound and a
# 2 s grace period across two hosts; test_module_run.py and test_module_harness.py start
# their own processes.
VG_DIR := $(BUILD)/valgrind
VALGRIND_TESTS ?= tests/integration/test_module_auth.py \
                  tests/integration/test_api.py \
                  tests/integration/test_api_readme.py \
                  tests/integration/test_api_openapi_check.py \
                  tests/integration/test_hostile_headers.py \
                  tests/integration/test_hostile_api.py \
                  tests/integration/test_cli.py \
                  tests/integration/test_cache.py \
                  tests/integration/test_module_conf.py \
                  tests/integration/test_module_faults.py \
                  tests/integration/test_rotation.py \
                  --deselect tests/integration/test_cache.py::test_expiry_checked_on_a_table_hit \
                  --deselect tests/integration/test_cache.py::test_tokens_in_use_are_never_looked_up_again \
                  --deselect tests/integration/test_module_faults.py::test_other_mpms \
                  --deselect tests/integration/test_rotation.py::test_first_use_of_the_new_secret_ends_the_old_on_every_host \
                  --deselect tests/integration/test_rotation.py::test_grace_period_end_refuses_the_old_secret_unused_new \
                  --deselect tests/integration/test_rotation.py::test_rotating_twice_ends_the_first_secret_at_once
test-valgrind: all
	@set -e; rm -rf $(VG_DIR); mkdir -p $(VG_DIR); \
	logs=$$(mktemp -d /var/tmp/sts-valgrind.XXXXXX); \
	trap 'rm -rf "$$logs"' EXIT; chmod 1777 "$$logs"; rc=0; \
	echo "valgrind logs: $$logs (removed afterwards)"; \
	STS_HTTPD_SINGLE=1 STS_HTTPD_START_TIMEOUT=60 \
	STS_HTTPD_WRAPPER="valgrind --quiet --vgdb=no --error-exitcode=99 --log-file=$$logs/vg.%p.log" \
	    $(PYTHON) -m pytest -q -p no:cacheprovider \
	    $(VALGRIND_TESTS) $(PYTEST_ARGS) || rc=$$?; \
	find "$$logs" -name 'vg.*.log' -size +0 -exec cp {} $(VG_DIR)/ \; ; \
	if [ -n "$$(ls $(VG_DIR))" ]; then \
	    echo "valgrind reported errors (logs kept in $(VG_DIR)):"; \
	    cat $(VG_DIR)/vg.*.log; exit 1; fi; \
	exit $$rc
