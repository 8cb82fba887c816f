//! The paths older kernels take, on this kernel: `IOCPORT_TEST_MISSING=all` makes the port believe
//! the kernel lacks cancel-by-fd, cancel-any and multishot poll (Linux 5.11-5.18), so it cancels each
//! operation by its own id and re-arms a one-shot wake-up poll. (`scripts/test.sh` also runs the whole
//! suite this way.) These paths are io_uring's, so this file forces io_uring whatever
//! `IOCPORT_BACKEND` says.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Once;
use std::time::{Duration, Instant};

use iocport::{BackendChoice, Builder, CompletionPort, GetError};
use uio::{assert_quiet_for, get, get_n};

fn old_kernel_port() -> CompletionPort<u32> {
    static PRETEND: Once = Once::new();
    // Before any port of this test binary exists; every test goes through here.
    PRETEND.call_once(|| std::env::set_var("IOCPORT_TEST_MISSING", "all"));
    Builder::new()
        .concurrency(2)
        .backend(BackendChoice::IoUring)
        .build()
        .expect("port")
}

#[test]
fn the_probe_reports_the_pretended_features_missing() {
    let port = old_kernel_port();
    let features = port.features().expect("the port has I/O");
    for name in [
        "IORING_ASYNC_CANCEL_FD",
        "IORING_ASYNC_CANCEL_ANY",
        "IORING_POLL_ADD_MULTI",
    ] {
        let f = features.iter().find(|f| f.name == name).expect(name);
        assert!(!f.available, "{name} should be reported missing");
    }
    assert!(features
        .iter()
        .any(|f| f.name == "IORING_OP_RECV" && f.available));
    port.close();
}

// Catches: without cancel-by-fd, dropping a handle cancelled nothing (its recvs hung forever).
#[test]
fn dropping_a_handle_cancels_each_of_its_operations() {
    let port = old_kernel_port();
    let (a, _b) = UnixStream::pair().unwrap();
    let (c, mut d) = UnixStream::pair().unwrap();
    let h = port.associate(a, 1).unwrap();
    let other = port.associate(c, 2).unwrap();
    for i in 0..5 {
        h.recv(vec![0; 8], 0, i).unwrap();
    }
    other.recv(vec![0; 8], 0, 99).unwrap();
    drop(h);
    for p in get_n(&port, 5, "the dropped handle's recvs") {
        assert_eq!(p.key, 1);
        assert_eq!(p.status.errno(), Some(libc::ECANCELED));
    }
    assert_quiet_for(&port, Duration::from_millis(30), "the other handle's recv");
    d.write_all(b"x").unwrap();
    assert_eq!(get(&port, "the other recv").value, 99);
    port.close();
}

// Catches: without cancel-any, `close` re-cancelled every 10 ms for ever on an idle recv.
#[test]
fn close_cancels_idle_operations_at_once() {
    let port = old_kernel_port();
    let (a, _b) = UnixStream::pair().unwrap();
    let h = port.associate(a, 1).unwrap();
    for i in 0..3 {
        h.recv(vec![0; 8], 0, i).unwrap();
    }
    port.timer(Duration::from_secs(3600), 2, 7).unwrap();
    let start = Instant::now();
    let left = port.close();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "close took {:?}",
        start.elapsed()
    );
    assert_eq!(left.len(), 4);
    assert!(left
        .iter()
        .all(|p| p.status.errno() == Some(libc::ECANCELED)));
    assert_eq!(
        port.get(Some(Duration::ZERO)).map(|p| p.value),
        Err(GetError::Closed)
    );
}

// The one-shot wake-up poll is armed again after every wake-up.
#[test]
fn many_wake_ups_through_a_one_shot_poll() {
    let port = old_kernel_port();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let mut n = 0;
            while n < 200 {
                match port.get(Some(Duration::from_secs(5))) {
                    Ok(_) => n += 1,
                    Err(e) => panic!("after {n} packets: {e}"),
                }
            }
        });
        for i in 0..200 {
            // Let the waiter go to sleep in the kernel most of the time.
            if i % 2 == 0 {
                std::thread::sleep(Duration::from_micros(300));
            }
            port.post(1, 0, i).unwrap();
        }
        waiter.join().unwrap();
    });
    port.close();
}
