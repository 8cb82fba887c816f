//! The `copy` suite: copying one big file, `iocport copy` against `cp`.
//!
//! Case `copy_1gib` (`copy_64mib` with `--quick`): a file of pseudo-random bytes, written once per
//! run, copied to a new file in the same directory. Metric: `bytes_per_s`, the file's size over
//! the wall time from starting the command to its exit.
//!
//! - `iocport`: this very binary as `iocport copy SRC DST --no-sync --quiet`.
//! - `iocport-epoll`: the same with `--backend epoll` (the epoll backend forced: its thread pool
//!   runs the reads and writes).
//! - `cp`: `cp SRC DST` (GNU cp: `copy_file_range`, the copy done inside the kernel).
//!
//! Neither syncs the copy to the device: both measure reading the source and filling the page
//! cache with the copy. Before every round the copy is deleted (its dirty pages with it), `sync`
//! runs, and the page cache is dropped (`echo 3 > /proc/sys/vm/drop_caches`) so that the source
//! is read from the device; where that is not permitted (an unprivileged container), the source
//! alone is evicted with `posix_fadvise(POSIX_FADV_DONTNEED)` instead, and a note says so.
//!
//! The directory is `$IOCPORT_BENCH_DIR` if set, else the project's `target/` (a real disk, where
//! /tmp may be tmpfs, whose "device" is memory), else the system's temporary directory; a note
//! says when it is tmpfs. The run's directory is removed at the end, also on error or panic, and
//! directories left by runs that were killed are removed at the start.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::child::{find_tool, Guard};
use super::file::is_tmpfs;
use super::{
    epoll_note, run_case, say, tool_version, Config, Contender, Goal, Report, Target, Values,
    IOCPORT, IOCPORT_EPOLL,
};

const SUITE: &str = "copy";
const CP: &str = "cp";
/// The prefix of the run directories.
const DIR_PREFIX: &str = "iocport-bench-copy-";
/// Measured rounds in a full run (each copies the whole file, cold).
const FULL_ROUNDS: usize = 7;
/// The slowest copy rate tolerated before a copy is killed: 1 GiB in at most 2 minutes.
const MIN_RATE: u64 = 8 << 20;

/// Runs the suite.
pub(crate) fn run(cfg: &Config) -> Result<Report, String> {
    let mut report = Report::default();
    let Some(cp) = find_tool("cp", &["/bin/cp"]) else {
        return Err("cp not found".into());
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let (size, case) = if cfg.quick {
        (64u64 << 20, "copy_64mib")
    } else {
        (1u64 << 30, "copy_1gib")
    };
    let copy_cfg = cfg.with_rounds(FULL_ROUNDS, false);
    let base = base_dir();
    remove_stale_dirs(&base);
    let free = free_bytes(&base)?;
    if free < 2 * size + (256 << 20) {
        report.notes.push(format!(
            "{case}: skipped: {} has {} MiB free, the source and its copy need {} MiB",
            base.display(),
            free >> 20,
            (2 * size) >> 20
        ));
        return Ok(report);
    }
    let dir = RunDir::create(&base)?;
    let src = dir.path.join("src.dat");
    let dst = dir.path.join("dst.dat");
    let t = Instant::now();
    write_source(&src, size)?;
    say(format!(
        "bench {SUITE}: wrote {} MiB to {} in {:.1}s",
        size >> 20,
        src.display(),
        t.elapsed().as_secs_f64()
    ));
    let eviction = Eviction::probe();
    report.notes.push(format!(
        "{case}: a {} MiB file in {}{}, copied to the same directory, {} round(s) per system, \
         no sync of the copy (iocport copy --no-sync; cp never syncs); {}; cp is {}",
        size >> 20,
        base.display(),
        if is_tmpfs(&base) {
            " (tmpfs: this measures memory copies, not a device)"
        } else {
            ""
        },
        copy_cfg.rounds,
        eviction.describe(),
        tool_version(&cp, "--version").unwrap_or_else(|| cp.display().to_string()),
    ));
    report
        .notes
        .push(epoll_note("iocport copy --backend epoll"));

    let limit = Duration::from_secs(30 + size / MIN_RATE);
    let job = Job {
        src: &src,
        dst: &dst,
        size,
        eviction: &eviction,
        limit,
        log: &dir.path.join("stderr.txt"),
    };
    let iocport_copy = |extra: &'static [&'static str]| {
        let mut cmd = Command::new(&exe);
        cmd.arg("copy")
            .arg(job.src)
            .arg(job.dst)
            .args(["--no-sync", "--quiet"])
            .args(extra);
        cmd
    };
    let contenders = vec![
        Contender::new(IOCPORT, move || {
            job.round("iocport copy", iocport_copy(&[]))
        }),
        Contender::new(IOCPORT_EPOLL, move || {
            job.round(
                "iocport copy --backend epoll",
                iocport_copy(&["--backend", "epoll"]),
            )
        }),
        Contender::new(CP, move || {
            let mut cmd = Command::new(&cp);
            cmd.arg(job.src).arg(job.dst);
            job.round("cp", cmd)
        }),
    ];
    report
        .records
        .extend(run_case(&copy_cfg, SUITE, case, contenders)?);
    report.targets.push(Target {
        case,
        metric: "bytes_per_s",
        goal: Goal::AtLeastFactorOf {
            peer: CP,
            factor: 1.0,
        },
    });
    drop(dir);
    Ok(report)
}

/// What one round copies and how.
#[derive(Clone, Copy)]
struct Job<'a> {
    src: &'a Path,
    dst: &'a Path,
    size: u64,
    eviction: &'a Eviction,
    /// The longest one copy may take.
    limit: Duration,
    /// Where the command's stderr goes.
    log: &'a Path,
}

impl Job<'_> {
    /// One copy by `cmd`, cold: the old copy removed, the cache dropped, then timed from start to
    /// exit; the copy must have the source's size. The copy is removed afterwards.
    fn round(&self, name: &str, mut cmd: Command) -> Result<Values, String> {
        remove(self.dst)?;
        self.eviction.evict(self.src)?;
        let log = File::create(self.log)
            .map_err(|e| format!("cannot create {}: {e}", self.log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let start = Instant::now();
        let mut child = Guard::spawn(name, &mut cmd)?;
        let status = child.wait(self.limit)?;
        let elapsed = start.elapsed();
        let result = (|| {
            if !status.success() {
                let err = fs::read_to_string(self.log).unwrap_or_default();
                return Err(format!("{name} failed ({status}): {}", err.trim()));
            }
            let got = fs::metadata(self.dst)
                .map_err(|e| format!("{name} left no copy: {e}"))?
                .len();
            if got != self.size {
                return Err(format!("{name} copied {got} bytes of {}", self.size));
            }
            Ok(vec![(
                "bytes_per_s",
                self.size as f64 / elapsed.as_secs_f64(),
            )])
        })();
        remove(self.dst)?;
        result
    }
}

/// Removes `path` if it exists.
fn remove(path: &Path) -> Result<(), String> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// How the source is made cold before each round.
enum Eviction {
    /// `sync; echo 3 > /proc/sys/vm/drop_caches` works here.
    DropCaches,
    /// Not permitted (the error says why): the source's pages are dropped with posix_fadvise.
    Fadvise(String),
}

const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";

impl Eviction {
    /// Tries to drop the page cache once.
    fn probe() -> Eviction {
        match drop_caches() {
            Ok(()) => Eviction::DropCaches,
            Err(e) => Eviction::Fadvise(e),
        }
    }

    /// Makes `src` cold.
    fn evict(&self, src: &Path) -> Result<(), String> {
        match self {
            Eviction::DropCaches => drop_caches(),
            Eviction::Fadvise(_) => {
                sync();
                fadvise_dontneed(src)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Eviction::DropCaches => "page cache dropped before every round (cold source)".into(),
            Eviction::Fadvise(why) => format!(
                "dropping the page cache is not permitted here ({why}): warm-cache runs, except \
                 that the source's pages are evicted with posix_fadvise(DONTNEED) before every \
                 round"
            ),
        }
    }
}

/// `sync(2)`: every dirty page of every file system written out.
fn sync() {
    // SAFETY: sync(2) takes no arguments and touches no memory of ours.
    unsafe { libc::sync() }
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`.
fn drop_caches() -> Result<(), String> {
    sync();
    fs::OpenOptions::new()
        .write(true)
        .open(DROP_CACHES)
        .and_then(|mut f| f.write_all(b"3\n"))
        .map_err(|e| format!("{DROP_CACHES}: {e}"))
}

/// Drops the (clean) cached pages of `path`.
fn fadvise_dontneed(path: &Path) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: posix_fadvise only reads its integer arguments; `f` keeps the descriptor open
    // through the call.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "posix_fadvise({}): {}",
            path.display(),
            std::io::Error::from_raw_os_error(rc)
        ))
    }
}

/// Writes `size` pseudo-random bytes (xorshift64*, 1 MiB at a time) to `path` and syncs them, so
/// the file's pages are clean and can be dropped.
fn write_source(path: &Path, size: u64) -> Result<(), String> {
    let write = || -> std::io::Result<()> {
        let mut f = File::create(path)?;
        let mut chunk = vec![0u8; 1 << 20];
        let mut x: u64 = 0x5eed_c0de_1234_5679;
        let mut left = size;
        while left > 0 {
            for word in chunk.chunks_exact_mut(8) {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                word.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
            }
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        f.sync_all()
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Where the run's directory goes: `$IOCPORT_BENCH_DIR`, else the `target/` directory this binary
/// was built in (or the project's), else the system's temporary directory.
fn base_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("IOCPORT_BENCH_DIR") {
        return PathBuf::from(dir);
    }
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .find(|d| d.file_name().is_some_and(|n| n == "target"))
            .map(Path::to_path_buf)
    });
    from_exe
        .or_else(|| super::project_root().map(|r| r.join("target")))
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

/// Free bytes for an unprivileged user on the file system of `dir`.
fn free_bytes(dir: &Path) -> Result<u64, String> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{} contains a NUL byte", dir.display()))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path that lives through the call, and `st` is writable
    // memory the size of a `statvfs`, which the call fills in when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(format!(
            "statvfs({}): {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Removes run directories under `base` whose process is gone (a run that was killed).
fn remove_stale_dirs(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// The run's directory, removed with everything in it on drop.
struct RunDir {
    path: PathBuf,
}

impl RunDir {
    fn create(base: &Path) -> Result<RunDir, String> {
        let path = base.join(format!("{DIR_PREFIX}{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(RunDir { path })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory under a base of the test's own (tests run in parallel, in one process).
    struct TestDir {
        base: PathBuf,
        run: Option<RunDir>,
    }

    impl TestDir {
        fn new(tag: &str) -> TestDir {
            let base = std::env::temp_dir().join(format!("iocport-copy-test-{tag}"));
            fs::create_dir_all(&base).unwrap();
            let run = Some(RunDir::create(&base).unwrap());
            TestDir { base, run }
        }

        fn path(&self) -> &Path {
            &self.run.as_ref().unwrap().path
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            drop(self.run.take());
            let _ = fs::remove_dir(&self.base);
        }
    }

    #[test]
    fn cp_round_copies_measures_and_cleans_up() {
        let dir = TestDir::new("cp");
        let src = dir.path().join("src.dat");
        let dst = dir.path().join("dst.dat");
        write_source(&src, (1 << 20) + 123).unwrap();
        assert_eq!(fs::metadata(&src).unwrap().len(), (1 << 20) + 123);
        let eviction = Eviction::Fadvise("test".into());
        let job = Job {
            src: &src,
            dst: &dst,
            size: (1 << 20) + 123,
            eviction: &eviction,
            limit: Duration::from_secs(30),
            log: &dir.path().join("stderr.txt"),
        };
        // A command that copies, checked by a second one that compares.
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!(
            "cp {} {} && cmp -s {} {}",
            src.display(),
            dst.display(),
            src.display(),
            dst.display()
        ));
        let v = job.round("cp", cmd).unwrap();
        assert_eq!(v[0].0, "bytes_per_s");
        assert!(v[0].1 > 0.0);
        assert!(!dst.exists(), "the copy is removed after the round");
        // A failing command is an error carrying its stderr, and leaves nothing behind.
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("echo broken >&2; exit 3");
        let e = job.round("bad", cmd).unwrap_err();
        assert!(e.contains("broken"), "{e}");
        // A short copy is an error.
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("head -c 10 {} > {}", src.display(), dst.display()));
        assert!(job.round("short", cmd).unwrap_err().contains("10 bytes"));
        assert!(!dst.exists());
    }

    #[test]
    fn run_dirs_are_removed_also_when_stale() {
        let base = std::env::temp_dir().join("iocport-copy-test-stale");
        fs::create_dir_all(&base).unwrap();
        // A pid that cannot exist (above the kernel's pid_max limit of 2^22).
        let stale = base.join(format!("{DIR_PREFIX}{}", 99_999_999));
        fs::create_dir_all(&stale).unwrap();
        fs::write(stale.join("src.dat"), b"x").unwrap();
        remove_stale_dirs(&base);
        assert!(!stale.exists());
        let path = {
            let d = RunDir::create(&base).unwrap();
            fs::write(d.path.join("f"), b"x").unwrap();
            d.path.clone()
        };
        assert!(!path.exists());
        fs::remove_dir(&base).unwrap();
    }

    #[test]
    fn eviction_fallback_works_without_privileges() {
        let dir = TestDir::new("evict");
        let src = dir.path().join("src.dat");
        write_source(&src, 4096).unwrap();
        fadvise_dontneed(&src).unwrap();
        assert!(Eviction::Fadvise("x".into())
            .describe()
            .contains("warm-cache"));
        assert!(free_bytes(dir.path()).unwrap() > 0);
    }
}
