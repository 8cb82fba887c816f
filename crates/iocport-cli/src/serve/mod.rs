//! `iocport serve DIR`: an HTTP/1.1 static file server on one completion port.
//!
//! # Design
//!
//! The server is written the way a Windows IOCP server is: one [`CompletionPort`] and N worker
//! threads that do nothing but take packets from it ([`get_many`](CompletionPort::get_many)) and
//! start the next operation. Everything that happens arrives as a packet:
//!
//! | operation in flight | value | on its packet |
//! | --- | --- | --- |
//! | [`ACCEPTS`] `accept`s on the listener | [`Op::Accept`] | a new connection; the accept is restarted |
//! | `recv` / `send` on a connection | [`Op::Recv`], [`Op::Send`] (the connection inside) | `conn.rs` |
//! | `read_at` on an associated file | [`Op::Read`] | the chunk is sent |
//! | `transmit_file` of a large file's body | [`Op::Transmit`] | the response is done |
//! | `shutdown`, lingering `recv` | [`Op::Shutdown`], [`Op::Linger`] | closing gracefully |
//! | one `read` (or `poll`) on the signalfd | [`Op::Signal`], [`Op::SignalReady`] | stop |
//! | one `timer` | [`Op::Sweep`] | cancel overdue operations (`idle.rs`) |
//!
//! A connection has one operation in flight at a time and lives inside that operation's value, so
//! the worker that gets the packet owns it without a lock (`conn.rs`). Packets that complete at
//! once on skip-on-success handles (sends that fit the socket buffer, reads of page-cached files)
//! are handled on the spot by the same worker, from a local list. All operations a worker starts
//! while handling one batch of packets are submitted with one system call
//! ([`batch`](CompletionPort::batch)).
//!
//! Files are opened beneath DIR only (`fs.rs`); small files' contents are cached and revalidated by
//! a `stat` per request; bodies of [`conn::TRANSMIT_MIN`] bytes or more go out with one
//! `transmit_file` (spliced or `sendfile`d, never copied through the server); other files are
//! streamed in chunks with `read_at` and `send` through the port. Response heads are written into the connection's reused output buffer (`http.rs`), and a
//! head and a small body leave in one send.
//!
//! Idle connections: a recv waiting for a request, or a send waiting for the client to read, that
//! is not done within `--idle-timeout` is cancelled by a sweep that runs on a timer packet; its
//! `ECANCELED` packet closes the connection (`idle.rs`).
//!
//! # Stopping
//!
//! SIGINT and SIGTERM are blocked before any thread starts and read from a signalfd associated
//! with the port (`crate::signal`). The worker that gets that packet tells the main thread, which
//! closes the port: [`close`](CompletionPort::close) cancels every operation in flight (accepts,
//! recvs, sends, reads, the timer) and hands their packets back, and dropping them closes every
//! connection and file. Every worker then gets [`GetError::Closed`] and returns; the main thread
//! joins them and the command exits with status 0.
//!
//! # Choices
//!
//! - A directory asked for without its trailing slash is redirected (301) to the slash form; a
//!   path ending in `/` serves that directory's `index.html` (404 if there is none; no listings).
//! - Paths that would leave DIR (`..`, `%2e%2e`, `%2f`, NUL, symlinks out) get 404, as a missing
//!   file does; a malformed percent escape gets 400; a file that may not be opened, 403.
//! - Limits: 8 KiB request target (414), 16 KiB or 64 fields of headers (431).
//! - A request with a body (Content-Length > 0, or Transfer-Encoding: chunked) is answered and the
//!   connection closed: the body is never read. Malformed requests: see below.
//! - Multiple byte ranges are answered with the whole file (200); If-Range is answered likewise,
//!   the server having no strong validators to compare.
//! - Files of up to 64 KiB are cached (`--cache-mb`, 64 MiB by default; 0 turns the cache off)
//!   once their ctime is a second old, and served from memory while a `stat` of the path shows the
//!   same device, inode, size, mtime and ctime (`fs.rs` explains why that cannot serve stale
//!   bytes).
//!
//! # Malformed requests
//!
//! Every rule of RFC 9112 on parsing a request that a server can check is enforced; a request that
//! breaks one is answered with 400 (501 where said), `Connection: close`, and the connection is
//! closed once the answer is sent, so that nothing after it (a smuggled request) is ever read as
//! a request (`http.rs`, whose tests and `tests/serve.rs` try each rule):
//!
//! - Request line (section 3): `method SP request-target SP HTTP-version`, exactly one SP each,
//!   the method a token, the version `HTTP/` DIGIT `.` DIGIT, case-sensitive (2.3); a well-formed
//!   version other than 1.0 and 1.1 gets 505. The target holds visible ASCII only: no whitespace,
//!   no control, no byte over 0x7E (3.2). Up to 8 empty lines before it are skipped (2.2).
//! - Line ends: CRLF, or a bare LF (2.2 allows it); a CR not followed by LF, anywhere, is a 400.
//! - Field lines (section 5): names are tokens; whitespace between a name and its colon (5.1),
//!   obsolete line folding (5.2) and whitespace before the first field (2.2) are refused; values
//!   hold no control character but HTAB (so no NUL, CR, LF, DEL; RFC 9110 section 5.5).
//! - Host (3.2): an HTTP/1.1 request without one, any request with two, or one whose value is not
//!   `uri-host [":" port]` (RFC 9110 section 7.2; IP literals checked, no userinfo) is a 400. HTTP/1.0
//!   needs none. A target in absolute form (`http://host/path`, 3.2.2) stands in for Host: its
//!   authority must be valid with a non-empty host (RFC 9110 section 4.2.1) and no userinfo; Host
//!   must still be sent (3.2), and the server, which serves one tree for every host, uses neither.
//! - Content-Length (6.3, RFC 9110 section 8.6): digits only (no sign, no space inside, at most 19
//!   digits). Repeated fields and lists are accepted when every value is the same (`5, 5` is 5, as
//!   RFC 9110 allows: the framing is not in doubt); different values are a 400.
//! - Transfer-Encoding (6.1, 6.3): with Content-Length, or in HTTP/1.0, a 400; chunked must be the
//!   last coding and appear once, without parameters (else 400); any other coding listed before it
//!   (`gzip, chunked`) is one the server does not implement: 501.

mod buf;
mod conn;
mod fs;
mod http;
mod idle;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use iocport::{CompletionPort, GetError, Handle, Interest, Packet, Started};

use crate::server::started;
use crate::signal;
use buf::{Buf, Pool};
use conn::Conn;
use fs::{Cache, Root};
use idle::Watches;

/// Completion key of the listener.
const LISTENER: usize = 0;
/// Completion key of connections.
const CONN: usize = 1;
/// Completion key of files being read.
const FILE: usize = 2;
/// Completion key of the signalfd.
const SIGNAL: usize = 3;
/// Completion key of the sweep timer.
const TIMER: usize = 4;

/// Accepts kept in flight on the listener.
const ACCEPTS: usize = 16;
/// The most packets a worker takes at once.
const BATCH: usize = 32;
/// The most operations a worker serves inline (completed at once, on skip-on-success handles)
/// following one packet from the port; the rest go to the back of the port's queue. Without a
/// bound, a fast reader of a page-cached file (read, send, read, ... each completing at once)
/// would keep its worker to itself.
const INLINE: usize = 16;
/// How long to wait before accepting again after running out of a resource (`EMFILE`).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// The largest file whose contents are cached.
const CACHE_FILE_MAX: u64 = 64 * 1024;
/// The most chunk buffers kept for reuse (of about 320 KiB each).
const CHUNKS_KEPT: usize = 256;
/// The most worker threads.
const MAX_THREADS: usize = 1024;

/// Arguments of `iocport serve`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The directory to serve.
    dir: PathBuf,
    /// The address to listen on; with port 0 the system picks a free port (it is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Worker threads calling `get` on the port (1 to 1024) [default: the number of CPUs].
    #[arg(long, value_name = "N")]
    threads: Option<String>,
    /// Close a connection that has not sent a complete request, or not taken a response, within
    /// this many seconds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "10")]
    idle_timeout: String,
    /// Memory for caching the contents of small files, in MiB (0: no cache).
    #[arg(long, value_name = "MIB", default_value = "64")]
    cache_mb: String,
    /// The I/O backend: io_uring, or the epoll fallback [default: $IOCPORT_BACKEND, else auto].
    #[arg(long, value_enum, value_name = "BACKEND")]
    backend: Option<crate::BackendArg>,
}

/// The arguments, checked.
struct Config {
    listen: SocketAddr,
    threads: usize,
    idle: Duration,
    cache_bytes: usize,
}

impl Config {
    fn new(args: &Args) -> Result<Config, String> {
        let listen = args
            .listen
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| format!("--listen: '{}' is not an address (HOST:PORT)", args.listen))?;
        let threads = match &args.threads {
            None => thread::available_parallelism().map_or(1, |n| n.get()),
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_THREADS).contains(n))
                .ok_or_else(|| {
                    format!("--threads: expected a number from 1 to {MAX_THREADS}, got '{s}'")
                })?,
        };
        let idle = args
            .idle_timeout
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.001 && *s <= 1e6)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                format!(
                    "--idle-timeout: expected seconds from 0.001 to 1000000, got '{}'",
                    args.idle_timeout
                )
            })?;
        let cache_bytes = args
            .cache_mb
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 1 << 20)
            .ok_or_else(|| {
                format!(
                    "--cache-mb: expected MiB from 0 to 1048576, got '{}'",
                    args.cache_mb
                )
            })?
            << 20;
        Ok(Config {
            listen,
            threads,
            idle,
            cache_bytes,
        })
    }
}

/// What an operation of the server is; the packet's value.
enum Op {
    /// An accept on the listener.
    Accept,
    /// The timer after an accept failed for lack of a resource: accept again.
    AcceptLater,
    /// A recv on a connection.
    Recv(Box<Conn>),
    /// A send on a connection.
    Send(Box<Conn>),
    /// A read of a file chunk for a connection.
    Read(Box<Conn>),
    /// A file body sent with `transmit_file` for a connection.
    Transmit(Box<Conn>),
    /// The shutdown of a closing connection's write side.
    Shutdown(Box<Conn>),
    /// A recv on a closing connection, discarding what arrives.
    Linger(Box<Conn>),
    /// A read of the signalfd.
    Signal,
    /// The signalfd became readable.
    SignalReady,
    /// The idle sweep timer.
    Sweep,
}

/// The port of the server.
type Port = CompletionPort<Op, Buf>;
/// Packets that completed at once, to be handled by the worker that started them.
type Ready = Vec<Packet<Op, Buf>>;

/// Why the server stops: a stop signal (`Ok`, its name), or a failure (`Err`, the message).
type Stop = Result<&'static str, String>;

/// What every worker and connection shares.
struct Shared {
    port: Port,
    listener: Handle<Op, Buf>,
    signals: Handle<Op, Buf>,
    root: Root,
    cache: Cache,
    /// Output buffers large enough for a file chunk behind a full pipeline of responses.
    chunks: Pool,
    watches: Watches,
    /// The idle timeout.
    idle: Duration,
    /// How often overdue operations are looked for.
    sweep_every: Duration,
    /// An accept error has been reported (once is enough).
    accept_warned: AtomicBool,
    /// Why the server stops, once it does: a signal (`Ok`) or a failure (`Err`).
    stop: Mutex<Option<Stop>>,
    stopped: Condvar,
}

impl Shared {
    fn stop_lock(&self) -> MutexGuard<'_, Option<Stop>> {
        self.stop.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the main thread to stop the server (the first reason wins).
    fn request_stop(&self, why: Stop) {
        let mut stop = self.stop_lock();
        if stop.is_none() {
            *stop = Some(why);
            self.stopped.notify_all();
        }
    }

    /// Waits for [`request_stop`](Self::request_stop).
    fn wait_stop(&self) -> Stop {
        let mut stop = self.stop_lock();
        loop {
            if let Some(why) = stop.take() {
                return why;
            }
            stop = self.stopped.wait(stop).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Runs `iocport serve`.
pub(crate) fn main(args: Args) -> Result<(), String> {
    let config = Config::new(&args)?;
    let root = Root::open(&args.dir)?;
    // Before any thread exists, so that every thread inherits the blocked signals.
    let signals =
        signal::stop_signals().map_err(|e| format!("cannot set up SIGINT and SIGTERM: {e}"))?;
    let listener = TcpListener::bind(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let port = crate::with_backend(iocport::Builder::new(), args.backend.map(Into::into))
        .concurrency(config.threads)
        .build::<Op, Buf>()
        .map_err(|e| format!("cannot create the completion port: {e}"))?;
    let setup = |port: &Port| -> Result<Arc<Shared>, String> {
        let listener = port
            .associate(listener, LISTENER)
            .map_err(|e| format!("cannot associate the listener: {e}"))?;
        let signals = port
            .associate(signals, SIGNAL)
            .map_err(|e| format!("cannot associate the signalfd: {e}"))?;
        Ok(Arc::new(Shared {
            port: port.clone(),
            listener,
            signals,
            root,
            cache: Cache::new(config.cache_bytes, CACHE_FILE_MAX),
            chunks: Pool::new(conn::CHUNK + 64 * 1024, CHUNKS_KEPT),
            watches: Watches::default(),
            idle: config.idle,
            sweep_every: (config.idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)),
            accept_warned: AtomicBool::new(false),
            stop: Mutex::new(None),
            stopped: Condvar::new(),
        }))
    };
    let shared = match setup(&port) {
        Ok(s) => s,
        Err(e) => {
            port.close();
            return Err(e);
        }
    };
    let mut ready = Vec::new();
    let started = (0..ACCEPTS)
        .try_for_each(|_| started(shared.listener.accept(Op::Accept), &mut ready))
        .and_then(|()| start_signal_read(&shared, &mut ready))
        .and_then(|()| start_sweep(&shared));
    if let Err(e) = started {
        drop(shared.port.close());
        return Err(e);
    }
    eprintln!(
        "iocport serve: serving {} on http://{addr} with {} thread{}",
        shared.root.path().display(),
        config.threads,
        if config.threads == 1 { "" } else { "s" }
    );
    let mut workers = Vec::with_capacity(config.threads);
    for i in 0..config.threads {
        let mine = Arc::clone(&shared);
        let ready = std::mem::take(&mut ready);
        let spawned = thread::Builder::new()
            .name(format!("serve-{i}"))
            .spawn(move || worker(&mine, ready));
        match spawned {
            Ok(w) => workers.push(w),
            Err(e) => {
                shared.request_stop(Err(format!("cannot start worker thread {i}: {e}")));
                break;
            }
        }
    }
    let stop = shared.wait_stop();
    if let Ok(why) = &stop {
        eprintln!(
            "iocport serve: {why}; stopping ({} connections open)",
            shared.watches.len()
        );
    }
    // Cancels everything in flight; dropping the packets handed back closes every connection.
    drop(shared.port.close());
    let mut panicked = 0;
    for w in workers {
        if w.join().is_err() {
            panicked += 1;
        }
    }
    if panicked > 0 {
        return Err(format!("serve: {panicked} worker threads panicked"));
    }
    stop.map(drop)
}

/// Asks the main thread to stop the server if the worker it guards unwinds.
struct PanicGuard<'a>(&'a Shared);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0
                .request_stop(Err("serve: a worker thread panicked".into()));
        }
    }
}

/// A worker: takes packets until the port closes; handles `ready` (packets that completed when
/// the server started) first.
fn worker(shared: &Arc<Shared>, mut got: Ready) {
    let _guard = PanicGuard(shared);
    let port = &shared.port;
    let mut ready = Vec::new();
    got.reserve(BATCH);
    loop {
        // The operations started while handling these packets go to the kernel together.
        port.batch(|| {
            for packet in got.drain(..) {
                let mut inline = 0;
                dispatch(shared, packet, &mut ready);
                while let Some(packet) = ready.pop() {
                    if inline == INLINE {
                        // Its turn comes again after the packets queued meanwhile. On a closed
                        // port it is handed back, and dropping it closes its connection.
                        drop(port.post_packet(packet));
                        continue;
                    }
                    inline += 1;
                    dispatch(shared, packet, &mut ready);
                }
            }
        });
        match port.get_many(&mut got, BATCH, None) {
            Ok(_) | Err(GetError::TimedOut) => {}
            Err(GetError::Closed) => return,
        }
    }
}

/// Handles one packet.
fn dispatch(shared: &Arc<Shared>, mut packet: Packet<Op, Buf>, ready: &mut Ready) {
    let r = packet.result();
    let buf = packet.take_buf();
    let socket = packet.take_socket();
    match packet.value {
        Op::Accept => {
            match r {
                Ok(_) => {
                    if let Some(socket) = socket {
                        Conn::open(shared, socket, ready);
                    }
                }
                Err(e) => match e.raw_os_error() {
                    // The port is closing.
                    Some(libc::ECANCELED) => return,
                    // The connection went away before it was accepted, or a transient error.
                    Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM) => {}
                    // Out of fds or memory: accepting again at once would fail at once again.
                    _ => {
                        if !shared.accept_warned.swap(true, Ordering::Relaxed) {
                            eprintln!("iocport serve: accept: {e} (retrying)");
                        }
                        let r = shared.port.timer(ACCEPT_RETRY, LISTENER, Op::AcceptLater);
                        report(started(r.map(Started::Pending), ready));
                        return;
                    }
                },
            }
            report(started(shared.listener.accept(Op::Accept), ready));
        }
        Op::AcceptLater => report(started(shared.listener.accept(Op::Accept), ready)),
        Op::Recv(conn) => conn.on_recv(r, buf, ready),
        Op::Send(conn) => conn.on_send(r, buf, ready),
        Op::Read(conn) => conn.on_read(r, buf, ready),
        Op::Transmit(conn) => conn.on_transmit(r, ready),
        Op::Shutdown(conn) => conn.on_shutdown(r, ready),
        Op::Linger(conn) => conn.on_linger(r, buf, ready),
        Op::Signal => match r {
            Ok(n) => {
                let mut buf = buf.unwrap_or_default();
                buf.filled(n);
                let why = match signal::signal_number(buf.content()).map(|n| n as i32) {
                    Some(libc::SIGINT) => "SIGINT received",
                    Some(libc::SIGTERM) => "SIGTERM received",
                    _ => "stop signal received",
                };
                shared.request_stop(Ok(why));
            }
            // No signal yet (a kernel that does not wait on the fd): wait for it to be readable.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                let r = shared.signals.poll(Interest::READABLE, Op::SignalReady);
                report(started(r, ready));
            }
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {}
            // Without the signalfd nothing could stop the server but SIGKILL: stop now.
            Err(e) => shared.request_stop(Err(format!("reading the signalfd: {e}"))),
        },
        Op::SignalReady => match r {
            Ok(_) => report(start_signal_read(shared, ready)),
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {}
            Err(e) => shared.request_stop(Err(format!("waiting on the signalfd: {e}"))),
        },
        Op::Sweep => {
            let mut overdue = Vec::new();
            shared.watches.overdue(Instant::now(), &mut overdue);
            for id in overdue {
                // `NotFound`: it completed meanwhile, which is fine.
                let _ = shared.port.cancel(id);
            }
            report(start_sweep(shared));
        }
    }
}

/// Prints why a server operation could not be restarted (the server goes on without it).
fn report(r: Result<(), String>) {
    if let Err(e) = r {
        eprintln!("iocport serve: {e}");
    }
}

/// Starts the read of the signalfd.
fn start_signal_read(shared: &Shared, ready: &mut Ready) -> Result<(), String> {
    let mut buf = Buf::with_size(signal::SIGINFO_SIZE);
    buf.window_tail(signal::SIGINFO_SIZE);
    started(shared.signals.read(buf, Op::Signal), ready)
}

/// Starts the next sweep timer.
fn start_sweep(shared: &Shared) -> Result<(), String> {
    match shared.port.timer(shared.sweep_every, TIMER, Op::Sweep) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.error, iocport::Error::Closed) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
