//! What the epoll backend does to the fds it is given, as the docs of `associate` promise: sockets
//! are made non-blocking and registered with epoll, and get their flags back when their handle
//! goes; regular files are left as they are and never added to epoll; an accepted socket is
//! blocking, as on io_uring. These tests force the epoll backend whatever `IOCPORT_BACKEND` says.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use iocport::{Backend, BackendChoice, Builder, CompletionPort, Data, Error};
use uio::{get, TempDir};

/// The tests look at every fd of the process (epoll's watch lists, fd numbers that closing frees):
/// one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn epoll_port() -> CompletionPort<u32> {
    Builder::new()
        .concurrency(2)
        .backend(BackendChoice::Epoll)
        .build()
        .expect("an epoll port")
}

fn flags(fd: RawFd) -> i32 {
    // SAFETY: F_GETFL takes no argument.
    let f = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(f >= 0, "fcntl(F_GETFL) on {fd}");
    f
}

fn nonblocking(fd: RawFd) -> bool {
    flags(fd) & libc::O_NONBLOCK != 0
}

/// A second descriptor of `fd`'s file description, to watch its flags after `fd` is closed.
fn dup(fd: RawFd) -> OwnedFd {
    // SAFETY: dup takes no pointers; a non-negative result is a new fd we own.
    let d = unsafe { libc::dup(fd) };
    assert!(d >= 0, "dup");
    // SAFETY: just created, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(d) }
}

/// Every fd that some epoll instance of this process watches (`tfd:` lines of the epoll fds'
/// fdinfo).
fn watched_fds() -> HashSet<RawFd> {
    let mut out = HashSet::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        if !target.to_string_lossy().contains("eventpoll") {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{name}")).unwrap_or_default();
        for line in info.lines() {
            if let Some(rest) = line.strip_prefix("tfd:") {
                if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                    out.insert(n);
                }
            }
        }
    }
    out
}

#[test]
fn the_port_says_it_runs_on_epoll_and_why() {
    let _serial = serial();
    let port = epoll_port();
    let info = port.backend().expect("the port has I/O");
    assert_eq!(info.backend, Backend::Epoll);
    assert!(info.reason.contains("Builder::backend"), "{}", info.reason);
    assert!(port
        .features()
        .unwrap()
        .iter()
        .any(|f| f.name.contains("epoll")));
    port.close();
}

// Catches: a socket left blocking (an operation would block the thread running it), not watched
// by epoll, or not given its flags back when its handle goes.
#[test]
fn a_socket_is_made_nonblocking_and_gets_its_flags_back() {
    let _serial = serial();
    let port = epoll_port();
    let (ours, _theirs) = uio::tcp_pair();
    let raw = ours.as_raw_fd();
    assert!(!nonblocking(raw));
    let watch = dup(raw);
    let h = port.associate(ours, 1).unwrap();
    assert!(nonblocking(raw), "associate makes it non-blocking");
    assert!(watched_fds().contains(&raw), "registered with epoll");
    drop(h);
    util::wait_for("the socket's flags restored", || {
        !nonblocking(watch.as_raw_fd())
    });
    assert!(!watched_fds().contains(&raw), "still registered");
    port.close();
}

// Catches: a regular file added to epoll (epoll refuses it, or it would never be "ready" in a
// useful sense) or its flags changed.
#[test]
fn a_regular_file_is_left_as_it_is() {
    let _serial = serial();
    let port = epoll_port();
    let dir = TempDir::new("epoll-file");
    let f = dir.file("f");
    let raw = f.as_raw_fd();
    let before = flags(raw);
    let h = port.associate(f, 2).unwrap();
    assert_eq!(flags(raw), before, "the file's flags changed");
    assert!(!watched_fds().contains(&raw), "a regular file in epoll");
    h.write_at(b"abc".to_vec(), 0, 1).unwrap();
    let p = get(&port, "write_at");
    assert_eq!((p.bytes, p.status.is_ok()), (3, true));
    drop(h);
    port.close();
}

// Catches: accept handing back a socket in non-blocking mode (io_uring's accept gives a blocking
// one), which a program that uses it directly would not expect.
#[test]
fn an_accepted_socket_is_blocking() {
    let _serial = serial();
    let port = epoll_port();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = port.associate(listener, 3).unwrap();
    h.accept(1).unwrap();
    let _client = TcpStream::connect(addr).unwrap();
    let mut p = get(&port, "accept");
    assert!(p.status.is_ok(), "{:?}", p.status);
    let Data::Accepted(socket, _) = std::mem::replace(&mut p.data, Data::None) else {
        panic!("no socket: {p:?}");
    };
    assert!(
        !nonblocking(socket.as_raw_fd()),
        "the accepted socket is non-blocking"
    );
    drop(h);
    port.close();
}

// Catches: an unknown IOCPORT_BACKEND value silently ignored.
#[test]
fn an_unknown_backend_name_is_an_error() {
    let _serial = serial();
    // A child process: the variable is process-wide.
    if std::env::var("IOCPORT_EPOLL_TEST_CHILD").is_ok() {
        std::env::set_var("IOCPORT_BACKEND", "kqueue");
        let err = Builder::new().build::<u32, Vec<u8>>().unwrap_err();
        assert!(
            matches!(err, Error::InvalidBackend { ref value } if value == "kqueue"),
            "{err}"
        );
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "an_unknown_backend_name_is_an_error",
            "--nocapture",
        ])
        .env("IOCPORT_EPOLL_TEST_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
