//! `iocport echo`: a TCP echo server written as a Windows IOCP server is, on the public API of
//! `iocport` alone.
//!
//! One port, `--threads` worker threads calling `get_many` on it, and the concurrency value equal to the
//! number of threads. [`ACCEPTS`] accepts are kept pending on the listener; an accepted socket is
//! associated with the port and gets a recv; the data of a recv goes back with a send, and the
//! completion of the send starts the next recv. Every operation carries its [`Op`], which holds the
//! handle it runs on: a connection's handle lives as long as one of its operations does, so the
//! socket closes when the last one ends (a recv that reads end-of-stream, or a failed send). No
//! worker ever blocks on one connection.
//!
//! Stopping: `iocport echo` blocks SIGINT and SIGTERM and keeps a read pending on a signalfd
//! associated with the port ([`crate::signal`]). The worker that gets that read's packet closes the
//! port: the accepts and every recv and send in flight are cancelled, their packets (buffers and
//! handles) come back to `close` and are dropped, every worker wakes with "closed" and returns, and
//! the process exits 0.
//!
//! The `echo` benchmark suite runs this same [`Server`], in-process, against tokio and a thread per
//! connection.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use iocport::{CompletionPort, GetError, Handle, Packet, Started};

use crate::server::started;
use crate::signal;

/// Arguments of `iocport echo`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7007")]
    listen: SocketAddr,
    /// Worker threads calling `get` on the port; also the port's concurrency value. 0: one per CPU.
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Who submits operations to the kernel (see `iocport::SubmitMode`).
    #[arg(long, value_enum, default_value = "caller")]
    submit: Submit,
    /// The I/O backend: io_uring, or the epoll fallback [default: $IOCPORT_BACKEND, else auto].
    #[arg(long, value_enum, value_name = "BACKEND")]
    backend: Option<crate::BackendArg>,
    /// Where a connection's receive buffer comes from.
    #[arg(long, value_enum, default_value = "own")]
    recv: RecvMode,
}

/// `--recv`: where a pending receive's buffer comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RecvMode {
    /// Each connection's receive has its own 4 KiB buffer while it waits.
    #[default]
    Own,
    /// Receives take a buffer from the port's provided buffers only when data arrives
    /// (`recv_provided`): a waiting connection holds none.
    Provided,
    /// One receive per connection that stays armed (`recv_multishot_with`), each message in a
    /// provided buffer: no receive is started per message. Messages are numbered, and each
    /// connection's echoes go out in their order, one send at a time, whichever worker got them.
    /// `own` where the kernel has no multishot receive (before Linux 6.0).
    Multishot,
}

impl RecvMode {
    /// Whether receives take provided buffers.
    fn provided(self) -> bool {
        self != RecvMode::Own
    }
}

/// `--submit`: [`iocport::SubmitMode`] on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Submit {
    /// Each worker submits what it starts; completions finish on its next kernel entry.
    Caller,
    /// As `caller`, and the kernel interrupts a busy worker to finish a completion at once.
    CallerInterrupted,
    /// The kernel's submission thread (SQPOLL) owns every operation.
    KernelThread,
}

impl From<Submit> for iocport::SubmitMode {
    fn from(s: Submit) -> Self {
        match s {
            Submit::Caller => iocport::SubmitMode::Caller,
            Submit::CallerInterrupted => iocport::SubmitMode::CallerInterrupted,
            Submit::KernelThread => iocport::SubmitMode::KernelThread,
        }
    }
}

/// Runs `iocport echo` until SIGINT or SIGTERM.
pub(crate) fn main(args: Args) -> Result<(), String> {
    // Before any thread exists, so that every thread has the stop signals blocked.
    let stop =
        signal::stop_signals().map_err(|e| format!("cannot set up the stop signals: {e}"))?;
    let listener = TcpListener::bind(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let threads = threads_or_cpus(args.threads);
    let server = Server::start(
        listener,
        threads,
        args.submit.into(),
        args.backend.map(Into::into),
        Some(stop),
        args.recv,
    )?;
    let backend = server
        .backend()
        .map_or_else(String::new, |b| format!(" on {}", b.backend));
    eprintln!(
        "iocport echo: listening on {} with {threads} threads{backend} (Ctrl-C stops)",
        server.addr()
    );
    server.wait()
}

/// `n`, or the number of CPUs when `n` is 0.
pub(crate) fn threads_or_cpus(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Bytes a connection reads at a time, and echoes back.
pub(crate) const BUF: usize = 4096;
/// Completion key of the listener.
const LISTENER: usize = 0;
/// Completion key of the connections.
const CONN: usize = 1;
/// Completion key of the signalfd.
const SIGNAL: usize = 2;
/// Accepts kept pending on the listener.
const ACCEPTS: usize = 4;
/// How long an accept that failed for want of descriptors or memory waits before it is retried.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
/// Provided buffers the port starts with (`--recv provided`), and how many more it is given each
/// time a receive finds none, up to the port's 4,096.
const PROVIDED_START: usize = 256;
const PROVIDED_MORE: usize = 64;

/// Packets a worker takes at once (`get_many`): the recvs and sends it starts while serving them
/// are submitted with one system call.
const BATCH: usize = 32;

/// What an operation of the server is, with the handle it runs on: the worker that gets its packet
/// starts the next operation on that handle.
pub(crate) enum Op {
    /// An accept on the listener.
    Accept(Arc<Handle<Op>>),
    /// A timer after an accept failed for want of descriptors or memory: accept again then.
    AcceptLater(Arc<Handle<Op>>),
    /// A recv on a connection (into its own buffer, or a provided one).
    Recv(Arc<Handle<Op>>),
    /// A send of the echo on a connection.
    Send(Arc<Handle<Op>>),
    /// `--recv multishot`: a connection's receive, whose messages are numbered from the second
    /// field on (its own packet is its last).
    Msgs(Arc<Conn>, u64),
    /// `--recv multishot`: one message, and its number.
    Msg(Arc<Conn>, u64),
    /// `--recv multishot`: the send of a message's echo.
    Sent(Arc<Conn>),
    /// The read on the signalfd: its packet means "stop".
    Stop,
}

/// A connection served by a multishot receive (`--recv multishot`). Its messages are numbered
/// as they are received, and their echoes go out in that order, one send at a time: two workers
/// may each take one of its messages at once.
pub(crate) struct Conn {
    h: Handle<Op>,
    /// Messages numbered so far (the next one's number), written as each message's packet is
    /// made: when a receive's last packet arrives, every message it received is numbered below.
    numbered: AtomicU64,
    order: Mutex<Order>,
}

/// Which echo goes out next on a [`Conn`].
#[derive(Default)]
struct Order {
    /// The number of the next message to send.
    next: u64,
    /// A send is in flight.
    sending: bool,
    /// Messages that came before their turn.
    waiting: BTreeMap<u64, Vec<u8>>,
}

/// The value of a multishot receive's packet: its message's number.
fn number(op: &Op, n: u64) -> Op {
    match op {
        Op::Msgs(conn, first) => {
            conn.numbered.store(first + n + 1, Ordering::Relaxed);
            Op::Msg(Arc::clone(conn), first + n)
        }
        // Only `Msgs` starts a multishot receive.
        _ => Op::Stop,
    }
}

/// Starts a connection's multishot receive, numbering its messages from `first`.
fn receive_numbered(port: &CompletionPort<Op>, conn: &Arc<Conn>, first: u64) -> Result<(), String> {
    match conn
        .h
        .recv_multishot_with(0, Op::Msgs(Arc::clone(conn), first), number)
    {
        Ok(_) => Ok(()),
        Err(e) if port.is_closed() || matches!(e.error, iocport::Error::Closed) => Ok(()),
        Err(e) => Err(format!("recv_multishot: {e}")),
    }
}

/// Sends message `buf` of `conn` if it is its turn and no send is in flight; else keeps it for
/// its turn.
fn echo_in_order(
    conn: &Arc<Conn>,
    n: u64,
    buf: Vec<u8>,
    ready: &mut Vec<Packet<Op>>,
) -> Result<(), String> {
    {
        let mut order = lock(&conn.order);
        if order.sending || n != order.next {
            order.waiting.insert(n, buf);
            return Ok(());
        }
        order.sending = true;
        order.next += 1;
    }
    started(conn.h.send(buf, 0, Op::Sent(Arc::clone(conn))), ready)
}

/// A send of `conn` is done: sends the next message if it has come.
fn echo_next(conn: &Arc<Conn>, ready: &mut Vec<Packet<Op>>) -> Result<(), String> {
    let buf = {
        let mut order = lock(&conn.order);
        let next = order.next;
        match order.waiting.remove(&next) {
            Some(buf) => {
                order.next += 1;
                buf
            }
            None => {
                order.sending = false;
                return Ok(());
            }
        }
    };
    started(conn.h.send(buf, 0, Op::Sent(Arc::clone(conn))), ready)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running echo server: its port, its address and its worker threads.
pub(crate) struct Server {
    port: CompletionPort<Op>,
    recv: RecvMode,
    addr: SocketAddr,
    workers: Vec<thread::JoinHandle<Result<(), String>>>,
    /// The signalfd's handle, kept while its read is pending.
    signals: Option<Handle<Op>>,
}

impl Server {
    /// Serves `listener` with `threads` workers, submitting in `mode`, on `backend` when one is
    /// given (else on the port's default choice). With `stop` (a signalfd, see [`crate::signal`])
    /// the server stops by itself when a stop signal arrives; without, [`stop`](Self::stop) stops
    /// it. Receive buffers come from `recv`.
    pub(crate) fn start(
        listener: TcpListener,
        threads: usize,
        mode: iocport::SubmitMode,
        backend: Option<iocport::BackendChoice>,
        stop: Option<OwnedFd>,
        recv: RecvMode,
    ) -> Result<Server, String> {
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the listener's address: {e}"))?;
        let port = crate::with_backend(iocport::Builder::new(), backend)
            .concurrency(threads)
            .submit_mode(mode)
            .build::<Op, Vec<u8>>()
            .map_err(|e| format!("cannot create the completion port: {e}"))?;
        // Where the kernel has no multishot receive (before Linux 6.0): one receive per message.
        let recv = match recv {
            RecvMode::Multishot if !multishot(&port) => RecvMode::Own,
            r => r,
        };
        if recv.provided() {
            provide(&port, PROVIDED_START)?;
        }
        let mut server = Server {
            port,
            recv,
            addr,
            workers: Vec::new(),
            signals: None,
        };
        match server.spawn(listener, threads, stop) {
            Ok(()) => Ok(server),
            Err(e) => {
                let _ = server.stop();
                Err(e)
            }
        }
    }

    /// Starts the first operations, then the workers.
    fn spawn(
        &mut self,
        listener: TcpListener,
        threads: usize,
        stop: Option<OwnedFd>,
    ) -> Result<(), String> {
        let port = &self.port;
        let mut ready = Vec::new();
        if let Some(fd) = stop {
            let h = port
                .associate(fd, SIGNAL)
                .map_err(|e| format!("cannot associate the signalfd: {e}"))?;
            started(h.read(vec![0; signal::SIGINFO_SIZE], Op::Stop), &mut ready)?;
            self.signals = Some(h);
        }
        let lh = Arc::new(
            port.associate(listener, LISTENER)
                .map_err(|e| format!("cannot associate the listener: {e}"))?,
        );
        for _ in 0..ACCEPTS {
            started(lh.accept(Op::Accept(Arc::clone(&lh))), &mut ready)?;
        }
        let recv = self.recv;
        for _ in 0..threads {
            let port = port.clone();
            let mut ready = std::mem::take(&mut ready);
            let h = thread::Builder::new()
                .name("iocport-echo".into())
                .spawn(move || worker(&port, recv, &mut ready))
                .map_err(|e| format!("cannot spawn a worker thread: {e}"))?;
            self.workers.push(h);
        }
        Ok(())
    }

    /// The address the server listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The backend the server's port runs on, and why.
    pub(crate) fn backend(&self) -> Option<iocport::BackendInfo> {
        self.port.backend()
    }

    /// Waits until the workers have returned (after a stop signal), then reports the first error.
    pub(crate) fn wait(self) -> Result<(), String> {
        let mut result = Ok(());
        for h in self.workers {
            let r = h
                .join()
                .unwrap_or_else(|_| Err("a worker thread panicked".to_owned()));
            result = result.and(r);
        }
        // Whatever was still queued when a worker failed goes with the port.
        drop(self.port.close());
        result
    }

    /// Closes the port (which cancels the accepts and everything else in flight and wakes every
    /// worker), drops the packets it hands back (and with them the handles), joins the workers.
    pub(crate) fn stop(self) -> Result<(), String> {
        drop(self.port.close());
        self.wait()
    }
}

/// A worker: takes packets (those in `ready` first) until the port closes.
fn worker(
    port: &CompletionPort<Op>,
    recv: RecvMode,
    ready: &mut Vec<Packet<Op>>,
) -> Result<(), String> {
    loop {
        // The operations started while serving these packets go to the kernel together.
        let served = port.batch(|| {
            while let Some(p) = ready.pop() {
                on_packet(port, recv, p, ready)?;
            }
            Ok(())
        });
        if let Err(e) = served {
            drop(port.close());
            return Err(e);
        }
        match port.get_many(ready, BATCH, None) {
            Ok(_) | Err(GetError::TimedOut) => {}
            Err(GetError::Closed) => return Ok(()),
        }
    }
}

/// Serves one packet. A connection whose recv hit end-of-stream or an error, or whose send failed,
/// is dropped; errors of the listener other than an aborted connection end the server.
fn on_packet(
    port: &CompletionPort<Op>,
    recv: RecvMode,
    mut p: Packet<Op>,
    ready: &mut Vec<Packet<Op>>,
) -> Result<(), String> {
    let status = p.status;
    match (p.take_buf(), p.take_socket(), p.value) {
        (_, _, Op::Stop) => {
            drop(port.close());
            Ok(())
        }
        // Expired, or cancelled by `close` (then the accept is refused as "closed" and dropped).
        (_, _, Op::AcceptLater(listener)) => {
            started(listener.accept(Op::Accept(Arc::clone(&listener))), ready)
        }
        (_, socket, Op::Accept(listener)) => {
            if let Some(e) = status.error() {
                if port.is_closed() || e.raw_os_error() == Some(libc::ECANCELED) {
                    return Ok(());
                }
                match e.raw_os_error() {
                    // The connection went away before it was accepted, or a transient error
                    // accept(2) says to retry: accept again at once.
                    Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM) => {}
                    // Out of descriptors or memory: accepting again at once would fail at once
                    // again, so wait a little, through the port.
                    _ => {
                        let later = Op::AcceptLater(Arc::clone(&listener));
                        let r = port.timer(ACCEPT_RETRY, LISTENER, later);
                        return started(r.map(Started::Pending), ready);
                    }
                }
            } else {
                let socket = socket.ok_or("an accept packet without a socket")?;
                connection(port, recv, socket, ready)?;
            }
            started(listener.accept(Op::Accept(Arc::clone(&listener))), ready)
        }
        (buf, _, Op::Recv(h)) => {
            if status.errno() == Some(libc::ENOBUFS) && recv.provided() {
                // The port ran out of provided buffers: give it more, and receive again.
                provide(port, PROVIDED_MORE)?;
                return receive(recv, &h, ready);
            }
            if status.error().is_some() || p.bytes == 0 {
                if let Some(buf) = buf.filter(|_| recv.provided()) {
                    give_back(port, buf);
                }
                return Ok(());
            }
            let mut buf = buf.ok_or("a recv packet without its buffer")?;
            buf.truncate(p.bytes);
            started(h.send(buf, 0, Op::Send(Arc::clone(&h))), ready)
        }
        (buf, _, Op::Msg(conn, n)) => {
            // A message: success and bytes, always.
            let mut buf = buf.ok_or("a multishot packet without its buffer")?;
            buf.truncate(p.bytes);
            echo_in_order(&conn, n, buf, ready)
        }
        (buf, _, Op::Msgs(conn, _)) => {
            // The receive's last packet: every message it received is numbered below
            // `numbered`.
            if let Some(buf) = buf {
                give_back(port, buf);
            }
            if status.errno() == Some(libc::ENOBUFS) {
                provide(port, PROVIDED_MORE)?;
                let first = conn.numbered.load(Ordering::Relaxed);
                return receive_numbered(port, &conn, first);
            }
            // End of stream, an error, or the port closing: the connection closes once its
            // last echo is sent.
            Ok(())
        }
        (buf, _, Op::Sent(conn)) => {
            if status.error().is_some() {
                // The peer is gone: end the receive too (its last packet lets the handle go).
                let _ = conn.h.cancel_all();
                return Ok(());
            }
            let mut buf = buf.ok_or("a send packet without its buffer")?;
            if p.bytes < buf.len() {
                buf.drain(..p.bytes);
                return started(conn.h.send(buf, 0, Op::Sent(Arc::clone(&conn))), ready);
            }
            give_back(port, buf);
            echo_next(&conn, ready)
        }
        (buf, _, Op::Send(h)) => {
            if status.error().is_some() {
                return Ok(());
            }
            let mut buf = buf.ok_or("a send packet without its buffer")?;
            if p.bytes < buf.len() {
                buf.drain(..p.bytes);
                return started(h.send(buf, 0, Op::Send(Arc::clone(&h))), ready);
            }
            match recv {
                RecvMode::Own => {
                    buf.resize(BUF, 0);
                    started(h.recv(buf, 0, Op::Recv(Arc::clone(&h))), ready)
                }
                RecvMode::Provided => {
                    give_back(port, buf);
                    started(h.recv_provided(0, Op::Recv(Arc::clone(&h))), ready)
                }
                // Its sends are `Sent`.
                RecvMode::Multishot => Err("a multishot connection's send as `Send`".into()),
            }
        }
    }
}

/// Starts a connection's one-shot receive: into a provided buffer (`Provided`), or its own
/// buffer for `Own`.
fn receive(recv: RecvMode, h: &Arc<Handle<Op>>, ready: &mut Vec<Packet<Op>>) -> Result<(), String> {
    let op = Op::Recv(Arc::clone(h));
    match recv {
        RecvMode::Own => started(h.recv(vec![0; BUF], 0, op), ready),
        RecvMode::Provided => started(h.recv_provided(0, op), ready),
        RecvMode::Multishot => Err("a multishot connection's receive as `Recv`".into()),
    }
}

/// Whether the port's backend has multishot receives (the epoll backend always does).
fn multishot(port: &CompletionPort<Op>) -> bool {
    let epoll = port
        .backend()
        .is_some_and(|b| b.backend == iocport::Backend::Epoll);
    epoll
        || port.features().is_some_and(|f| {
            f.iter()
                .any(|f| f.name == "IORING_RECV_MULTISHOT" && f.available)
        })
}

/// Gives the port `n` more buffers for `recv_provided` (fewer if it holds its 4,096).
fn provide(port: &CompletionPort<Op>, n: usize) -> Result<(), String> {
    for _ in 0..n {
        match port.provide_buffer(vec![0; BUF]) {
            Ok(()) => {}
            // Full: the receives that found none will find one once sends give theirs back.
            Err((iocport::Error::InvalidArgument { .. }, _)) => break,
            Err((iocport::Error::Closed, _)) => break,
            Err((e, _)) => return Err(format!("provide receive buffers: {e}")),
        }
    }
    Ok(())
}

/// Gives a provided buffer back to the port once its echo is sent (or its connection is done).
fn give_back(port: &CompletionPort<Op>, mut buf: Vec<u8>) {
    buf.resize(BUF, 0);
    // A port that is closing or full lets it go.
    let _ = port.provide_buffer(buf);
}

/// Associates an accepted socket and starts its first recv.
fn connection(
    port: &CompletionPort<Op>,
    recv: RecvMode,
    socket: OwnedFd,
    ready: &mut Vec<Packet<Op>>,
) -> Result<(), String> {
    let stream = TcpStream::from(socket);
    // Small echoes go out at once rather than waiting for Nagle's timer.
    let _ = stream.set_nodelay(true);
    match port.associate(stream, CONN) {
        Ok(h) => {
            // An echo nearly always fits in the socket buffer: a send that completes at once skips
            // the port.
            h.set_skip_on_success_writes(true);
            if recv == RecvMode::Multishot {
                let conn = Arc::new(Conn {
                    h,
                    numbered: AtomicU64::new(0),
                    order: Mutex::default(),
                });
                return receive_numbered(port, &conn, 0);
            }
            receive(recv, &Arc::new(h), ready)
        }
        Err(iocport::Error::Closed) => Ok(()),
        Err(e) => Err(format!("associate a connection: {e}")),
    }
}
