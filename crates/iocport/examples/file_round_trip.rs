//! Writes a file through the port, flushes it, and reads it back: several `write_at`s in flight at
//! once, an `fsync`, then several `read_at`s, and the bytes compared with what was written.
//!
//! The file is made in the temporary directory (`TMPDIR`) and removed at the end, whatever
//! happens. It prints the backend the port runs on and why (on epoll, file operations run on the
//! backend's thread pool).
//!
//! ```sh
//! cargo run -p iocport --example file_round_trip
//! ```
//!
//! Exits 0 on success; 1 with a message on failure; 3 if it has not finished within 30 seconds.

use std::error::Error;
use std::fs::OpenOptions;
use std::path::Path;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use iocport::{Builder, CompletionPort, GetError, Packet};

/// How long the whole program may take before it gives up.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long any one packet may take to arrive.
const STEP: Duration = Duration::from_secs(10);
/// The file is this many blocks, written and read all at once.
const BLOCKS: usize = 8;
const BLOCK: usize = 64 << 10;
/// The completion key of the file.
const FILE: usize = 7;

/// The value each operation carries: which one, and which block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Write(usize),
    Fsync,
    Read(usize),
}

fn main() -> ExitCode {
    watchdog(DEADLINE);
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("file_round_trip: {e}");
            ExitCode::FAILURE
        }
    }
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

/// The example, on a file in the temporary directory that is removed whatever happens: `Err` with
/// what went wrong.
fn run() -> Result<(), Box<dyn Error>> {
    let path = std::env::temp_dir().join(format!("iocport-example-{}", std::process::id()));
    let result = round_trip(&path);
    let _ = std::fs::remove_file(&path);
    result
}

/// Block `i`'s bytes: different in every block, so that a block at the wrong offset shows.
fn block(i: usize) -> Vec<u8> {
    (0..BLOCK)
        .map(|j| (j.wrapping_mul(13) ^ i.wrapping_mul(101)) as u8)
        .collect()
}

/// The next packet, or an error if none arrives within [`STEP`] or its operation failed.
fn next(port: &CompletionPort<Step>) -> Result<Packet<Step>, Box<dyn Error>> {
    let packet = match port.get(Some(STEP)) {
        Ok(p) => p,
        Err(GetError::TimedOut) => return Err(format!("no packet within {STEP:?}").into()),
        Err(e) => return Err(e.into()),
    };
    if packet.key != FILE {
        return Err(format!("a packet with key {}, not {FILE}", packet.key).into());
    }
    if let Err(e) = packet.result() {
        return Err(format!("{:?} failed: {e}", packet.value).into());
    }
    Ok(packet)
}

/// Writes, flushes and reads back the file at `path`, which must not exist.
fn round_trip(path: &Path) -> Result<(), Box<dyn Error>> {
    let port: CompletionPort<Step> = Builder::new().build()?;
    match port.backend() {
        Some(info) => println!(
            "file_round_trip: backend {} ({})",
            info.backend, info.reason
        ),
        None => return Err("the port has no I/O backend after Builder::build".into()),
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("create {}: {e}", path.display()))?;
    let file = port.associate(file, FILE)?;

    // Every block's write in flight at once; they may complete in any order.
    port.batch(|| -> Result<(), Box<dyn Error>> {
        for i in 0..BLOCKS {
            file.write_at(block(i), (i * BLOCK) as u64, Step::Write(i))?;
        }
        Ok(())
    })?;
    let mut written = [false; BLOCKS];
    for _ in 0..BLOCKS {
        let p = next(&port)?;
        match p.value {
            Step::Write(i) if p.bytes == BLOCK && !written[i] => written[i] = true,
            other => return Err(format!("unexpected {other:?} of {} bytes", p.bytes).into()),
        }
    }

    file.fsync(Step::Fsync)?;
    let p = next(&port)?;
    if p.value != Step::Fsync {
        return Err(format!("expected the fsync, got {:?}", p.value).into());
    }

    for i in 0..BLOCKS {
        file.read_at(vec![0; BLOCK], (i * BLOCK) as u64, Step::Read(i))?;
    }
    let mut read = [false; BLOCKS];
    for _ in 0..BLOCKS {
        let mut p = next(&port)?;
        let Step::Read(i) = p.value else {
            return Err(format!("unexpected {:?}", p.value).into());
        };
        let buf = p.take_buf().ok_or("read handed back no buffer")?;
        if p.bytes != BLOCK || buf != block(i) || read[i] {
            return Err(format!("block {i} read back wrong ({} bytes)", p.bytes).into());
        }
        read[i] = true;
    }
    // Past the end: a read of 0 bytes.
    file.read_at(vec![0; 16], (BLOCKS * BLOCK) as u64, Step::Read(BLOCKS))?;
    let p = next(&port)?;
    if (p.value, p.bytes) != (Step::Read(BLOCKS), 0) {
        return Err(format!("a read past the end gave {:?}, {} bytes", p.value, p.bytes).into());
    }

    drop(file);
    let left = port.close();
    if !left.is_empty() {
        return Err(format!("{} packets left on the port", left.len()).into());
    }
    println!(
        "file_round_trip: {BLOCKS} blocks of {BLOCK} bytes written, flushed and read back through the port"
    );
    Ok(())
}

/// Ends the process with exit code 3 if it is still running after `after`, so that a bug can never
/// leave it hanging.
fn watchdog(after: Duration) {
    thread::spawn(move || {
        thread::sleep(after);
        eprintln!("file_round_trip: not finished after {after:?}; giving up");
        std::process::exit(3);
    });
}
