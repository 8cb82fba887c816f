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
    /// Internal to `bench echo`: one of its in-process echo servers alone in a process, so that
    /// its memory can be measured; prints `listening on ADDR`, stops when stdin closes.
    #[command(name = "bench-echo-server", hide = true)]
    BenchEchoServer(bench::EchoChildArgs),
}

/// `--backend` of `echo`, `serve` and `copy`: [`iocport::BackendChoice`] on the command line.
/// Without the flag the port follows `IOCPORT_BACKEND`, else `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BackendArg {
    /// io_uring, or the epoll fallback where io_uring cannot be set up.
    Auto,
    /// io_uring only: fail where it cannot be set up.
    #[value(name = "io_uring", alias = "io-uring")]
    IoUring,
    /// The epoll fallback (readiness for sockets, a thread pool for files), even where io_uring
    /// works.
    Epoll,
}

impl From<BackendArg> for iocport::BackendChoice {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => iocport::BackendChoice::Auto,
            BackendArg::IoUring => iocport::BackendChoice::IoUring,
            BackendArg::Epoll => iocport::BackendChoice::Epoll,
        }
    }
}

/// `builder` with `backend` when one is given; without, the port's own choice
/// (`IOCPORT_BACKEND`, else auto).
pub(crate) fn with_backend(
    builder: iocport::Builder,
    backend: Option<iocport::BackendChoice>,
) -> iocport::Builder {
    match backend {
        Some(b) => builder.backend(b),
        None => builder,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::main(args),
        Command::Echo(args) => echo::main(args),
        Command::Serve(args) => serve::main(args),
        Command::Copy(args) => copy::main(args),
        Command::Info(args) => info::main(args),
        Command::BenchEchoServer(args) => bench::echo_child_main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iocport: {e}");
            ExitCode::from(2)
        }
    }
}
