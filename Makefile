# Townhall build.  `make` builds every C program into build/; `make test` runs
# the unit tests, a short run of every fuzz target, the integration and browser
# tests; `make run` starts a local stack; `make fuzz` fuzzes each parser long.
# BUILD=build-asan with SANITIZE=1 is what `make asan` uses; BUILD=build-fuzz
# with SANITIZE=fuzz and clang is what `make fuzz` uses (tests/fuzz).

BUILD    ?= build
SANITIZE ?= 0
CC       ?= cc
PKGS     := json-c hiredis libpq libjwt libsodium libcrypto

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wno-format-nonliteral -Werror
CFLAGS   ?= -O2 -g
# -fPIC: the broker plugin links the same core objects into a .so.
# -Ilib (the core library) for everything; the web library's headers only for
# what uses it (WEB_INC, below).
CFLAGS   += -std=c11 -D_GNU_SOURCE -fno-strict-aliasing -fPIC $(WARN) \
            $(shell pkg-config --cflags $(PKGS)) -Ilib
LDLIBS   := $(shell pkg-config --libs $(PKGS))
ifeq ($(SANITIZE),1)
CFLAGS   += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
# libFuzzer: every object instrumented for coverage; only the fuzz targets
# link the fuzzer's main(); the arena gives every allocation its own heap
# block (TH_ARENA_EXACT, lib/arena.c), so ASan sees an overrun of one
ifeq ($(SANITIZE),fuzz)
CFLAGS   += -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined -DTH_ARENA_EXACT
LDFLAGS  += -fsanitize=fuzzer,address,undefined
endif

# Two libraries, split by who uses them (README, "Layout"):
#   lib/*.c -> libthcore.a: what every part shares, free of HTTP; the broker
#     plugin, the bridge and the front link it alone;
#   fcgi-apps/lib/*.c -> libthweb.a: requests and replies (app, http, router,
#     jh's getters, page, limits, the *_or_reply helpers of reply.c); what
#     links it (the apps, their tools and tests) links libthcore.a after it.
CORE_SRC := $(wildcard lib/*.c)
CORE_A   := $(BUILD)/libthcore.a
WEB_SRC  := $(wildcard fcgi-apps/lib/*.c)
WEB_A    := $(BUILD)/libthweb.a
WEB_INC  := -Ifcgi-apps/lib
# A program from its prerequisites: objects, then libthweb.a (and libfcgi)
# when it is one of them, then libthcore.a; the rule appends its libraries.
LINK      = $(CC) $(LDFLAGS) -o $@ $(filter-out %.a,$^) $(filter $(WEB_A),$^) $(CORE_A) \
            $(if $(filter $(WEB_A),$^),-lfcgi)
APPS     := auth community realtime media
APP_BINS := $(APPS:%=$(BUILD)/bin/th-%)
PLUGIN_SRC := $(wildcard realtime-bridge/plugin/*.c)
PLUGIN_OBJ := $(PLUGIN_SRC:%.c=$(BUILD)/obj/%.o)
PLUGIN_SO  := $(BUILD)/lib/townhall-plugin.so
BRIDGE_SRC := $(wildcard realtime-bridge/bridge/*.c)
BRIDGE_OBJ := $(BRIDGE_SRC:%.c=$(BUILD)/obj/%.o)
BRIDGE_BIN := $(BUILD)/bin/th-bridge
# the WebSocket front (realtime-bridge/front); its pure parts (no I/O) are
# linked into its unit tests and fuzz targets too
FRONT_SRC  := $(wildcard realtime-bridge/front/*.c)
FRONT_OBJ  := $(FRONT_SRC:%.c=$(BUILD)/obj/%.o)
FRONT_CORE := $(patsubst %,$(BUILD)/obj/realtime-bridge/front/%.o,hs wsf peek mconn edge shm addr buf ka tw)
FRONT_BIN  := $(BUILD)/bin/th-wsfront
# the epoll shim scripts/stack preloads into each broker (realtime-bridge/epshim)
EPSHIM_SO  := $(BUILD)/lib/th-epshim.so

# loadlib.c is no program: the MQTT load generators link it (rule below)
LOAD_LIB := $(BUILD)/obj/tests/load/loadlib.o
LOAD_SRC := $(filter-out tests/load/loadlib.c,$(wildcard tests/load/*.c))
LOAD_BINS:= $(LOAD_SRC:tests/load/%.c=$(BUILD)/bin/th-%)
MEDIA_GC := $(BUILD)/bin/th-media-gc
# the mail sender (fcgi-apps/mail): the core library and libcurl, no FastCGI
MAILER   := $(BUILD)/bin/th-mailer
# the Web Push sender (fcgi-apps/push): the same, Redis for presence
PUSHER   := $(BUILD)/bin/th-pusher
BINS     := $(APP_BINS) $(BUILD)/bin/th-bench $(BUILD)/bin/th-poolstat $(BUILD)/bin/th-fdtake $(LOAD_BINS) $(MEDIA_GC) \
            $(MAILER) $(PUSHER)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# the unit tests of the web library (the others link the core alone)
UNIT_WEB := $(patsubst %,$(BUILD)/tests/test_%,http jh limits router)
# C tests that need live servers: tests/integration/run runs them on its stack
STACK_SRC:= $(wildcard tests/stack/test_*.c)
STACK_BIN:= $(STACK_SRC:tests/stack/%.c=$(BUILD)/tests/stack/%)

# libFuzzer targets (tests/fuzz/fuzz_<parser>.c -> build-fuzz/fuzz/fuzz_<parser>)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
# the targets whose parser is in the web library or an app
FUZZ_WEB := $(patsubst %,$(BUILD)/fuzz/fuzz_%,http jh page router multipart splice)
FUZZ_CC  ?= clang
# `make fuzz`: each target this many executions, or FUZZ_TIME seconds each
FUZZ_RUNS ?= 10000000
FUZZ_TIME ?=
# the targets to run (names without fuzz_, e.g. "jh topic"): all when empty
FUZZ_TARGETS ?=
# `make test` runs this many executions of each target
FUZZ_SMOKE_RUNS ?= 100000

.PHONY: all run test unit integration e2e asan bench soak deps stop clean format format-check lint \
	fuzz fuzz-build fuzz-bins fuzz-smoke test-cluster check-layers
all: $(BINS) $(PLUGIN_SO) $(EPSHIM_SO) $(BRIDGE_BIN) $(FRONT_BIN) $(UNIT_BIN) $(STACK_BIN)

# Objects depend on the flags they were built with: switching -fPIC or the
# sanitizers on rebuilds everything instead of mixing stale objects.
FLAGS_STAMP := $(BUILD)/.flags
$(shell mkdir -p $(BUILD); echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $(FLAGS_STAMP) || \
	echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $(FLAGS_STAMP))

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(CORE_A): $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
$(WEB_A): $(WEB_SRC:%.c=$(BUILD)/obj/%.o)
# rebuilt whole: a stale member (a module moved away) never stays behind
$(CORE_A) $(WEB_A):
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

# the web library's users: the apps, the web library itself, their tools and tests
$(BUILD)/obj/fcgi-apps/%.o $(BUILD)/obj/tests/load/thumb_bench.o: CFLAGS += $(WEB_INC)
$(UNIT_WEB:$(BUILD)/tests/%=$(BUILD)/obj/tests/unit/%.o): CFLAGS += $(WEB_INC)
$(FUZZ_WEB:$(BUILD)/fuzz/%=$(BUILD)/obj/tests/fuzz/%.o): CFLAGS += $(WEB_INC)
$(UNIT_WEB) $(FUZZ_WEB): $(WEB_A)

# Libraries only the media app needs (images, content detection, S3 over
# HTTP): compiled and linked into it alone.
MEDIA_PKGS   := MagickWand libcurl libwebpdemux
# -isystem: ImageMagick's own headers do not pass our warnings
$(BUILD)/obj/fcgi-apps/media/%.o: CFLAGS += $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(MEDIA_PKGS)))
LDLIBS_media := $(shell pkg-config --libs $(MEDIA_PKGS)) -lmagic
# the auth app fetches from OIDC providers (fcgi-apps/auth/oidcprov.c)
LDLIBS_auth  := $(shell pkg-config --libs libcurl)

# one rule per app: its own objects, then the web and the core library
define app_rule
$(BUILD)/bin/th-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard fcgi-apps/$(1)/*.c)) $(WEB_A) $(CORE_A)
	@mkdir -p $$(dir $$@)
	$$(LINK) $$(LDLIBS_$(1)) $$(LDLIBS)
endef
$(foreach a,$(APPS),$(eval $(call app_rule,$(a))))

# Programs built on the media app's own code (settings, storage, image) but
# not its FastCGI loop: every media object except main.o.
MEDIA_CORE_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out fcgi-apps/media/main.c,$(wildcard fcgi-apps/media/*.c)))
MEDIA_INC    := -Ifcgi-apps/media
$(BUILD)/obj/fcgi-apps/media/gc/%.o $(BUILD)/obj/tests/load/thumb_bench.o: CFLAGS += $(MEDIA_INC)

# the orphaned-bytes collector (scripts/media-gc runs it)
$(MEDIA_GC): $(BUILD)/obj/fcgi-apps/media/gc/gc.o $(MEDIA_CORE_OBJ) $(WEB_A) $(CORE_A)
	@mkdir -p $(dir $@)
	$(LINK) $(LDLIBS_media) $(LDLIBS)

# the mail sender: its objects, the core library (outbox, composition) and libcurl
$(MAILER): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard fcgi-apps/mail/*.c)) $(CORE_A)
	@mkdir -p $(dir $@)
	$(LINK) $(shell pkg-config --libs libcurl) $(LDLIBS)

# the Web Push sender: its objects, the core library (outbox, webpush, presence) and libcurl
$(PUSHER): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard fcgi-apps/push/*.c)) $(CORE_A)
	@mkdir -p $(dir $@)
	$(LINK) $(shell pkg-config --libs libcurl) $(LDLIBS)

# the thumbnail benchmark calls image_process() itself: the media objects and
# MagickWand, unlike the other tests/load programs (pattern rule below)
$(BUILD)/bin/th-thumb_bench: $(BUILD)/obj/tests/load/thumb_bench.o $(MEDIA_CORE_OBJ) $(WEB_A) $(CORE_A)
	@mkdir -p $(dir $@)
	$(LINK) $(LDLIBS_media) $(LDLIBS)

$(BUILD)/bin/th-bench: $(BUILD)/obj/fcgi-apps/bench/main.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lfcgi

$(BUILD)/bin/th-poolstat: $(BUILD)/obj/tools/poolstat.o $(CORE_A)
	@mkdir -p $(dir $@)
	$(LINK) $(LDLIBS)

$(BUILD)/bin/th-fdtake: $(BUILD)/obj/tools/fdtake.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

# the Mosquitto plugin: its own objects plus the core library, all position
# independent; the mosquitto_* broker functions come from the broker when it
# loads the plugin
$(PLUGIN_SO): $(PLUGIN_OBJ) $(CORE_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -o $@ $(PLUGIN_OBJ) $(CORE_A) $(LDLIBS) -lmosquitto

# The epoll shim, loaded into Debian's mosquitto before libc: its own flags,
# never sanitized (the broker has no sanitizer runtime to come first).
$(EPSHIM_SO): realtime-bridge/epshim/epshim.c realtime-bridge/epshim/epshim.h
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=c11 -D_GNU_SOURCE -fPIC $(WARN) -shared -o $@ $< -ldl -lpthread

# the bridge daemon: the core library has the topic rules it shares with the plugin
$(BRIDGE_BIN): $(BRIDGE_OBJ) $(CORE_A)
	@mkdir -p $(dir $@)
	$(LINK) $(LDLIBS) -lmosquitto

# the front: its objects and the core library (the topic rules of its will checks)
$(FRONT_BIN): $(FRONT_OBJ) $(CORE_A)
	@mkdir -p $(dir $@)
	$(LINK) $(LDLIBS) -lwslay

# the MQTT load generators share loadlib (clock, histogram, buffer, packets)
$(BUILD)/bin/th-bridge_load $(BUILD)/bin/th-mqtt_load $(BUILD)/bin/th-ping_rtt $(BUILD)/bin/th-rt_hold: $(LOAD_LIB)

# load generators and in-process benchmarks (tests/load/x_y.c -> th-x_y); the
# token and presence benchmarks drive the core's tokcache and presence modules
$(BUILD)/bin/th-%: $(BUILD)/obj/tests/load/%.o $(CORE_A)
	@mkdir -p $(dir $@)
	$(LINK) $(LDLIBS)

$(BUILD)/tests/stack/%: $(BUILD)/obj/tests/stack/%.o $(CORE_A)
	@mkdir -p $(dir $@)
	$(LINK) $(LDLIBS) -lcmocka

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(CORE_A)
	@mkdir -p $(dir $@)
	$(LINK) $(LDLIBS) -lcmocka

# the front's unit tests: its pure objects
$(filter $(BUILD)/tests/test_wsfront_%,$(UNIT_BIN)): $(FRONT_CORE)
$(BUILD)/obj/tests/unit/test_wsfront_%.o: CFLAGS += -Irealtime-bridge/front

# the plugin's presence grace table (grace.h): its object, imap from the core library
$(BUILD)/tests/test_plugin_grace: $(BUILD)/obj/realtime-bridge/plugin/grace.o
$(BUILD)/obj/tests/unit/test_plugin_grace.o: CFLAGS += -Irealtime-bridge/plugin

# th-bridge's PUBACK gate: its object; libmosquitto for gate_attach/gate_flush
$(BUILD)/tests/test_bridge_gate: $(BUILD)/obj/realtime-bridge/bridge/gate.o
$(BUILD)/tests/test_bridge_gate: LDLIBS += -lmosquitto
$(BUILD)/obj/tests/unit/test_bridge_gate.o: CFLAGS += -Irealtime-bridge/bridge

# the epoll shim, linked in: its epoll_* and close() stand in for libc's
$(BUILD)/tests/test_epshim: $(BUILD)/obj/realtime-bridge/epshim/epshim.o
$(BUILD)/tests/test_epshim: LDLIBS += -ldl -lpthread
$(BUILD)/obj/tests/unit/test_epshim.o: CFLAGS += -Irealtime-bridge/epshim

# th-bridge's batching rules: their pure objects
$(BUILD)/tests/test_bridge_batching: $(BUILD)/obj/realtime-bridge/bridge/linger.o \
	$(BUILD)/obj/realtime-bridge/bridge/supersede.o $(BUILD)/obj/realtime-bridge/bridge/split.o
$(BUILD)/obj/tests/unit/test_bridge_batching.o: CFLAGS += -Irealtime-bridge/bridge

# a fuzz target: its harness, the parser's own objects (below) and the
# libraries (the web one for FUZZ_WEB)
$(BUILD)/obj/tests/fuzz/%.o: CFLAGS += $(MEDIA_INC) -Ifcgi-apps/community -Irealtime-bridge/bridge \
	-Irealtime-bridge/front
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(CORE_A)
	@mkdir -p $(dir $@)
	$(LINK) $(LDLIBS) -lmosquitto
.SECONDARY: $(FUZZ_SRC:%.c=$(BUILD)/obj/%.o)
# the media app's objects (filename cleaning is in media.c) and their libraries
$(BUILD)/fuzz/fuzz_multipart: $(MEDIA_CORE_OBJ)
$(BUILD)/fuzz/fuzz_multipart: LDLIBS := $(LDLIBS_media) $(LDLIBS)
$(BUILD)/fuzz/fuzz_bridge: $(BUILD)/obj/realtime-bridge/bridge/store.o
$(BUILD)/fuzz/fuzz_splice: $(BUILD)/obj/fcgi-apps/community/feedmine.o
$(BUILD)/fuzz/fuzz_wshs $(BUILD)/fuzz/fuzz_mqttpeek: $(FRONT_CORE)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

deps:
	@scripts/install-deps

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/stack up

stop:
	@scripts/stack down

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done
	@node --test tests/bench/

# The layers hold: the broker plugin, the bridge, the front, the mailer and the pusher link no object
# of the web library (none of its global symbols, defined or wanted), and the
# plugin and the bridge hold no http_, router_ or app_ symbol at all (the
# front's own WebSocket handshake answers in HTTP: its static http_refuse).
check-layers: $(PLUGIN_SO) $(BRIDGE_BIN) $(FRONT_BIN) $(MAILER) $(PUSHER) $(WEB_A)
	@nm -g --defined-only $(WEB_A) | awk 'NF == 3 { print $$3 }' | sort -u > $(BUILD)/.web-symbols
	@set -e; for b in $(PLUGIN_SO) $(BRIDGE_BIN) $(FRONT_BIN) $(MAILER) $(PUSHER); do \
		web=$$(nm $$b | awk '{ print $$NF }' | sort -u | comm -12 - $(BUILD)/.web-symbols); \
		case $$b in $(FRONT_BIN)) named= ;; \
		*) named=$$(nm $$b | awk '{ print $$NF }' | grep -E '^(http|router|app)_' || true) ;; esac; \
		if [ -n "$$web$$named" ]; then echo "check-layers: $$b holds web code:" $$web $$named >&2; exit 1; fi; \
		echo "check-layers: $$b: no web library symbol"; \
	done

# then the services behind Redis Sentinel (a replica and three sentinels; fails over twice)
integration: $(BINS) $(PLUGIN_SO) $(EPSHIM_SO) $(BRIDGE_BIN) $(FRONT_BIN) $(STACK_BIN)
	@TH_BIN_DIR=$(abspath $(BUILD))/bin tests/integration/run
	@TH_BIN_DIR=$(abspath $(BUILD))/bin TH_TEST_REDIS_SENTINEL=1 \
		tests/integration/run tests/integration/redis_sentinel.test.mjs

# the browser tests: the demo app in Debian's Chromium (playwright-core)
e2e: $(BINS) $(PLUGIN_SO) $(EPSHIM_SO) $(BRIDGE_BIN) $(FRONT_BIN)
	@TH_BIN_DIR=$(abspath $(BUILD))/bin tests/e2e/run

# Several hosts, each a network namespace (root; not part of `make test`): PostgreSQL with
# automatic failover, HAProxy, two app hosts, brokers, Redis; one failure after another under
# load (tests/cluster/run; TH_CLUSTER_SHORT=1: baseline and one failure)
test-cluster: deps
	@$(MAKE) --no-print-directory all
	@TH_BIN_DIR=$(abspath $(BUILD))/bin tests/cluster/run

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory check-layers
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory e2e

# Everything runs sanitized except the broker plugin inside mosquitto: an ASan
# runtime preloaded into the broker deadlocks in libpq's gettext set-up, so the
# broker loads the regular plugin; its pure parts run under ASan in the unit tests.
asan: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory BUILD=build-asan SANITIZE=1 all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
		TH_PLUGIN=$(abspath build)/lib/townhall-plugin.so \
		$(MAKE) --no-print-directory BUILD=build-asan SANITIZE=1 unit integration

# Fuzzing: the targets built with clang, ASan and UBSan into build-fuzz;
# tests/fuzz/run runs them one after the other (README there).
fuzz-bins: $(FUZZ_BIN)

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=build-fuzz SANITIZE=fuzz CC=$(FUZZ_CC) fuzz-bins

fuzz: fuzz-build
	@tests/fuzz/run --bin-dir build-fuzz/fuzz $(if $(FUZZ_TIME),--time $(FUZZ_TIME),--runs $(FUZZ_RUNS)) \
		$(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	@tests/fuzz/run --bin-dir build-fuzz/fuzz --runs $(FUZZ_SMOKE_RUNS)

bench: deps
	@$(MAKE) --no-print-directory all
	@TH_BIN_DIR=$(abspath $(BUILD))/bin scripts/bench

# mixed load for SOAK_TIME seconds (default 3600; SOAK_QUICK=1: 300) while every process's
# RSS and descriptors are sampled; fails when one grows past its bound (tests/load/soak.mjs)
soak: deps
	@$(MAKE) --no-print-directory all
	@TH_BIN_DIR=$(abspath $(BUILD))/bin scripts/soak

# .clang-format describes the code as it is: `make format` rewrites nothing on a clean
# tree, and `make lint` fails on a file that does not follow it
format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

lint: format-check
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--suppress=missingIncludeSystem -Ilib -Ifcgi-apps/lib -Ifcgi-apps/media lib fcgi-apps tools \
		realtime-bridge
	clang-tidy --quiet $$(git ls-files 'lib/*.c' 'fcgi-apps/*.c') -- $(CFLAGS) $(WEB_INC) $(MEDIA_INC) \
		$(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(MEDIA_PKGS)))

clean:
	rm -rf build build-asan build-fuzz
