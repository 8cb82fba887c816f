//! The `echo` suite: a TCP echo server under a ping-pong load on 127.0.0.1.
//!
//! Cases `echo_conn16` and `echo_conn128`: that many connections, each sending a [`MSG`]-byte
//! request and waiting for it to come back before sending the next, for [`RUNTIME`] (a sixth of it
//! with `--quick`). Metrics: completed round trips per second (`req_per_s`) and the 99th
//! percentile round-trip time (`rtt_p99_ns`).
//!
//! One load client drives every server: a single thread with `mio` (epoll, edge-triggered), so the
//! servers differ and nothing else does. Each server runs in this process on its own threads,
//! listens on an ephemeral port of 127.0.0.1, is started before its round's connections are made,
//! and is stopped, every thread joined, after the client has closed them. Servers echo whatever
//! they read, up to [`SERVER_BUF`] bytes at a time.
//!
//! - `iocport`: one port, CPUs worker threads calling `get`; accept operations on the listener,
//!   then recv and send operations per connection.
//! - `iocport-interrupted`, `iocport-sqpoll`: the same server in the other submission modes.
//! - `iocport-epoll`: the same server on the epoll backend, forced (`iocport echo --backend
//!   epoll`).
//! - `tokio`: the multi-thread runtime with CPUs workers, one task per connection
//!   (`read` then `write_all`).
//! - `thread-per-conn`: std's blocking `TcpStream`, one thread per connection.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::{
    cpus, epoll_note, percentile, run_case, Config, Contender, Flavor, Goal, Record, Report,
    Target, Values, IOCPORT_FLAVORS, IO_WAIT,
};

const SUITE: &str = "echo";
const TOKIO: &str = "tokio";
const THREADS: &str = "thread-per-conn";

/// The size of one request (and of its echo).
const MSG: usize = 128;
/// How much a server reads at most per call.
const SERVER_BUF: usize = crate::echo::BUF;
/// How long the load runs in one round (a sixth of it with `--quick`).
const RUNTIME: Duration = Duration::from_secs(3);
/// How long stopping a server may take.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Runs the suite.
pub(crate) fn run(cfg: &Config) -> Result<Report, String> {
    let mut report = Report::default();
    let runtime = if cfg.quick { RUNTIME / 6 } else { RUNTIME };
    for conns in [16, 128] {
        report.records.extend(echo_case(cfg, conns, runtime)?);
    }
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
    report.targets.push(Target {
        case: "echo_conn128",
        metric: "req_per_s",
        goal: Goal::AtLeastFactorOf {
            peer: TOKIO,
            factor: 1.0,
        },
    });
    Ok(report)
}

/// Case `echo_conn{conns}`.
fn echo_case(cfg: &Config, conns: usize, runtime: Duration) -> Result<Vec<Record>, String> {
    let mut contenders: Vec<Contender<'_>> = IOCPORT_FLAVORS
        .iter()
        .map(|&(system, flavor)| {
            Contender::new(system, move || {
                round(IocportServer::start(flavor)?, conns, runtime)
            })
        })
        .collect();
    contenders.push(Contender::new(TOKIO, move || {
        round(TokioServer::start()?, conns, runtime)
    }));
    contenders.push(Contender::new(THREADS, move || {
        round(ThreadServer::start()?, conns, runtime)
    }));
    run_case(cfg, SUITE, &format!("echo_conn{conns}"), contenders)
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

/// The load: `conns` connections to `addr`, each in a request/echo loop, for `runtime`. All
/// connections are made first; the clock starts when the first requests go out. The connections
/// are closed when this returns.
fn load(addr: SocketAddr, conns: usize, runtime: Duration) -> Result<Values, String> {
    let mut poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut all = Vec::with_capacity(conns);
    for i in 0..conns {
        let s = TcpStream::connect_timeout(&addr, IO_WAIT)
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        s.set_nodelay(true)
            .and_then(|()| s.set_nonblocking(true))
            .map_err(|e| format!("socket options: {e}"))?;
        let mut stream = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("epoll_ctl: {e}"))?;
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
        let listener = TcpListener::bind(any_port()).map_err(|e| format!("bind: {e}"))?;
        let server =
            crate::echo::Server::start(listener, cpus(), flavor.mode, flavor.backend, None)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
            }
            let v = round(TokioServer::start().unwrap(), conns, t).unwrap();
            assert!(v[0].1 > 0.0);
            let v = round(ThreadServer::start().unwrap(), conns, t).unwrap();
            assert!(v[0].1 > 0.0);
        }
    }
}
