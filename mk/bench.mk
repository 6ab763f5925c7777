# Benchmark. `make bench` builds the module and the mint tool (tokens with
# their digests, tests/tools/mint.c), then runs bench/bench.py: its own
# PostgreSQL + httpd on loopback, wrk rows interleaved over rounds, figures
# printed (not a test).
#
#   make bench                         7 rounds of 4 s per row (~11 min)
#   make bench BENCH_ARGS="--rounds 3 --seconds 3 --rss-requests 0"
#
# Also: the cache's unit test includes src/cache.c, so it needs httpd's and
# APR's headers and libapr (tests/unit/test_cache.c).

BENCH_PYTHON ?= /usr/bin/python3
BENCH_ARGS ?=
.PHONY: bench

bench: $(MODULE_SO) $(BUILD)/tests/mint
	$(BENCH_PYTHON) bench/bench.py --mint $(BUILD)/tests/mint $(BENCH_ARGS)

# tests/unit/test_cache.c compiles src/cache.c in with a fake clock and a
# fake revision store: it needs httpd's and APR's headers and libapr.
UNIT_LIBS_test_cache := $(APXS_INC) -lapr-1 -lpthread
$(BUILD)/tests/unit/test_cache: src/cache.c
