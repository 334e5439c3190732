//! The `cafe` binary: parse arguments, run the command, map errors to exit codes.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use tracing_subscriber::EnvFilter;

/// The async runtime: one worker fewer than the machine has cores (at least one),
/// unless `TOKIO_WORKER_THREADS` says otherwise. The main thread is busy too: it runs
/// the command itself (making and handing over records, printing what is consumed)
/// while the workers run the client's background tasks. A worker per core on top
/// oversubscribes the machine by one thread, and tokio then moves the producer's
/// tasks between workers: on 2 cores that cost `cafe bench produce` 0.5-0.9 CPU-s
/// per 1M small records against 0.35-0.43 with one worker, for no more throughput;
/// consuming was the same either way.
fn runtime() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        builder.worker_threads(cores.saturating_sub(1).max(1));
    }
    builder
}

fn main() -> ExitCode {
    let cli = match cafe::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            eprintln!("cafe: {}", usage_error_line(&e));
            return ExitCode::from(cafe::error::exit::USAGE);
        }
    };
    // Logs go to stderr so stdout stays the command's output (reports, events).
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("CAFE_LOG").unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match runtime().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cafe: cannot start the async runtime: {e}");
            return ExitCode::from(cafe::error::exit::FAILURE);
        }
    };
    let result = runtime.block_on(cafe::cli::run(cli));
    // Everything that matters (final commit, LeaveGroup, delivery reports) is done;
    // do not wait for idle pool threads, so Ctrl+C exits promptly.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cafe: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// A command-line error as one line. clap reads `-5` as an unknown flag; say
/// what it is instead: a negative number where counts and sizes start at 0.
fn usage_error_line(e: &clap::Error) -> String {
    if e.kind() == ErrorKind::UnknownArgument {
        if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
            if arg.starts_with('-') && arg[1..].parse::<f64>().is_ok() {
                return format!("`{arg}` is negative; counts, sizes and times must be 0 or more (see --help)");
            }
        }
    }
    // clap's message is its first paragraph (a list of missing arguments may follow
    // on indented lines); the usage and the hint after it are left out.
    let text = e.render().to_string();
    let first: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
    format!("{} (see --help)", first.join(" ").trim_start_matches("error: "))
}
