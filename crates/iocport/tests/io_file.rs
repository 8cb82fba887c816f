//! File I/O through the port, in temp dirs: positioned and stream-position reads and writes, vectored
//! I/O, fsync and fdatasync, and many reads in flight served by a pool of workers under a
//! concurrency value.

#[path = "util/io.rs"]
mod uio;
mod util;

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iocport::{Builder, CompletionPort, Data, GetError, Started};
use uio::{get, get_n, TempDir};
use util::DEADLINE;

// Catches: write_at/read_at with a wrong offset or length, a buffer handed back other than the one
// given, fsync not reaching the kernel (status), packets with a wrong key/value.
#[test]
fn write_at_fsync_read_at_round_trip() {
    let dir = TempDir::new("file-rw");
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let h = port.associate(dir.file("data"), 11).unwrap();
    let data = uio::pattern_bytes(0, 64 * 1024);
    // Two halves written out of order, at their offsets.
    h.write_at(data[32 * 1024..].to_vec(), 32 * 1024, 1)
        .unwrap();
    h.write_at(data[..32 * 1024].to_vec(), 0, 2).unwrap();
    let mut values = Vec::new();
    for mut p in get_n(&port, 2, "two writes") {
        assert!(p.status.is_ok(), "write failed: {:?}", p.status);
        assert_eq!(p.key, 11);
        assert_eq!(p.bytes, 32 * 1024);
        let buf = p.take_buf().expect("write hands its buffer back");
        let off = if p.value == 1 { 32 * 1024 } else { 0 };
        assert_eq!(buf, &data[off..off + 32 * 1024], "the buffer handed back");
        values.push(p.value);
    }
    values.sort_unstable();
    assert_eq!(values, [1, 2]);

    assert!(matches!(h.fsync(3).unwrap(), Started::Pending(_)));
    let p = get(&port, "fsync");
    assert_eq!((p.key, p.value, p.bytes), (11, 3, 0));
    assert!(p.status.is_ok(), "fsync: {:?}", p.status);
    assert!(matches!(p.data, Data::None));

    // The file as std sees it.
    let mut on_disk = Vec::new();
    dir.reopen("data").read_to_end(&mut on_disk).unwrap();
    assert_eq!(on_disk, data);

    // Read back through the port at odd offsets and lengths, including across the end.
    for (i, &(off, len)) in [
        (0u64, 100usize),
        (4095, 2),
        (32 * 1024 - 7, 14),
        (65_000, 4096),
    ]
    .iter()
    .enumerate()
    {
        h.read_at(vec![0xAA; len], off, 10 + i as u32).unwrap();
        let mut p = get(&port, "read_at");
        assert_eq!(p.value, 10 + i as u32);
        assert!(p.status.is_ok(), "{:?}", p.status);
        let want = (data.len() as u64 - off).min(len as u64) as usize;
        assert_eq!(p.bytes, want, "bytes read at {off}");
        let buf = p.take_buf().unwrap();
        assert_eq!(buf.len(), len, "the buffer keeps its length");
        assert_eq!(&buf[..want], &data[off as usize..off as usize + want]);
    }
    // At the end of the file: 0 bytes, success.
    h.read_at(vec![0; 16], data.len() as u64, 99).unwrap();
    let p = get(&port, "read at EOF");
    assert_eq!((p.bytes, p.status.is_ok()), (0, true));
    uio::assert_no_packet(&port, "after the round trip");
    drop(h);
    port.close();
}

// Catches: read/write ignoring the file position (always at 0, or not advancing it), and EOF at the
// stream position not reported as 0 bytes.
#[test]
fn read_write_at_the_stream_position() {
    let dir = TempDir::new("file-pos");
    let port: CompletionPort<u32> = CompletionPort::new(1);
    let mut std_file = dir.file("log");
    std_file.write_all(b"0123456789").unwrap();
    std_file.seek(SeekFrom::Start(4)).unwrap();
    let writer = port.associate(std_file, 1).unwrap();
    // Starts at the position std left (4), and each write advances it.
    for (i, chunk) in [&b"abc"[..], b"defgh", b"ij"].iter().enumerate() {
        writer.write(chunk.to_vec(), i as u32).unwrap();
        let p = get(&port, "write at the position");
        assert!(p.status.is_ok(), "{:?}", p.status);
        assert_eq!(p.bytes, chunk.len());
    }
    writer.fdatasync(9).unwrap();
    let p = get(&port, "fdatasync");
    assert_eq!(p.value, 9);
    assert!(p.status.is_ok(), "fdatasync: {:?}", p.status);
    assert_eq!(
        std::fs::read(dir.path().join("log")).unwrap(),
        b"0123abcdefghij"
    );

    let reader = port.associate(dir.reopen("log"), 2).unwrap();
    let mut got = Vec::new();
    for round in 0..10 {
        reader.read(vec![0; 4], round).unwrap();
        let mut p = get(&port, "read at the position");
        assert_eq!(p.key, 2);
        assert!(p.status.is_ok(), "{:?}", p.status);
        let n = p.bytes;
        got.extend_from_slice(&p.take_buf().unwrap()[..n]);
        if n == 0 {
            break;
        }
    }
    assert_eq!(
        got, b"0123abcdefghij",
        "sequential reads see the file in order, then EOF"
    );
    drop((writer, reader));
    port.close();
}

// Catches: iovecs built wrong (order, lengths, a stale iovec array reused from an earlier op with
// more entries), buffers of vectored ops not all handed back, or handed back out of order.
#[test]
fn readv_writev_positioned_and_at_the_position() {
    let dir = TempDir::new("file-vec");
    let port: CompletionPort<u8> = CompletionPort::new(1);
    let h = port.associate(dir.file("v"), 3).unwrap();
    // A vectored op with many entries first, so a slot's cached iovec array is larger than later.
    let many: Vec<Vec<u8>> = (0..16u8).map(|i| vec![b'A' + i; 3]).collect();
    h.writev_at(many.clone(), 100, 1).unwrap();
    let mut p = get(&port, "writev_at 16 buffers");
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(p.bytes, 48);
    assert_eq!(
        p.take_bufs().unwrap(),
        many,
        "all 16 buffers back, in order"
    );

    let parts = vec![b"hello ".to_vec(), b"vectored ".to_vec(), b"world".to_vec()];
    h.writev_at(parts.clone(), 0, 2).unwrap();
    let mut p = get(&port, "writev_at");
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(p.bytes, 20);
    assert_eq!(p.take_bufs().unwrap(), parts);

    h.readv_at(vec![vec![0; 4], vec![0; 7], vec![0; 50]], 2, 3)
        .unwrap();
    let mut p = get(&port, "readv_at");
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(p.bytes, 61, "all three buffers filled");
    let bufs = p.take_bufs().unwrap();
    assert_eq!(bufs.len(), 3);
    assert_eq!(bufs[0], b"llo ");
    assert_eq!(bufs[1], b"vectore");
    assert_eq!(&bufs[2][..7], b"d world");
    assert!(
        bufs[2][7..].iter().all(|&b| b == 0),
        "a hole reads as zeros"
    );
    // Across the hole's end into the 16-buffer write at 100, and past the end of the file (148).
    h.readv_at(vec![vec![9; 2], vec![9; 4]], 98, 7).unwrap();
    let mut p = get(&port, "readv_at across the hole");
    assert_eq!(p.bytes, 6);
    assert_eq!(p.take_bufs().unwrap(), [b"\0\0".to_vec(), b"AAAB".to_vec()]);
    h.readv_at(vec![vec![9; 2], vec![9; 4]], 145, 8).unwrap();
    let mut p = get(&port, "readv_at across the end");
    assert_eq!(p.bytes, 3);
    assert_eq!(
        p.take_bufs().unwrap(),
        [b"PP".to_vec(), vec![b'P', 9, 9, 9]]
    );

    // At the stream position: a second description of the file starts at 0.
    let r = port.associate(dir.reopen("v"), 4).unwrap();
    r.readv(vec![vec![0; 6], vec![0; 3]], 4).unwrap();
    let mut p = get(&port, "readv");
    assert_eq!(p.bytes, 9);
    assert_eq!(
        p.take_bufs().unwrap(),
        [b"hello ".to_vec(), b"vec".to_vec()]
    );
    r.readv(vec![vec![0; 6]], 5).unwrap();
    let mut p = get(&port, "readv continues at the position");
    assert_eq!(p.bytes, 6);
    assert_eq!(p.take_bufs().unwrap(), [b"tored ".to_vec()]);
    // writev at the position of `r` (now 15) overwrites "world".
    r.writev(vec![b"WO".to_vec(), b"RLD".to_vec()], 6).unwrap();
    let p = get(&port, "writev");
    assert_eq!((p.bytes, p.status.is_ok()), (5, true));
    let on_disk = std::fs::read(dir.path().join("v")).unwrap();
    assert_eq!(&on_disk[..20], b"hello vectored WORLD");
    drop((h, r));
    port.close();
}

// Catches: packets lost, duplicated or crossed (a buffer carrying another read's data) when many
// reads are in flight and several workers serve the port; the concurrency value not applied to I/O
// packets (more workers running packets at once than it allows).
#[test]
fn many_reads_in_flight_served_by_workers() {
    const FILE_LEN: u64 = 1 << 20;
    const READS: usize = 2_000;
    const LEN: usize = 4096;
    const CONCURRENCY: usize = 2;
    const WORKERS: usize = 4;
    let dir = TempDir::new("file-many");
    let mut f = dir.file("big");
    f.write_all(&uio::pattern_bytes(0, FILE_LEN as usize))
        .unwrap();
    f.sync_all().unwrap();
    let port: CompletionPort<u64> = Builder::new()
        .concurrency(CONCURRENCY)
        .entries(64)
        .build()
        .unwrap();
    let h = port.associate(f, 5).unwrap();

    let done = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let port = port.clone();
            let (done, running, max_running) = (done.clone(), running.clone(), max_running.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut bad = Vec::new();
                let mut mine = 0usize;
                while done.load(Ordering::SeqCst) < READS && start.elapsed() < DEADLINE * 2 {
                    let mut p = match port.get(Some(Duration::from_millis(50))) {
                        Ok(p) => p,
                        Err(GetError::TimedOut) => continue,
                        Err(GetError::Closed) => break,
                    };
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    max_running.fetch_max(now, Ordering::SeqCst);
                    let off = p.value;
                    let buf = p.take_buf().expect("read hands its buffer back");
                    let want = FILE_LEN.saturating_sub(off).min(LEN as u64) as usize;
                    if !p.status.is_ok()
                        || p.bytes != want
                        || p.key != 5
                        || buf[..want] != uio::pattern_bytes(off, want)[..]
                    {
                        bad.push((off, p.bytes, p.status));
                    }
                    // Stay "running" a little so that overlapping workers would show.
                    std::thread::yield_now();
                    mine += 1;
                    running.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                }
                (mine, bad)
            })
        })
        .collect();

    // Offsets spread over the file (some unaligned, some reaching past its end), submitted in
    // batches while the workers already run.
    let offsets: Vec<u64> = (0..READS as u64)
        .map(|i| (i * 7919 * 13) % (FILE_LEN + 2048))
        .collect();
    for chunk in offsets.chunks(100) {
        port.batch(|| {
            for &off in chunk {
                let r = h.read_at(vec![0; LEN], off, off);
                assert!(matches!(r, Ok(Started::Pending(_))), "read_at {off}: {r:?}");
            }
        });
    }
    let mut total = 0;
    let mut bad = Vec::new();
    for w in workers {
        let (n, b) = uio::join_bounded(w, "read worker");
        total += n;
        bad.extend(b);
    }
    assert!(
        bad.is_empty(),
        "wrong reads (offset, bytes, status): {bad:?}"
    );
    assert_eq!(total, READS, "every read yields exactly one packet");
    uio::assert_no_packet(&port, "no extra packets");
    let max = max_running.load(Ordering::SeqCst);
    assert!(
        (1..=CONCURRENCY).contains(&max),
        "{max} workers ran packets at once under concurrency {CONCURRENCY}"
    );
    drop(h);
    port.close();
}
