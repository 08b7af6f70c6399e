# Makefile — builds ./actiond and its tests; every library is found through pkg-config.
#
#   make                      build ./actiond
#   make check                build and run every test suite (installs missing packages first)
#   make check SANITIZE=address,undefined   the same under ASan+UBSan (separate build dir)
#   make install PREFIX=/usr/local DESTDIR=
#   make demo                 the README's main job
#   make fuzz [FUZZ_SECONDS=600]   libFuzzer harnesses (clang) in build-fuzz/, each run that long
#   make soak [DURATION=600] / make load   reliability benchmarks into bench/results/
#   make bench / bench-quick  every benchmark (bench/run; quick: under 15 minutes), ARGS= passes options
#   USE_SYSTEMD=no / USE_MQTT=no   leave out an optional library even when present
#   WERROR=1 (default when CI=true) turns warnings into errors

VERSION := 0.1.0
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=
CC ?= cc
PKG_CONFIG ?= pkg-config

# Cross build for a board (scripts/install-deps --arm64 first): make CROSS=aarch64-linux-gnu
# uses aarch64-linux-gnu-gcc and that triplet's multiarch libraries, into build-aarch64/.
CROSS ?=
ifneq ($(CROSS),)
CROSS_ARCH := $(firstword $(subst -, ,$(CROSS)))
CC := $(CROSS)-gcc
AR := $(CROSS)-ar
PKG_CONFIG := PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR=/usr/lib/$(CROSS)/pkgconfig:/usr/share/pkgconfig pkg-config
endif

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
ifneq ($(CROSS),)
BUILD := $(BUILD:build%=build-$(CROSS_ARCH)%)
BIN := $(BUILD)/actiond
endif

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
# libavdevice is loaded at run time by the first camera source (video/source.c), not linked.
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(filter-out libavdevice,$(PKGS)) 2>/dev/null)
TEST_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS := $(shell $(PKG_CONFIG) --libs $(TEST_PKGS) 2>/dev/null)

GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null)
# A build from a tree with uncommitted changes says so, so that a measured figure names its code.
GIT_REV := $(if $(GIT_REV),$(GIT_REV)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty))
OPTFLAGS ?= -O2 -g
WARNFLAGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
ifeq ($(WERROR),1)
WARNFLAGS += -Werror
endif
CPPFLAGS += -I. -D_GNU_SOURCE -DACTIOND_VERSION='"$(VERSION)"' \
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
# The status page (daemon/page.html) compiled in as a const C array made by xxd.
PAGE_SRC := $(BUILD)/gen/page_html.c
LIB_OBJS += $(BUILD)/gen/page_html.o

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# Test-only programs the integration scripts drive (e.g. the HTTP server with fake streams).
HELPER_SRCS := $(wildcard tests/integration/helpers/*.c)
HELPER_BINS := $(HELPER_SRCS:tests/integration/helpers/%.c=$(BUILD)/tests/helpers/%)

.SECONDARY:
.PHONY: all check check-run check-qemu tests deps demo model install uninstall clean distclean
all: $(BIN)
# A cross build runs elsewhere (check-qemu, a board): its unit tests are built along with it.
ifneq ($(CROSS),)
all: $(UNIT_BINS) $(HELPER_BINS)
endif

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

$(PAGE_SRC): daemon/page.html
	@mkdir -p $(@D)
	xxd -i -n daemon_page_html $< | sed 's/^unsigned /const unsigned /' >$@

$(BUILD)/gen/page_html.o: $(PAGE_SRC)
	$(CC) $(CPPFLAGS) $(CFLAGS) -include daemon/page.h -c $< -o $@

# The commit goes into a header rewritten (while the Makefile is read) only when it changes,
# so that `--version` follows a checkout: a -D flag changes no file make can see.
REV_H := $(BUILD)/gen/rev.h
$(shell mkdir -p $(BUILD)/gen && printf '#define ACTIOND_GIT_REV "%s"\n' '$(GIT_REV)' >$(REV_H).tmp && \
        if cmp -s $(REV_H).tmp $(REV_H); then rm -f $(REV_H).tmp; else mv $(REV_H).tmp $(REV_H); fi)
$(BUILD)/cli/main.o: $(REV_H)
$(BUILD)/cli/main.o: CPPFLAGS += -I$(BUILD)/gen

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

# The arm64 build under qemu: make CROSS=aarch64-linux-gnu check-qemu runs the unit suites and an
# end-to-end comparison with the x86-64 build (tests/qemu/README.md); ONNX test data is shared.
ifneq ($(filter check-qemu,$(MAKECMDGOALS)),)
ifeq ($(CROSS),)
$(error check-qemu needs CROSS=aarch64-linux-gnu)
endif
endif
check-qemu: tests
	@$(MAKE) --no-print-directory CROSS= SANITIZE= actiond
	BUILD=$(abspath $(BUILD)) ACTIOND=$(abspath actiond) ACTIOND_ARM=$(abspath $(BIN)) \
	    ACTIOND_TESTDATA=$(abspath build)/testdata tests/qemu/run

# The daemon against a synth sequence's ground truth with the default model (tests/acceptance/).
.PHONY: check-truth
check-truth: $(BIN)
	ACTIOND=$(abspath $(BIN)) tests/acceptance/truth.sh

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
	sed 's|/usr/local/share/actiond|$(PREFIX)/share/actiond|g' config/actiond.yaml \
	    > $(DESTDIR)$(SYSCONFDIR)/actiond/actiond.yaml.example
	chmod 644 $(DESTDIR)$(SYSCONFDIR)/actiond/actiond.yaml.example
	install -m 644 README.md $(filter-out docs/README.md,$(wildcard docs/*.md)) \
	    $(DESTDIR)$(PREFIX)/share/doc/actiond/
	sed 's|@BINDIR@|$(PREFIX)/bin|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g; s|@DOCDIR@|$(PREFIX)/share/doc/actiond|g' \
	    systemd/actiond.service.in \
	    > $(DESTDIR)$(PREFIX)/lib/systemd/system/actiond.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/actiond.service

# Debian package of this build into dist/ (amd64; arm64 with CROSS=aarch64-linux-gnu), built in
# its own folder with Debian's hardening flags, then packaging/mkdeb (packaging/README.md).
DEB_ARCH = $(if $(CROSS),$(shell dpkg-architecture -t $(CROSS) -q DEB_HOST_ARCH 2>/dev/null),$(shell dpkg --print-architecture))
DEB_BUILD = $(BUILD)-deb
DEB_OUT ?= dist
DEB_FLAGS = $(shell DEB_HOST_ARCH=$(DEB_ARCH) DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get $(1))
.PHONY: deb
deb:
	@rm -rf $(DEB_BUILD)/root
	CFLAGS='$(call DEB_FLAGS,CFLAGS)' CPPFLAGS='$(call DEB_FLAGS,CPPFLAGS)' LDFLAGS='$(call DEB_FLAGS,LDFLAGS)' \
	    $(MAKE) --no-print-directory BUILD=$(DEB_BUILD) BIN=$(DEB_BUILD)/actiond install \
	    PREFIX=/usr SYSCONFDIR=/etc DESTDIR=$(abspath $(DEB_BUILD))/root
	packaging/mkdeb $(DEB_BUILD)/root $(DEB_ARCH) $(VERSION) $(DEB_OUT) $(CROSS)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/actiond $(DESTDIR)$(PREFIX)/lib/systemd/system/actiond.service
	rm -rf $(DESTDIR)$(PREFIX)/share/actiond

# libFuzzer harnesses (tests/fuzz/README.md): the library rebuilt by clang with ASan+UBSan and
# coverage into build-fuzz/, one binary per tests/fuzz/fuzz_*.c, each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 20
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build-fuzz/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
.PHONY: fuzz fuzz-build
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -fsanitize=fuzzer $< -o $@ $(LIB) $(LDFLAGS) $(LDLIBS)
fuzz-build:
	@$(MAKE) --no-print-directory CC=clang BUILD=build-fuzz SANFLAGS='$(FUZZ_SAN)' $(FUZZ_BINS)
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) BUILD=$(abspath build-fuzz) tests/fuzz/run

# The 10-minute soak and the HTTP load test (bench/README.md); results in bench/results/.
DURATION ?= 600
.PHONY: soak load
soak: tests
	DURATION=$(DURATION) ACTIOND=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) bench/soak.sh
load: $(BIN)
	ACTIOND=$(abspath $(BIN)) bench/load.sh
# memcheck over integration scripts (too slow for CI, where LeakSanitizer covers leaks).
VALGRIND_TESTS ?= tests/integration/test_cli.sh
.PHONY: valgrind
valgrind: tests
	ACTIOND=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) tests/integration/helpers/valgrind-check $(VALGRIND_TESTS)

clean:
	rm -rf build build-san-* build-fuzz build-aarch64* build-deb dist actiond

distclean: clean

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(UNIT_BINS:=.d) $(HELPER_BINS:=.d)
