//! The `iocport` command: benchmarks (and, later, demos) built on the `iocport` library.

mod bench;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// I/O completion ports for Linux: benchmarks and demos.
#[derive(Parser)]
#[command(name = "iocport", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run benchmark suites, iocport and its peers side by side.
    Bench {
        /// Suites to run (default: all). Available: port, nop, file, echo.
        suites: Vec<String>,
        /// Short runs, for CI: checks that every case works, not how fast.
        #[arg(long)]
        quick: bool,
        /// Also write the results as JSON records {"case", "system", "metric", "value"} to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench {
            suites,
            quick,
            json,
        } => bench::run(&suites, quick, json.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iocport: {e}");
            ExitCode::from(2)
        }
    }
}
