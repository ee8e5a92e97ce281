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
// The crate's proxy-wasm exports import the host's `env.proxy_*` functions; engine tests never
// call them, so each is a stub that fails the test loudly if it ever is.
const imports = wasi.getImportObject();
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.kind === 'function' && !(imp.module in imports && imp.name in imports[imp.module])) {
    imports[imp.module] ??= {};
    imports[imp.module][imp.name] = () => {
      throw new Error(`host function ${imp.module}.${imp.name} called in a test`);
    };
  }
}
const instance = await WebAssembly.instantiate(module, imports);
process.exitCode = wasi.start(instance);
