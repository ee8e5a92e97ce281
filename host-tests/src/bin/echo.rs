//! The echo backend (crate `gammaroute-echo`), built with the tests so that they can find it
//! as `CARGO_BIN_EXE_echo`.
fn main() {
    gammaroute_echo::main();
}
