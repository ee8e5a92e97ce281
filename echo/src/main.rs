fn main() {
    gammaroute_echo::main();
}
