//! Shell completions and manual pages, both generated from the argument
//! definitions so they cannot drift from what ferry accepts.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::args::Cli;
use super::{CliError, Outcome};

pub fn completions(shell: clap_complete::Shell) -> Result<Outcome, CliError> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ferry", &mut out);
    write_stdout(&out)
}

/// `ferry.1` on standard output, or with a directory one page per command
/// (`ferry-cp.1`, `ferry-checkpoint-ls.1`, …) as `man ferry-cp` expects.
pub fn man(dir: Option<&Path>) -> Result<Outcome, CliError> {
    let cmd = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .and_then(|_| clap_mangen::generate_to(cmd, dir))
                .map_err(|e| {
                    CliError::Failed(format!(
                        "cannot write manual pages to {}: {e}",
                        dir.display()
                    ))
                })?;
            Ok(Outcome::Success)
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| CliError::Failed(format!("cannot render the manual page: {e}")))?;
            write_stdout(&out)
        }
    }
}

/// A closed pipe (`ferry man | head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<Outcome, CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(Outcome::Success),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Success),
        Err(e) => Err(CliError::Failed(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}
