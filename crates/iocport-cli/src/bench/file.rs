//! The `file` suite: 4 KiB random reads from one file at a fixed queue depth.
//!
//! Cases `file_{mode}_qd{depth}`, depth 1, 16 and 64, in two modes:
//! - `direct`: the file is opened with `O_DIRECT`, so every read goes to the device (buffers are
//!   4096-aligned). Skipped, with a note, where the file system refuses `O_DIRECT` or is tmpfs
//!   (whose "device" is memory).
//! - `cached`: buffered reads of a file that is entirely in the page cache (it is read through once
//!   before the first cached case).
//!
//! Rounds are short and many ([`FULL_ROUNDS`] of [`RUNTIME`]) because the disk this suite was
//! written on changes speed from second to second (the same fio job spreads 40-90% over a run):
//! with a few long rounds, one slow stretch decided a median. In each round iocport runs first
//! and the peers right after it, so the runner's per-round ratio of iocport to each peer
//! ([`super::RoundRatio`]) compares reads made within seconds of each other; its median over the
//! rounds is the figure the table shows and the targets are judged by.
//!
//! Systems, each keeping `depth` reads in flight for [`RUNTIME`] (a fifth of it with `--quick`):
//! - `iocport`: `depth` `read_at` operations on one associated file, with CPUs worker threads
//!   calling `get`; each completion starts the next read with the same buffer. The handle is in
//!   skip-on-success mode (after the first `depth` reads are in flight), as a file server would use
//!   it: a read that can complete at once (`RWF_NOWAIT`, data in the page cache) does so on the
//!   calling worker, with no packet; O_DIRECT reads always go through the ring.
//! - `iocport-ring`: the same without skip-on-success: every read goes through io_uring. Not a
//!   peer: it shows what the synchronous fast path is worth.
//! - `iocport-interrupted`, `iocport-sqpoll`: as `iocport`, in the other submission modes.
//! - `iocport-epoll`: as `iocport`, on the epoll backend, forced: the reads run on its thread
//!   pool.
//! - `fio-io_uring`: fio, `ioengine=io_uring`, `iodepth=depth`, one job.
//! - `fio-psync`: fio, `ioengine=psync` (blocking `pread`), `numjobs=depth` threads.
//! - `pread`: a pool of `depth` Rust threads each calling `pread` in a loop.
//!
//! The file (1 GiB, 64 MiB with `--quick`) is written once per run with pseudo-random content in
//! a fresh directory under `$IOCPORT_BENCH_DIR` (default: the system's temporary directory) and
//! removed at the end, also on error. The fio peers are skipped, with a note naming
//! `scripts/bench-deps.sh`, when `fio` is not installed.

use std::alloc::{self, Layout};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use iocport::{GetError, IoBuf, Packet, Started};

use super::{
    epoll_note, join, run_case, tool_version, Config, Contender, Flavor, Goal, Record, Report,
    Target, Values, IOCPORT, IOCPORT_FLAVORS, IO_WAIT,
};

const SUITE: &str = "file";
const FIO_URING: &str = "fio-io_uring";
const FIO_PSYNC: &str = "fio-psync";
const PREAD: &str = "pread";
/// iocport with skip-on-success on the file's handle.
const IOCPORT_RING: &str = "iocport-ring";
/// The fio engines, for the targets.
const FIO_PEERS: &[&str] = &[FIO_URING, FIO_PSYNC];

/// The size of every read, and the alignment of offsets and (for `O_DIRECT`) buffers.
const BLOCK: usize = 4096;
/// How long each system reads in one round (a fifth of it with `--quick`). Short, so that a case
/// gets many rounds in the time a few long ones took: this suite's disk changes speed from second
/// to second, and what tells a real gap from such a change is the median of many per-round ratios
/// (see [`FULL_ROUNDS`]). Not a round second: each fio round also spends about 0.3 s starting.
const RUNTIME: Duration = Duration::from_millis(900);
/// Rounds per case in a full run, with no warm-up round. 9 rounds of [`RUNTIME`] take a case no
/// longer than the 3 rounds of 3 s before did (about 70 s against 74 s for 8 systems, fio's start
/// included). Measured on the project's virtual disk, fio at depth 1, `io_uring` against `psync`
/// in adjacent runs, in the same few minutes: the median of the per-round ratios varied (bootstrap
/// coefficient of variation) by 3.5% with 9 rounds of 1 s, 4.0% with 12 of 0.75 s and 4.2% with
/// 4 of 2 s; the ratio of the two medians of 4 rounds of 2 s, by 6.9%.
const FULL_ROUNDS: usize = 9;
/// How long fio may run past its own `runtime` before it is killed.
const FIO_GRACE: Duration = Duration::from_secs(30);
/// tmpfs's `f_type` in `statfs`.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// How the file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `O_DIRECT`: device-bound.
    Direct,
    /// Buffered, from the page cache.
    Cached,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Cached => "cached",
        }
    }

    /// Opens `path` read-only in this mode.
    fn open(self, path: &Path) -> std::io::Result<File> {
        let mut o = OpenOptions::new();
        o.read(true);
        if self == Mode::Direct {
            o.custom_flags(libc::O_DIRECT);
        }
        o.open(path)
    }
}

/// What every system of one case reads.
#[derive(Clone, Copy, Debug)]
struct Workload<'a> {
    path: &'a Path,
    /// The file's size in bytes (a multiple of [`BLOCK`]).
    size: u64,
    mode: Mode,
    depth: usize,
    runtime: Duration,
}

impl Workload<'_> {
    /// The number of [`BLOCK`]s in the file.
    fn blocks(&self) -> u64 {
        self.size / BLOCK as u64
    }
}

/// Runs the suite.
pub(crate) fn run(cfg: &Config) -> Result<Report, String> {
    let mut report = Report::default();
    let size: u64 = if cfg.quick { 64 << 20 } else { 1 << 30 };
    let runtime = if cfg.quick { RUNTIME / 5 } else { RUNTIME };
    let file_cfg = cfg.with_rounds(FULL_ROUNDS, false);
    let base = std::env::var_os("IOCPORT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let t = Instant::now();
    let file = TestFile::create(&base, size)?;
    super::say(format!(
        "bench {SUITE}: wrote {} MiB to {} in {:.1}s",
        size >> 20,
        file.path.display(),
        t.elapsed().as_secs_f64()
    ));
    let fio = tool_version(Path::new("fio"), "--version");
    report.notes.push(format!(
        "file_*: 4 KiB random reads of a {} MiB file in {}; {} round(s) of {:.1}s per system, \
         interleaved (iocport, then the peers, then the other iocport systems, the start rotating \
         each round), ratios to the peers taken round by round; \
         iocport runs {} worker thread(s) calling get; fio{} runs with --thread --norandommap \
         --invalidate=0, psync with numjobs = depth; iocport uses \
         skip-on-success on the file's handle (reads first tried at once with RWF_NOWAIT), \
         iocport-ring does not",
        size >> 20,
        base.display(),
        file_cfg.rounds,
        runtime.as_secs_f64(),
        super::cpus(),
        fio.as_deref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default(),
    ));
    report
        .notes
        .push(epoll_note("Builder::backend(BackendChoice::Epoll)"));
    if fio.is_none() {
        report.missing_tool("fio", "fio-io_uring and fio-psync");
    }

    let mut modes = vec![Mode::Cached];
    match direct_support(&file.path) {
        Ok(()) => modes.insert(0, Mode::Direct),
        Err(why) => report.notes.push(format!("file_direct_*: skipped: {why}")),
    }
    for mode in modes {
        if mode == Mode::Cached {
            warm_cache(&file.path)?;
        }
        for depth in [1, 16, 64] {
            let w = Workload {
                path: &file.path,
                size,
                mode,
                depth,
                runtime,
            };
            report
                .records
                .extend(file_case(&file_cfg, &w, fio.is_some())?);
        }
        let case = match mode {
            Mode::Direct => "file_direct_qd64",
            Mode::Cached => "file_cached_qd64",
        };
        report.targets.push(Target {
            case,
            metric: "iops",
            goal: Goal::AtLeastFactorOfBest {
                peers: FIO_PEERS,
                factor: 0.9,
            },
        });
        if mode == Mode::Direct {
            // Low depth, where the wake-ups per completion show (issue 11).
            report
                .targets
                .extend(["file_direct_qd1", "file_direct_qd16"].map(|case| Target {
                    case,
                    metric: "iops",
                    goal: Goal::AtLeastFactorOf {
                        peer: FIO_URING,
                        factor: 0.9,
                    },
                }));
        }
    }
    drop(file);
    Ok(report)
}

/// Case `file_{mode}_qd{depth}`.
///
/// The systems run in the order iocport, the peers (fio-io_uring, fio-psync, pread), then the
/// other iocport systems, the start rotating each round: so in most rounds each peer reads
/// within seconds of iocport, and its per-round ratio to iocport compares two measurements the
/// disk's mood of the moment touched alike. The records come back in the table's order
/// ([`DISPLAY_ORDER`]).
fn file_case(cfg: &Config, w: &Workload<'_>, fio: bool) -> Result<Vec<Record>, String> {
    let case = format!("file_{}_qd{}", w.mode.name(), w.depth);
    let w = *w;
    let mut contenders: Vec<Contender<'_>> = vec![Contender::new(IOCPORT, move || {
        read_iocport(&w, true, Flavor::DEFAULT)
    })];
    if fio {
        contenders.push(Contender::new(FIO_URING, move || read_fio(&w, "io_uring")));
        contenders.push(Contender::new(FIO_PSYNC, move || read_fio(&w, "psync")));
    }
    contenders.push(Contender::new(PREAD, move || read_pread(&w)));
    // iocport-ring (the default without skip-on-success), then the other flavors with it.
    contenders.push(Contender::new(IOCPORT_RING, move || {
        read_iocport(&w, false, Flavor::DEFAULT)
    }));
    contenders.extend(
        IOCPORT_FLAVORS
            .iter()
            .filter(|(system, _)| *system != IOCPORT)
            .map(|&(system, flavor)| {
                Contender::new(system, move || read_iocport(&w, true, flavor))
            }),
    );
    let mut records = run_case(cfg, SUITE, &case, contenders)?;
    records.sort_by_key(|r| display_rank(&r.system));
    Ok(records)
}

/// The order of the systems in the table and the charts: iocport, iocport-ring, the other
/// iocport flavors, then the peers.
const DISPLAY_ORDER: [&str; 8] = [
    IOCPORT,
    IOCPORT_RING,
    IOCPORT_FLAVORS[1].0,
    IOCPORT_FLAVORS[2].0,
    IOCPORT_FLAVORS[3].0,
    FIO_URING,
    FIO_PSYNC,
    PREAD,
];

/// The position of `system` in [`DISPLAY_ORDER`] (unknown systems last).
fn display_rank(system: &str) -> usize {
    DISPLAY_ORDER
        .iter()
        .position(|s| *s == system)
        .unwrap_or(DISPLAY_ORDER.len())
}

// ---------------------------------------------------------------------------------------------
// The file

/// The benchmark file, in a directory of its own; both are removed on drop.
struct TestFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TestFile {
    /// Creates a directory under `base` and writes a `size`-byte file of pseudo-random bytes in
    /// it with 1 MiB writes, then syncs it to the device.
    fn create(base: &Path, size: u64) -> Result<TestFile, String> {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let dir = base.join(format!(
            "iocport-bench-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let file = TestFile {
            path: dir.join("reads.dat"),
            dir,
        };
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&file.path)?;
            let mut chunk = vec![0u8; 1 << 20];
            let mut rng = Rng::new(0x1dea_5eed);
            for _ in 0..size.div_ceil(chunk.len() as u64) {
                for word in chunk.chunks_exact_mut(8) {
                    word.copy_from_slice(&rng.next().to_le_bytes());
                }
                f.write_all(&chunk)?;
            }
            f.set_len(size)?;
            f.sync_all()
        };
        write().map_err(|e| format!("cannot write {}: {e}", file.path.display()))?;
        Ok(file)
    }
}

impl Drop for TestFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_dir(&self.dir);
    }
}

/// Whether `path` can be read with `O_DIRECT` on a real device: not on tmpfs, and one aligned
/// read must succeed.
fn direct_support(path: &Path) -> Result<(), String> {
    if is_tmpfs(path) {
        return Err(format!(
            "{} is on tmpfs, which has no device to be bound by (set IOCPORT_BENCH_DIR to a \
             directory on a disk)",
            path.display()
        ));
    }
    let f = Mode::Direct
        .open(path)
        .map_err(|e| format!("O_DIRECT open of {} failed: {e}", path.display()))?;
    let mut buf = AlignedBuf::new(BLOCK);
    match f.read_at(&mut buf, 0) {
        Ok(n) if n == BLOCK => Ok(()),
        Ok(n) => Err(format!("O_DIRECT read returned {n} bytes")),
        Err(e) => Err(format!("O_DIRECT read failed: {e}")),
    }
}

/// Whether `path` is on tmpfs (false when that cannot be told).
pub(crate) fn is_tmpfs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path that lives through the call, and `st` is writable
    // memory the size of a `statfs`, which the call fills in when it returns 0.
    let rc = unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: statfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type's integer type differs between targets
    let ty = st.f_type as i64;
    ty == TMPFS_MAGIC
}

/// Reads the whole file once, buffered, so that it is in the page cache.
fn warm_cache(path: &Path) -> Result<(), String> {
    let read = || -> std::io::Result<()> {
        let mut f = File::open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        while f.read(&mut buf)? > 0 {}
        Ok(())
    };
    read().map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// xorshift64*: cheap pseudo-random numbers, for offsets and file content.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random [`BLOCK`]-aligned offset of one of `blocks` blocks.
    fn offset(&mut self, blocks: u64) -> u64 {
        (self.next() % blocks) * BLOCK as u64
    }
}

/// A seed that differs between threads and rounds.
fn seed() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    NEXT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// An aligned buffer

/// A zeroed heap buffer aligned to [`BLOCK`], as `O_DIRECT` requires.
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `AlignedBuf` owns its allocation exclusively (like a `Box<[u8]>`), so it may move to
// another thread, and `&AlignedBuf` only gives shared access to the bytes.
unsafe impl Send for AlignedBuf {}
// SAFETY: as above: shared references only read.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes (`len > 0`), aligned to [`BLOCK`].
    pub(crate) fn new(len: usize) -> AlignedBuf {
        let layout = Self::layout(len);
        // SAFETY: `layout` has a non-zero size (asserted in `layout`).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        AlignedBuf { ptr, len }
    }

    fn layout(len: usize) -> Layout {
        assert!(len > 0, "an AlignedBuf cannot be empty");
        Layout::from_size_align(len, BLOCK).expect("buffer size overflows")
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len` initialised (zeroed at first) bytes that we own, and the
        // shared borrow of `self` keeps them from being written meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and the exclusive borrow of `self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

// SAFETY: the bytes live in a heap allocation owned by the `AlignedBuf`, which moving the value
// does not move; `ptr` points to `len` initialised bytes until the value is dropped, and neither
// changes over its life.
unsafe impl IoBuf for AlignedBuf {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was allocated in `new` with exactly this layout and not freed since.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

// ---------------------------------------------------------------------------------------------
// Peers

/// `pread`: `depth` threads, each reading one block at a random offset in a loop until the round
/// ends. All start together after a barrier.
fn read_pread(w: &Workload<'_>) -> Result<Values, String> {
    let file = w
        .mode
        .open(w.path)
        .map_err(|e| format!("cannot open {}: {e}", w.path.display()))?;
    let barrier = Barrier::new(w.depth + 1);
    let blocks = w.blocks();
    let (file, barrier) = (&file, &barrier);
    thread::scope(|s| {
        let handles: Vec<_> = (0..w.depth)
            .map(|_| {
                s.spawn(move || -> Result<(u64, Instant), String> {
                    let mut buf = AlignedBuf::new(BLOCK);
                    let mut rng = Rng::new(seed());
                    barrier.wait();
                    let deadline = Instant::now() + w.runtime;
                    let mut n = 0u64;
                    loop {
                        let off = rng.offset(blocks);
                        let got = file
                            .read_at(&mut buf, off)
                            .map_err(|e| format!("pread at {off}: {e}"))?;
                        if got != BLOCK {
                            return Err(format!("pread at {off} returned {got} bytes"));
                        }
                        n += 1;
                        let now = Instant::now();
                        if now >= deadline {
                            return Ok((n, now));
                        }
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut total = 0;
        let mut end = start;
        let mut result = Ok(());
        for h in handles {
            match join(h) {
                Ok((n, t)) => {
                    total += n;
                    end = end.max(t);
                }
                Err(e) => result = result.and(Err(e)),
            }
        }
        result?;
        Ok(vec![("iops", total as f64 / (end - start).as_secs_f64())])
    })
}

/// fio with `engine` (`io_uring`: one job at `iodepth = depth`; `psync`: `numjobs = depth`
/// threads), time-based for the workload's runtime; reads the read IOPS from its JSON report.
/// fio is killed if it overruns its runtime by [`FIO_GRACE`].
fn read_fio(w: &Workload<'_>, engine: &str) -> Result<Values, String> {
    let out_path = w.path.with_extension(format!("fio-{engine}.json"));
    let (iodepth, numjobs) = if engine == "psync" {
        (1, w.depth)
    } else {
        (w.depth, 1)
    };
    let mut cmd = Command::new("fio");
    cmd.args([
        "--name=iocport-bench",
        "--rw=randread",
        "--bs=4k",
        "--thread",
        "--group_reporting",
        "--time_based",
        "--norandommap",
        "--randrepeat=0",
        "--invalidate=0",
        "--allow_file_create=0",
        "--output-format=json",
    ])
    .arg(format!("--filename={}", w.path.display()))
    .arg(format!("--size={}", w.size))
    .arg(format!("--direct={}", u8::from(w.mode == Mode::Direct)))
    .arg(format!("--ioengine={engine}"))
    .arg(format!("--iodepth={iodepth}"))
    .arg(format!("--numjobs={numjobs}"))
    .arg(format!("--runtime={}ms", w.runtime.as_millis().max(1)))
    .arg(format!("--output={}", out_path.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run fio: {e}"))?;
    let deadline = Instant::now() + w.runtime + FIO_GRACE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = fs::remove_file(&out_path);
                return Err(format!("fio ran past {:?}; killed", w.runtime + FIO_GRACE));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for fio: {e}"));
            }
        }
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let report = fs::read_to_string(&out_path);
    let _ = fs::remove_file(&out_path);
    if !status.success() {
        return Err(format!("fio failed ({status}): {}", stderr.trim()));
    }
    let report = report.map_err(|e| format!("cannot read fio's report: {e}"))?;
    let iops = fio_read_iops(&report)?;
    Ok(vec![("iops", iops)])
}

/// The total read IOPS of every job in fio's JSON report (fio may print warnings before it).
fn fio_read_iops(report: &str) -> Result<f64, String> {
    let json = &report[report.find('{').ok_or("fio's report has no JSON")?..];
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("fio's report is not JSON: {e}"))?;
    let jobs = v["jobs"].as_array().ok_or("fio's report has no jobs")?;
    let mut iops = 0.0;
    for job in jobs {
        if job["error"].as_i64().unwrap_or(0) != 0 {
            return Err(format!("fio job failed: error {}", job["error"]));
        }
        iops += job["read"]["iops"]
            .as_f64()
            .ok_or("fio's report has no read iops")?;
    }
    Ok(iops)
}

// ---------------------------------------------------------------------------------------------
// iocport

/// Checks that a read packet reports a whole block.
fn check_read(p: &Packet<(), AlignedBuf>) -> Result<(), String> {
    if let Some(e) = p.status.error() {
        return Err(format!("read: {e}"));
    }
    if p.bytes != BLOCK {
        return Err(format!("read {} bytes, not {BLOCK}", p.bytes));
    }
    Ok(())
}

/// The completion key of the file on the iocport side.
const FILE_KEY: usize = 1;

/// iocport: one port (concurrency value = CPUs) with the file associated; `depth` reads are
/// started together, then CPUs worker threads call `get`, and each completion before the deadline
/// is counted and starts the next read (same buffer, new random offset). After the deadline the
/// reads in flight are drained, and the worker that takes the last one closes the port, which
/// wakes the others.
///
/// With `skip` (system `iocport`; without it, `iocport-ring`), the handle is switched to skip-on-success once the first
/// reads are in flight: a worker's next read is first tried at once (`RWF_NOWAIT`) and, when that
/// succeeds, served on the spot without a packet.
fn read_iocport(w: &Workload<'_>, skip: bool, flavor: Flavor) -> Result<Values, String> {
    let file = w
        .mode
        .open(w.path)
        .map_err(|e| format!("cannot open {}: {e}", w.path.display()))?;
    let port = flavor
        .builder()
        .build::<(), AlignedBuf>()
        .map_err(|e| format!("port: {e}"))?;
    if let Err(e) = flavor.check(&port) {
        port.close();
        return Err(e);
    }
    let handle = port
        .associate(file, FILE_KEY)
        .map_err(|e| format!("associate: {e}"))?;
    let blocks = w.blocks();
    let in_flight = AtomicUsize::new(w.depth);
    let start = Instant::now();
    let deadline = start + w.runtime;
    let mut rng = Rng::new(seed());
    // Reads that complete at once (only on a skip-on-success handle) are counted and replaced.
    let started = port.batch(|| -> Result<u64, String> {
        let mut done_at_once = 0;
        for _ in 0..w.depth {
            let mut buf = AlignedBuf::new(BLOCK);
            loop {
                match handle.read_at(buf, rng.offset(blocks), ()) {
                    Ok(Started::Pending(_)) => break,
                    Ok(Started::Done(mut p)) => {
                        check_read(&p)?;
                        if Instant::now() >= deadline {
                            return Err("reads kept completing at once".to_owned());
                        }
                        done_at_once += 1;
                        buf = p.take_buf().ok_or("no buffer")?;
                    }
                    Err(e) => return Err(format!("read_at: {e}")),
                }
            }
        }
        Ok(done_at_once)
    });
    let done_at_once = match started {
        Ok(n) => n,
        Err(e) => {
            port.close();
            return Err(e);
        }
    };
    // After the first reads are in flight, so that each worker keeps its own going.
    handle.set_skip_on_success(skip);
    let (port, handle, in_flight) = (&port, &handle, &in_flight);
    let fail = |e: String| {
        port.close();
        e
    };
    let total = thread::scope(|s| {
        let workers: Vec<_> = (0..super::cpus())
            .map(|_| {
                s.spawn(move || -> Result<u64, String> {
                    let mut rng = Rng::new(seed());
                    let mut n = 0u64;
                    // A read that completed at once, served before the next `get`.
                    let mut next = None;
                    loop {
                        let mut p = match next.take() {
                            Some(p) => p,
                            None => match port.get(Some(IO_WAIT)) {
                                Ok(p) => p,
                                Err(GetError::Closed) => return Ok(n),
                                Err(e) => return Err(fail(format!("get: {e}"))),
                            },
                        };
                        check_read(&p).map_err(fail)?;
                        if Instant::now() >= deadline {
                            if in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
                                port.close();
                            }
                            continue;
                        }
                        n += 1;
                        let buf = p.take_buf().ok_or_else(|| fail("no buffer".to_owned()))?;
                        match handle.read_at(buf, rng.offset(blocks), ()) {
                            Ok(Started::Pending(_)) => {}
                            Ok(Started::Done(p)) => next = Some(p),
                            Err(e) => return Err(fail(format!("read_at: {e}"))),
                        }
                    }
                })
            })
            .collect();
        let mut total = done_at_once;
        let mut result = Ok(());
        for h in workers {
            match join(h) {
                Ok(n) => total += n,
                Err(e) => result = result.and(Err(e)),
            }
        }
        result.map(|()| total)
    })?;
    Ok(vec![("iops", total as f64 / w.runtime.as_secs_f64())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buf_is_aligned_and_zeroed() {
        let mut b = AlignedBuf::new(BLOCK);
        assert_eq!(b.as_ptr() as usize % BLOCK, 0);
        assert!(b.iter().all(|&x| x == 0));
        b[BLOCK - 1] = 7;
        assert_eq!(b[BLOCK - 1], 7);
    }

    #[test]
    fn offsets_are_aligned_and_in_range() {
        let mut rng = Rng::new(seed());
        for _ in 0..1000 {
            let off = rng.offset(10);
            assert_eq!(off % BLOCK as u64, 0);
            assert!(off < 10 * BLOCK as u64);
        }
    }

    /// Many short rounds, in no more reading time per system than the 3 rounds of 3 s before.
    #[test]
    fn rounds_are_many_and_short() {
        const { assert!(FULL_ROUNDS >= 9) };
        assert!(RUNTIME * FULL_ROUNDS as u32 <= Duration::from_secs(9));
    }

    /// The table keeps its order (iocport, its flavors, the peers) whatever order the systems
    /// ran in.
    #[test]
    fn records_come_back_in_display_order() {
        let mut ran: Vec<&str> = vec![IOCPORT, FIO_URING, FIO_PSYNC, PREAD, IOCPORT_RING];
        ran.extend(IOCPORT_FLAVORS[1..].iter().map(|f| f.0));
        ran.sort_by_key(|s| display_rank(s));
        assert_eq!(ran, DISPLAY_ORDER);
        assert_eq!(display_rank("unknown"), DISPLAY_ORDER.len());
    }

    /// One case of a full run, for measuring this machine's noise in a few minutes rather than
    /// the suite's eight: `IOCPORT_FILE_CASE=direct:1 cargo test -p iocport-cli --release
    /// one_case -- --ignored --nocapture` prints the table of `file_direct_qd1` (9 rounds of
    /// 0.9 s, about 75 s with fio installed) with each peer's per-round ratio and its spread.
    #[test]
    #[ignore = "a measurement of about 70 s, on a 1 GiB file"]
    fn one_case() {
        let spec = std::env::var("IOCPORT_FILE_CASE").unwrap_or_else(|_| "direct:1".into());
        let (mode, depth) = spec
            .split_once(':')
            .expect("IOCPORT_FILE_CASE is MODE:DEPTH");
        let mode = if mode == "cached" {
            Mode::Cached
        } else {
            Mode::Direct
        };
        let base = std::env::var_os("IOCPORT_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let size = 1 << 30;
        let file = TestFile::create(&base, size).unwrap();
        if mode == Mode::Cached {
            warm_cache(&file.path).unwrap();
        } else if let Err(why) = direct_support(&file.path) {
            eprintln!("skipped: {why}");
            return;
        }
        let w = Workload {
            path: &file.path,
            size,
            mode,
            depth: depth.parse().expect("a depth"),
            runtime: RUNTIME,
        };
        let cfg = Config::new(false).with_rounds(FULL_ROUNDS, false);
        let fio = tool_version(Path::new("fio"), "--version").is_some();
        let t = Instant::now();
        let records = file_case(&cfg, &w, fio).unwrap();
        let report = Report {
            records,
            ..Report::default()
        };
        print!("{}", super::super::table(&[(SUITE, report)], &cfg));
        println!("took {:.1}s", t.elapsed().as_secs_f64());
    }

    #[test]
    fn parses_fio_json() {
        let report =
            "fio: some warning\n{\"jobs\": [{\"error\": 0, \"read\": {\"iops\": 1234.5}}]}";
        assert_eq!(fio_read_iops(report).unwrap(), 1234.5);
        assert!(fio_read_iops("no json").is_err());
    }

    #[test]
    fn pread_and_iocport_run() {
        let file = TestFile::create(&std::env::temp_dir(), 1 << 20).unwrap();
        let w = Workload {
            path: &file.path,
            size: 1 << 20,
            mode: Mode::Cached,
            depth: 2,
            runtime: Duration::from_millis(50),
        };
        let v = read_pread(&w).unwrap();
        assert!(v[0].1 > 0.0);
        for skip in [false, true] {
            for (system, flavor) in IOCPORT_FLAVORS {
                let v = read_iocport(&w, skip, flavor).unwrap_or_else(|e| panic!("{system}: {e}"));
                assert!(v[0].1 > 0.0);
            }
        }
        if direct_support(&file.path).is_ok() {
            let w = Workload {
                mode: Mode::Direct,
                ..w
            };
            assert!(read_pread(&w).unwrap()[0].1 > 0.0);
            assert!(read_iocport(&w, false, Flavor::DEFAULT).unwrap()[0].1 > 0.0);
            assert!(read_iocport(&w, true, Flavor::EPOLL).unwrap()[0].1 > 0.0);
        }
    }
}
