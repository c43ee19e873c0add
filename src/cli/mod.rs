//! The command line: one binary, one subcommand per role. Configuration comes from flags,
//! then the environment, then a `.env` file; this is the only layer that picks a concrete
//! store, installs color-eyre and listens for signals.

mod account;
mod bench;
pub mod billing;
mod calls;
mod client;
mod demo;
mod faults;
mod gateway;
mod manual;
mod output;
mod seed;
mod serve;
pub use crate::sign_in;
mod simulate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://singularity.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
pub use crate::link::DEFAULT_SERVER;
pub use crate::logging::log_to_file;

#[derive(Debug, Parser)]
#[command(
    name = "singularity",
    version,
    about = "Street-lighting central management: lighting server, field simulator and NOC tools",
    long_about = "Street-lighting central management: lighting server, field simulator and NOC tools.\n\n\
        With no command, runs the demo: a lighting server on a seeded SQLite estate in your data directory."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the lighting server on a seeded estate in your data directory (the default).
    Demo(demo::DemoArgs),
    /// Run the lighting server.
    Server(serve::ServerArgs),
    /// Create the schema and seed a realistic estate.
    Seed(seed::SeedArgs),
    /// Stream telecell reports for the server's estate, faults included.
    Simulate(simulate::SimulateArgs),
    /// Call the server's RPCs from the command line.
    Client(client::ClientArgs),
    /// Measure the server or the console: get, list, search, ingest, watch, daily, totals,
    /// fill-energy, console.
    Bench(bench::BenchArgs),
    /// The NOC console: live faults, lamp panes and billing in the terminal.
    Console(crate::console::ConsoleArgs),
    /// Run the gateway: one address for clients when the services run apart.
    Gateway(gateway::GatewayArgs),
    /// Print shell completions: singularity completions bash > /etc/bash_completion.d/singularity
    Completions(manual::CompletionsArgs),
    /// Print the manual page (roff), or write one per command with --dir.
    Man(manual::ManArgs),
}

/// Runs the command line and turns the outcome into an exit code.
pub fn main() -> ExitCode {
    // A missing .env is normal; variables already set win over the file.
    let dotenv = dotenvy::dotenv();
    if let Err(e) = color_eyre::install() {
        eprintln!("warning: cannot install error reports: {e}");
    }
    let cli = Cli::parse();
    if let Err(dotenvy::Error::LineParse(line, index)) = dotenv {
        eprintln!(
            "error: .env line {line:?} cannot be parsed (at character {index}); fix or remove it"
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        // No command means the demo, with its flags' defaults and environment applied by clap.
        let command = match cli.command {
            Some(command) => command,
            None => Cli::parse_from(["singularity", "demo"])
                .command
                .unwrap_or_else(|| unreachable!()),
        };
        match command {
            Command::Demo(args) => demo::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Server(args) => serve::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Seed(args) => seed::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Simulate(args) => simulate::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Client(args) => Ok(client::run(args).await),
            Command::Bench(args) => bench::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Console(args) => crate::console::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Gateway(args) => gateway::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Completions(args) => manual::completions(&args).map(|()| ExitCode::SUCCESS),
            Command::Man(args) => manual::man(&args).map(|()| ExitCode::SUCCESS),
        }
    });
    // Streams and blocking work may still be winding down; don't wait on them at exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match outcome {
        Ok(code) => code,
        Err(report) => {
            // One line: what failed and why, with what to do. No source locations or
            // backtraces (even with RUST_BACKTRACE set): they are for developers, and a
            // panic still prints its own report.
            eprintln!("error: {report:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--listen`: an IP and port, or a host name and port.
pub fn listen_address(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let addresses: Vec<std::net::SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| {
            format!("{text:?} is not an address to listen on ({e}); use e.g. 127.0.0.1:50051")
        })?
        .collect();
    // IPv4 first, so "localhost" means 127.0.0.1 wherever ::1 is listed before it.
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("{text:?} names no address; use e.g. 127.0.0.1:50051"))
}

/// Whether colour codes may be written to stderr: only to a terminal, and never with
/// `NO_COLOR` set.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text for people.
    Human,
    /// One JSON object per line (timestamp, level, target, fields, and the call's span with
    /// its request id), for log collectors.
    Json,
}

/// Installs logging to stderr at `level` (a `RUST_LOG`-style filter).
fn init_logging(level: &str, format: LogFormat) -> color_eyre::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| {
        color_eyre::eyre::eyre!(
            "log level {level:?} is not valid ({e}); use error, warn, info, debug, trace or a filter like singularity=debug"
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.with_ansi(colour_on_stderr()).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    Ok(())
}

/// Resolves when Ctrl-C or SIGTERM arrives. The handlers are installed when this is called,
/// not when it is first polled, so a signal that comes while the server is still starting up
/// stops it cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every subcommand and every flag says what it is for in one line, so `--help` never
    /// shows a bare name.
    #[test]
    fn listen_takes_host_names_and_addresses() {
        assert_eq!(
            super::listen_address("localhost:50051").map(|a| (a.ip().is_loopback(), a.port())),
            Ok((true, 50051))
        );
        assert!(super::listen_address("127.0.0.1:0").is_ok());
        assert!(super::listen_address("nowhere").is_err());
    }

    #[test]
    fn every_command_and_flag_has_a_description() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() {
                missing.push(format!("{path}: no description"));
            }
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() {
                    missing.push(format!("{path} --{id}: no description"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &path, missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
