//! zpersist-status: the thin main over `zpersist_ops::status`.

fn main() -> std::process::ExitCode {
    zpersist_ops::status::main()
}
