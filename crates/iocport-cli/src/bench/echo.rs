//! The `echo` suite: a TCP echo server under a ping-pong load on 127.0.0.1.
//!
//! Cases `echo_conn16` and `echo_conn128`: that many connections, each sending a [`MSG`]-byte
//! request and waiting for it to come back before sending the next, for [`RUNTIME`] (a sixth of it
//! with `--quick`). Metrics: completed round trips per second (`req_per_s`) and the 99th
//! percentile round-trip time (`rtt_p99_ns`).
//!
//! One load client drives every server: a single thread with `mio` (epoll, edge-triggered), so the
//! servers differ and nothing else does. Each server (but `iocport-c`) runs in this process on its
//! own threads, listens on an ephemeral port of 127.0.0.1, is started before its round's
//! connections are made, and is stopped, every thread joined, after the client has closed them.
//! Servers echo whatever they read, up to [`SERVER_BUF`] bytes at a time.
//!
//! - `iocport`: one port, CPUs worker threads calling `get`; accept operations on the listener,
//!   then recv and send operations per connection.
//! - `iocport-interrupted`, `iocport-sqpoll`: the same server in the other submission modes.
//! - `iocport-provided`: the same server with `--recv provided`: receives take a buffer from the
//!   port's provided buffers when data arrives (`Handle::recv_provided`), so a waiting connection
//!   holds none.
//! - `iocport-multishot`: the same server with `--recv multishot`: each connection keeps one
//!   receive armed (`Handle::recv_multishot`), a packet per message in a provided buffer.
//! - `iocport-epoll`: the same server on the epoll backend, forced (`iocport echo --backend
//!   epoll`).
//! - `iocport-c`: the C library's IOCP server, `examples/c/echo_server.c` (AcceptEx posted ahead,
//!   CPUs worker threads in `GetQueuedCompletionStatus`, `WSARecv` then `WSASend` per
//!   connection), run as a child process; the only system not in this process. Before the first
//!   case, `scripts/install-capi.sh target/capi` builds and installs the library (release) and
//!   `cc -O2` compiles the example against it (`pkg-config`, an rpath to `target/capi/lib`). The
//!   server prints `listening on 127.0.0.1:PORT` and stops when its stdin is closed. Its port
//!   picks its backend as `iocport`'s does (`IOCPORT_BACKEND` is inherited). Skipped, with a
//!   note, when it cannot be built (no `cc` or `pkg-config`, the source tree gone).
//! - `tokio`: the multi-thread runtime with CPUs workers, one task per connection
//!   (`read` then `write_all`).
//! - `thread-per-conn`: std's blocking `TcpStream`, one thread per connection.
//!
//! Case `echo_conn4000`: many mostly idle connections, and what they cost in memory. The client
//! opens [`IDLE_CONNS`] connections ([`IDLE_CONNS_QUICK`] with `--quick`) and keeps them all open.
//! Only [`IDLE_ACTIVE`] of them are active at a time: a connection's *turn* is [`IDLE_TURN`]
//! round trips of the same [`MSG`]-byte ping-pong, and the turns go round the connections in order
//! (a connection whose turn ends hands over to the next one that is idle). First the connections
//! are made, [`CONNECT_BATCH`] at a time, each batch then doing one round trip per connection
//! before the next is made: the server has then accepted each connection and has a receive
//! pending on each, and its accept queue never overflowed; the server idles [`SETTLE`] and its
//! resident set is read. Then the measured phase:
//! turns of [`IDLE_TURN`] round trips for [`RUNTIME`] (a sixth of it with `--quick`) and, past that,
//! until every connection has had at least one turn in this phase (each connection exchanges at
//! least [`IDLE_TURN`] + 1 messages in all); then no turn starts and the ones under way end after
//! their current round trip; the server idles [`SETTLE`] and its resident set is read again.
//! Metrics: round trips per second of the measured phase (`req_per_s`: its round trips over its
//! duration) and the server's resident memory per connection (`rss_per_conn_bytes`: the larger
//! of the two readings, idle before and idle after the load, minus the reading taken once it
//! listened and before the first connection, over the number of connections; `VmRSS` of
//! `/proc/PID/status`, so user memory only: heap, stacks, rings, not the kernel's socket
//! buffers). Lower is better. The larger reading is reported because a server may grow under the
//! load (buffers taken on the first read, an allocator that keeps what it freed) and what it holds
//! then is what its connections cost.
//!
//! To be measured alone, every server of this case runs in a child process: `iocport-c` as in
//! the other cases, each other system in this binary run again as the hidden `iocport
//! bench-echo-server SYSTEM` ([`super::echo_child`]; run as `/proc/self/exe`, so the very
//! program of the run even when a build replaces it meanwhile), which serves with the very server
//! of the other cases and follows the C server's protocol (`listening on ADDR` on stdout, stop
//! when stdin closes). Both the bench process and the child raise their soft `RLIMIT_NOFILE` to the hard
//! limit; when that is below the connections plus [`FD_MARGIN`], the case is skipped with a note.
//! Every phase is bounded ([`IDLE_LIMIT`] past its end, [`IO_WAIT`] without progress), and a child
//! is stopped (killed if need be) however the round ends. The case has 3 rounds and no warm-up
//! round (each round starts a fresh server process anyway).
//!
//! Targets, on `echo_conn128` round trips per second: `iocport` at least `tokio`'s; `iocport-c`
//! at least 0.9 times `iocport`'s (what the Win32 layer may cost) and at least `tokio`'s.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::child::{find_tool, Guard};
use super::echo_child::{raise_nofile, vm_rss};
use super::{
    cpus, epoll_note, percentile, run_case, say, Config, Contender, Flavor, Goal, Record, Report,
    Target, Values, IOCPORT, IOCPORT_FLAVORS, IO_WAIT,
};

const SUITE: &str = "echo";
const TOKIO: &str = "tokio";
const THREADS: &str = "thread-per-conn";
/// `examples/c/echo_server.c` on the C library.
const IOCPORT_C: &str = "iocport-c";
/// `iocport` whose connections receive into buffers the port provides when data arrives
/// (`iocport echo --recv provided`, `Handle::recv_provided`): a waiting connection holds none.
const IOCPORT_PROVIDED: &str = "iocport-provided";
/// `iocport` whose connections each keep one multishot receive armed, into provided buffers
/// (`iocport echo --recv multishot`, `Handle::recv_multishot`).
const IOCPORT_MULTISHOT: &str = "iocport-multishot";

/// The size of one request (and of its echo).
const MSG: usize = 128;
/// How much a server reads at most per call.
const SERVER_BUF: usize = crate::echo::BUF;
/// How long the load runs in one round (a sixth of it with `--quick`).
const RUNTIME: Duration = Duration::from_secs(3);
/// How long stopping a server may take.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// How long the C server may take to print its address.
const START_WAIT: Duration = Duration::from_secs(10);

/// Connections of `echo_conn4000`.
const IDLE_CONNS: usize = 4000;
/// Connections of `echo_conn4000` with `--quick` (it runs in CI).
const IDLE_CONNS_QUICK: usize = 400;
/// How many connections of `echo_conn4000` are in a turn at a time.
const IDLE_ACTIVE: usize = 128;
/// Round trips in one turn of a connection of `echo_conn4000`'s measured phase.
const IDLE_TURN: u32 = 4;
/// Descriptors beyond one per connection that the client and the server may need.
const FD_MARGIN: u64 = 64;
/// How many connections `echo_conn4000` makes before it waits for a round trip on each: fewer
/// than the smallest listen backlog of the servers (std's 128), so that the server's accept queue
/// never overflows (a SYN dropped would stall a connect for a second).
const CONNECT_BATCH: usize = 64;
/// How long a phase of `echo_conn4000` (connecting with the first round trips, the load past its
/// runtime) may take at most.
const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// How long a server of `echo_conn4000` idles before its resident set is read.
const SETTLE: Duration = Duration::from_millis(200);
/// The hidden subcommand that runs one in-process server alone ([`super::echo_child`]).
const CHILD_COMMAND: &str = "bench-echo-server";
/// This very program, to run it again: not [`std::env::current_exe`]'s path, which a build
/// during the run may replace with another program (or remove), but the kernel's link to the
/// file this process runs, which stays valid as long as the process does.
const SELF_EXE: &str = "/proc/self/exe";

/// Runs the suite.
pub(crate) fn run(cfg: &Config) -> Result<Report, String> {
    let mut report = Report::default();
    let runtime = if cfg.quick { RUNTIME / 6 } else { RUNTIME };
    say("bench echo: building the C library and examples/c/echo_server.c (iocport-c)");
    let c_server = build_c_server(&source_root());
    for conns in [16, 128] {
        report
            .records
            .extend(echo_case(cfg, conns, runtime, c_server.as_deref().ok())?);
    }
    let idle_conns = if cfg.quick {
        IDLE_CONNS_QUICK
    } else {
        IDLE_CONNS
    };
    let needed = idle_conns as u64 + FD_MARGIN;
    let idle_cfg = cfg.with_rounds(3, false);
    // Said after the notes that every case shares.
    let idle_note = match raise_nofile() {
        Ok(limit) if limit >= needed => {
            report.records.extend(idle_case(
                &idle_cfg,
                idle_conns,
                runtime,
                c_server.as_deref().ok(),
            )?);
            format!(
                "echo_conn4000: {idle_conns} connections held open{}, every server in a child \
                 process (this binary as the hidden `iocport {CHILD_COMMAND} SYSTEM`, iocport-c \
                 its own); {IDLE_ACTIVE} connections active at a time, turns going round the \
                 connections in order: first, connections made {CONNECT_BATCH} at a time, \
                 one round trip on each of a batch before the next, then turns of {IDLE_TURN} \
                 round trips for {:.1}s and until every connection had a turn; req_per_s: round \
                 trips of that phase over its duration; rss_per_conn_bytes: the child's VmRSS \
                 (the larger of idle after the first round trips and idle after the load) minus \
                 its VmRSS listening before any connection, over {idle_conns}; {} round(s), \
                 no warm-up; RLIMIT_NOFILE soft limit raised to the hard limit ({limit}) in both \
                 processes",
                if cfg.quick {
                    format!(" (--quick; {IDLE_CONNS} in a full run)")
                } else {
                    String::new()
                },
                runtime.as_secs_f64(),
                idle_cfg.rounds,
            )
        }
        Ok(limit) => {
            let why = format!(
                "the open-descriptor limit (hard limit {limit}) is below the {needed} that \
                 {idle_conns} connections need"
            );
            report.missing.push(super::Missing {
                system: "echo_conn4000: every system".into(),
                why: format!("skipped: {why}"),
            });
            format!("echo_conn4000 skipped: {why}")
        }
        Err(e) => {
            report.missing.push(super::Missing {
                system: "echo_conn4000: every system".into(),
                why: format!("skipped: {e}"),
            });
            format!("echo_conn4000 skipped: {e}")
        }
    };
    report.notes.push(format!(
        "echo_*: {MSG}-byte ping-pong for {:.1}s per round from one single-threaded mio client; \
         servers echo up to {SERVER_BUF} bytes per read; iocport and tokio use {} worker \
         threads; thread-per-conn one blocking thread per connection",
        runtime.as_secs_f64(),
        cpus()
    ));
    report.notes.push(epoll_note(
        "the echo server's port built with Builder::backend(BackendChoice::Epoll), as `iocport \
         echo --backend epoll` does",
    ));
    report.notes.push(format!(
        "{IOCPORT_PROVIDED}: iocport's server receiving with recv_provided (`iocport echo --recv \
         provided`): a connection's receive takes a {SERVER_BUF}-byte buffer from the port's \
         provided buffers only when data arrives (io_uring: a provided buffer ring), and gives it \
         back once the echo is sent; 256 buffers to start, 64 more whenever a receive finds none"
    ));
    report.notes.push(format!(
        "{IOCPORT_MULTISHOT}: iocport's server with one multishot receive per connection \
         (`iocport echo --recv multishot`, Handle::recv_multishot; io_uring: \
         IORING_RECV_MULTISHOT): each message comes in its own packet in a provided buffer, \
         given back once its echo is sent; no receive is started per message"
    ));
    match &c_server {
        Ok(_) => report.notes.push(format!(
            "{IOCPORT_C}: examples/c/echo_server.c, cc -O2 against libiocport (release, \
             scripts/install-capi.sh target/capi), a child process with {} worker threads and \
             {C_ACCEPTS} AcceptEx posted; its port picks the backend as iocport's does",
            cpus()
        )),
        Err(why) => {
            report.notes.push(format!("{IOCPORT_C} skipped: {why}"));
            report.missing.push(super::Missing {
                system: IOCPORT_C.into(),
                why: format!("not built: {why}"),
            });
        }
    }
    report.notes.push(idle_note);
    // Issue 11's: ahead of tokio by a margin, its tail latency no worse, and less memory for
    // idle connections with provided buffers.
    report.targets.push(Target {
        case: "echo_conn128",
        metric: "req_per_s",
        goal: Goal::AtLeastFactorOf {
            peer: TOKIO,
            factor: 1.3,
        },
    });
    report
        .targets
        .extend(["echo_conn16", "echo_conn128"].map(|case| Target {
            case,
            metric: "rtt_p99_ns",
            goal: Goal::WithinFactorOf {
                peer: TOKIO,
                factor: 1.0,
            },
        }));
    report.targets.push(Target {
        case: "echo_conn4000",
        metric: "rss_per_conn_bytes",
        goal: Goal::Of {
            system: IOCPORT_PROVIDED,
            goal: &Goal::WithinFactorOf {
                peer: TOKIO,
                factor: 1.0,
            },
        },
    });
    if c_server.is_ok() {
        report.targets.extend([
            Target {
                case: "echo_conn128",
                metric: "req_per_s",
                goal: Goal::Of {
                    system: IOCPORT_C,
                    goal: &Goal::AtLeastFactorOf {
                        peer: IOCPORT,
                        factor: 0.9,
                    },
                },
            },
            Target {
                case: "echo_conn128",
                metric: "req_per_s",
                goal: Goal::Of {
                    system: IOCPORT_C,
                    goal: &Goal::AtLeastFactorOf {
                        peer: TOKIO,
                        factor: 1.0,
                    },
                },
            },
        ]);
    }
    Ok(report)
}

/// Case `echo_conn{conns}`; `c_server` is the C server's program, when it could be built.
fn echo_case(
    cfg: &Config,
    conns: usize,
    runtime: Duration,
    c_server: Option<&Path>,
) -> Result<Vec<Record>, String> {
    let mut contenders: Vec<Contender<'_>> = IOCPORT_FLAVORS
        .iter()
        .map(|&(system, flavor)| {
            Contender::new(system, move || {
                round(IocportServer::start(flavor)?, conns, runtime)
            })
        })
        .collect();
    contenders.push(Contender::new(IOCPORT_PROVIDED, move || {
        round(IocportServer::provided()?, conns, runtime)
    }));
    contenders.push(Contender::new(IOCPORT_MULTISHOT, move || {
        round(IocportServer::multishot()?, conns, runtime)
    }));
    if let Some(exe) = c_server {
        contenders.push(Contender::new(IOCPORT_C, move || {
            round(ChildServer::c(exe, cpus())?, conns, runtime)
        }));
    }
    contenders.push(Contender::new(TOKIO, move || {
        round(TokioServer::start()?, conns, runtime)
    }));
    contenders.push(Contender::new(THREADS, move || {
        round(ThreadServer::start()?, conns, runtime)
    }));
    run_case(cfg, SUITE, &format!("echo_conn{conns}"), contenders)
}

/// Case `echo_conn4000` with `conns` connections: every system's server in a child process.
fn idle_case(
    cfg: &Config,
    conns: usize,
    runtime: Duration,
    c_server: Option<&Path>,
) -> Result<Vec<Record>, String> {
    let mut contenders: Vec<Contender<'_>> = IOCPORT_FLAVORS
        .iter()
        .map(|&(system, _)| {
            Contender::new(system, move || {
                idle_round(ChildServer::bench(system)?, conns, runtime)
            })
        })
        .collect();
    if let Some(exe) = c_server {
        contenders.push(Contender::new(IOCPORT_C, move || {
            idle_round(ChildServer::c(exe, cpus())?, conns, runtime)
        }));
    }
    for system in [IOCPORT_PROVIDED, IOCPORT_MULTISHOT, TOKIO, THREADS] {
        contenders.push(Contender::new(system, move || {
            idle_round(ChildServer::bench(system)?, conns, runtime)
        }));
    }
    run_case(
        &cfg.with_rounds(3, false),
        SUITE,
        "echo_conn4000",
        contenders,
    )
}

/// The child side of `echo_conn4000` (`iocport bench-echo-server SYSTEM`): starts `system`'s
/// in-process server, prints `listening on ADDR`, serves until stdin closes, then stops it.
pub(super) fn serve_child(system: &str) -> Result<(), String> {
    if let Some(&(_, flavor)) = IOCPORT_FLAVORS.iter().find(|(s, _)| *s == system) {
        return serve_until_stdin_closes(IocportServer::start(flavor)?);
    }
    match system {
        IOCPORT_PROVIDED => serve_until_stdin_closes(IocportServer::provided()?),
        IOCPORT_MULTISHOT => serve_until_stdin_closes(IocportServer::multishot()?),
        TOKIO => serve_until_stdin_closes(TokioServer::start()?),
        THREADS => serve_until_stdin_closes(ThreadServer::start()?),
        _ => Err(format!(
            "{system:?} is not a system with an in-process echo server"
        )),
    }
}

/// Announces `server` on stdout, waits for the end of stdin, stops it.
fn serve_until_stdin_closes(server: impl Server) -> Result<(), String> {
    let announced = {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {}", server.addr()).and_then(|()| out.flush())
    };
    if let Err(e) = announced {
        let _ = server.stop();
        return Err(format!("cannot write the address: {e}"));
    }
    // Whatever is written to stdin is ignored; its end (or an error) means stop.
    let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
    server.stop()
}

/// An echo server running on its own threads.
trait Server {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;
    /// Stops it and joins its threads. The client has closed its connections by then.
    fn stop(self) -> Result<(), String>;
}

/// One round: the load against a started server, then the server stopped (also when the load
/// failed).
fn round(server: impl Server, conns: usize, runtime: Duration) -> Result<Values, String> {
    let load = load(server.addr(), conns, runtime);
    let stopped = server.stop();
    let values = load?;
    stopped?;
    Ok(values)
}

/// A loopback address with an ephemeral port, to bind servers to.
fn any_port() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

// ---------------------------------------------------------------------------------------------
// The load client

/// One client connection.
struct Conn {
    stream: mio::net::TcpStream,
    /// Bytes of the current request written so far.
    sent: usize,
    /// Bytes of its echo read so far.
    got: usize,
    /// The echo being read.
    buf: [u8; MSG],
    /// When the current request started.
    t0: Instant,
}

/// What the client has measured so far.
struct Tally {
    trips: u64,
    rtt_ns: Vec<u64>,
    deadline: Instant,
}

/// The request every connection sends.
fn request() -> [u8; MSG] {
    std::array::from_fn(|i| i as u8)
}

impl Conn {
    /// Makes progress until the socket would block: writes the rest of the request, then reads
    /// the echo; a complete echo counts a round trip (before the deadline) and starts the next.
    fn drive(&mut self, msg: &[u8; MSG], tally: &mut Tally) -> Result<(), String> {
        loop {
            if self.sent < MSG {
                match self.stream.write(&msg[self.sent..]) {
                    Ok(0) => return Err("the server stopped accepting data".to_owned()),
                    Ok(n) => self.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("client write: {e}")),
                }
            } else {
                match self.stream.read(&mut self.buf[self.got..]) {
                    Ok(0) => return Err("the server closed a connection".to_owned()),
                    Ok(n) => self.got += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("client read: {e}")),
                }
                if self.got == MSG {
                    if self.buf != *msg {
                        return Err("the echo differs from the request".to_owned());
                    }
                    let now = Instant::now();
                    if now < tally.deadline {
                        tally.trips += 1;
                        let ns = (now - self.t0).as_nanos();
                        tally.rtt_ns.push(u64::try_from(ns).unwrap_or(u64::MAX));
                    }
                    self.sent = 0;
                    self.got = 0;
                    self.t0 = now;
                }
            }
        }
    }
}

/// A client connection to `addr` (no Nagle delay, non-blocking), registered with `poll` under
/// `token` for both directions.
fn client_stream(
    poll: &Poll,
    addr: SocketAddr,
    token: usize,
) -> Result<mio::net::TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, IO_WAIT).map_err(|e| e.to_string())?;
    s.set_nodelay(true)
        .and_then(|()| s.set_nonblocking(true))
        .map_err(|e| format!("socket options: {e}"))?;
    let mut stream = mio::net::TcpStream::from_std(s);
    poll.registry()
        .register(
            &mut stream,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(|e| format!("epoll_ctl: {e}"))?;
    Ok(stream)
}

/// The load: `conns` connections to `addr`, each in a request/echo loop, for `runtime`. All
/// connections are made first; the clock starts when the first requests go out. The connections
/// are closed when this returns.
fn load(addr: SocketAddr, conns: usize, runtime: Duration) -> Result<Values, String> {
    let mut poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut all = Vec::with_capacity(conns);
    for i in 0..conns {
        let stream =
            client_stream(&poll, addr, i).map_err(|e| format!("connect to {addr}: {e}"))?;
        all.push(Conn {
            stream,
            sent: 0,
            got: 0,
            buf: [0; MSG],
            t0: Instant::now(),
        });
    }
    let msg = request();
    let start = Instant::now();
    let mut tally = Tally {
        trips: 0,
        rtt_ns: Vec::with_capacity(1 << 20),
        deadline: start + runtime,
    };
    for c in &mut all {
        c.t0 = start;
        c.drive(&msg, &mut tally)?;
    }
    let mut events = Events::with_capacity(1024);
    let mut last_progress = (Instant::now(), 0u64);
    loop {
        let now = Instant::now();
        if now >= tally.deadline {
            break;
        }
        poll.poll(&mut events, Some(tally.deadline - now))
            .or_else(|e| {
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(())
                } else {
                    Err(format!("epoll_wait: {e}"))
                }
            })?;
        for ev in &events {
            all[ev.token().0].drive(&msg, &mut tally)?;
        }
        if tally.trips != last_progress.1 {
            last_progress = (Instant::now(), tally.trips);
        } else if last_progress.0.elapsed() > IO_WAIT {
            return Err(format!("no echo for {IO_WAIT:?}"));
        }
    }
    let elapsed = runtime.as_secs_f64();
    if tally.trips == 0 {
        return Err("no round trip completed".to_owned());
    }
    tally.rtt_ns.sort_unstable();
    Ok(vec![
        ("req_per_s", tally.trips as f64 / elapsed),
        ("rtt_p99_ns", percentile(&tally.rtt_ns, 99.0) as f64),
    ])
}

// ---------------------------------------------------------------------------------------------
// The load of echo_conn4000: many connections, few active at a time

/// One round of `echo_conn4000`: the idle load against a server in a child process, then the
/// server stopped (also when the load failed; its guard kills it if it does not stop).
fn idle_round(server: ChildServer, conns: usize, runtime: Duration) -> Result<Values, String> {
    let load = idle_load(&server, conns, runtime);
    let stopped = server.stop();
    let values = load?;
    stopped?;
    Ok(values)
}

/// One connection of `echo_conn4000`.
struct IdleConn {
    stream: mio::net::TcpStream,
    /// Bytes of the current request written so far.
    sent: usize,
    /// Bytes of its echo read so far.
    got: usize,
    /// The echo being read.
    buf: [u8; MSG],
    /// Round trips left in its turn; 0 while it is idle.
    left: u32,
}

impl IdleConn {
    /// Makes progress until the socket would block or the turn is over: writes the rest of the
    /// request, reads the echo, starts the next request while the turn lasts. The round trips
    /// completed.
    fn drive(&mut self, msg: &[u8; MSG]) -> Result<u64, String> {
        let mut trips = 0;
        while self.left > 0 {
            if self.sent < MSG {
                match self.stream.write(&msg[self.sent..]) {
                    Ok(0) => return Err("the server stopped accepting data".to_owned()),
                    Ok(n) => self.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("client write: {e}")),
                }
            } else {
                match self.stream.read(&mut self.buf[self.got..]) {
                    Ok(0) => return Err("the server closed a connection".to_owned()),
                    Ok(n) => self.got += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("client read: {e}")),
                }
                if self.got == MSG {
                    if self.buf != *msg {
                        return Err("the echo differs from the request".to_owned());
                    }
                    trips += 1;
                    self.left -= 1;
                    self.sent = 0;
                    self.got = 0;
                }
            }
        }
        Ok(trips)
    }
}

/// The load of `echo_conn4000` against `server`: its resident set read listening, then `conns`
/// connections made and each given a turn of one round trip, the resident set read idle, the
/// measured phase (turns of [`IDLE_TURN`] round trips for `runtime` and until every connection
/// had one), the resident set read idle again. See the module's documentation. The connections
/// are closed when this returns.
fn idle_load(server: &ChildServer, conns: usize, runtime: Duration) -> Result<Values, String> {
    let addr = server.addr();
    let pid = server.pid;
    thread::sleep(SETTLE);
    let listening = vm_rss(pid)?;
    let mut poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut all = Vec::with_capacity(conns);
    let limit = Instant::now() + IDLE_LIMIT;
    while all.len() < conns {
        let first = all.len();
        connect_idle(&poll, addr, CONNECT_BATCH.min(conns - first), &mut all)?;
        rotate(&mut poll, &mut all, first, 1, |covered| covered, limit)
            .map_err(|e| format!("{e} (connections {}..{})", first + 1, all.len()))?;
    }
    thread::sleep(SETTLE);
    let idle = vm_rss(pid)?;
    let start = Instant::now();
    let deadline = start + runtime;
    let trips = rotate(
        &mut poll,
        &mut all,
        0,
        IDLE_TURN,
        |covered| covered && Instant::now() >= deadline,
        deadline + IDLE_LIMIT,
    )?;
    let elapsed = start.elapsed().as_secs_f64();
    thread::sleep(SETTLE);
    let after = vm_rss(pid)?;
    if trips == 0 {
        return Err("no round trip completed".to_owned());
    }
    let grown = idle.max(after).saturating_sub(listening);
    Ok(vec![
        ("req_per_s", trips as f64 / elapsed),
        ("rss_per_conn_bytes", grown as f64 / conns as f64),
    ])
}

/// `count` more connections to `addr` at the end of `all`, made one after the other,
/// non-blocking, registered with `poll` (edge-triggered) under their index in `all`, idle.
fn connect_idle(
    poll: &Poll,
    addr: SocketAddr,
    count: usize,
    all: &mut Vec<IdleConn>,
) -> Result<(), String> {
    for _ in 0..count {
        let i = all.len();
        let stream = client_stream(poll, addr, i)
            .map_err(|e| format!("connect to {addr} (connection {}): {e}", i + 1))?;
        all.push(IdleConn {
            stream,
            sent: 0,
            got: 0,
            buf: [0; MSG],
            left: 0,
        });
    }
    Ok(())
}

/// Turns of `per_turn` round trips, [`IDLE_ACTIVE`] connections of `all[from..]` at a time, handed
/// round them in order, until `enough(every one of them has finished a turn)` holds; then no turn
/// starts and the turns under way end after their current round trip. The round trips completed.
/// An error when the turns are not over by `limit`, or nothing moves for [`IO_WAIT`]. The
/// connections before `from` must be idle.
fn rotate(
    poll: &mut Poll,
    all: &mut [IdleConn],
    from: usize,
    per_turn: u32,
    enough: impl Fn(bool) -> bool,
    limit: Instant,
) -> Result<u64, String> {
    let all = &mut all[from..];
    let n = all.len();
    let active = IDLE_ACTIVE.min(n);
    let msg = request();
    // Whether each connection has finished a turn, and how many have.
    let mut served = vec![false; n];
    let mut covered = 0;
    // Connections in a turn, the next one to get a turn, those to drive now.
    let mut busy = 0;
    let mut next = 0;
    let mut ready: Vec<usize> = Vec::new();
    let mut ending = n == 0;
    let mut trips = 0u64;
    let mut events = Events::with_capacity(1024);
    let mut last_progress = (Instant::now(), 0u64);
    loop {
        while let Some(i) = ready.pop() {
            let c = &mut all[i];
            if c.left == 0 {
                continue;
            }
            trips += c.drive(&msg)?;
            if c.left == 0 {
                busy -= 1;
                if !served[i] {
                    served[i] = true;
                    covered += 1;
                }
            }
        }
        if !ending && enough(covered == n) {
            ending = true;
            for c in all.iter_mut().filter(|c| c.left > 1) {
                c.left = 1;
            }
        }
        if !ending && busy < active {
            while busy < active {
                // Fewer than `active` <= n are busy: an idle connection is found.
                while all[next].left > 0 {
                    next = (next + 1) % n;
                }
                all[next].left = per_turn;
                ready.push(next);
                busy += 1;
                next = (next + 1) % n;
            }
            continue;
        }
        if busy == 0 {
            return Ok(trips);
        }
        let now = Instant::now();
        if now >= limit {
            return Err(format!(
                "the turns did not end in time ({covered} of {n} connections had one)"
            ));
        }
        if trips != last_progress.1 {
            last_progress = (now, trips);
        } else if now - last_progress.0 > IO_WAIT {
            return Err(format!("no echo for {IO_WAIT:?}"));
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .or_else(|e| {
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(())
                } else {
                    Err(format!("epoll_wait: {e}"))
                }
            })?;
        // The idle connections before `from` may still report an edge (writable again).
        ready.extend(
            events
                .iter()
                .filter_map(|ev| ev.token().0.checked_sub(from))
                .filter(|&i| i < n),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// tokio

/// The tokio server: a multi-thread runtime, an accept loop task and one task per connection.
struct TokioServer {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
}

impl TokioServer {
    fn start() -> Result<TokioServer, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cpus())
            .enable_io()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(any_port()))
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        rt.spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(tokio_conn(s));
            }
        });
        Ok(TokioServer { rt, addr })
    }
}

/// One connection: echo until the client closes (any error also ends it).
async fn tokio_conn(mut s: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if s.set_nodelay(true).is_err() {
        return;
    }
    let mut buf = [0u8; SERVER_BUF];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

impl Server for TokioServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts the runtime down: the accept loop and any connection task left are dropped, and the
    /// worker threads are waited for.
    fn stop(self) -> Result<(), String> {
        self.rt.shutdown_timeout(STOP_WAIT);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// thread-per-connection

/// The blocking server: an accept thread, and a thread per connection that it joins at the end.
struct ThreadServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: thread::JoinHandle<Result<(), String>>,
}

impl ThreadServer {
    fn start() -> Result<ThreadServer, String> {
        let listener = TcpListener::bind(any_port()).map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopping);
        let acceptor = thread::Builder::new()
            .name("echo-accept".into())
            .spawn(move || {
                let mut conns = Vec::new();
                let mut result = Ok(());
                loop {
                    match listener.accept() {
                        Ok(_) if stop.load(Ordering::Acquire) => break,
                        Ok((s, _)) => {
                            let spawned = thread::Builder::new()
                                .name("echo-conn".into())
                                .spawn(move || blocking_conn(s));
                            match spawned {
                                Ok(h) => conns.push(h),
                                Err(e) => {
                                    result = Err(format!("cannot spawn a thread: {e}"));
                                    break;
                                }
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            result = Err(format!("accept: {e}"));
                            break;
                        }
                    }
                }
                // Each connection thread ends when its client closes, or after IO_WAIT idle.
                for h in conns {
                    if h.join().is_err() {
                        result = result.and(Err("a connection thread panicked".to_owned()));
                    }
                }
                result
            })
            .map_err(|e| format!("cannot spawn a thread: {e}"))?;
        Ok(ThreadServer {
            addr,
            stopping,
            acceptor,
        })
    }
}

/// One connection: echo until the client closes (any error also ends it).
fn blocking_conn(mut s: TcpStream) {
    if s.set_nodelay(true)
        .and_then(|()| s.set_read_timeout(Some(IO_WAIT)))
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; SERVER_BUF];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

impl Server for ThreadServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the stop flag and wakes the accept thread with a connection of its own, then joins it
    /// (it joins the connection threads).
    fn stop(self) -> Result<(), String> {
        self.stopping.store(true, Ordering::Release);
        // If the acceptor already ended on an error, nobody listens: that error is reported below.
        let _ = TcpStream::connect_timeout(&self.addr, STOP_WAIT);
        self.acceptor
            .join()
            .unwrap_or_else(|_| Err("the accept thread panicked".to_owned()))
    }
}

// ---------------------------------------------------------------------------------------------
// iocport

/// The iocport server is `iocport echo`'s own ([`crate::echo`]): one port, CPUs worker threads
/// calling `get`, accepts, recvs and sends through the port.
struct IocportServer(crate::echo::Server);

impl IocportServer {
    fn start(flavor: Flavor) -> Result<IocportServer, String> {
        Self::start_with(flavor, crate::echo::RecvMode::Own)
    }

    /// `iocport-provided`: the default flavor, receiving into provided buffers.
    fn provided() -> Result<IocportServer, String> {
        Self::start_with(Flavor::DEFAULT, crate::echo::RecvMode::Provided)
    }

    /// `iocport-multishot`: the default flavor, one multishot receive per connection.
    fn multishot() -> Result<IocportServer, String> {
        Self::start_with(Flavor::DEFAULT, crate::echo::RecvMode::Multishot)
    }

    fn start_with(flavor: Flavor, recv: crate::echo::RecvMode) -> Result<IocportServer, String> {
        let listener = TcpListener::bind(any_port()).map_err(|e| format!("bind: {e}"))?;
        let server =
            crate::echo::Server::start(listener, cpus(), flavor.mode, flavor.backend, None, recv)?;
        match super::check_backend(flavor.backend, server.backend()) {
            Ok(()) => Ok(IocportServer(server)),
            Err(e) => {
                let _ = server.stop();
                Err(e)
            }
        }
    }
}

impl Server for IocportServer {
    fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    fn stop(self) -> Result<(), String> {
        self.0.stop()
    }
}

// ---------------------------------------------------------------------------------------------
// iocport-c: examples/c/echo_server.c on the C library

/// How many AcceptEx the C server keeps posted (its default).
const C_ACCEPTS: usize = 64;

/// The source tree this binary was built from, which holds the install script and the C example.
/// Deliberately not [`super::project_root`] (the directory the run was started in): the C server
/// must match the library of this build.
fn source_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Builds the C server for the run: installs the library into `ROOT/target/capi` (which builds
/// it in release), then compiles the example against it into `ROOT/target/capi/echo_server`.
/// The error says why it could not be built; the system is then skipped.
fn build_c_server(root: &Path) -> Result<PathBuf, String> {
    let (cc, pkg_config) = c_tools()?;
    let script = root.join("scripts/install-capi.sh");
    if !script.is_file() {
        return Err(format!(
            "{} not found (the source tree this binary was built from is gone)",
            script.display()
        ));
    }
    let prefix = root.join("target/capi");
    run_tool(
        "scripts/install-capi.sh",
        Command::new("bash").arg(&script).arg(&prefix),
    )?;
    compile_c_server(root, &prefix, &cc, &pkg_config, &prefix.join("echo_server"))
}

/// `cc` and `pkg-config`, or which one is missing.
fn c_tools() -> Result<(PathBuf, PathBuf), String> {
    let cc = find_tool("cc", &[]).ok_or("cc not found (install gcc)")?;
    let pkg_config = find_tool("pkg-config", &[]).ok_or("pkg-config not found (install it)")?;
    Ok((cc, pkg_config))
}

/// Compiles `examples/c/echo_server.c` with `cc -O2` and `pkg-config --cflags --libs iocport`
/// of the library installed under `prefix`, with an rpath to it, into `out` (written under
/// another name first, then renamed, so that a server still running keeps its program).
fn compile_c_server(
    root: &Path,
    prefix: &Path,
    cc: &Path,
    pkg_config: &Path,
    out: &Path,
) -> Result<PathBuf, String> {
    let source = root.join("examples/c/echo_server.c");
    let libdir = prefix.join("lib");
    let flags = run_tool(
        "pkg-config",
        Command::new(pkg_config)
            .args(["--cflags", "--libs", "iocport"])
            .env("PKG_CONFIG_PATH", libdir.join("pkgconfig")),
    )?;
    let partial = out.with_extension(format!("tmp{}", std::process::id()));
    let mut rpath = std::ffi::OsString::from("-Wl,-rpath,");
    rpath.push(&libdir);
    let compiled = run_tool(
        "cc",
        Command::new(cc)
            .args(["-O2", "-std=c11"])
            .arg(&source)
            .arg("-o")
            .arg(&partial)
            .args(flags.split_whitespace())
            .arg(rpath),
    )
    .and_then(|_| {
        std::fs::rename(&partial, out).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                partial.display(),
                out.display()
            )
        })
    });
    if compiled.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    compiled.map(|()| out.to_path_buf())
}

/// Runs a build step to its end: its stdout, or an error with the end of what it printed.
fn run_tool(name: &str, cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(format!(
        "{name} failed ({}): {}",
        out.status,
        lines[lines.len().saturating_sub(5)..].join(" | ")
    ))
}

/// A server in a child process that prints `listening on 127.0.0.1:PORT` on stdout and stops when
/// its stdin closes: the C server (`echo_server 0 THREADS`), or one of this binary's own servers
/// alone in a process (`iocport bench-echo-server SYSTEM`, for `echo_conn4000`).
struct ChildServer {
    guard: Guard,
    /// The server's name in messages, e.g. `the C server`.
    name: String,
    /// Its process id (for its resident set).
    pid: u32,
    addr: SocketAddr,
    /// Its standard input: closing it stops the server.
    stdin: Option<ChildStdin>,
    /// The last lines it wrote to stderr.
    log: Arc<Mutex<Vec<String>>>,
}

impl ChildServer {
    /// The C server at `exe` with `threads` worker threads.
    fn c(exe: &Path, threads: usize) -> Result<ChildServer, String> {
        let mut cmd = Command::new(exe);
        cmd.arg("0").arg(threads.to_string());
        ChildServer::start("the C server", IOCPORT_C, cmd, |_| false)
    }

    /// `system`'s in-process server alone in a child process: this binary run again as
    /// `iocport bench-echo-server SYSTEM`.
    fn bench(system: &str) -> Result<ChildServer, String> {
        let mut cmd = Command::new(SELF_EXE);
        cmd.arg(CHILD_COMMAND).arg(system);
        ChildServer::start(&format!("the {system} server"), system, cmd, |_| false)
    }

    /// Starts `cmd` and waits (up to [`START_WAIT`]) for `listening on 127.0.0.1:PORT` as its
    /// first line on stdout, but for the lines before that `preamble` accepts (a test harness's
    /// own, when a test runs itself as the server). `name` is the server's in messages,
    /// `program` the process's.
    fn start(
        name: &str,
        program: &str,
        mut cmd: Command,
        preamble: fn(&str) -> bool,
    ) -> Result<ChildServer, String> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = Guard::spawn(program, &mut cmd)?;
        let child = guard
            .child()
            .ok_or_else(|| format!("{name} has no process"))?;
        let pid = child.id();
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return Err(format!("{name}'s output is not piped"));
        };
        // Both pipes are read to their end, so that they never fill: stderr's last lines are
        // kept, stdout's first line (after the preamble) is handed over.
        let log = Arc::new(Mutex::new(Vec::new()));
        {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    if log.len() >= 20 {
                        log.remove(0);
                    }
                    log.push(line);
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if !preamble(&line) {
                    let _ = tx.send(line);
                    break;
                }
            }
            lines.for_each(drop);
        });
        let line = match rx.recv_timeout(START_WAIT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "{name} printed no address within {START_WAIT:?}: {}",
                    log_tail(&log)
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = guard.wait(STOP_WAIT)?;
                // Let the reader store the last lines.
                thread::sleep(Duration::from_millis(20));
                return Err(format!(
                    "{name} exited ({status}) before listening: {}",
                    log_tail(&log)
                ));
            }
        };
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| format!("{name} printed {line:?}, not `listening on ADDR`"))?;
        Ok(ChildServer {
            guard,
            name: name.to_owned(),
            pid,
            addr,
            stdin,
            log,
        })
    }
}

/// The lines kept from a server's stderr, joined.
fn log_tail(log: &Mutex<Vec<String>>) -> String {
    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    if log.is_empty() {
        "(no output)".into()
    } else {
        log.join(" | ")
    }
}

impl Server for ChildServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes its stdin and waits up to [`STOP_WAIT`] for it to exit with 0 (the guard kills it
    /// otherwise). What it printed on stderr counts as failure too: the server is quiet unless
    /// something went wrong.
    fn stop(mut self) -> Result<(), String> {
        let name = &self.name;
        if let Some(status) = self.guard.try_wait()? {
            return Err(format!(
                "{name} exited ({status}) during the load: {}",
                log_tail(&self.log)
            ));
        }
        drop(self.stdin.take());
        let status = self.guard.wait(STOP_WAIT)?;
        // Let the thread that reads its stderr catch up with the last lines.
        thread::sleep(Duration::from_millis(20));
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match (status.success(), log.is_empty()) {
            (true, true) => Ok(()),
            (true, false) => Err(format!("{name} reported: {}", log.join(" | "))),
            (false, _) => Err(format!(
                "{name} exited with {status}: {}",
                log_tail(&self.log)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::IOCPORT_EPOLL;

    #[test]
    fn every_server_serves_the_load() {
        let t = Duration::from_millis(100);
        for conns in [1, 8] {
            for (system, flavor) in [
                ("iocport", Flavor::DEFAULT),
                ("iocport-epoll", Flavor::EPOLL),
            ] {
                let server =
                    IocportServer::start(flavor).unwrap_or_else(|e| panic!("{system}: {e}"));
                let v = round(server, conns, t).unwrap_or_else(|e| panic!("{system}: {e}"));
                assert!(v[0].1 > 0.0);
                let server = IocportServer::start_with(flavor, crate::echo::RecvMode::Provided)
                    .unwrap_or_else(|e| panic!("{system} provided: {e}"));
                let v = round(server, conns, t).unwrap_or_else(|e| panic!("{system}: {e}"));
                assert!(v[0].1 > 0.0, "{system} with provided buffers");
            }
            let v = round(TokioServer::start().unwrap(), conns, t).unwrap();
            assert!(v[0].1 > 0.0);
            let v = round(ThreadServer::start().unwrap(), conns, t).unwrap();
            assert!(v[0].1 > 0.0);
        }
    }

    /// The turns of `echo_conn4000` reach every connection, `IDLE_ACTIVE` at a time (with fewer
    /// connections than that and with more): the rotation ends only once each has had a whole
    /// turn, and it ends with every connection idle, no request half done.
    #[test]
    fn turns_go_round_every_connection() {
        let server = TokioServer::start().unwrap();
        for conns in [50, 300] {
            let mut poll = Poll::new().unwrap();
            let mut all = Vec::new();
            let limit = Instant::now() + IDLE_LIMIT;
            connect_idle(&poll, server.addr(), 10, &mut all).unwrap();
            let trips = rotate(&mut poll, &mut all, 0, 1, |covered| covered, limit).unwrap();
            assert!(trips >= 10, "{trips}");
            connect_idle(&poll, server.addr(), conns - 10, &mut all).unwrap();
            let trips = rotate(&mut poll, &mut all, 10, 1, |covered| covered, limit).unwrap();
            assert!(trips >= conns as u64 - 10, "{conns}: {trips}");
            let trips = rotate(&mut poll, &mut all, 0, 3, |covered| covered, limit).unwrap();
            assert!(trips >= 3 * conns as u64, "{conns}: {trips}");
            assert!(all.iter().all(|c| c.left == 0 && c.sent == 0 && c.got == 0));
        }
        server.stop().unwrap();
    }

    /// The environment variable that makes [`child_server_entry`] a server.
    const CHILD_ENV: &str = "IOCPORT_TEST_ECHO_CHILD";

    /// Not a test by itself: run again as a child process with [`CHILD_ENV`] set to a system, this
    /// test binary serves as `iocport bench-echo-server SYSTEM` does (the test binary has no
    /// `main` of the command). Without the variable it does nothing.
    #[test]
    fn child_server_entry() {
        if let Ok(system) = std::env::var(CHILD_ENV) {
            raise_nofile().unwrap();
            serve_child(&system).unwrap();
        }
    }

    /// `system`'s server in a child process: this test binary running [`child_server_entry`].
    fn test_child(system: &str) -> ChildServer {
        let mut cmd = Command::new(SELF_EXE);
        cmd.args([
            "--exact",
            "bench::echo::tests::child_server_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ENV, system);
        // What the test harness prints before the test runs: `running 1 test` and blank lines.
        let preamble = |line: &str| line.trim().is_empty() || line.starts_with("running ");
        ChildServer::start(&format!("the {system} server"), system, cmd, preamble)
            .unwrap_or_else(|e| panic!("{system}: {e}"))
    }

    /// `echo_conn4000`'s round with 200 connections against in-process servers run alone in a
    /// child process: round trips were served, and the memory per connection is positive and
    /// below 1 MiB (thread-per-conn: its stacks are mostly not resident).
    #[test]
    fn idle_connections_are_measured_in_a_child() {
        let conns = 200;
        assert!(raise_nofile().unwrap() >= conns as u64 + FD_MARGIN);
        for system in [IOCPORT, IOCPORT_EPOLL, TOKIO, THREADS] {
            let v = idle_round(test_child(system), conns, Duration::from_millis(200))
                .unwrap_or_else(|e| panic!("{system}: {e}"));
            let get = |metric: &str| v.iter().find(|(m, _)| *m == metric).unwrap().1;
            assert!(get("req_per_s") > 0.0, "{system}: {v:?}");
            let rss = get("rss_per_conn_bytes");
            assert!(rss > 0.0 && rss < (1 << 20) as f64, "{system}: {v:?}");
            eprintln!("{system}: {v:?}");
        }
    }

    /// The hidden subcommand's servers: an unknown system is refused before anything listens.
    #[test]
    fn the_child_knows_its_systems() {
        let e = serve_child("nginx").unwrap_err();
        assert!(e.contains("\"nginx\""), "{e}");
    }

    /// A directory of this test's own, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path = std::env::temp_dir().join(format!("iocport-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The C example, compiled afresh against the library installed in `target/capi` (by
    /// `iocport bench echo`, or `scripts/install-capi.sh target/capi`), serves the load on the
    /// backend its port picks (`IOCPORT_BACKEND` is inherited), and stops when its stdin closes.
    /// Building the library in release is the benchmark's work, not a unit test's: without the
    /// installed library, or without cc or pkg-config, this is skipped and says so.
    #[test]
    fn the_c_server_serves_the_load() {
        let root = source_root();
        let prefix = root.join("target/capi");
        // Read, not only looked for: a user who may not read it (scripts/unprivileged.sh's) skips.
        if std::fs::read(prefix.join("lib/pkgconfig/iocport.pc")).is_err() {
            eprintln!(
                "skipped: the C library is not installed in {} (run `scripts/install-capi.sh \
                 target/capi` or `iocport bench echo`)",
                prefix.display()
            );
            return;
        }
        let (cc, pkg_config) = match c_tools() {
            Ok(tools) => tools,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        let dir = TempDir::new("c-echo-test");
        let exe =
            compile_c_server(&root, &prefix, &cc, &pkg_config, &dir.0.join("echo_server")).unwrap();
        let t = Duration::from_millis(100);
        for conns in [1, 8] {
            let server = ChildServer::c(&exe, 2).unwrap();
            let v = round(server, conns, t).unwrap();
            assert!(v[0].1 > 0.0);
        }
    }

    /// Stand-ins for the C server: the handshake (the address read from stdout), the stop (stdin
    /// closed, exit 0), and servers that fail before listening, print nonsense, complain on
    /// stderr or exit badly.
    #[test]
    fn c_server_handshake_and_failures() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("c-echo-handshake");
        let script = |name: &str, body: &str| {
            let path = dir.0.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let good = script(
            "good",
            "[ \"$1 $2\" = \"0 3\" ] || exit 9\n\
             echo 'listening on 127.0.0.1:4321'\n\
             cat >/dev/null",
        );
        let server = ChildServer::c(&good, 3).unwrap();
        assert_eq!(server.addr(), SocketAddr::from((Ipv4Addr::LOCALHOST, 4321)));
        server.stop().unwrap();

        let failing = script("failing", "echo 'WSAStartup failed' >&2; exit 1");
        let e = ChildServer::c(&failing, 2).err().unwrap();
        assert!(
            e.contains("before listening") && e.contains("WSAStartup failed"),
            "{e}"
        );

        let nonsense = script("nonsense", "echo 'hello'; cat >/dev/null");
        let e = ChildServer::c(&nonsense, 2).err().unwrap();
        assert!(e.contains("\"hello\""), "{e}");

        let complaining = script(
            "complaining",
            "echo 'listening on 127.0.0.1:4322'; cat >/dev/null; \
             echo 'echo_server: WSASend failed: 10055' >&2",
        );
        let server = ChildServer::c(&complaining, 2).unwrap();
        let e = server.stop().unwrap_err();
        assert!(e.contains("WSASend failed: 10055"), "{e}");

        let crashing = script(
            "crashing",
            "echo 'listening on 127.0.0.1:4323'; cat >/dev/null; exit 3",
        );
        let server = ChildServer::c(&crashing, 2).unwrap();
        let e = server.stop().unwrap_err();
        assert!(e.contains("exited with"), "{e}");
    }
}
