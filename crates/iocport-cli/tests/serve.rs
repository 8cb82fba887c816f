//! `iocport serve`: the real binary against a temporary directory, with ureq, raw sockets and (when
//! installed) curl as clients.
//!
//! Every server is started on `127.0.0.1:0` and its address read from its startup line; every
//! server is stopped with SIGINT (or SIGTERM) and must exit with status 0. A [`Server`] that a
//! failing test leaves behind is killed when it is dropped, and every socket has timeouts, so no
//! test can hang or leave a process running.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// How long any single step (startup, a response, an exit) may take.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "iocport-serve-{name}-{}-{}-{nanos}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create the temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` (creating parent directories) with `contents`.
    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&path, contents).expect("write a file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bytes that are not all the same, so that misplaced chunks show.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A running `iocport serve`; killed on drop if it is still running.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Stderr lines after the startup line.
    stderr: mpsc::Receiver<String>,
}

/// The binary under test.
fn iocport() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iocport"))
}

impl Server {
    /// Serves `dir` with the extra arguments `args`.
    fn start(dir: &Path, args: &[&str]) -> Server {
        let mut cmd = iocport();
        cmd.arg("serve")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start iocport serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let mut stderr = std::io::BufReader::new(stderr);
            loop {
                text.clear();
                match std::io::BufRead::read_line(&mut stderr, &mut text) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if tx.send(text.trim_end().to_owned()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut server = Server {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stderr: rx,
        };
        let line = server
            .stderr
            .recv_timeout(WAIT)
            .expect("the server prints its startup line");
        assert!(
            line.starts_with("iocport serve: serving "),
            "startup line: {line}"
        );
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("an address in the startup line");
        server.addr = addr.parse().expect("a socket address");
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends `signal` and waits for the exit.
    fn signal(mut self, signal: i32) -> ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill only sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server with SIGINT (Ctrl-C) and checks it exits with status 0.
    fn stop(self) {
        let status = self.signal(libc::SIGINT);
        assert!(status.success(), "exit status after SIGINT: {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A ureq agent with timeouts.
fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(WAIT).build()
}

/// GET with ureq: status, Content-Type and body, whatever the status.
fn get(url: &str) -> (u16, String, Vec<u8>) {
    let resp = match agent().get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let ctype = resp.header("Content-Type").unwrap_or("").to_owned();
    let mut body = Vec::new();
    resp.into_reader()
        .read_to_end(&mut body)
        .expect("read the body");
    (status, ctype, body)
}

/// A connection with timeouts.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    s.set_write_timeout(Some(WAIT)).expect("write timeout");
    s
}

/// A parsed response.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> usize {
        self.header("Content-Length")
            .expect("a Content-Length")
            .parse()
            .expect("a number")
    }
}

/// Reads one response from `s`; `pending` keeps bytes read past it. The body is read by
/// Content-Length, except for HEAD requests and 304.
fn read_response(s: &mut TcpStream, pending: &mut Vec<u8>, head: bool) -> Response {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = r.parse(pending).expect("a valid response") {
            let status = r.code.expect("a status");
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let mut resp = Response {
                status,
                headers,
                body: Vec::new(),
            };
            pending.drain(..len);
            let body_len = if head || status == 304 {
                0
            } else {
                resp.content_length()
            };
            while pending.len() < body_len {
                let n = s.read(&mut chunk).expect("read a body");
                assert!(n > 0, "end of stream inside a body");
                pending.extend_from_slice(&chunk[..n]);
            }
            resp.body = pending.drain(..body_len).collect();
            return resp;
        }
        let n = s.read(&mut chunk).expect("read a response");
        assert!(n > 0, "end of stream before a response");
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `request` on a new connection and reads one response.
fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = connect(addr);
    s.write_all(request).expect("send a request");
    read_response(&mut s, &mut Vec::new(), request.starts_with(b"HEAD"))
}

/// Reads until end of stream; panics if it does not come within the read timeout.
fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
            Err(e) => panic!("waiting for the server to close: {e}"),
        }
    }
}

fn request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// The usual test tree: small files, a 1.5 MiB file, an index, a subdirectory.
fn site(name: &str) -> (TempDir, Vec<u8>) {
    let dir = TempDir::new(name);
    let www = dir.path();
    std::fs::create_dir(www.join("www")).expect("mkdir");
    let big = pattern(1_500_000 + 123, 7);
    dir.file("www/hello.txt", b"hello, world\n");
    dir.file("www/big.bin", &big);
    dir.file("www/index.html", b"<h1>home</h1>\n");
    dir.file("www/sub/index.html", b"<h1>sub</h1>\n");
    dir.file("www/style.css", b"body {}\n");
    dir.file("www/with space.txt", b"spaced\n");
    dir.file("www/empty.txt", b"");
    (dir, big)
}

fn www(dir: &TempDir) -> PathBuf {
    dir.path().join("www")
}

// ---------------------------------------------------------------------------------------------
// Serving files

#[test]
fn get_returns_files_with_type_and_length() {
    let (dir, big) = site("get");
    let server = Server::start(&www(&dir), &[]);

    let (status, ctype, body) = get(&server.url("/hello.txt"));
    assert_eq!(
        (status, ctype.as_str(), &body[..]),
        (200, "text/plain", &b"hello, world\n"[..])
    );
    let (status, ctype, body) = get(&server.url("/big.bin"));
    assert_eq!((status, ctype.as_str()), (200, "application/octet-stream"));
    assert!(
        body == big,
        "the 1.5 MiB body differs ({} bytes)",
        body.len()
    );
    let (_, ctype, _) = get(&server.url("/style.css"));
    assert_eq!(ctype, "text/css");
    let (status, _, body) = get(&server.url("/with%20space.txt"));
    assert_eq!((status, &body[..]), (200, &b"spaced\n"[..]));
    let (status, _, body) = get(&server.url("/empty.txt"));
    assert_eq!((status, body.len()), (200, 0));

    let resp = exchange(server.addr, &request("/hello.txt"));
    assert_eq!(resp.content_length(), 13);
    assert!(resp
        .header("Last-Modified")
        .is_some_and(|v| v.ends_with(" GMT")));
    assert!(resp.header("Date").is_some());
    server.stop();
}

#[test]
fn head_sends_no_body() {
    let (dir, big) = site("head");
    let server = Server::start(&www(&dir), &[]);
    let mut s = connect(server.addr);
    // HEAD, then GET on the same connection: if HEAD sent a body, the GET's response would be
    // parsed from it and fail.
    s.write_all(
        b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .expect("send");
    let mut pending = Vec::new();
    let head = read_response(&mut s, &mut pending, true);
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), big.len());
    let next = read_response(&mut s, &mut pending, false);
    assert_eq!(next.body, b"hello, world\n");
    assert!(
        pending.is_empty(),
        "extra bytes after the responses: {pending:?}"
    );

    let resp = agent()
        .head(&server.url("/hello.txt"))
        .call()
        .expect("HEAD");
    assert_eq!(resp.header("Content-Length"), Some("13"));
    server.stop();
}

// Catches: Range honoured on HEAD (RFC 9110 section 14.2: only GET), which gave 206 or 416.
#[test]
fn head_ignores_range() {
    let (dir, big) = site("head-range");
    let server = Server::start(&www(&dir), &[]);
    for range in ["bytes=0-9", "bytes=99999999-"] {
        let req = format!("HEAD /big.bin HTTP/1.1\r\nHost: t\r\nRange: {range}\r\n\r\n");
        let mut s = connect(server.addr);
        s.write_all(req.as_bytes()).expect("send");
        let head = read_response(&mut s, &mut Vec::new(), true);
        assert_eq!(head.status, 200, "{range}");
        assert_eq!(head.content_length(), big.len(), "{range}");
    }
    server.stop();
}

// Catches: a worker panic (and the whole server stopping) on a file dated before 1970, which an
// HTTP date cannot express.
#[test]
fn files_dated_before_1970_are_served() {
    let (dir, _) = site("old-file");
    let old = std::fs::File::options()
        .write(true)
        .open(www(&dir).join("hello.txt"))
        .expect("open");
    let before_epoch = std::time::UNIX_EPOCH - std::time::Duration::from_secs(86_400 * 200);
    old.set_modified(before_epoch).expect("set mtime");
    drop(old);
    let server = Server::start(&www(&dir), &[]);
    for _ in 0..2 {
        let r = exchange(server.addr, &request("/hello.txt"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello, world\n");
        assert_eq!(
            r.header("Last-Modified"),
            Some("Thu, 01 Jan 1970 00:00:00 GMT")
        );
    }
    server.stop();
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (dir, big) = site("keepalive");
    let server = Server::start(&www(&dir), &[]);

    let agent = agent();
    for _ in 0..2 {
        let body = agent
            .get(&server.url("/hello.txt"))
            .call()
            .expect("GET")
            .into_string()
            .expect("text");
        assert_eq!(body, "hello, world\n");
    }

    let mut s = connect(server.addr);
    let mut pending = Vec::new();
    for path in ["/hello.txt", "/big.bin", "/index.html"] {
        s.write_all(&request(path)).expect("send");
        let resp = read_response(&mut s, &mut pending, false);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.header("Connection"), None);
        if path == "/big.bin" {
            assert!(resp.body == big);
        }
    }
    server.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (dir, big) = site("pipeline");
    let server = Server::start(&www(&dir), &[]);
    let mut s = connect(server.addr);
    let mut all = request("/hello.txt");
    all.extend(request("/missing"));
    all.extend(request("/index.html"));
    s.write_all(&all).expect("send three requests at once");
    let mut pending = Vec::new();
    let r1 = read_response(&mut s, &mut pending, false);
    let r2 = read_response(&mut s, &mut pending, false);
    let r3 = read_response(&mut s, &mut pending, false);
    assert_eq!((r1.status, &r1.body[..]), (200, &b"hello, world\n"[..]));
    assert_eq!(r2.status, 404);
    assert_eq!((r3.status, &r3.body[..]), (200, &b"<h1>home</h1>\n"[..]));

    // A streamed file between two small ones, the last closing the connection.
    let mut all = request("/index.html");
    all.extend(request("/big.bin"));
    all.extend(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(&all).expect("send three more");
    assert_eq!(
        read_response(&mut s, &mut pending, false).body,
        b"<h1>home</h1>\n"
    );
    assert!(read_response(&mut s, &mut pending, false).body == big);
    let last = read_response(&mut s, &mut pending, false);
    assert_eq!(last.header("Connection"), Some("close"));
    assert_eq!(last.body, b"hello, world\n");
    assert!(read_to_eof(&mut s).is_empty());
    server.stop();
}

#[test]
fn connection_close_and_http_1_0() {
    let (dir, _big) = site("close");
    let server = Server::start(&www(&dir), &[]);
    // Connection: close is honoured.
    let mut s = connect(server.addr);
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut pending = Vec::new();
    let resp = read_response(&mut s, &mut pending, false);
    assert_eq!(
        (resp.status, resp.header("Connection")),
        (200, Some("close"))
    );
    assert!(read_to_eof(&mut s).is_empty());
    // HTTP/1.0 closes by default (and needs no Host).
    let mut s = connect(server.addr);
    s.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n")
        .expect("send");
    let resp = read_response(&mut s, &mut pending, false);
    assert_eq!(resp.body, b"hello, world\n");
    assert!(read_to_eof(&mut s).is_empty());
    // HTTP/1.0 with keep-alive stays open.
    let mut s = connect(server.addr);
    for _ in 0..2 {
        s.write_all(b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .expect("send");
        let resp = read_response(&mut s, &mut pending, false);
        assert_eq!(resp.header("Connection"), Some("keep-alive"));
    }
    server.stop();
}

#[test]
fn if_modified_since_gives_304() {
    let (dir, _big) = site("ims");
    let server = Server::start(&www(&dir), &[]);
    let first = exchange(server.addr, &request("/hello.txt"));
    let modified = first
        .header("Last-Modified")
        .expect("Last-Modified")
        .to_owned();
    let req =
        format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {modified}\r\n\r\n");
    let resp = exchange(server.addr, req.as_bytes());
    assert_eq!(resp.status, 304);
    assert!(resp.body.is_empty());
    assert_eq!(resp.header("Last-Modified"), Some(modified.as_str()));
    let old = "GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
    assert_eq!(exchange(server.addr, old.as_bytes()).status, 200);
    let bad = "GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: yesterday\r\n\r\n";
    assert_eq!(exchange(server.addr, bad.as_bytes()).status, 200);
    server.stop();
}

fn ranged(addr: SocketAddr, path: &str, range: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nRange: {range}\r\n\r\n");
    exchange(addr, req.as_bytes())
}

#[test]
fn byte_ranges() {
    let (dir, big) = site("range");
    let server = Server::start(&www(&dir), &[]);
    let text = b"hello, world\n";
    let r = ranged(server.addr, "/hello.txt", "bytes=0-4");
    assert_eq!((r.status, &r.body[..]), (206, &text[..5]));
    assert_eq!(r.header("Content-Range"), Some("bytes 0-4/13"));
    let r = ranged(server.addr, "/hello.txt", "bytes=7-");
    assert_eq!((r.status, &r.body[..]), (206, &text[7..]));
    assert_eq!(r.header("Content-Range"), Some("bytes 7-12/13"));
    let r = ranged(server.addr, "/hello.txt", "bytes=-6");
    assert_eq!((r.status, &r.body[..]), (206, &text[7..]));
    let r = ranged(server.addr, "/hello.txt", "bytes=5-100");
    assert_eq!((r.status, &r.body[..]), (206, &text[5..]));
    // Unsatisfiable.
    let r = ranged(server.addr, "/hello.txt", "bytes=13-");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some("bytes */13"));
    assert_eq!(r.body.len(), r.content_length());
    assert_eq!(ranged(server.addr, "/hello.txt", "bytes=-0").status, 416);
    // Several ranges: the whole file.
    let r = ranged(server.addr, "/hello.txt", "bytes=0-1,3-4");
    assert_eq!((r.status, &r.body[..]), (200, &text[..]));
    // A range of the streamed (uncached) file, across a chunk boundary.
    let (a, b) = (262_000, 1_300_000);
    let r = ranged(server.addr, "/big.bin", &format!("bytes={a}-{b}"));
    assert_eq!(r.status, 206);
    assert!(r.body == big[a..=b]);
    let r = ranged(server.addr, "/big.bin", "bytes=-10");
    assert!(r.body == big[big.len() - 10..]);
    server.stop();
}

#[test]
fn directories_serve_index_or_redirect() {
    let (dir, _big) = site("index");
    std::fs::create_dir(www(&dir).join("noindex")).expect("mkdir");
    let server = Server::start(&www(&dir), &[]);
    let (status, ctype, body) = get(&server.url("/"));
    assert_eq!(
        (status, ctype.as_str(), &body[..]),
        (200, "text/html", &b"<h1>home</h1>\n"[..])
    );
    let (status, _, body) = get(&server.url("/sub/"));
    assert_eq!((status, &body[..]), (200, &b"<h1>sub</h1>\n"[..]));
    let r = exchange(server.addr, &request("/sub?x=1"));
    assert_eq!((r.status, r.header("Location")), (301, Some("/sub/?x=1")));
    // ureq follows the redirect.
    let (status, _, body) = get(&server.url("/sub"));
    assert_eq!((status, &body[..]), (200, &b"<h1>sub</h1>\n"[..]));
    assert_eq!(get(&server.url("/noindex/")).0, 404);
    server.stop();
}

#[test]
fn errors_404_405() {
    let (dir, _big) = site("errors");
    let server = Server::start(&www(&dir), &[]);
    let (status, _, body) = get(&server.url("/nope.txt"));
    assert_eq!((status, &body[..]), (404, &b"404 Not Found\n"[..]));
    let r = exchange(server.addr, b"POST /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    assert_eq!(r.body.len(), r.content_length());
    // The connection stays usable after a 404 and a 405.
    let mut s = connect(server.addr);
    let mut pending = Vec::new();
    s.write_all(b"DELETE /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut s, &mut pending, false).status, 405);
    s.write_all(&request("/hello.txt")).expect("send");
    assert_eq!(read_response(&mut s, &mut pending, false).status, 200);
    server.stop();
}

/// Sends `req`, expects `status` with a body that matches its Content-Length, then end of stream.
fn expect_error_and_close(addr: SocketAddr, req: &[u8], status: u16) {
    let mut s = connect(addr);
    s.write_all(req).expect("send");
    let mut pending = Vec::new();
    let r = read_response(&mut s, &mut pending, false);
    assert_eq!(
        r.status,
        status,
        "for {:?}",
        String::from_utf8_lossy(&req[..req.len().min(40)])
    );
    assert!(!r.body.is_empty());
    assert_eq!(r.body.len(), r.content_length());
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(read_to_eof(&mut s).is_empty());
}

#[test]
fn errors_400_414_431_505() {
    let (dir, _big) = site("limits");
    let server = Server::start(&www(&dir), &[]);
    let addr = server.addr;
    expect_error_and_close(addr, b"\x01\x02garbage\r\n\r\n", 400);
    expect_error_and_close(addr, b"GET / HTTP/1.1\r\n\r\n", 400); // no Host
    expect_error_and_close(addr, b"GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    expect_error_and_close(addr, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505);
    expect_error_and_close(addr, b"GET / HTTP/1.7\r\nHost: t\r\n\r\n", 505);
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    expect_error_and_close(addr, long.as_bytes(), 414);
    // Over the line limit before the line even ends.
    expect_error_and_close(addr, format!("GET /{}", "b".repeat(20_000)).as_bytes(), 414);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "c".repeat(20_000)
    );
    expect_error_and_close(addr, big.as_bytes(), 431);
    let many: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n");
    expect_error_and_close(addr, many.as_bytes(), 431);
    // Still serving.
    assert_eq!(get(&server.url("/hello.txt")).0, 200);
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// Malformed requests and request smuggling (RFC 9112): each is answered with its status and
// `Connection: close`, and the connection ends; nothing sent after it is answered.

/// Sends each request on its own connection and expects `status`, `Connection: close`, then end
/// of stream. A valid request pipelined behind each must not be answered. The server must still
/// serve afterwards and stop cleanly.
fn refused_on_the_wire(name: &str, status: u16, cases: &[&[u8]]) {
    let (dir, _big) = site(name);
    let server = Server::start(&www(&dir), &[]);
    for case in cases {
        let mut req = case.to_vec();
        req.extend_from_slice(&request("/hello.txt"));
        expect_error_and_close(server.addr, &req, status);
    }
    assert_eq!(get(&server.url("/hello.txt")).0, 200);
    server.stop();
}

#[test]
fn content_length_conflicting_or_malformed_is_400() {
    refused_on_the_wire(
        "content-length",
        400,
        &[
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 7\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0x10\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ],
    );
}

#[test]
fn transfer_encoding_with_content_length_is_400() {
    refused_on_the_wire(
        "te-cl",
        400,
        &[
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n",
        ],
    );
}

#[test]
fn transfer_encoding_framing_errors_are_400() {
    refused_on_the_wire(
        "te-framing",
        400,
        &[
            // chunked not the final coding (RFC 9112 section 6.3), twice (section 7), missing.
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
            // Transfer-Encoding in HTTP/1.0 (section 6.1).
            b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ],
    );
}

#[test]
fn unimplemented_transfer_coding_is_501() {
    refused_on_the_wire(
        "te-501",
        501,
        &[
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: x-custom\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ],
    );
}

#[test]
fn host_missing_repeated_or_invalid_is_400() {
    refused_on_the_wire(
        "host",
        400,
        &[
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nHost: t\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: user@t\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t/x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t:port\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: [not-ipv6]\r\n\r\n",
            // Absolute form: the authority stands in for Host and must be a valid one.
            b"GET http:///hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET http://u@t/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET http://t/hello.txt HTTP/1.1\r\n\r\n",
        ],
    );
}

#[test]
fn field_syntax_errors_are_400() {
    refused_on_the_wire(
        "fields",
        400,
        &[
            // Whitespace between a field name and its colon (RFC 9112 section 5.1).
            b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length\t: 5\r\n\r\n",
            // Obsolete line folding (section 5.2), whitespace before the first field (2.2).
            b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n\tTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\n Host: t\r\n\r\n",
            // Bare CR (section 2.2), in a value, a line end, the request line.
            b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n",
            b"GET / HTTP/1.1\rHost: t\r\n\r\n",
            b"GET /hello.txt\r HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\r\n",
            // Field names are tokens; values hold no CTL but HTAB (RFC 9110 section 5).
            b"GET / HTTP/1.1\r\nHost: t\r\nX[a]: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\n: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x1bb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x7fb\r\n\r\n",
        ],
    );
}

#[test]
fn request_line_errors_are_400() {
    refused_on_the_wire(
        "request-line",
        400,
        &[
            // Exactly one SP between the parts (RFC 9112 section 3).
            b"GET  /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /hello.txt  HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /hello.txt HTTP/1.1 \r\nHost: t\r\n\r\n",
            b"GET\t/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
            // HTTP-version syntax (section 2.3).
            b"GET /hello.txt http/1.1\r\nHost: t\r\n\r\n",
            b"GET /hello.txt HTTP/1.10\r\nHost: t\r\n\r\n",
            b"GET /hello.txt HTTP/2\r\nHost: t\r\n\r\n",
            // Whitespace and bytes no URI holds in the target (section 3.2).
            b"GET /hello .txt HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /hello\x01.txt HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /hello\xc3\xa9.txt HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /hello\x7f.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        ],
    );
}

/// A malformed request that arrives in pieces is refused as a whole one is.
#[test]
fn bare_cr_split_across_segments_is_400() {
    let (dir, _big) = site("split");
    let server = Server::start(&www(&dir), &[]);
    let mut s = connect(server.addr);
    s.set_nodelay(true).expect("nodelay");
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r")
        .expect("send");
    thread::sleep(Duration::from_millis(50));
    s.write_all(b"X-A: b\r\n\r\n").expect("send");
    let r = read_response(&mut s, &mut Vec::new(), false);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(read_to_eof(&mut s).is_empty());
    server.stop();
}

/// What the rules let through: repeated equal Content-Length, chunked alone (answered, then the
/// connection closes: the body is never read), the absolute form, an IP-literal Host, HTTP/1.0
/// without Host, obs-text and HTAB in values.
#[test]
fn valid_but_unusual_requests_are_served() {
    let (dir, _big) = site("unusual");
    let server = Server::start(&www(&dir), &[]);
    let mut s = connect(server.addr);
    let mut pending = Vec::new();
    for req in [
        &b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0, 0\r\n\r\n"[..],
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        b"GET http://example.com/hello.txt HTTP/1.1\r\nHost: other\r\n\r\n",
        b"GET /hello.txt HTTP/1.1\r\nHost: [::1]:8080\r\nX-A: a\tb \xe9\r\n\r\n",
        b"GET /hello.txt HTTP/1.1\nHost: t\n\n",
    ] {
        s.write_all(req).expect("send");
        let r = read_response(&mut s, &mut pending, false);
        assert_eq!(
            (r.status, &r.body[..], r.header("Connection")),
            (200, &b"hello, world\n"[..], None),
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
    for req in [
        &b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc",
        b"GET /hello.txt HTTP/1.0\r\n\r\n",
    ] {
        let mut s = connect(server.addr);
        s.write_all(req).expect("send");
        let r = read_response(&mut s, &mut Vec::new(), false);
        assert_eq!((r.status, r.header("Connection")), (200, Some("close")));
        assert!(read_to_eof(&mut s).is_empty());
    }
    server.stop();
}

#[test]
fn paths_cannot_leave_the_directory() {
    let dir = TempDir::new("traversal");
    dir.file("secret.txt", b"secret\n");
    dir.file("www/inside.txt", b"inside\n");
    let www = dir.path().join("www");
    std::os::unix::fs::symlink("../secret.txt", www.join("rel-out")).expect("symlink");
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), www.join("abs-out"))
        .expect("symlink");
    std::os::unix::fs::symlink(dir.path(), www.join("dir-out")).expect("symlink");
    std::os::unix::fs::symlink("inside.txt", www.join("rel-in")).expect("symlink");
    let server = Server::start(&www, &[]);
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/x/..%2fsecret.txt",
        "/..%2fsecret.txt",
        "/inside.txt%00",
        "/rel-out",
        "/abs-out",
        "/dir-out/secret.txt",
    ] {
        let r = exchange(server.addr, &request(path));
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.body.starts_with(b"secret"), "{path} leaked");
    }
    let r = exchange(server.addr, &request("/rel-in"));
    assert_eq!((r.status, &r.body[..]), (200, &b"inside\n"[..]));
    let r = exchange(server.addr, &request("/./inside.txt"));
    assert_eq!((r.status, &r.body[..]), (200, &b"inside\n"[..]));
    server.stop();
}

#[test]
fn changed_files_are_never_served_stale() {
    let dir = TempDir::new("fresh");
    let path = dir.file("www/f.txt", b"version one\n");
    let big = dir.file("www/big.txt", &pattern(100_000, 3));
    // Old enough to be cached (see SETTLED in fs.rs).
    thread::sleep(Duration::from_millis(1_200));
    let server = Server::start(&dir.path().join("www"), &[]);
    for _ in 0..3 {
        assert_eq!(get(&server.url("/f.txt")).2, b"version one\n");
    }
    // Same size, rewritten in place.
    std::fs::write(&path, b"version two\n").expect("rewrite");
    assert_eq!(get(&server.url("/f.txt")).2, b"version two\n");
    // Another size.
    std::fs::write(&path, b"three\n").expect("rewrite");
    assert_eq!(get(&server.url("/f.txt")).2, b"three\n");
    // Replaced by rename.
    let tmp = dir.file("www/.tmp", b"four (renamed)\n");
    std::fs::rename(&tmp, &path).expect("rename");
    assert_eq!(get(&server.url("/f.txt")).2, b"four (renamed)\n");
    // Removed.
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(get(&server.url("/f.txt")).0, 404);
    // A file above the cache limit is read through the port each time.
    assert!(get(&server.url("/big.txt")).2 == pattern(100_000, 3));
    std::fs::write(&big, b"small now").expect("rewrite");
    assert_eq!(get(&server.url("/big.txt")).2, b"small now");
    server.stop();
}

#[test]
fn same_results_without_the_cache() {
    let (dir, big) = site("nocache");
    let server = Server::start(&www(&dir), &["--cache-mb", "0"]);
    let (status, _, body) = get(&server.url("/hello.txt"));
    assert_eq!((status, &body[..]), (200, &b"hello, world\n"[..]));
    assert!(get(&server.url("/big.bin")).2 == big);
    let r = ranged(server.addr, "/hello.txt", "bytes=-3");
    assert_eq!((r.status, &r.body[..]), (206, &b"ld\n"[..]));
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// Slow and silent clients

#[test]
fn idle_connections_are_closed() {
    let (dir, _big) = site("idle");
    let server = Server::start(&www(&dir), &["--idle-timeout", "0.5"]);
    // Silent from the start.
    let t0 = Instant::now();
    let mut silent = connect(server.addr);
    // A request that never completes (a byte at a time would not help either).
    let mut partial = connect(server.addr);
    partial.write_all(b"GET /hello.txt HTT").expect("send");
    // Idle after one response.
    let mut after = connect(server.addr);
    after.write_all(&request("/hello.txt")).expect("send");
    let mut pending = Vec::new();
    assert_eq!(read_response(&mut after, &mut pending, false).status, 200);
    for s in [&mut silent, &mut partial, &mut after] {
        assert!(read_to_eof(s).is_empty());
    }
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    // An active connection within the timeout is not closed.
    let mut s = connect(server.addr);
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(200));
        s.write_all(&request("/hello.txt")).expect("send");
        assert_eq!(read_response(&mut s, &mut pending, false).status, 200);
    }
    server.stop();
}

#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let dir = TempDir::new("stalled");
    // Larger than what loopback socket buffers hold, so that the server's send must wait.
    let huge = pattern(24 << 20, 5);
    dir.file("huge.bin", &huge);
    let server = Server::start(dir.path(), &["--idle-timeout", "0.5"]);
    let mut s = connect(server.addr);
    s.write_all(&request("/huge.bin")).expect("send");
    thread::sleep(Duration::from_millis(2_500));
    // The server gave up on the stalled send and closed: what was queued arrives, then the end.
    let got = read_to_eof(&mut s);
    assert!(
        got.len() < huge.len(),
        "the whole file arrived ({} bytes)",
        got.len()
    );
    server.stop();
}

#[test]
fn silent_clients_do_not_block_a_single_worker() {
    let (dir, big) = site("silent");
    let server = Server::start(&www(&dir), &["--threads", "1", "--idle-timeout", "60"]);
    let mut silent: Vec<TcpStream> = (0..8).map(|_| connect(server.addr)).collect();
    silent[0]
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHo")
        .expect("send");
    // A client that asks for a large file and never reads it.
    let mut stalled = connect(server.addr);
    stalled.write_all(&request("/big.bin")).expect("send");
    thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    for _ in 0..5 {
        assert_eq!(get(&server.url("/hello.txt")).2, b"hello, world\n");
        assert!(get(&server.url("/big.bin")).2 == big);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    drop(silent);
    // SIGINT with connections open and a send stalled still stops cleanly.
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// Bad input and stopping

/// Runs `iocport serve` with `args` expecting a quick failure: non-zero status, one stderr line.
fn expect_startup_error(args: &[&str]) -> String {
    let mut child = iocport()
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iocport");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("iocport serve {args:?} kept running");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "{args:?} succeeded");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(text.lines().count(), 1, "one line expected: {text:?}");
    assert!(text.starts_with("iocport: "), "{text:?}");
    assert!(!text.contains("panicked"), "{text:?}");
    text
}

#[test]
fn bad_directory_is_one_line() {
    let dir = TempDir::new("baddir");
    let missing = dir.path().join("missing");
    let text = expect_startup_error(&[missing.to_str().expect("utf-8"), "--listen", "127.0.0.1:0"]);
    assert!(text.contains("No such file"), "{text}");
    let file = dir.file("file.txt", b"x");
    let text = expect_startup_error(&[file.to_str().expect("utf-8"), "--listen", "127.0.0.1:0"]);
    assert!(text.contains("not a directory"), "{text}");
}

#[test]
fn address_in_use_is_one_line() {
    let dir = TempDir::new("inuse");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let text = expect_startup_error(&[dir.path().to_str().expect("utf-8"), "--listen", &addr]);
    assert!(text.contains("in use"), "{text}");
}

#[test]
fn bad_arguments_are_one_line() {
    let dir = TempDir::new("badargs");
    let d = dir.path().to_str().expect("utf-8");
    for args in [
        vec![d, "--threads", "0"],
        vec![d, "--threads", "many"],
        vec![d, "--threads", "100000"],
        vec![d, "--idle-timeout", "0"],
        vec![d, "--listen", "nowhere"],
        vec![d, "--cache-mb", "lots"],
    ] {
        let text = expect_startup_error(&args);
        assert!(text.contains(args[1]), "{text}");
    }
}

#[test]
fn sigterm_stops_cleanly() {
    let (dir, _big) = site("sigterm");
    let server = Server::start(&www(&dir), &["--threads", "3"]);
    let mut idle = connect(server.addr);
    idle.write_all(b"GET /").expect("send");
    assert_eq!(get(&server.url("/hello.txt")).0, 200);
    let status = server.signal(libc::SIGTERM);
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

// ---------------------------------------------------------------------------------------------
// curl

/// Runs curl with `args`; `None` (with a note) when curl is not installed.
fn curl(args: &[&str]) -> Option<Vec<u8>> {
    let out = match Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: curl is not installed; skipping the curl checks");
            return None;
        }
        Err(e) => panic!("curl: {e}"),
    };
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

#[test]
fn curl_agrees() {
    let (dir, big) = site("curl");
    let server = Server::start(&www(&dir), &[]);
    let url = server.url("/big.bin");
    let Some(body) = curl(&["-o", "-", &url]) else {
        server.stop();
        return;
    };
    assert!(body == big, "curl got {} bytes", body.len());
    let head = curl(&["-I", &url]).expect("curl");
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", big.len())),
        "{head}"
    );
    let part = curl(&["-r", "0-9", &url]).expect("curl");
    assert_eq!(part, &big[..10]);
    let part = curl(&["-r", "-9", &server.url("/hello.txt")]).expect("curl");
    assert_eq!(part, b"o, world\n");
    let old = curl(&["--http1.0", &server.url("/hello.txt")]).expect("curl");
    assert_eq!(old, b"hello, world\n");
    // Two URLs on one connection.
    let both = curl(&[&server.url("/hello.txt"), &server.url("/index.html")]).expect("curl");
    assert_eq!(both, b"hello, world\n<h1>home</h1>\n");
    let code = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &server.url("/nope"),
    ])
    .expect("curl");
    assert_eq!(code, b"404");
    server.stop();
}
