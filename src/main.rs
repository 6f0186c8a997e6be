fn main() -> std::process::ExitCode {
    kopir::cli::main()
}
