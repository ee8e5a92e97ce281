// Runs a wasm32-wasip1 program (a `cargo test` binary) under Node's WASI, so the engine's tests
// also run compiled to wasm: failures that only show up there (time, randomness, hashing,
// 32-bit usize) surface in `make test`. Used as the cargo runner in .cargo/config.toml.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const [program, ...args] = process.argv.slice(2);
if (!program) {
  console.error('usage: node wasi-run.mjs PROGRAM.wasm [ARGS...]');
  process.exit(2);
}
const wasi = new WASI({
  version: 'preview1',
  args: [program, ...args],
  env: { RUST_BACKTRACE: '1', PROPTEST_CASES: process.env.PROPTEST_CASES ?? '' },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(program));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
