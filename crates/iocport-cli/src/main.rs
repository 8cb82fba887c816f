//! The `iocport` command: servers, a file copier and benchmarks, each built on the public API of the
//! `iocport` library alone, with worker threads calling `get` on one port as an IOCP server would.

mod bench;
mod copy;
mod echo;
mod info;
mod serve;
mod server;
mod signal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// I/O completion ports for Linux: servers, a file copier and benchmarks.
#[derive(Parser)]
#[command(name = "iocport", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run benchmark suites, iocport and its peers side by side.
    Bench(bench::Args),
    /// A TCP echo server.
    Echo(echo::Args),
    /// An HTTP/1.1 static file server.
    Serve(serve::Args),
    /// Copy a file with many reads and writes in flight.
    Copy(copy::Args),
    /// What this machine's kernel offers iocport.
    Info(info::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::main(args),
        Command::Echo(args) => echo::main(args),
        Command::Serve(args) => serve::main(args),
        Command::Copy(args) => copy::main(args),
        Command::Info(args) => info::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iocport: {e}");
            ExitCode::from(2)
        }
    }
}
