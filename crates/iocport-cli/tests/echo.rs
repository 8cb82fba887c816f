//! `iocport echo` as a user runs it: the real binary on 127.0.0.1, real clients, SIGINT to stop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single step may take before the test fails.
const STEP: Duration = Duration::from_secs(10);

/// The server process; killed when dropped, so that a failing test leaves nothing running.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(threads: usize) -> Server {
        Self::start_with(threads, &[])
    }

    fn start_with(threads: usize, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_iocport"))
            .args(["echo", "--listen", "127.0.0.1:0", "--threads"])
            .arg(threads.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start iocport echo");
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split_whitespace()
            .find_map(|w| w.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        assert!(line.contains(&format!("with {threads} threads")), "{line}");
        Server { child, addr }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect_timeout(&self.addr, STEP).unwrap();
        s.set_read_timeout(Some(STEP)).unwrap();
        s.set_write_timeout(Some(STEP)).unwrap();
        s
    }

    /// Sends `sig` and waits (bounded) for the process to exit.
    fn signal(mut self, sig: i32) -> ExitStatus {
        // SAFETY: kill(2) with the pid of our own child, which has not been waited for yet.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(t.elapsed() < STEP, "the server did not stop");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn echo_once(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

/// Sends `len` bytes of a pattern on `s` from another thread, half-closes, and checks that the
/// echo read back to end-of-stream is the same bytes in the same order.
fn assert_echoes_stream(s: &mut TcpStream, len: u32, step: u32, mix: u32) {
    let data: Vec<u8> = (0..len).map(|i| (i * step + i / mix) as u8).collect();
    let mut writer = s.try_clone().unwrap();
    let sent = data.clone();
    let w = thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut back = Vec::with_capacity(data.len());
    s.read_to_end(&mut back).unwrap();
    w.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echo differs from what was sent");
}

/// Opens 300 connections (more than the 256 provided buffers the server starts with) and does
/// five rounds of a message on each, all sent before any echo is read; returns the connections.
fn rounds_on_300_connections(server: &Server) -> Vec<TcpStream> {
    let mut conns: Vec<TcpStream> = (0..300).map(|_| server.connect()).collect();
    for round in 0..5u8 {
        for c in conns.iter_mut() {
            c.write_all(format!("round {round}").as_bytes()).unwrap();
        }
        for c in conns.iter_mut() {
            let mut back = [0u8; 7];
            c.read_exact(&mut back).unwrap();
            assert_eq!(&back, format!("round {round}").as_bytes());
        }
    }
    conns
}

// Catches: a server that does not echo, mixes up connections, or stops after the first message.
#[test]
fn echoes_many_connections_and_stops_on_sigint() {
    let server = Server::start(2);
    let mut conns: Vec<TcpStream> = (0..50).map(|_| server.connect()).collect();
    for round in 0..20u8 {
        for (i, c) in conns.iter_mut().enumerate() {
            let msg = format!("round {round} conn {i}");
            echo_once(c, msg.as_bytes());
        }
    }
    // Connections still open (and a recv pending on each) when the signal comes.
    let status = server.signal(libc::SIGINT);
    assert!(status.success(), "exit status {status}");
    // The server closed them: a read sees end-of-stream or a reset, never hangs.
    let mut buf = [0u8; 1];
    assert!(matches!(conns[0].read(&mut buf), Ok(0) | Err(_)));
}

// Catches: a lost partial send or recv, or bytes reordered, when the data exceeds one buffer and
// the socket buffers.
#[test]
fn echoes_a_large_stream_in_order() {
    let server = Server::start(1);
    let mut s = server.connect();
    assert_echoes_stream(&mut s, 8u32 << 20, 7, 251);
    assert!(server.signal(libc::SIGTERM).success());
}

// Catches: `--recv provided` losing, mixing or reordering bytes (a provided buffer given back
// while its echo is still being sent, or to two connections at once), or running out of
// buffers for good: more connections than the 256 buffers it starts with, and a long stream.
#[test]
fn echoes_with_provided_buffers() {
    let server = Server::start_with(2, &["--recv", "provided"]);
    let _conns = rounds_on_300_connections(&server);
    let mut s = server.connect();
    assert_echoes_stream(&mut s, 2u32 << 20, 13, 241);
    assert!(server.signal(libc::SIGTERM).success());
}

// Catches: `--recv multishot` losing or mixing messages between connections, a connection's
// receive ending after its first message, running out of buffers for good (more connections than
// the 256 buffers it starts with), a connection not closed at end of stream, and a long stream's
// messages echoed out of order (two workers each take some of them; the receive is started again
// when the port runs out of buffers, its numbering going on).
#[test]
fn echoes_with_multishot_receives() {
    let server = Server::start_with(2, &["--recv", "multishot"]);
    let mut conns = rounds_on_300_connections(&server);
    for c in conns.iter_mut() {
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "closed after end of stream");
    }
    let mut s = server.connect();
    echo_once(&mut s, b"after 300 connections came and went");
    assert_echoes_stream(&mut s, 8u32 << 20, 13, 241);
    assert!(server.signal(libc::SIGTERM).success());
}

// Catches: a worker stuck on one connection: with one thread, a silent client must not stop
// another from being served.
#[test]
fn a_silent_client_holds_no_worker() {
    let server = Server::start(1);
    let _silent = server.connect();
    let mut talker = server.connect();
    echo_once(&mut talker, b"still served");
}

// Catches: a panic or a multi-line error when the address is taken.
#[test]
fn address_in_use_is_one_line_and_exit_2() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_iocport"))
        .args(["echo", "--listen", &addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&addr.to_string()) && err.contains("in use"),
        "{err}"
    );
}

// Catches: an unknown flag accepted, or reported with a panic.
#[test]
fn unknown_flag_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_iocport"))
        .args(["echo", "--bogus"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--bogus") && !err.contains("panicked"),
        "{err}"
    );
}
