//! The `retailcrm-sync` binary: everything lives in the library; this only hands over.

fn main() -> std::process::ExitCode {
    retailcrm_sync::cli::main()
}
