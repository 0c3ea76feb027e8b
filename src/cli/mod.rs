//! The command line: argument definitions, the shared setup every command
//! needs (endpoint, credentials, store), and the mapping of outcomes to exit
//! codes: 0 all good, 1 some items failed, 2 usage or configuration error,
//! 130 interrupted.

mod args;
mod bucket;
mod check;
mod checkpoints;
mod cp;
mod du;
mod escape;
mod help;
mod ls;
mod mount;
mod object_args;
mod progress;
mod rm;
mod run;
mod setup;
mod stat;
mod stream;
mod sync_report;
mod tree;
mod uploads;
mod versions;

use std::process::ExitCode;

pub use args::{Cli, Command};
use clap::Parser;

/// How a command ended, short of a fatal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    SomeFailed,
    /// Bad input already reported (a job whose source is missing, say):
    /// exit 2, after the other jobs ran.
    BadInput,
    Interrupted,
}

/// A command that could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments, URLs or configuration: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The operation failed: exit 1.
    #[error("{0}")]
    Failed(String),
    #[error("interrupted")]
    Interrupted,
}

impl From<crate::location::LocationError> for CliError {
    fn from(e: crate::location::LocationError) -> Self {
        CliError::Usage(e.to_string())
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> Self {
        CliError::Usage(e.to_string())
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        CliError::Failed(e.to_string())
    }
}

impl From<crate::transfer::InvalidSetting> for CliError {
    fn from(e: crate::transfer::InvalidSetting) -> Self {
        CliError::Usage(e.to_string())
    }
}

impl From<crate::sync::SyncError> for CliError {
    fn from(e: crate::sync::SyncError) -> Self {
        if e.is_usage() {
            CliError::Usage(e.to_string())
        } else {
            CliError::Failed(e.to_string())
        }
    }
}

impl From<crate::transfer::TransferError> for CliError {
    fn from(e: crate::transfer::TransferError) -> Self {
        match e {
            crate::transfer::TransferError::Interrupted => CliError::Interrupted,
            other => CliError::Failed(other.to_string()),
        }
    }
}

fn init_tracing(debug: bool, quiet: bool) {
    // Only ferry's own events: dependencies' debug output can include
    // request headers, and with them credentials.
    let filter = if debug {
        "ferry=debug"
    } else if quiet {
        "ferry=error"
    } else {
        "ferry=warn"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.global.debug, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry: error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // Said on the first Ctrl-C or SIGTERM: what stopping cleanly will do.
    let stopping = match &cli.command {
        Command::Mount(_) => "finishing pending uploads, then unmounting",
        Command::Cp(_) | Command::Run(_) | Command::Watch(_) => "saving progress",
        _ => "stopping",
    };
    let result = runtime.block_on(async move {
        let (cancel_tx, cancel) = crate::transfer::Cancel::new();
        // SIGTERM (systemd, kill) stops as cleanly as Ctrl-C: in-flight
        // parts are abandoned, checkpoints saved, and the rerun resumes.
        // Registered before any work starts, so no early signal is lost.
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::spawn(async move {
            let term_recv = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term_recv => {}
            }
            eprintln!("ferry: interrupted; {stopping} (press Ctrl-C again to quit at once)");
            let _ = cancel_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        });
        run(cli, cancel).await
    });
    // Background connection tasks must not delay exit.
    runtime.shutdown_background();
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::SomeFailed) => ExitCode::from(1),
        Ok(Outcome::BadInput) => ExitCode::from(2),
        Ok(Outcome::Interrupted) | Err(CliError::Interrupted) => ExitCode::from(130),
        Err(CliError::Usage(msg)) => {
            eprintln!("ferry: error: {}", escape::visible(&msg));
            ExitCode::from(2)
        }
        Err(CliError::Failed(msg)) => {
            eprintln!("ferry: error: {}", escape::visible(&msg));
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli, cancel: crate::transfer::Cancel) -> Result<Outcome, CliError> {
    // Neither reads the config file: a broken one must not stop a user
    // from installing completions or reading the manual.
    match &cli.command {
        Command::Completions(a) => return help::completions(a.shell),
        Command::Man(a) => return help::man(a.dir.as_deref()),
        _ => {}
    }
    let setup = setup::Setup::new(&cli.global, cancel)?;
    match cli.command {
        Command::Cp(a) => cp::run(&setup, *a).await,
        Command::Check(a) => check::run(&setup, a).await,
        Command::Cat(a) => stream::cat(&setup, a).await,
        Command::Ls(a) => ls::run(&setup, a).await,
        Command::Du(a) => du::run(&setup, a).await,
        Command::Stat(a) => stat::run(&setup, a).await,
        Command::Rm(a) => rm::run(&setup, a).await,
        Command::Mb(a) => bucket::make(&setup, a).await,
        Command::Rb(a) => bucket::remove(&setup, a).await,
        Command::Checkpoint(a) => checkpoints::run(&setup, a).await,
        Command::Uploads(a) => uploads::run(&setup, a).await,
        Command::Mount(a) => mount::mount(&setup, *a).await,
        Command::Unmount(a) => mount::unmount(&setup, a).await,
        Command::Run(a) => run::run(&setup, a).await,
        Command::Watch(a) => run::watch(&setup, a).await,
        Command::Jobs => run::list(&setup),
        Command::Config(c) => run::config(&setup, c),
        Command::Completions(a) => help::completions(a.shell),
        Command::Man(a) => help::man(a.dir.as_deref()),
    }
}
