//! zpersist-backup-snapshot: the thin main over `zpersist_ops::backup_snapshot`.

fn main() -> std::process::ExitCode {
    zpersist_ops::backup_snapshot::main()
}
