//! A TCP echo round trip on 127.0.0.1, every step through one completion port.
//!
//! A listener `accept`s, a client socket `connect`s, and then 64 messages of sizes from 1 byte to
//! about 64 KiB go from the client to the server and back: the client `send`s a message with a
//! `recv` already waiting for the echo; the server `recv`s into a 16 KiB buffer and `send`s what it
//! got. Partial sends are sent on, partial receives gathered, and every echo is compared with what
//! was sent. Then the client shuts down its side (`shutdown`), the server sees the end of the
//! stream and shuts down too, and the client's last `recv` sees the end of the stream.
//!
//! It prints the backend the port runs on and why (io_uring, or epoll where io_uring is refused
//! or `IOCPORT_BACKEND=epoll` asks for it).
//!
//! ```sh
//! cargo run -p iocport --example tcp_echo
//! ```
//!
//! Exits 0 on success; 1 with a message on failure; 3 if it has not finished within 30 seconds.

use std::error::Error;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use iocport::{Builder, CompletionPort, GetError, Handle};
use socket2::{Domain, Socket, Type};

/// How long the whole program may take before it gives up.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long any one packet may take to arrive.
const STEP: Duration = Duration::from_secs(10);
/// Messages sent and echoed.
const ROUNDS: usize = 64;
/// The server's receive buffer: smaller than the larger messages, so that they arrive in parts.
const SERVER_BUF: usize = 16 << 10;

// Completion keys: which socket a packet is about.
const LISTENER: usize = 0;
const CLIENT: usize = 1;
const SERVER: usize = 2;

/// Which operation a packet reports: the value each operation carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Accept,
    Connect,
    ClientSend,
    ClientRecv,
    ClientShutdown,
    ServerRecv,
    ServerSend,
    ServerShutdown,
}

fn main() -> ExitCode {
    watchdog(DEADLINE);
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Message `round`: its length varies from 1 byte to about 64 KiB, its bytes with the round.
fn message(round: usize) -> Vec<u8> {
    let len = 1 + (round * 7919) % (64 << 10);
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ round.wrapping_mul(17)) as u8)
        .collect()
}

/// `cargo test --all-targets` builds the examples as test binaries, with the test harness in place
/// of `main`: there this test runs the example (the seccomp tests of `iocport-cli` run whichever
/// build they find, with the arguments that pick this test).
#[test]
fn runs() {
    watchdog(DEADLINE);
    if let Err(e) = run() {
        panic!("{e}");
    }
}

/// The example: `Err` with what went wrong.
fn run() -> Result<(), Box<dyn Error>> {
    // The port sets up its I/O backend at once (a port from `CompletionPort::new` would at its
    // first operation), so that it can say which backend it runs on.
    let port: CompletionPort<Step> = Builder::new().concurrency(1).build()?;
    match port.backend() {
        Some(info) => println!("tcp_echo: backend {} ({})", info.backend, info.reason),
        None => return Err("the port has no I/O backend after Builder::build".into()),
    }

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let listener = port.associate(listener, LISTENER)?;
    // No Nagle delays on either side: each message goes out at once.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_tcp_nodelay(true)?;
    let client = port.associate(OwnedFd::from(socket), CLIENT)?;

    // Operations in flight: each ends in exactly one packet, so the loop ends when this is 0.
    let mut pending = 0usize;
    listener.accept(Step::Accept)?;
    client.connect(addr, Step::Connect)?;
    pending += 2;

    let mut server: Option<Handle<Step>> = None;
    let mut round = 0;
    let mut sent = message(0);
    let mut echoed = Vec::new();
    let (mut server_saw_end, mut client_saw_end) = (false, false);

    while pending > 0 {
        let mut packet = match port.get(Some(STEP)) {
            Ok(p) => p,
            Err(GetError::TimedOut) => {
                return Err(
                    format!("no packet within {STEP:?} ({pending} operations pending)").into(),
                )
            }
            Err(e) => return Err(e.into()),
        };
        pending -= 1;
        let step = packet.value;
        let n = packet
            .result()
            .map_err(|e| format!("{step:?} (key {}) failed: {e}", packet.key))?;
        match (packet.key, step) {
            (LISTENER, Step::Accept) => {
                let socket = packet.take_socket().ok_or("accept handed back no socket")?;
                let socket = TcpStream::from(socket);
                socket.set_nodelay(true)?;
                let conn = port.associate(socket, SERVER)?;
                conn.recv(vec![0; SERVER_BUF], 0, Step::ServerRecv)?;
                pending += 1;
                server = Some(conn);
            }
            (CLIENT, Step::Connect) => {
                // The echo's receive waits before the message goes out.
                client.recv(vec![0; 64 << 10], 0, Step::ClientRecv)?;
                client.send(sent.clone(), 0, Step::ClientSend)?;
                pending += 2;
            }
            (CLIENT, Step::ClientSend) => {
                let mut buf = packet.take_buf().ok_or("send handed back no buffer")?;
                if n < buf.len() {
                    buf.drain(..n);
                    client.send(buf, 0, Step::ClientSend)?;
                    pending += 1;
                }
            }
            (CLIENT, Step::ClientRecv) => {
                if n == 0 {
                    if round < ROUNDS {
                        return Err(format!("the echo ended early, in round {round}").into());
                    }
                    client_saw_end = true;
                    continue;
                }
                let buf = packet.take_buf().ok_or("recv handed back no buffer")?;
                echoed.extend_from_slice(&buf[..n]);
                if echoed.len() > sent.len() {
                    return Err(format!("round {round}: more echoed than sent").into());
                }
                if echoed.len() < sent.len() {
                    client.recv(buf, 0, Step::ClientRecv)?;
                    pending += 1;
                    continue;
                }
                if echoed != sent {
                    return Err(format!("round {round}: the echo differs from the message").into());
                }
                round += 1;
                echoed.clear();
                client.recv(buf, 0, Step::ClientRecv)?;
                pending += 1;
                if round < ROUNDS {
                    sent = message(round);
                    client.send(sent.clone(), 0, Step::ClientSend)?;
                } else {
                    client.shutdown(Shutdown::Write, Step::ClientShutdown)?;
                }
                pending += 1;
            }
            (CLIENT, Step::ClientShutdown) | (SERVER, Step::ServerShutdown) => {}
            (SERVER, Step::ServerRecv) => {
                let conn = server.as_ref().ok_or("a server packet before accept")?;
                if n == 0 {
                    server_saw_end = true;
                    conn.shutdown(Shutdown::Write, Step::ServerShutdown)?;
                } else {
                    let mut buf = packet.take_buf().ok_or("recv handed back no buffer")?;
                    buf.truncate(n);
                    conn.send(buf, 0, Step::ServerSend)?;
                }
                pending += 1;
            }
            (SERVER, Step::ServerSend) => {
                let conn = server.as_ref().ok_or("a server packet before accept")?;
                let mut buf = packet.take_buf().ok_or("send handed back no buffer")?;
                if n < buf.len() {
                    buf.drain(..n);
                    conn.send(buf, 0, Step::ServerSend)?;
                } else {
                    buf.resize(SERVER_BUF, 0);
                    conn.recv(buf, 0, Step::ServerRecv)?;
                }
                pending += 1;
            }
            (key, step) => return Err(format!("unexpected packet: key {key}, {step:?}").into()),
        }
    }

    if !(round == ROUNDS && server_saw_end && client_saw_end) {
        return Err(format!(
            "stopped after {round} of {ROUNDS} rounds (server saw the end: {server_saw_end}, \
             client saw the end: {client_saw_end})"
        )
        .into());
    }
    drop((server, client, listener));
    let left = port.close();
    if !left.is_empty() {
        return Err(format!("{} packets left on the port", left.len()).into());
    }
    println!("tcp_echo: {ROUNDS} messages echoed through the port, both sides closed");
    Ok(())
}

/// Ends the process with exit code 3 if it is still running after `after`, so that a bug can never
/// leave it hanging.
fn watchdog(after: Duration) {
    thread::spawn(move || {
        thread::sleep(after);
        eprintln!("tcp_echo: not finished after {after:?}; giving up");
        std::process::exit(3);
    });
}
