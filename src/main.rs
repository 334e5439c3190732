//! The `cafe` binary: parse arguments, run the command, map errors to exit codes.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = cafe::cli::Cli::parse();
    // Logs go to stderr so stdout stays the command's output (reports, events).
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("CAFE_LOG").unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
