//! One HTTP connection: a state machine that moves from worker to worker with its operations.
//!
//! A connection has at most one operation in flight, and the boxed [`Conn`] travels *inside* that
//! operation's value ([`Op::Recv`], [`Op::Send`], [`Op::Read`], [`Op::Shutdown`], [`Op::Linger`]).
//! Whichever worker gets the packet owns the connection outright until it starts the next
//! operation, so no lock guards connection state, and no thread ever waits for one connection.
//!
//! ```text
//!            accept
//!              |
//!              v         complete head(s): respond, append to `out`
//!     +----> RECV -------------------------------------------+
//!     |        ^ partial head: recv more                     |
//!     |        |                                             v
//!     |      (parse) <---- sent all, body done ----------- SEND <--+ partial send: send the rest
//!     |        |                                             |     |
//!     |        |  file body to stream                        +-----+
//!     |        +------------> READ (chunk into `out`'s tail) ---> SEND ---> READ ... (until done)
//!     |
//!     +-- `Connection: close`, HTTP/1.0, error that loses framing:
//!           SEND the rest ---> SHUTDOWN (write side) ---> LINGER (recv and discard until EOF or
//!           a short deadline, so that unread input cannot turn the close into a reset that
//!           destroys the response before the client reads it) ---> closed
//! ```
//!
//! Pipelined requests: every complete head in the input is answered in order, and the responses
//! go out together in one send (up to [`FLUSH`] bytes). A response whose body comes from a file
//! that is not cached stops the parsing: its first chunk is read right behind its header in the
//! output buffer (headers and body leave in one send), later chunks of [`CHUNK`] bytes each are
//! read and sent in turn, and then parsing resumes with the input left over. Output buffers large
//! enough for a chunk come from a shared pool and go back to it when the body is done, so an idle
//! connection holds a few KiB and a busy one never zero-fills a fresh chunk buffer.
//!
//! A failed or cancelled operation (the idle sweep cancels overdue ones, see `idle.rs`), a recv of
//! end-of-stream, or a port that is closing, all end the same way: the connection is dropped, which
//! closes the socket and unregisters it. (Should the kernel report a cancelled send's partial
//! progress instead, the rest is sent under a new deadline.)

use std::io;
use std::mem;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use iocport::{Handle, Started};

use super::buf::Buf;
use super::fs::{self, Cached, FileId, Found};
use super::http::{self, HttpDate, Method, Parsed, Persist, Range, Request, Status};
use super::idle::Watch;
use super::{Op, Ready, Shared, CONN, FILE};

/// Input buffer size of a new connection; it grows (doubling) up to [`IN_MAX`] for a long head.
const IN_START: usize = 4 * 1024;
/// The most input a connection buffers: one request head at the limits of `http.rs`.
const IN_MAX: usize = http::MAX_HEAD;
/// Output buffer size of a new connection.
const OUT_START: usize = 8 * 1024;
/// An output buffer larger than this (after streaming a file) is given back when it empties.
const OUT_KEEP: usize = 64 * 1024;
/// Pipelined responses are sent once this many bytes of them have piled up.
const FLUSH: usize = 32 * 1024;
/// A file body is read and sent in chunks of this size.
pub(super) const CHUNK: usize = 256 * 1024;
/// A body of at least this many bytes that is not being cached goes out with one `transmit_file`
/// after its head (sent with `MSG_MORE`), instead of read and sent in chunks: no copy through the
/// server, one packet. Smaller ones are read behind their head and leave in one send, which costs
/// less than a head send and the transmission's splices.
pub(super) const TRANSMIT_MIN: u64 = 64 * 1024;
/// The most one `transmit_file` sends: a larger body goes in several, each under its own idle
/// deadline, so a client must take 1 MiB per `--idle-timeout` (the chunked path: 256 KiB).
const TRANSMIT_PIECE: u32 = 1024 * 1024;
/// The longest a closing connection waits for its peer to finish sending.
const LINGER: Duration = Duration::from_secs(2);

/// What a connection does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Receive more input.
    Recv,
    /// Send the output buffer (from `sent` on).
    Send,
    /// Read the next chunk of the file body into the output buffer.
    Read,
    /// Send the rest of the file body with `transmit_file` (the output buffer is sent).
    Transmit,
    /// Shut the write side down, then linger.
    Shutdown,
    /// Receive and discard until end-of-stream or the deadline.
    Linger,
    /// Drop the connection.
    Close,
}

/// A file body being streamed.
struct Body {
    /// The file: associated with the port (read in chunks), or not (transmitted).
    file: Source,
    /// The next offset to read.
    next: u64,
    /// Where the body ends (exclusive).
    end: u64,
    /// Cache the file once its one chunk has been read.
    fill: Option<Fill>,
}

/// Where a body's bytes come from.
enum Source {
    /// Read in chunks through the port into the output buffer, then sent.
    Read(Arc<Handle<Op, Buf>>),
    /// Sent from the file by `transmit_file`.
    Transmit(Arc<std::fs::File>),
}

/// What caching a file read whole needs.
struct Fill {
    /// The relative path.
    key: Box<[u8]>,
    /// The version opened; it must still be the file's after the read.
    id: FileId,
    /// Its Content-Type.
    mime: &'static str,
    /// Its Last-Modified.
    modified: HttpDate,
    /// Where in the output buffer the body starts.
    at: usize,
}

/// One connection and everything it owns. See the module docs for the states.
pub(super) struct Conn {
    /// The server.
    shared: Arc<Shared>,
    /// The socket, associated with the port.
    sock: Arc<Handle<Op, Buf>>,
    /// Its slot in the idle registry.
    slot: usize,
    /// Its entry there.
    watch: Arc<Watch>,
    /// Operations started so far (orders the arming of `watch`).
    seq: u64,
    /// Received bytes.
    inb: Buf,
    /// The bytes of `inb` whose requests have been answered.
    parsed: usize,
    /// Responses not yet sent.
    out: Buf,
    /// The bytes of `out` sent already.
    sent: usize,
    /// The file body of the last response in `out`, if it is still being streamed.
    body: Option<Body>,
    /// Close once `out` has been sent.
    closing: bool,
    /// When the request being waited for (or the lingering) is overdue.
    deadline: Instant,
    /// Scratch: the decoded path of the current request.
    path: Vec<u8>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.watches.remove(self.slot);
    }
}

impl Conn {
    /// Takes over an accepted socket: associates it with the port and starts receiving.
    pub(super) fn open(shared: &Arc<Shared>, socket: OwnedFd, ready: &mut Ready) {
        let stream = TcpStream::from(socket);
        // Responses leave in whole sends; Nagle's algorithm would only delay their last segment.
        let _ = stream.set_nodelay(true);
        let Ok(sock) = shared.port.associate(stream, CONN) else {
            // The port is closing (or the fd table is in a state no retry fixes): drop it.
            return;
        };
        // Responses nearly always fit in the socket buffer: a send completes in the worker at
        // once, with no packet. Receives go straight to the ring (they would usually find nothing).
        sock.set_skip_on_success_writes(true);
        let (slot, watch) = shared.watches.insert();
        let conn = Box::new(Conn {
            shared: Arc::clone(shared),
            sock: Arc::new(sock),
            slot,
            watch,
            seq: 0,
            inb: Buf::with_size(IN_START),
            parsed: 0,
            out: Buf::with_size(OUT_START),
            sent: 0,
            body: None,
            closing: false,
            deadline: Instant::now() + shared.idle,
            path: Vec::new(),
        });
        conn.run(Step::Recv, ready);
    }

    /// A recv completed.
    pub(super) fn on_recv(
        mut self: Box<Self>,
        r: io::Result<usize>,
        buf: Option<Buf>,
        ready: &mut Ready,
    ) {
        let step = match (r, buf) {
            (Ok(n), Some(buf)) if n > 0 => {
                self.inb = buf;
                self.inb.filled(n);
                self.advance()
            }
            // End of stream, an error, or cancelled by the idle sweep.
            _ => Step::Close,
        };
        self.run(step, ready);
    }

    /// A send completed.
    pub(super) fn on_send(
        mut self: Box<Self>,
        r: io::Result<usize>,
        buf: Option<Buf>,
        ready: &mut Ready,
    ) {
        let step = match (r, buf) {
            (Ok(n), Some(buf)) if n > 0 => {
                self.out = buf;
                self.sent += n;
                if self.sent < self.out.used() {
                    Step::Send
                } else {
                    self.out.clear();
                    self.sent = 0;
                    self.advance()
                }
            }
            _ => Step::Close,
        };
        self.run(step, ready);
    }

    /// A read of a file chunk completed.
    pub(super) fn on_read(
        mut self: Box<Self>,
        r: io::Result<usize>,
        buf: Option<Buf>,
        ready: &mut Ready,
    ) {
        let Some(buf) = buf else {
            return;
        };
        self.out = buf;
        let step = match (r, self.body.as_mut()) {
            (Ok(n), Some(body)) if n > 0 => {
                self.out.filled(n);
                body.next += n as u64;
                if let (Some(fill), Source::Read(file)) = (body.fill.take(), &body.file) {
                    if body.next == body.end {
                        fill_cache(&self.shared, file, fill, &self.out);
                    }
                }
                Step::Send
            }
            _ => {
                // A read error, or the file shrank under us: the promised Content-Length cannot
                // be kept. Send what there is and close; the client sees a short body.
                self.out.filled(0);
                self.body = None;
                self.closing = true;
                self.advance()
            }
        };
        self.run(step, ready);
    }

    /// A `transmit_file` of the body completed.
    pub(super) fn on_transmit(mut self: Box<Self>, r: io::Result<usize>, ready: &mut Ready) {
        let step = match (r, self.body.as_mut()) {
            (Ok(n), Some(body))
                if n as u64 == (body.end - body.next).min(TRANSMIT_PIECE.into()) =>
            {
                body.next += n as u64;
                self.advance()
            }
            // Cancelled (idle), the peer gone, or the file shrank under us (the promised
            // Content-Length cannot be kept): close.
            _ => Step::Close,
        };
        self.run(step, ready);
    }

    /// The shutdown of the write side completed.
    pub(super) fn on_shutdown(mut self: Box<Self>, r: io::Result<usize>, ready: &mut Ready) {
        let step = if r.is_ok() {
            self.deadline = Instant::now() + self.shared.idle.min(LINGER);
            Step::Linger
        } else {
            Step::Close
        };
        self.run(step, ready);
    }

    /// A recv while lingering completed.
    pub(super) fn on_linger(
        mut self: Box<Self>,
        r: io::Result<usize>,
        buf: Option<Buf>,
        ready: &mut Ready,
    ) {
        let step = match (r, buf) {
            (Ok(n), Some(buf)) if n > 0 => {
                self.inb = buf;
                Step::Linger
            }
            _ => Step::Close,
        };
        self.run(step, ready);
    }

    /// Answers what can be answered from the input and says what to do next.
    fn advance(&mut self) -> Step {
        loop {
            if let Some(body) = &self.body {
                if body.next < body.end {
                    return match body.file {
                        Source::Read(_) => Step::Read,
                        // The head (and the responses before it) first.
                        Source::Transmit(_) if self.out.used() > self.sent => Step::Send,
                        Source::Transmit(_) => Step::Transmit,
                    };
                }
                self.body = None;
                if self.out.used() == 0 && self.out.size() > OUT_KEEP {
                    // Give the chunk buffer back: an idle connection keeps a small one.
                    let chunk = self.out.swap_storage(vec![0; OUT_START]);
                    self.shared.chunks.give(chunk);
                }
            }
            if self.closing {
                return if self.out.used() > self.sent {
                    Step::Send
                } else {
                    Step::Shutdown
                };
            }
            if self.out.used() >= FLUSH {
                return Step::Send;
            }
            match http::parse(&self.inb.content()[self.parsed..]) {
                Parsed::Complete { req, len } => {
                    let reply = respond(&req, &mut self.out, &mut self.path, &self.shared);
                    self.parsed += len;
                    self.body = reply.body;
                    self.closing = reply.close;
                }
                Parsed::Partial => {
                    if self.out.used() > 0 {
                        return Step::Send;
                    }
                    // Requests were answered: whatever is left is the start of a new one, and
                    // the idle clock starts now (not when the answered ones arrived).
                    let answered = self.parsed > 0;
                    self.inb.consume(self.parsed);
                    self.parsed = 0;
                    if answered || self.inb.used() == 0 {
                        self.deadline = Instant::now() + self.shared.idle;
                    }
                    if self.inb.used() == 0 {
                        self.inb.shrink_if_over(IN_START, IN_START);
                    } else if self.inb.used() == self.inb.size() {
                        if self.inb.size() >= IN_MAX {
                            // `http::parse` rules on any head this long; this is a safety net.
                            http::error(
                                &mut self.out,
                                Status::HeadersTooLarge,
                                false,
                                Persist::Close,
                                &[],
                            );
                            self.closing = true;
                            continue;
                        }
                        self.inb.grow_to((self.inb.size() * 2).min(IN_MAX));
                    }
                    return Step::Recv;
                }
                Parsed::Invalid(status) => {
                    http::error(&mut self.out, status, false, Persist::Close, &[]);
                    self.closing = true;
                }
            }
        }
    }

    /// Starts the operation for `step`, with the connection inside its value. A packet that is
    /// there at once (skip-on-success) goes to `ready`; if the operation cannot start (the port is
    /// closing) the connection comes back in the error and is dropped with it.
    fn run(mut self: Box<Self>, step: Step, ready: &mut Ready) {
        self.seq += 1;
        let seq = self.seq;
        let watch = Arc::clone(&self.watch);
        let (started, deadline) = match step {
            Step::Close => return,
            Step::Recv | Step::Linger => {
                let mut buf = mem::take(&mut self.inb);
                if step == Step::Linger {
                    buf.clear();
                }
                if buf.used() == buf.size() {
                    buf.grow_to(buf.size().max(IN_START));
                }
                buf.window_tail(buf.size() - buf.used());
                let sock = Arc::clone(&self.sock);
                let deadline = self.deadline;
                let op = if step == Step::Linger {
                    Op::Linger(self)
                } else {
                    Op::Recv(self)
                };
                (sock.recv(buf, 0, op), Some(deadline))
            }
            Step::Send => {
                let mut buf = mem::take(&mut self.out);
                buf.window_content(self.sent);
                let sock = Arc::clone(&self.sock);
                let deadline = Instant::now() + self.shared.idle;
                // A body transmitted next: the head waits for it (MSG_MORE) so that they leave in
                // full segments.
                let more = match &self.body {
                    Some(b) if matches!(b.file, Source::Transmit(_)) && b.next < b.end => {
                        libc::MSG_MORE
                    }
                    _ => 0,
                };
                // MSG_WAITALL: a send the socket buffer cannot take at once is finished by the
                // kernel (io_uring retries it as the peer reads), not handed back short for us to
                // restart: one packet per chunk (measured: about 15% more 1 MiB responses per
                // second). The first, synchronous try (skip-on-success) still never waits.
                (
                    sock.send(buf, libc::MSG_WAITALL | more, Op::Send(self)),
                    Some(deadline),
                )
            }
            Step::Transmit => {
                let Some(Body {
                    file: Source::Transmit(file),
                    next,
                    end,
                    ..
                }) = &self.body
                else {
                    return;
                };
                let (file, offset) = (Arc::clone(file), *next);
                let len =
                    u32::try_from(end - next).map_or(TRANSMIT_PIECE, |n| n.min(TRANSMIT_PIECE));
                let sock = Arc::clone(&self.sock);
                let deadline = Instant::now() + self.shared.idle;
                (
                    sock.transmit_file(file, offset, len, Op::Transmit(self)),
                    Some(deadline),
                )
            }
            Step::Read => {
                let Some(
                    body @ Body {
                        file: Source::Read(file),
                        ..
                    },
                ) = &self.body
                else {
                    return;
                };
                let file = Arc::clone(file);
                let offset = body.next;
                let n = usize::try_from(body.end - body.next).map_or(CHUNK, |n| n.min(CHUNK));
                let pool = &self.shared.chunks;
                if self.out.used() + n > self.out.size() && self.out.used() + n <= pool.size() {
                    // A chunk buffer from the pool instead of growing (and zero-filling) this one.
                    drop(self.out.swap_storage(pool.take()));
                }
                let mut buf = mem::take(&mut self.out);
                buf.window_tail(n);
                (file.read_at(buf, offset, Op::Read(self)), None)
            }
            Step::Shutdown => {
                let sock = Arc::clone(&self.sock);
                (sock.shutdown(Shutdown::Write, Op::Shutdown(self)), None)
            }
        };
        match started {
            Ok(Started::Pending(id)) => {
                if let Some(deadline) = deadline {
                    watch.arm(seq, id, deadline);
                }
            }
            Ok(Started::Done(packet)) => ready.push(packet),
            // Handed back: the connection (in the value) and its buffer are dropped here.
            Err(e) => drop(e),
        }
    }
}

/// Caches a file just read whole into `out` (from `fill.at`), if it is still the version opened.
fn fill_cache(shared: &Shared, file: &Handle<Op, Buf>, fill: Fill, out: &Buf) {
    if fs::fstat(file.as_fd()).is_ok_and(|id| id == fill.id) {
        let end = fill.at + usize::try_from(fill.id.size).unwrap_or(usize::MAX);
        if let Some(body) = out.content().get(fill.at..end) {
            let entry = Cached {
                id: fill.id,
                body: body.into(),
                mime: fill.mime,
                modified: fill.modified,
            };
            shared.cache.insert(&fill.key, entry);
        }
    }
}

/// What answering one request leaves to do.
struct Reply {
    /// A file body to stream after the head just written.
    body: Option<Body>,
    /// Close the connection after this response.
    close: bool,
}

impl Reply {
    fn done(persist: Persist) -> Reply {
        Reply {
            body: None,
            close: persist == Persist::Close,
        }
    }
}

/// Appends an error response; errors that lose the request framing close the connection.
fn fail(out: &mut Buf, status: Status, head_only: bool, persist: Persist) -> Reply {
    let persist = if status.closes() {
        Persist::Close
    } else {
        persist
    };
    http::error(out, status, head_only, persist, &[]);
    Reply::done(persist)
}

/// Answers one request: appends its response (or, for a file body to stream, its head) to `out`.
fn respond(req: &Request<'_>, out: &mut Buf, path: &mut Vec<u8>, shared: &Shared) -> Reply {
    let head_only = req.method == Method::Head;
    let persist = req.persist;
    if req.method == Method::Other {
        http::error(
            out,
            Status::MethodNotAllowed,
            false,
            persist,
            &[(b"Allow", b"GET, HEAD")],
        );
        return Reply::done(persist);
    }
    let decoded = match fs::decode(req.target, path) {
        Ok(d) => d,
        Err(status) => return fail(out, status, head_only, persist),
    };
    // `path` holds the relative path and a NUL.
    let rel = &path[..path.len() - 1];
    match fs::lookup(&shared.root, &shared.cache, path) {
        Found::Error(status) => fail(out, status, head_only, persist),
        Found::Dir if decoded.index => fail(out, Status::NotFound, head_only, persist),
        Found::Dir => {
            // A directory without its trailing slash: send the client to the slash form, so that
            // relative links in its index resolve inside it.
            let mut location = Vec::with_capacity(rel.len() + 8);
            location.push(b'/');
            fs::push_encoded(&mut location, rel);
            location.push(b'/');
            location.extend_from_slice(&req.target[decoded.query_at..]);
            http::error(
                out,
                Status::MovedPermanently,
                head_only,
                persist,
                &[(b"Location", &location)],
            );
            Reply::done(persist)
        }
        Found::Cached(entry) => {
            let size = entry.body.len() as u64;
            let plan = plan(req, size, entry.id.mtime.0);
            if let Some((start, len)) = file_head(
                out,
                head_only,
                plan,
                size,
                entry.mime,
                &entry.modified,
                persist,
            ) {
                if !head_only {
                    // Both fit in usize: they are within a cached body.
                    let (start, len) = (start as usize, len as usize);
                    out.push(&entry.body[start..start + len]);
                }
            }
            Reply::done(persist)
        }
        Found::File(file, id) => {
            let plan = plan(req, id.size, id.mtime.0);
            let streams = !head_only && matches!(plan, Plan::Whole | Plan::Part(..)) && id.size > 0;
            let caches =
                plan == Plan::Whole && shared.cache.takes(id.size) && id.settled(SystemTime::now());
            let body_len = match plan {
                Plan::Part(first, last) => last - first + 1,
                _ => id.size,
            };
            let file = if !streams {
                None
            } else if !caches && body_len >= TRANSMIT_MIN {
                Some(Source::Transmit(Arc::new(file)))
            } else {
                match shared.port.associate(file, FILE) {
                    Ok(h) => {
                        // Page-cached reads then complete in the worker at once, with no packet.
                        h.set_skip_on_success(true);
                        Some(Source::Read(Arc::new(h)))
                    }
                    Err(_) => return fail(out, Status::InternalError, head_only, persist),
                }
            };
            let mime = fs::mime_type(rel);
            let modified = id.last_modified();
            let range = file_head(out, head_only, plan, id.size, mime, &modified, persist);
            let body = match (file, range) {
                (Some(file), Some((start, len))) if len > 0 => {
                    let fill = (caches && matches!(file, Source::Read(_))).then(|| Fill {
                        key: rel.into(),
                        id,
                        mime,
                        modified,
                        at: out.used(),
                    });
                    Some(Body {
                        file,
                        next: start,
                        end: start + len,
                        fill,
                    })
                }
                _ => None,
            };
            Reply {
                body,
                close: persist == Persist::Close,
            }
        }
    }
}

/// How to answer a request for a file of a given size and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// 304.
    NotModified,
    /// 200 with the whole file.
    Whole,
    /// 206 with bytes `first..=last`.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Evaluates If-Modified-Since, then Range (RFC 9110 section 13.2.2 order).
fn plan(req: &Request<'_>, size: u64, mtime_secs: i64) -> Plan {
    if let Some(since) = req.if_modified_since {
        if !req.if_none_match && http::not_modified_since(since, mtime_secs) {
            return Plan::NotModified;
        }
    }
    match req.range {
        // Range applies to GET only (RFC 9110 section 14.2): HEAD describes the whole file.
        Some(r) if !req.if_range && req.method == Method::Get => match http::range(r, size) {
            Range::Full => Plan::Whole,
            Range::Part(first, last) => Plan::Part(first, last),
            Range::Unsatisfiable => Plan::Unsatisfiable,
        },
        _ => Plan::Whole,
    }
}

/// Appends the response head for `plan` (for 416, the whole response) and returns the byte range
/// of the file its body is: `(start, len)`, or `None` for no body.
fn file_head(
    out: &mut Buf,
    head_only: bool,
    plan: Plan,
    size: u64,
    mime: &str,
    modified: &HttpDate,
    persist: Persist,
) -> Option<(u64, u64)> {
    let (status, start, len) = match plan {
        Plan::NotModified => {
            http::start_head(out, Status::NotModified);
            http::header(out, b"Last-Modified", modified);
            http::end_head(out, persist);
            return None;
        }
        Plan::Unsatisfiable => {
            let mut value = Buf::with_size(32);
            value.push(b"bytes */");
            http::push_u64(&mut value, size);
            http::error(
                out,
                Status::RangeNotSatisfiable,
                head_only,
                persist,
                &[(b"Content-Range", value.content())],
            );
            return None;
        }
        Plan::Whole => (Status::Ok, 0, size),
        Plan::Part(first, last) => (Status::PartialContent, first, last - first + 1),
    };
    http::start_head(out, status);
    http::header(out, b"Content-Type", mime.as_bytes());
    out.push(b"Content-Length: ");
    http::push_u64(out, len);
    out.push(b"\r\n");
    if let Plan::Part(first, last) = plan {
        out.push(b"Content-Range: bytes ");
        http::push_u64(out, first);
        out.push(b"-");
        http::push_u64(out, last);
        out.push(b"/");
        http::push_u64(out, size);
        out.push(b"\r\n");
    }
    http::header(out, b"Last-Modified", modified);
    out.push(b"Accept-Ranges: bytes\r\n");
    http::end_head(out, persist);
    Some((start, len))
}
