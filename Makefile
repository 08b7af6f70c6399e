# Makefile — builds ./actiond and its tests; every library is found through pkg-config.
#
#   make                      build ./actiond
#   make check                build and run every test suite (installs missing packages first)
#   make check SANITIZE=address,undefined   the same under ASan+UBSan (separate build dir)
#   make install PREFIX=/usr/local DESTDIR=
#   make demo                 the README's main job
#   make bench / bench-quick  every benchmark (bench/run; quick: under 15 minutes), ARGS= passes options
#   USE_SYSTEMD=no / USE_MQTT=no   leave out an optional library even when present
#   WERROR=1 (default when CI=true) turns warnings into errors

VERSION := 0.1.0
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=
CC ?= cc
PKG_CONFIG ?= pkg-config

SANITIZE ?=
ifeq ($(CI),true)
WERROR ?= 1
endif
WERROR ?= 0

REQ_PKGS := libavformat libavcodec libavutil libswscale libavdevice yaml-0.1 libmicrohttpd \
            jansson sqlite3 openblas lapacke
TEST_PKGS := cmocka

# Optional libraries: auto (compiled in when present), yes (required), no (left out).
USE_SYSTEMD ?= auto
USE_MQTT ?= auto
define optional_pkg
$(if $(filter no,$(2)),,$(if $(filter yes,$(2)),$(1),$(shell $(PKG_CONFIG) --exists $(1) && echo $(1))))
endef
OPT_SYSTEMD := $(call optional_pkg,libsystemd,$(USE_SYSTEMD))
OPT_MQTT := $(call optional_pkg,libmosquitto,$(USE_MQTT))
PKGS := $(REQ_PKGS) $(OPT_SYSTEMD) $(OPT_MQTT)

# Builds with different sanitizers keep separate objects.
ifeq ($(SANITIZE),)
BUILD := build
BIN := actiond
SANFLAGS :=
else
comma := ,
BUILD := build-san-$(subst $(comma),-,$(SANITIZE))
BIN := $(BUILD)/actiond
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS := $(shell $(PKG_CONFIG) --libs $(TEST_PKGS) 2>/dev/null)

GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null)
OPTFLAGS ?= -O2 -g
WARNFLAGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
ifeq ($(WERROR),1)
WARNFLAGS += -Werror
endif
CPPFLAGS += -I. -D_GNU_SOURCE -DACTIOND_VERSION='"$(VERSION)"' -DACTIOND_GIT_REV='"$(GIT_REV)"' \
            $(if $(OPT_SYSTEMD),-DHAVE_SYSTEMD=1) $(if $(OPT_MQTT),-DHAVE_MOSQUITTO=1)
CFLAGS += -std=c11 $(OPTFLAGS) $(WARNFLAGS) $(SANFLAGS) -pthread -MMD -MP
LDFLAGS += $(SANFLAGS) -pthread
LDLIBS += $(PKG_LIBS) -lm

# The modules, in dependency order; cli/ holds main and is linked only into the binary.
MODULES := common nn video compress config daemon fit
LIB_SRCS := $(wildcard $(addsuffix /*.c,$(MODULES)))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_SRCS := $(wildcard cli/*.c)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libactiond.a

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# Test-only programs the integration scripts drive (e.g. the HTTP server with fake streams).
HELPER_SRCS := $(wildcard tests/integration/helpers/*.c)
HELPER_BINS := $(HELPER_SRCS:tests/integration/helpers/%.c=$(BUILD)/tests/helpers/%)

.SECONDARY:
.PHONY: all check check-run tests deps demo model install uninstall clean distclean
all: $(BIN)

# The kernels (inference op_*, training grad_*) rely on the vectoriser, which -O2 leaves mostly off in GCC 12, and on fused
# multiply-adds, which -std=c11 turns off unless asked (-ffp-contract).
$(BUILD)/nn/op_%.o: OPTFLAGS = -O3 -g -ffp-contract=fast
$(BUILD)/nn/grad_%.o: OPTFLAGS = -O3 -g -ffp-contract=fast
$(BUILD)/video/flow.o: OPTFLAGS = -O3 -g -ffp-contract=fast

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/helpers/%.o: tests/integration/helpers/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/helpers/%: $(BUILD)/tests/helpers/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BIN): $(CLI_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJS) $(LIB) $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(TEST_LIBS) $(LDLIBS)

tests: $(BIN) $(UNIT_BINS) $(HELPER_BINS)

# `check` installs missing packages, then re-reads this Makefile so pkg-config sees them.
check: deps
	@$(MAKE) --no-print-directory check-run

check-run: tests
	ACTIOND=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) tests/run

# install-deps is idempotent and quick when everything is there.
deps:
	@scripts/install-deps

# The main job on its built-in default: the daemon on a sample clip with the default model.
demo: deps
	@$(MAKE) --no-print-directory $(BIN)
	@ACTIOND=$(abspath $(BIN)) scripts/demo

# Rebuilds models/default.adm from nothing, as models/RECIPE.md says.
model: deps
	@$(MAKE) --no-print-directory $(BIN)
	@ACTIOND=$(abspath $(BIN)) scripts/make-model

# Benchmarks: bench/run installs what they compare against, builds, runs them all and rewrites
# the generated tables (README.md, bench/README.md, docs/engine.md). `make bench ARGS=--quick`
# is the same as `make bench-quick`; ARGS=--reuse-compress skips bench/compress.sh.
.PHONY: bench bench-quick
bench:
	@bench/run $(ARGS)

bench-quick:
	@bench/run --quick $(ARGS)

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/actiond/models \
	    $(DESTDIR)$(PREFIX)/share/doc/actiond \
	    $(DESTDIR)$(SYSCONFDIR)/actiond $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/actiond
	for m in models/*.adm; do [ -e "$$m" ] && install -m 644 "$$m" $(DESTDIR)$(PREFIX)/share/actiond/models/ || true; done
	install -m 644 config/actiond.yaml $(DESTDIR)$(SYSCONFDIR)/actiond/actiond.yaml.example
	install -m 644 README.md $(filter-out docs/README.md,$(wildcard docs/*.md)) \
	    $(DESTDIR)$(PREFIX)/share/doc/actiond/
	sed 's|@BINDIR@|$(PREFIX)/bin|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g; s|@DOCDIR@|$(PREFIX)/share/doc/actiond|g' \
	    systemd/actiond.service.in \
	    > $(DESTDIR)$(PREFIX)/lib/systemd/system/actiond.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/actiond.service

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/actiond $(DESTDIR)$(PREFIX)/lib/systemd/system/actiond.service
	rm -rf $(DESTDIR)$(PREFIX)/share/actiond

clean:
	rm -rf build build-san-* actiond

distclean: clean

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(UNIT_BINS:=.d) $(HELPER_BINS:=.d)
