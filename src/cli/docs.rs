//! `retailcrm-sync completions SHELL` and `retailcrm-sync man`: generated from the one `clap`
//! definition (`clap_complete`, `clap_mangen`), so they never drift from `--help`. The README's
//! install steps write them to the system's completion and man directories.

use std::process::ExitCode;

use clap::CommandFactory;

use super::Cli;

/// Arguments of `completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Arguments of `man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {}

/// Prints the completion script.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    // Into a buffer first: the generator panics on a write error (`... | head`).
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "retailcrm-sync", &mut buf);
    write_out(&buf)
}

/// Writes to stdout; a closed pipe is not an error worth a message.
fn write_out(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(bytes) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}

/// Prints the man page.
pub fn man(_args: &ManArgs) -> anyhow::Result<ExitCode> {
    let page = clap_mangen::Man::new(Cli::command());
    let mut buf = Vec::new();
    page.render(&mut buf)?;
    write_out(&buf)
}
