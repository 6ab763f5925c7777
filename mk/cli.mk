# The sts command-line tool: bin/sts.

CLI_SRC := cli/args.c cli/config.c cli/output.c cli/http.c
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
CLI_LIBS := -lcurl -lyaml
STS_BIN := bin/sts

ALL_TARGETS += $(STS_BIN)

$(CLI_OBJ) $(BUILD)/cli/main.o: $(wildcard cli/*.h) src/version.h src/token.h

$(STS_BIN): $(BUILD)/cli/main.o $(CLI_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(LIB_LIBS) $(CLI_LIBS)

# Unit tests of the CLI link its objects (all but main).
UNIT_EXTRA_test_cli := $(CLI_OBJ)
UNIT_LIBS_test_cli := $(CLI_LIBS)
$(BUILD)/tests/unit/test_cli: $(CLI_OBJ)

.PHONY: install-cli
install-cli: $(STS_BIN)
	install -D -m 0755 $(STS_BIN) $(DESTDIR)$(PREFIX)/bin/sts
