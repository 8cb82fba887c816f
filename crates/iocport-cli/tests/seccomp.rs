//! The epoll fallback as a sandbox forces it: every program runs in a child process whose seccomp
//! filter answers `io_uring_setup` with `EPERM` (as container runtimes' default profiles do) or
//! with `ENOSYS` (as a kernel without io_uring does), and must work all the same, on epoll.
//!
//! Under each filter: the library's examples (`crates/iocport/examples`), `iocport echo` with TCP
//! clients, `iocport serve` with curl, `iocport copy --verify`, and `iocport info`, which must name
//! epoll and the reason. The filters are compiled with `seccompiler` before the fork; between fork
//! and exec the child only installs one (`PR_SET_NO_NEW_PRIVS`, then `seccomp(2)`: no privileges
//! needed, no allocation). `IOCPORT_BACKEND` is removed from every child's environment, so that it
//! is the automatic fallback that is tested.
//!
//! The examples are other binaries of the workspace: they are found next to this package's binary,
//! as the newest of `target/<profile>/examples/<name>` (left by `cargo build`) and
//! `<name>-<hash>` (left by `cargo test`; with `--all-targets`, a test build whose test `runs` runs
//! the example). `cargo test --workspace --all-targets` builds them; with
//! `cargo test -p iocport-cli --test seccomp` alone, build them first with
//! `cargo build -p iocport --examples` (a missing or outdated one fails with that advice).
//!
//! Every server listens on 127.0.0.1 and is killed (if still running) and waited for when its test
//! ends; every child and every socket has a time limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

mod util;
use util::Refusal;

/// How long any one step (a child's run, a startup line, a response, an exit) may take.
const WAIT: Duration = Duration::from_secs(30);

/// The library's examples, each run under both filters, with what each prints when it succeeds.
const EXAMPLES: &[(&str, &str)] = &[
    ("worker_pool", "handled 1000 packets"),
    ("tcp_echo", "64 messages echoed"),
    ("file_round_trip", "read back through the port"),
];

/// The arguments every example build is run with. A program build (`cargo build`, or `cargo test`
/// without `--all-targets`) ignores them; a test build (`cargo test --all-targets` builds examples
/// only with the test harness in place of `main`) runs its test `runs`, which runs the example.
const EXAMPLE_ARGS: &[&str] = &["runs", "--exact", "--nocapture", "--test-threads=1"];

// ---------------------------------------------------------------------------------------------
// The filters

// ---------------------------------------------------------------------------------------------
// Children

/// The command's binary.
fn iocport() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iocport"))
}

/// Runs `cmd` to the end with its output captured, killing it if it takes longer than [`WAIT`].
fn run(cmd: &mut Command, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start it under the seccomp filter: {e}"));
    let collect = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = collect(Box::new(child.stdout.take().expect("piped")));
    let err = collect(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {WAIT:?}; killed");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Asserts that `out` is a success, showing its output otherwise.
fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server child: its stderr lines come through a channel; killed and waited for on drop if it
/// is still running.
struct Server {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `cmd` (stdout discarded, stderr read line by line).
    fn start(cmd: &mut Command, what: &str) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: cannot start it under the seccomp filter: {e}"));
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Server { child, stderr: rx }
    }

    /// The first stderr line: the startup line with the address.
    fn startup_line(&self, what: &str) -> String {
        self.stderr
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{what} printed no startup line within {WAIT:?}"))
    }

    /// Asserts that the process runs on epoll: an epoll instance among its fds, and no io_uring
    /// ring (the filter makes one impossible; this checks that the fallback is what serves).
    fn assert_on_epoll(&self, what: &str) {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("list the server's fds");
        let targets: Vec<String> = fds
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|t| t.to_string_lossy().into_owned())
            .collect();
        assert!(
            targets.iter().any(|t| t.contains("[eventpoll]")),
            "{what} has no epoll instance: {targets:?}"
        );
        assert!(
            !targets.iter().any(|t| t.contains("io_uring")),
            "{what} has an io_uring: {targets:?}"
        );
    }

    /// Sends SIGINT (Ctrl-C) and asserts a clean exit (status 0) within [`WAIT`].
    fn stop(mut self, what: &str) {
        let pid = i32::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill only sends a signal, to our own child, which has not been waited for.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let status = self.wait(what);
        let rest: Vec<String> = self.stderr.try_iter().collect();
        assert!(
            status.success(),
            "{what} exited with {status} after SIGINT; stderr: {rest:?}"
        );
    }

    /// Waits (bounded) for the exit.
    fn wait(&mut self, what: &str) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(Instant::now() < deadline, "{what} did not exit");
            thread::sleep(Duration::from_millis(10));
        }
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

/// A connection with timeouts.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    s.set_write_timeout(Some(WAIT)).expect("write timeout");
    s
}

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "iocport-seccomp-{name}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create the temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bytes that are not all the same, so that misplaced chunks show.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// info

/// `iocport info` names epoll, io_uring's refusal and its errno, in JSON and in text.
fn info_names_epoll_and_the_reason(refusal: &Refusal) {
    let out = run(
        refusal.confine(iocport().args(["info", "--json"])),
        "iocport info --json",
    );
    assert_success(&out, "iocport info --json");
    let v: Value = serde_json::from_slice(&out.stdout).expect("info --json prints JSON");
    let b = &v["backend"];
    assert_eq!(b["available"], true, "a port runs here, on epoll: {b}");
    assert_eq!(b["kind"], "epoll", "{b}");
    let reason = b["reason"].as_str().expect("backend.reason is a string");
    assert!(
        reason.contains(refusal.name),
        "the reason names {}: {reason:?}",
        refusal.name
    );
    assert_eq!(b["io_uring"]["available"], false, "{b}");
    assert!(b["io_uring"]["reason"].is_string(), "{b}");
    assert!(b["submit_mode"].is_null(), "no submit mode on epoll: {b}");
    // The filter itself: the plain io_uring_setup got the errno.
    assert_eq!(v["io_uring"]["setup"], false);
    assert_eq!(v["io_uring"]["seccomp"], 2, "a seccomp filter is in place");
    let setup_error = v["io_uring"]["setup_error"].as_str().expect("setup_error");
    assert!(
        setup_error.contains(&format!("os error {}", refusal.errno)),
        "{setup_error:?}"
    );

    let out = run(refusal.confine(iocport().arg("info")), "iocport info");
    assert_success(&out, "iocport info");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let line = text
        .lines()
        .find(|l| l.starts_with("backend "))
        .unwrap_or_else(|| panic!("no backend line in:\n{text}"));
    let value = line["backend".len()..].trim_start();
    assert!(value.starts_with("epoll ("), "{line}");
    assert!(line.contains(refusal.name), "{line}");
    assert!(
        text.contains("RLIMIT_NOFILE"),
        "the rest is reported:\n{text}"
    );
}

#[test]
fn info_under_eperm_names_epoll_and_eperm() {
    info_names_epoll_and_the_reason(&Refusal::eperm());
}

#[test]
fn info_under_enosys_names_epoll_and_enosys() {
    info_names_epoll_and_the_reason(&Refusal::enosys());
}

// ---------------------------------------------------------------------------------------------
// The library's examples

/// The directory that holds the examples: `examples/` beside this package's binary.
fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_iocport"))
        .parent()
        .expect("the binary is in a directory")
        .join("examples")
}

/// The newest modification time of the files under `dir` (recursively); what cannot be read (a
/// checkout this user may not list) counts as old.
fn newest(dir: &Path) -> SystemTime {
    let mut t = SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return t;
    };
    for e in entries.flatten() {
        let path = e.path();
        let m = if path.is_dir() {
            newest(&path)
        } else {
            e.metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        t = t.max(m);
    }
    t
}

/// Whether `file` is a build of example `name`: `name` as `cargo build` leaves it, or
/// `name-<16 hex digits>` as `cargo test` leaves it (it does not copy examples to their plain
/// name).
fn is_build_of(file: &str, name: &str) -> bool {
    file == name
        || file
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The example's binary: the newest build of it in the examples directory. Fails with the command
/// that builds it if there is none, or if the newest is older than the library's sources.
fn example(name: &str) -> PathBuf {
    const BUILD: &str = "build them with `cargo build -p iocport --examples` (or run \
                         `cargo test --workspace --all-targets`, which builds them)";
    let dir = examples_dir();
    let newest_build = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the examples are not built ({}: {e}); {BUILD}",
                dir.display()
            )
        })
        .flatten()
        .filter(|e| is_build_of(&e.file_name().to_string_lossy(), name))
        .filter_map(|e| {
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            Some((modified, e.path()))
        })
        .max();
    let Some((built, path)) = newest_build else {
        panic!(
            "the example {name} is not built (not in {}); {BUILD}",
            dir.display()
        );
    };
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("../iocport");
    let sources = newest(&library.join("src")).max(newest(&library.join("examples")));
    assert!(
        built >= sources,
        "the example {name} ({}) is older than the library's sources; {BUILD}",
        path.display()
    );
    path
}

/// Runs every example under the filter: each exits 0 and prints its success line, and those that
/// do I/O say they ran on epoll, with the reason.
fn examples_run(refusal: &Refusal) {
    for &(name, success) in EXAMPLES {
        let bin = example(name);
        let mut cmd = Command::new(&bin);
        cmd.args(EXAMPLE_ARGS);
        // The file example writes into the temp dir this test uses.
        cmd.env("TMPDIR", std::env::temp_dir());
        let what = format!("the example {name} ({})", bin.display());
        let out = run(refusal.confine(&mut cmd), &what);
        assert_success(&out, &what);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(success), "{what} did not finish: {stdout}");
        if name != "worker_pool" {
            assert!(
                stdout.contains("backend epoll (") && stdout.contains(refusal.name),
                "{what} does not say it runs on epoll because of {}: {stdout}",
                refusal.name
            );
        }
    }
}

#[test]
fn examples_run_under_eperm() {
    examples_run(&Refusal::eperm());
}

#[test]
fn examples_run_under_enosys() {
    examples_run(&Refusal::enosys());
}

// ---------------------------------------------------------------------------------------------
// echo

/// `iocport echo` under the filter: many connections and a stream larger than the buffers are
/// echoed exactly; SIGINT stops it with status 0.
fn echo_serves(refusal: &Refusal) {
    let what = "iocport echo";
    let server = Server::start(
        refusal.confine(iocport().args(["echo", "--listen", "127.0.0.1:0", "--threads", "2"])),
        what,
    );
    let line = server.startup_line(what);
    assert!(line.contains("on epoll"), "startup line: {line}");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    server.assert_on_epoll(what);

    let mut conns: Vec<TcpStream> = (0..20).map(|_| connect(addr)).collect();
    for round in 0..10 {
        for (i, c) in conns.iter_mut().enumerate() {
            let msg = format!("round {round} connection {i}");
            c.write_all(msg.as_bytes()).expect("send");
            let mut back = vec![0; msg.len()];
            c.read_exact(&mut back).expect("echo");
            assert_eq!(back, msg.as_bytes());
        }
    }
    drop(conns);

    // 2 MiB one way while the echo comes back: more than any socket buffer.
    let data = pattern(2 << 20, 5);
    let mut s = connect(addr);
    let mut writer = s.try_clone().expect("clone the socket");
    let sent = data.clone();
    let w = thread::spawn(move || {
        writer.write_all(&sent).expect("send the stream");
        writer
            .shutdown(std::net::Shutdown::Write)
            .expect("shut down");
    });
    let mut back = Vec::with_capacity(data.len());
    s.read_to_end(&mut back).expect("read the echo");
    w.join().expect("the writer");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echoed stream differs");

    server.stop(what);
}

#[test]
fn echo_under_eperm() {
    echo_serves(&Refusal::eperm());
}

#[test]
fn echo_under_enosys() {
    echo_serves(&Refusal::enosys());
}

// ---------------------------------------------------------------------------------------------
// serve

/// A plain HTTP/1.1 GET without curl: the status line and the body.
fn http_get(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut s = connect(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read the response");
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, resp[end + 4..].to_vec())
}

/// Fetches `url` with curl; `None` if curl is not installed.
fn curl(url: &str) -> Option<Vec<u8>> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "--silent",
        "--show-error",
        "--fail",
        "--max-time",
        "20",
        "-o",
        "-",
        url,
    ]);
    match cmd.stdin(Stdio::null()).output() {
        Ok(out) => {
            assert_success(&out, &format!("curl {url}"));
            Some(out.stdout)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("curl: {e}"),
    }
}

/// `iocport serve` under the filter: curl fetches a file of several MiB (and a small one) exactly;
/// a missing file is a 404; SIGINT stops it with status 0.
fn serve_serves(refusal: &Refusal) {
    let what = "iocport serve";
    let dir = TempDir::new("serve");
    let big = pattern((3 << 20) + 17, 11);
    std::fs::write(dir.path().join("big.bin"), &big).expect("write big.bin");
    std::fs::write(dir.path().join("hello.txt"), b"hello, epoll\n").expect("write hello.txt");

    let server = Server::start(
        refusal.confine(iocport().arg("serve").arg(dir.path()).args([
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "2",
        ])),
        what,
    );
    let line = server.startup_line(what);
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in the startup line {line:?}"));
    server.assert_on_epoll(what);

    let url = format!("http://{addr}/big.bin");
    match curl(&url) {
        Some(body) => {
            assert_eq!(body.len(), big.len(), "curl got the whole file");
            assert!(body == big, "curl got different bytes");
            let hello = curl(&format!("http://{addr}/hello.txt")).expect("curl");
            assert_eq!(hello, b"hello, epoll\n");
        }
        None => {
            eprintln!("note: curl is not installed; fetching with a plain HTTP request instead");
            let (status, body) = http_get(addr, "/big.bin");
            assert!(status.contains(" 200 "), "{status}");
            assert!(
                body == big,
                "GET got different bytes ({} bytes)",
                body.len()
            );
        }
    }
    let (status, _) = http_get(addr, "/no-such-file");
    assert!(status.contains(" 404 "), "{status}");

    server.stop(what);
}

#[test]
fn serve_under_eperm() {
    serve_serves(&Refusal::eperm());
}

#[test]
fn serve_under_enosys() {
    serve_serves(&Refusal::enosys());
}

// ---------------------------------------------------------------------------------------------
// copy

/// `iocport copy --verify` under the filter: the copy is exact and verified, with the default
/// settings and with many small blocks in flight.
fn copy_verifies(refusal: &Refusal) {
    let dir = TempDir::new("copy");
    let src = dir.path().join("src");
    let data = pattern((5 << 20) + 4099, 23);
    std::fs::write(&src, &data).expect("write the source");
    let settings: [&[&str]; 2] = [&[], &["--block", "4K", "--depth", "64"]];
    for (i, extra) in settings.iter().enumerate() {
        let dst = dir.path().join(format!("dst-{i}"));
        let mut cmd = iocport();
        cmd.args(["copy", "--verify"])
            .args(*extra)
            .arg(&src)
            .arg(&dst);
        let what = format!("iocport copy --verify {extra:?}");
        let out = run(refusal.confine(&mut cmd), &what);
        assert_success(&out, &what);
        let copied = std::fs::read(&dst).expect("read the copy");
        assert_eq!(copied.len(), data.len(), "{what}");
        assert!(copied == data, "{what}: the copy differs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let crc = crc32fast::hash(&data);
        assert!(
            stderr.contains(&format!("verified (crc32 {crc:08x})")),
            "{what}: {stderr:?}"
        );
    }
}

#[test]
fn copy_under_eperm() {
    copy_verifies(&Refusal::eperm());
}

#[test]
fn copy_under_enosys() {
    copy_verifies(&Refusal::enosys());
}
