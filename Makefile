# One entry point for humans and CI. Every target installs what it needs.
#   make test    everything CI checks: lint, native tests, the engine's tests compiled to wasm,
#                and the release .wasm build
#   make wasm    build target/wasm32-wasip1/release/gammaroute_filter.wasm
#   make bench   criterion benchmarks of the routing engine (see BENCHMARKS.md)

WASM := target/wasm32-wasip1/release/gammaroute_filter.wasm

.PHONY: test setup lint test-native test-wasm wasm bench demo

test: setup lint test-native test-wasm wasm
	@echo "make test: all green"

# The wasm target and Node (which runs the wasm-compiled tests) must be on the machine.
setup:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@command -v node >/dev/null || { echo "make: node (>= 20) is required to run the wasm tests: apt-get install nodejs" >&2; exit 1; }

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p gammaroute-filter --target wasm32-wasip1 -- -D warnings

test-native:
	cargo test --workspace

# The engine's unit, routing and differential tests compiled to wasm32-wasip1, run under Node.
test-wasm: setup
	cargo test -p gammaroute-filter --target wasm32-wasip1 --lib --tests

wasm: setup
	cargo build --release --target wasm32-wasip1 -p gammaroute-filter
	@ls -l $(WASM) | awk '{printf "gammaroute.wasm: %s bytes\n", $$5}'

bench:
	cargo bench -p gammaroute-filter --bench router

demo:
	@echo "The local Envoy demo is coming (see the demo issue); 'make test' runs the tests." >&2
	@exit 1
