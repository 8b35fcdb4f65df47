//! zpersist-check-mounted: the thin main over `zpersist_ops::check_mounted`.

fn main() -> std::process::ExitCode {
    zpersist_ops::check_mounted::main()
}
