# Benchmark. `make bench` builds the module and the mint tool (tokens with
# their digests, tests/tools/mint.c), then runs bench/bench.py: its own
# PostgreSQL + httpd on loopback, wrk rows interleaved over rounds, figures
# printed (not a test).
#
#   make bench                         7 rounds of 4 s per row, then the
#                                      flood-mix, churn, cold-start and
#                                      memory phases (~20 min)
#   make bench BENCH_ARGS="--rounds 3 --seconds 3 --rss-requests 0 \
#       --memory-tokens 10000,100000 --phases churn,cold"

BENCH_PYTHON ?= /usr/bin/python3
BENCH_ARGS ?=
.PHONY: bench

bench: $(MODULE_SO) $(BUILD)/tests/mint
	$(BENCH_PYTHON) bench/bench.py --mint $(BUILD)/tests/mint $(BENCH_ARGS)
