# Benchmark (owner: cache & speed). `make bench` builds the module and the
# token generator, then runs bench/bench.py: its own PostgreSQL + httpd on
# loopback, wrk rows interleaved over rounds, figures printed (not a test).
#
#   make bench                         5 rounds of 5 s per row (~10 min)
#   make bench BENCH_ARGS="--rounds 3 --seconds 3 --rss-requests 0"
#
# Also: the cache's unit test includes src/cache.c, so it needs httpd's and
# APR's headers and libapr (tests/unit/test_cache.c).

BENCH_PYTHON ?= /usr/bin/python3
BENCH_ARGS ?=
BENCH_TOKENS := $(BUILD)/bench/tokens

ALL_TARGETS += $(BENCH_TOKENS)

.PHONY: bench

$(BENCH_TOKENS): bench/tokens.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Isrc -o $@ $< $(LIB_A) $(LIB_LIBS)

bench: $(MODULE_SO) $(BENCH_TOKENS)
	$(BENCH_PYTHON) bench/bench.py --tokens-tool $(BENCH_TOKENS) $(BENCH_ARGS)

# tests/unit/test_cache.c compiles src/cache.c in with a fake clock and a
# fake revision store: it needs httpd's and APR's headers and libapr.
UNIT_LIBS_test_cache := $(APXS_INC) -lapr-1 -lpthread
$(BUILD)/tests/unit/test_cache: src/cache.c
