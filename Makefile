# libsvcinfra front door. Everything real lives in meson; this file only
# installs what is missing, and chains meson, the throwaway servers and the
# example together.
#
#   make demo      install deps, build, run examples/hello and walk through it
#   make run       install deps, build, serve examples/hello until Ctrl-C
#   make test      install deps, build, start PostgreSQL + Redis on loopback,
#                  run every suite, stop them; ends with "N passed, N failed"
#   make sanitize  the same suites built with ASan + UBSan
#   make test-minimal  a build without PostgreSQL, Redis and the HTTP server
#                  (-D{postgres,redis,http}=disabled): its suites, ABI included
#   make bench     benchmarks (bench/), printing ratios measured in one run
#   make install   meson install (PREFIX=/usr/local)

BUILD    ?= build
ASAN     ?= build-asan
MINIMAL  ?= build-minimal
PREFIX   ?= /usr/local
MESON_OPTS ?=
SUITES   ?=
TESTENV  ?= $(CURDIR)/.svc-test

# Debian 12 packages the build, the tests and the demo need.
APT_PKGS = build-essential g++ meson ninja-build pkg-config python3 curl tzdata \
           libmicrohttpd-dev libpq-dev libhiredis-dev libjansson-dev libssl-dev \
           libsodium-dev libyaml-dev libcurl4-openssl-dev libcmocka-dev \
           postgresql-15 redis-server wrk prometheus

.PHONY: all deps build demo run test sanitize test-minimal bench install clean distclean

all: build

deps:
	@tools/ensure-deps.sh $(APT_PKGS)

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) --prefix=$(PREFIX) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	examples/hello/walkthrough.sh $(BUILD)

run: build
	SVC_HTTP_PORT=$${SVC_HTTP_PORT:-8080} $(BUILD)/examples/hello/hello

test: build
	@tools/run-tests.sh $(BUILD) $(TESTENV) $(SUITES)

$(ASAN)/build.ninja: | deps
	meson setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false \
	    -Dbench=disabled -Dbuildtype=debug $(MESON_OPTS)

sanitize: deps $(ASAN)/build.ninja
	ninja -C $(ASAN)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	 tools/run-tests.sh $(ASAN) $(TESTENV)-asan unit integration http headers

$(MINIMAL)/build.ninja: | deps
	meson setup $(MINIMAL) -Dpostgres=disabled -Dredis=disabled -Dhttp=disabled \
	    -Dbench=disabled $(MESON_OPTS)

test-minimal: deps $(MINIMAL)/build.ninja
	ninja -C $(MINIMAL)
	@tools/run-tests.sh $(MINIMAL) $(TESTENV)-minimal

bench: build
	bench/http/run.sh $(BUILD)
	$(BUILD)/bench/ratelimit/bench_ratelimit_memory
	bench/ratelimit/run_redis.sh $(BUILD)
	bench/idempotency/run.sh $(BUILD)
	bench/ratelimit/run_http.sh $(BUILD)
	bench/outbox/run.sh $(BUILD)
	bench/jobs/run.sh $(BUILD)

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN) $(MINIMAL)

distclean: clean
	rm -rf $(TESTENV) $(TESTENV)-asan $(TESTENV)-minimal build-*
