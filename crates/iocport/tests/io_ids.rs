//! Operation ids never alias: not after the 2^24 reuses of one slot that wrapped the old 24-bit
//! generation, not after the 2^32 that wrap the half of the generation the kernel carries, and not
//! between ports (the old 16-bit port tag wrapped after 65,534 ports). A stale id, or another
//! port's, is answered "not found" and cancels nothing.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::io::Write;
use std::time::Duration;

use iocport::{Builder, CompletionPort, Error, OpId};
use uio::{assert_quiet_for, get, tcp_pair};

fn port() -> CompletionPort<u32> {
    Builder::new().concurrency(2).build().expect("port")
}

/// Runs one NOP to completion and returns its id (one operation at a time reuses one slot).
fn one_nop(port: &CompletionPort<u32>) -> OpId {
    let id = port.nop(1, 0).unwrap();
    let p = get(port, "a NOP");
    assert_eq!(p.op, Some(id));
    id
}

/// Takes a stale id from before `boundary` generations, crosses it with one slot, then shows the
/// stale id cancels nothing: a recv that now holds the slot stays pending and gets its data.
fn stale_id_across(boundary: u64) {
    iocport::testing::advance_generations_to(boundary - 4);
    let port = port();
    let stale = one_nop(&port);
    for _ in 0..8 {
        one_nop(&port);
    }
    let (mut client, server) = tcp_pair();
    let h = port.associate(server, 2).unwrap();
    let id = h.recv(vec![0; 8], 0, 3).unwrap().id().unwrap();
    assert_ne!(id, stale);
    match port.cancel(stale) {
        Err(Error::NotFound { id }) => assert_eq!(id, stale),
        other => panic!("cancel of a stale id across {boundary:#x}: {other:?}"),
    }
    assert_quiet_for(
        &port,
        Duration::from_millis(50),
        "the recv after a stale cancel",
    );
    client.write_all(b"data").unwrap();
    let p = get(&port, "the recv");
    assert_eq!((p.op, p.result().ok()), (Some(id), Some(4)));
    port.close();
}

// Catches: the 24-bit slot generation wrapping after 16.7 M operations, after which a stale id
// cancelled the slot's new tenant.
#[test]
fn a_stale_id_is_not_found_across_the_old_24_bit_wrap() {
    stale_id_across(1 << 24);
}

// The kernel carries the low 32 bits of the generation; the full 64 are checked.
#[test]
fn a_stale_id_is_not_found_across_a_32_bit_wrap() {
    stale_id_across(1 << 32);
}

// Catches: an id from another port (whose tag collided after 65,534 ports) cancelling this port's
// operation in the same slot.
#[test]
fn another_ports_id_is_not_found() {
    let a = port();
    let b = port();
    let (mut ca, sa) = tcp_pair();
    let (mut cb, sb) = tcp_pair();
    let ha = a.associate(sa, 1).unwrap();
    let hb = b.associate(sb, 1).unwrap();
    let ia = ha.recv(vec![0; 8], 0, 1).unwrap().id().unwrap();
    let ib = hb.recv(vec![0; 8], 0, 1).unwrap().id().unwrap();
    assert_ne!(ia, ib, "two operations never share an id");
    assert!(matches!(b.cancel(ia), Err(Error::NotFound { .. })));
    assert!(matches!(a.cancel(ib), Err(Error::NotFound { .. })));
    assert_quiet_for(&a, Duration::from_millis(30), "port a's recv");
    assert_quiet_for(&b, Duration::from_millis(30), "port b's recv");
    ca.write_all(b"a").unwrap();
    cb.write_all(b"b").unwrap();
    assert_eq!(get(&a, "a's recv").result().ok(), Some(1));
    assert_eq!(get(&b, "b's recv").result().ok(), Some(1));
    a.close();
    b.close();
}

// Ids stay distinct across many ports, one after the other, each reusing slot 0.
#[test]
fn ids_of_successive_ports_are_distinct() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let p = port();
        assert!(seen.insert(one_nop(&p)));
        p.close();
    }
}
