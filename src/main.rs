fn main() -> std::process::ExitCode {
    exapp_janitor::cli::main()
}
