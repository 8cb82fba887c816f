//! `CompletionPort::set_completion_hook`: runs on every operation's packet before it is queued,
//! can rewrite it, is not run on posted packets, and can be set once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use iocport::{CompletionPort, Error};

static SEEN: AtomicUsize = AtomicUsize::new(0);

fn hook(p: &mut iocport::Packet<u64>) {
    SEEN.fetch_add(1, Ordering::SeqCst);
    // The hook runs before the packet is queued: what it writes is what `get` returns.
    p.value += 1000;
    p.key = 77;
}

#[test]
fn hook_rewrites_operation_packets_only_and_is_set_once() {
    let port: CompletionPort<u64> = CompletionPort::new(1);
    port.set_completion_hook(hook).unwrap();
    assert!(matches!(
        port.set_completion_hook(hook),
        Err(Error::HookSet)
    ));

    port.nop(5, 1).unwrap();
    let p = port.get(Some(Duration::from_secs(5))).unwrap();
    assert_eq!((p.key, p.value), (77, 1001));
    assert_eq!(SEEN.load(Ordering::SeqCst), 1);

    port.post(9, 0, 2).unwrap();
    let p = port.get(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(
        (p.key, p.value),
        (9, 2),
        "posted packets do not pass through the hook"
    );
    assert_eq!(SEEN.load(Ordering::SeqCst), 1);

    // An operation ended by close passes through it too.
    port.timer(Duration::from_secs(60), 3, 3).unwrap();
    let left = port.close();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].key, left[0].value), (77, 1003));
    assert!(matches!(port.set_completion_hook(hook), Err(Error::Closed)));
}

#[test]
fn poll_completions_runs_the_hook_without_a_waiting_thread() {
    static RAN: AtomicUsize = AtomicUsize::new(0);
    fn count(_: &mut iocport::Packet<u8>) {
        RAN.fetch_add(1, Ordering::SeqCst);
    }
    let port: CompletionPort<u8> = CompletionPort::new(1);
    port.set_completion_hook(count).unwrap();
    port.nop(1, 1).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while RAN.load(Ordering::SeqCst) == 0 {
        port.poll_completions();
        assert!(
            std::time::Instant::now() < deadline,
            "the nop never completed"
        );
        std::thread::yield_now();
    }
    // The packet waits in the queue for `get`.
    let p = port.get(Some(Duration::ZERO)).unwrap();
    assert_eq!(p.key, 1);
}
