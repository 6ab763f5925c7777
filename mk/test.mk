# Tests: cmocka unit tests, the mint tool, pytest integration tests.
#
#   make test          deps + build + unit + integration
#   make unit          every tests/unit/test_*.c, run one after another
#   make integration   pytest tests/integration (PYTEST_ARGS=... to select)
#
# A unit test that needs more objects than libsts.a names them in
# UNIT_EXTRA_<test name>, e.g. UNIT_EXTRA_test_cli_table := $(BUILD)/cli/output.o
# (they are built first), and extra libraries in UNIT_LIBS_<test name>.

PYTHON ?= /usr/bin/python3
PYTEST_ARGS ?=
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
MINT := $(BUILD)/tests/mint

ALL_TARGETS += $(MINT)

.PHONY: unit integration test

# Second expansion lets each test's UNIT_EXTRA_* objects be prerequisites
# (built by their owners' rules) as well as link inputs.
.SECONDEXPANSION:
$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB_A) $(wildcard src/*.h) \
                       $$(UNIT_EXTRA_$$*)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Isrc -Icli -o $@ $< $(UNIT_EXTRA_$*) $(LIB_A) \
	    $(LIB_LIBS) $(UNIT_LIBS_$*) -lcmocka

$(MINT): tests/tools/mint.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Isrc -o $@ $< $(LIB_A) $(LIB_LIBS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: $(ALL_TARGETS)
	$(PYTHON) -m pytest -v -p no:cacheprovider tests/integration $(PYTEST_ARGS)

test: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) integration
UNIT_LIBS_test_outage := -lpthread
UNIT_LIBS_test_last_use := -lpthread
