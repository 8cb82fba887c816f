//! Helpers for the I/O tests: temp dirs that clean up, bounded `get`s, fd identity checks, socket
//! pairs on 127.0.0.1.
//!
//! Included with `#[path = "util/io.rs"] mod uio;` next to `mod util;` (whose [`DEADLINE`] bounds
//! every wait here).

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iocport::{CompletionPort, GetError, IoBuf, Packet};

use crate::util::DEADLINE;

/// A fresh directory under the system temp dir, removed with everything in it when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("iocport-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Creates (truncating) `name` in the dir, opened for reading and writing.
    pub fn file(&self, name: &str) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.0.join(name))
            .expect("create temp file")
    }

    /// Opens the existing `name` again (a second, independent file description).
    pub fn reopen(&self, name: &str) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.0.join(name))
            .expect("reopen temp file")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One packet within [`DEADLINE`]; fails the test with `what` otherwise.
#[track_caller]
pub fn get<T: Send + 'static, B: IoBuf>(port: &CompletionPort<T, B>, what: &str) -> Packet<T, B> {
    match port.get(Some(DEADLINE)) {
        Ok(p) => p,
        Err(e) => panic!("no packet within {DEADLINE:?} for {what}: {e}"),
    }
}

/// Exactly `n` packets, each within [`DEADLINE`] of the previous one.
#[track_caller]
pub fn get_n<T: Send + 'static, B: IoBuf>(
    port: &CompletionPort<T, B>,
    n: usize,
    what: &str,
) -> Vec<Packet<T, B>> {
    let start = Instant::now();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match port.get(Some(DEADLINE)) {
            Ok(p) => out.push(p),
            Err(e) => panic!(
                "{what}: got {} of {n} packets after {:?}, then: {e}",
                out.len(),
                start.elapsed()
            ),
        }
    }
    out
}

/// Asserts that no packet is queued (a zero-timeout `get` times out).
#[track_caller]
pub fn assert_no_packet<T: Send + 'static + std::fmt::Debug, B: IoBuf + std::fmt::Debug>(
    port: &CompletionPort<T, B>,
    what: &str,
) {
    match port.get(Some(Duration::ZERO)) {
        Err(GetError::TimedOut) => {}
        Ok(p) => panic!("{what}: unexpected packet {p:?}"),
        Err(e) => panic!("{what}: unexpected {e}"),
    }
}

/// Asserts that no packet arrives within `wait` (for operations that must stay pending).
#[track_caller]
pub fn assert_quiet_for<T: Send + 'static + std::fmt::Debug, B: IoBuf + std::fmt::Debug>(
    port: &CompletionPort<T, B>,
    wait: Duration,
    what: &str,
) {
    match port.get(Some(wait)) {
        Err(GetError::TimedOut) => {}
        Ok(p) => panic!("{what}: unexpected packet {p:?}"),
        Err(e) => panic!("{what}: unexpected {e}"),
    }
}

/// The identity of what `fd` refers to (device and inode), or `None` if the number is not open.
/// Comparing identities tells "still our file" from "closed, maybe reused by someone else".
pub fn fd_identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: `st` is a plain struct the kernel fills; fstat only reads the fd table.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes; an invalid fd makes fstat fail with EBADF, nothing else.
    if unsafe { libc::fstat(fd, &mut st) } == 0 {
        Some((st.st_dev, st.st_ino))
    } else {
        None
    }
}

/// A connected TCP pair on 127.0.0.1: (client, server side).
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Runs `f` on a thread and joins it within [`DEADLINE`] (polling `is_finished`), failing the test
/// if it does not finish.
#[track_caller]
pub fn join_bounded<R>(h: std::thread::JoinHandle<R>, what: &str) -> R {
    let start = Instant::now();
    while !h.is_finished() {
        assert!(
            start.elapsed() < DEADLINE,
            "thread did not finish within {DEADLINE:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    match h.join() {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// The raw fd of anything with one (for messages).
pub fn raw(x: &impl AsRawFd) -> RawFd {
    x.as_raw_fd()
}

/// The deterministic byte at `offset` of the test files' pattern.
pub fn pattern(offset: u64) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 8)) as u8
}

/// `len` bytes of [`pattern`] from `offset`.
pub fn pattern_bytes(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern(offset + i)).collect()
}
