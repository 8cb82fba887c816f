//! Nothing slow or fallible runs under the port's locks: a panicking `IoBuf` leaks nothing and leaves
//! the port working, and a `close(2)` that blocks (a socket with `SO_LINGER` and unsent data) does
//! not stall the other threads' submissions and completions.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::io::Write;
use std::net::TcpListener;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iocport::{Builder, CompletionPort, IoBuf};
use socket2::SockRef;
use uio::{get, TempDir};

/// A buffer whose methods panic when armed.
struct Bomb {
    bytes: Vec<u8>,
    armed_ptr: bool,
    armed_len: bool,
}

// SAFETY: when it does not panic, it is a Vec<u8>'s heap bytes, which do not move with the value.
unsafe impl IoBuf for Bomb {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        assert!(!self.armed_ptr, "as_mut_ptr went off");
        self.bytes.as_mut_ptr()
    }
    fn len(&self) -> usize {
        assert!(!self.armed_len, "len went off");
        self.bytes.len()
    }
}

fn bomb(armed_ptr: bool, armed_len: bool) -> Bomb {
    Bomb {
        bytes: vec![0; 16],
        armed_ptr,
        armed_len,
    }
}

// Catches: a panic in `IoBuf::as_mut_ptr` while the op table's lock was held, after the slot was
// taken: the slot and the operation's value leaked, and `close` waited for an operation that would
// never complete.
#[test]
fn a_panicking_buffer_leaks_nothing() {
    let dir = TempDir::new("bomb");
    let mut f = dir.file("f");
    f.write_all(b"0123456789abcdef").unwrap();
    let port: CompletionPort<Arc<()>, Bomb> = Builder::new().concurrency(1).build().unwrap();
    let h = port.associate(dir.reopen("f"), 1).unwrap();
    let value = Arc::new(());
    for (ptr, len) in [(true, false), (false, true)] {
        for skip in [false, true] {
            h.set_skip_on_success(skip);
            let r = catch_unwind(AssertUnwindSafe(|| {
                let _ = h.read_at(bomb(ptr, len), 0, value.clone());
            }));
            assert!(r.is_err(), "the buffer panics");
            assert_eq!(
                Arc::strong_count(&value),
                1,
                "the value was dropped, not kept"
            );
        }
    }
    h.set_skip_on_success(false);
    // The port still works, and closes with nothing in flight.
    h.read_at(bomb(false, false), 4, value.clone()).unwrap();
    let p = get(&port, "a read after the panics");
    assert_eq!(p.result().ok(), Some(12));
    drop(p);
    drop(h);
    let start = Instant::now();
    assert!(port.close().is_empty());
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(Arc::strong_count(&value), 1);
}

// Catches: the last operation of a dropped handle closing its fd while the completion queue's and
// the op table's locks were held; with SO_LINGER and unsent data, close(2) blocks for the linger
// time, and every submission and completion on the port waited with it.
#[test]
fn a_lingering_close_does_not_stall_the_port() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    SockRef::from(&listener).set_recv_buffer_size(4096).unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_server, _) = listener.accept().unwrap(); // never reads
    let sock = SockRef::from(&client);
    sock.set_send_buffer_size(4096).unwrap();
    client.set_nonblocking(true).unwrap();
    let chunk = [7u8; 4096];
    let mut c = &client;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        match c.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the send buffer: {e}"),
        }
    }
    client.set_nonblocking(false).unwrap();
    let linger = Duration::from_secs(2);
    sock.set_linger(Some(linger)).unwrap();

    let port: CompletionPort<u32> = Builder::new().concurrency(2).build().unwrap();
    let h = port.associate(client, 1).unwrap();
    h.recv(vec![0; 8], 0, 1).unwrap();
    drop(h);
    // This thread reaps the cancelled recv, and with it the fd's last reference; meanwhile it starts
    // and reaps NOPs, which must go as fast as ever.
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut cancelled = 0;
    while started.elapsed() < linger {
        let t = Instant::now();
        port.nop(2, 2).unwrap();
        loop {
            let p = get(&port, "a NOP");
            if p.value == 1 {
                assert_eq!(p.status.errno(), Some(libc::ECANCELED));
                cancelled += 1;
                continue;
            }
            break;
        }
        worst = worst.max(t.elapsed());
    }
    assert_eq!(cancelled, 1, "the recv's packet");
    assert!(
        worst < Duration::from_millis(500),
        "a NOP took {worst:?} while the fd lingered in close(2)"
    );
    port.close();
}
