# The sts command-line tool: bin/sts (see README "sts, the command-line
# tool"). Objects go below $(BUILD)/cli/ and link the shared libsts.a.
#
#   make bin/sts        build it
#   make install-cli    install it and sts(1) into $(DESTDIR)$(PREFIX)
#   make unit-cli       build and run only the CLI's unit tests

CLI_SRC := cli/args.c cli/config.c cli/output.c cli/http.c cli/run.c \
           cli/service_token.c cli/context.c
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
CLI_LIBS := -lcurl -lyaml
STS_BIN := bin/sts

ALL_TARGETS += $(STS_BIN)

$(CLI_OBJ) $(BUILD)/cli/main.o: $(wildcard cli/*.h) src/version.h \
                                src/token.h src/api_json.h mk/cli.mk

$(STS_BIN): $(BUILD)/cli/main.o $(CLI_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(LIB_LIBS) $(CLI_LIBS)

# Unit tests of the CLI (tests/unit/test_cli_*.c) link its objects, all
# but main.o, through mk/test.mk's UNIT_EXTRA_/UNIT_LIBS_ variables.
CLI_UNIT := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_cli_*.c))
$(foreach t,$(CLI_UNIT),$(eval UNIT_EXTRA_$(t) := $(CLI_OBJ)))
$(foreach t,$(CLI_UNIT),$(eval UNIT_LIBS_$(t) := $(CLI_LIBS)))

.PHONY: install-cli unit-cli
install-cli: $(STS_BIN)
	install -D -m 0755 $(STS_BIN) $(DESTDIR)$(BINDIR)/sts
	install -D -m 0644 man/sts.1 $(DESTDIR)$(MANDIR)/man1/sts.1

unit-cli: $(CLI_UNIT:%=$(BUILD)/tests/unit/%)
	@set -e; for t in $^; do echo "== $$t"; $$t; done
