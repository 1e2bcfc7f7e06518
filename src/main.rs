fn main() -> std::process::ExitCode {
    longshore::cli::main()
}
