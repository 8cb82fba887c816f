//! `iocport copy`, run as a real process: contents and modes copied exactly, errors as one line and
//! exit code 2, and never a half-written file under the destination's name.
//!
//! Tests that need permissions to bite drop `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH` from the
//! child's capability bounding set when the tests run as root (root ignores file modes otherwise);
//! where that is not allowed they are skipped with a note. The full-disk test mounts a 1 MiB tmpfs
//! in a private mount namespace of the child, which needs root: it is skipped with a note
//! otherwise. Nothing else needs privileges.

mod util;

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use util::without_io_uring;

/// The block size most tests use, so that files of a few blocks exercise every path.
const BLOCK: usize = 64 << 10;

/// A fresh directory under the system's temporary directory, removed (with its contents) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "iocport-copy-test-{}-{}-{test}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("create test directory");
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Directories a test made read-only must be writable again to be emptied.
        if let Ok(entries) = fs::read_dir(&self.0) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755));
                }
            }
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The command under test.
fn iocport() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iocport"))
}

/// Runs `iocport copy ARGS...` and returns its output.
fn copy(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = iocport();
    cmd.arg("copy");
    for a in args {
        cmd.arg(a);
    }
    cmd.output().expect("run iocport")
}

/// Pseudo-random bytes (xorshift64*), different for each seed.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `data` to `path` with permission bits `mode`.
fn write_file(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).expect("write source");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod source");
}

/// The stderr of a failed run, which must be exactly one line, and the exit code 2.
fn one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "exactly one line on stderr: {stderr:?}"
    );
    assert!(stderr.starts_with("iocport: "), "{stderr:?}");
    stderr
}

/// Asserts that the run succeeded.
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "iocport copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Names in `dir` that are temporary files of a copy.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("list directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("iocport-tmp"))
        .collect()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Makes the child subject to file permissions even when the tests run as root: drops the
/// capabilities that bypass them from its bounding set, so that they are gone after `exec`.
/// Returns `false` (with a note) if that is not possible here, and the test should be skipped.
fn without_dac_override(cmd: &mut Command, test: &str) -> bool {
    if !is_root() {
        return true;
    }
    // Whether this process may drop bounding capabilities (it needs CAP_SETPCAP): try in a child.
    let mut probe = Command::new("/bin/true");
    // SAFETY: the closure makes only prctl system calls, which are async-signal-safe and touch
    // no memory of the parent.
    unsafe {
        probe.pre_exec(drop_dac_capabilities);
    }
    if !probe.status().is_ok_and(|s| s.success()) {
        eprintln!("note: {test} skipped: running as root and cannot drop CAP_DAC_OVERRIDE");
        return false;
    }
    // SAFETY: as above.
    unsafe {
        cmd.pre_exec(drop_dac_capabilities);
    }
    true
}

/// `CAP_DAC_OVERRIDE`, `CAP_DAC_READ_SEARCH` and `CAP_FOWNER` (linux/capability.h; not in libc).
const DAC_CAPABILITIES: [libc::c_ulong; 3] = [1, 2, 3];

/// Drops the DAC-bypassing capabilities from the calling process's bounding set.
fn drop_dac_capabilities() -> std::io::Result<()> {
    for cap in DAC_CAPABILITIES {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and no pointers.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Limits the child's file size to `bytes` (`RLIMIT_FSIZE`): writes beyond fail with `EFBIG`.
fn with_file_size_limit(cmd: &mut Command, bytes: u64) {
    // SAFETY: the closure makes one setrlimit system call on a local struct: async-signal-safe,
    // no allocation.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A sparse file of `size` bytes with `data` written at each of `at`; whether the file system
/// kept the holes.
fn write_sparse(path: &Path, size: u64, at: &[(u64, &[u8])]) -> bool {
    use std::os::unix::fs::FileExt;
    let f = fs::File::create(path).expect("create sparse file");
    f.set_len(size).expect("set length");
    for (offset, data) in at {
        f.write_all_at(data, *offset).expect("write data");
    }
    f.sync_all().expect("sync");
    let meta = f.metadata().expect("stat");
    meta.blocks() * 512 < size / 2
}

#[test]
fn sizes_around_the_block_are_copied_exactly_with_their_mode() {
    sizes_around_the_block(&["--direct", "never"]);
}

// Catches: an O_DIRECT read of the last, partial block asked for its exact length (EINVAL), or
// its rounded-up length copied (a copy longer than the source).
#[test]
fn sizes_around_the_block_with_direct_reads() {
    sizes_around_the_block(&["--direct", "always"]);
}

fn sizes_around_the_block(extra: &[&str]) {
    let dir = TempDir::new("sizes");
    let sizes = [
        0,
        1,
        BLOCK - 1,
        BLOCK,
        BLOCK + 1,
        3 * BLOCK + 17,
        (5 << 20) + 3,
    ];
    let modes = [0o644, 0o600, 0o640, 0o755, 0o444, 0o751, 0o664];
    for (i, (&size, &mode)) in sizes.iter().zip(&modes).enumerate() {
        let src = dir.join(&format!("src-{size}"));
        let dst = dir.join(&format!("dst-{size}"));
        let data = random_bytes(size, i as u64 + 1);
        write_file(&src, &data, mode);
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"-q", &"--block", &"64K", &"--depth", &"4", &src, &dst];
        args.extend(extra.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        let out = copy(&args);
        assert_ok(&out);
        assert!(out.stderr.is_empty(), "--quiet prints nothing");
        let copied = fs::read(&dst).expect("read copy");
        assert_eq!(copied.len(), size, "size {size}");
        assert!(copied == data, "content of the {size}-byte copy differs");
        assert_eq!(mode_of(&dst), mode, "mode of the {size}-byte copy");
    }
    assert!(leftovers(&dir.0).is_empty(), "{:?}", leftovers(&dir.0));
}

#[test]
fn default_settings_copy_and_print_one_summary_line() {
    let dir = TempDir::new("default");
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    // Not a multiple of the default 256 KiB block, and more blocks than the default depth.
    let data = random_bytes((9 << 20) + 4099, 42);
    write_file(&src, &data, 0o640);
    let out = copy(&[&src, &dst]);
    assert_ok(&out);
    assert!(
        fs::read(&dst).expect("read copy") == data,
        "content differs"
    );
    assert!(out.stdout.is_empty());
    // stderr is a pipe: no progress bar, only the summary.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.contains(&format!("{} bytes", data.len())) && stderr.contains("MiB/s"),
        "{stderr:?}"
    );
}

#[test]
fn many_small_blocks_and_no_sync() {
    let dir = TempDir::new("small-blocks");
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    let data = random_bytes((1 << 20) + 1, 7);
    write_file(&src, &data, 0o600);
    let out = copy(&[
        &"-q",
        &"--no-sync",
        &"--block",
        &"4K",
        &"--depth",
        &"64",
        &src,
        &dst,
    ]);
    assert_ok(&out);
    assert!(
        fs::read(&dst).expect("read copy") == data,
        "content differs"
    );
}

#[test]
fn copies_into_a_directory_under_the_source_name() {
    let dir = TempDir::new("into-dir");
    let src = dir.join("file.bin");
    let target = dir.join("target");
    fs::create_dir(&target).expect("mkdir");
    let data = random_bytes(300_000, 3);
    write_file(&src, &data, 0o604);
    let out = copy(&[&"-q", &src, &target]);
    assert_ok(&out);
    let copied = target.join("file.bin");
    assert!(fs::read(&copied).expect("read copy") == data);
    assert_eq!(mode_of(&copied), 0o604);
    assert!(leftovers(&target).is_empty());
}

#[test]
fn verify_succeeds_and_says_so() {
    let dir = TempDir::new("verify");
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    let data = random_bytes((3 << 20) + 5, 9);
    write_file(&src, &data, 0o644);
    let out = copy(&[&"--verify", &src, &dst]);
    assert_ok(&out);
    assert!(fs::read(&dst).expect("read copy") == data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let crc = crc32fast::hash(&data);
    assert!(
        stderr.contains(&format!("verified (crc32 {crc:08x})")),
        "{stderr:?}"
    );
}

#[test]
fn an_existing_destination_is_replaced() {
    let dir = TempDir::new("replace");
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    let data = random_bytes(200_000, 11);
    write_file(&src, &data, 0o640);
    write_file(&dst, &random_bytes(1_000_000, 12), 0o600);
    assert_ok(&copy(&[&"-q", &src, &dst]));
    assert!(
        fs::read(&dst).expect("read copy") == data,
        "replaced, not merged"
    );
    assert_eq!(mode_of(&dst), 0o640);
}

#[test]
fn sparse_file_with_offsets_beyond_4_gib_stays_sparse() {
    let dir = TempDir::new("sparse");
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    let size: u64 = (5 << 30) + 12_345;
    let a = random_bytes(100_000, 21);
    let b = random_bytes(70_000, 22);
    let c = random_bytes(17, 23);
    let regions: [(u64, &[u8]); 3] = [(0, &a), ((4 << 30) + 123, &b), (size - 17, &c)];
    let sparse = write_sparse(&src, size, &regions);
    let out = copy(&[&"-q", &src, &dst]);
    assert_ok(&out);
    let meta = fs::metadata(&dst).expect("stat copy");
    assert_eq!(meta.len(), size);
    let f = fs::File::open(&dst).expect("open copy");
    for (offset, data) in regions {
        let mut got = vec![0; data.len()];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut got, offset).expect("read region");
        assert!(got == data, "region at {offset} differs");
    }
    // A byte from a hole.
    let mut zero = [1u8; 4096];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut zero, 3 << 30).expect("read hole");
    assert!(zero.iter().all(|&b| b == 0));
    if sparse {
        assert!(
            meta.blocks() * 512 < 16 << 20,
            "the copy of a sparse file takes {} bytes on disk",
            meta.blocks() * 512
        );
    } else {
        eprintln!("note: the file system did not keep the source sparse; sparseness not checked");
    }
}

#[test]
fn missing_source_is_one_line_naming_it() {
    let dir = TempDir::new("missing");
    let src = dir.join("no-such-file");
    let dst = dir.join("dst");
    let out = copy(&[&src, &dst]);
    let err = one_line_error(&out);
    assert!(err.contains(&src.display().to_string()), "{err:?}");
    assert!(err.contains("No such file"), "{err:?}");
    assert!(!dst.exists());
}

#[test]
fn source_directory_is_refused_and_destination_untouched() {
    let dir = TempDir::new("src-dir");
    let dst = dir.join("dst");
    fs::write(&dst, b"old contents").expect("write dst");
    let out = copy(&[&dir.0, &dst]);
    let err = one_line_error(&out);
    assert!(err.contains("directory"), "{err:?}");
    assert_eq!(fs::read(&dst).expect("read dst"), b"old contents");
}

#[test]
fn same_file_is_refused() {
    let dir = TempDir::new("same");
    let src = dir.join("src");
    let data = random_bytes(10_000, 5);
    write_file(&src, &data, 0o644);
    let sub = dir.join("sub");
    fs::create_dir(&sub).expect("mkdir");
    let link = sub.join("hard");
    fs::hard_link(&src, &link).expect("hard link");
    // The same path; the directory the file is in; a hard link; a symbolic link.
    let symlink = dir.join("sym");
    std::os::unix::fs::symlink(&src, &symlink).expect("symlink");
    for dst in [src.clone(), dir.0.clone(), link.clone(), symlink.clone()] {
        let out = copy(&[&src, &dst]);
        let err = one_line_error(&out);
        assert!(
            err.contains("same file"),
            "{} -> {}: {err:?}",
            src.display(),
            dst.display()
        );
    }
    assert!(fs::read(&src).expect("read src") == data, "source intact");
    assert!(leftovers(&dir.0).is_empty() && leftovers(&sub).is_empty());
}

#[test]
fn permission_denied_on_destination_directory() {
    let dir = TempDir::new("dst-perm");
    let src = dir.join("src");
    write_file(&src, &random_bytes(50_000, 8), 0o644);
    let locked = dir.join("locked");
    fs::create_dir(&locked).expect("mkdir");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).expect("chmod");
    let mut cmd = iocport();
    cmd.arg("copy").arg(&src).arg(locked.join("dst"));
    if !without_dac_override(&mut cmd, "permission_denied_on_destination_directory") {
        return;
    }
    let out = cmd.output().expect("run iocport");
    let err = one_line_error(&out);
    assert!(err.contains("Permission denied"), "{err:?}");
    assert!(err.contains(&locked.display().to_string()), "{err:?}");
    assert_eq!(fs::read_dir(&locked).expect("list").count(), 0);
}

#[test]
fn permission_denied_on_source() {
    let dir = TempDir::new("src-perm");
    let src = dir.join("src");
    write_file(&src, &random_bytes(50_000, 8), 0o000);
    let dst = dir.join("dst");
    let mut cmd = iocport();
    cmd.arg("copy").arg(&src).arg(&dst);
    if !without_dac_override(&mut cmd, "permission_denied_on_source") {
        return;
    }
    let out = cmd.output().expect("run iocport");
    let err = one_line_error(&out);
    assert!(err.contains("Permission denied"), "{err:?}");
    assert!(err.contains(&src.display().to_string()), "{err:?}");
    assert!(!dst.exists());
    assert!(leftovers(&dir.0).is_empty());
}

#[test]
fn destination_whose_parent_is_missing() {
    let dir = TempDir::new("no-parent");
    let src = dir.join("src");
    write_file(&src, b"data", 0o644);
    let dst = dir.join("missing").join("dst");
    let err = one_line_error(&copy(&[&src, &dst]));
    assert!(err.contains(&dst.display().to_string()), "{err:?}");
    assert!(!dir.join("missing").exists());
    assert!(leftovers(&dir.0).is_empty());
}

#[test]
fn file_size_limit_at_preallocation_leaves_nothing() {
    let dir = TempDir::new("fsize");
    let src = dir.join("src");
    write_file(&src, &random_bytes(1 << 20, 13), 0o644);
    let dst = dir.join("dst");
    let mut cmd = iocport();
    cmd.arg("copy").arg(&src).arg(&dst);
    with_file_size_limit(&mut cmd, 64 << 10);
    let err = one_line_error(&cmd.output().expect("run iocport"));
    assert!(err.contains("File too large"), "{err:?}");
    assert!(!dst.exists(), "no file under DST's name");
    assert!(leftovers(&dir.0).is_empty(), "{:?}", leftovers(&dir.0));
}

#[test]
fn write_error_in_the_middle_leaves_existing_destination_untouched() {
    let dir = TempDir::new("fsize-mid");
    let src = dir.join("src");
    // Sparse, so nothing is preallocated: the first blocks are written, then one beyond the
    // limit fails with EFBIG while others are in flight.
    let head = random_bytes(256 << 10, 14);
    let tail = random_bytes(256 << 10, 15);
    write_sparse(&src, 4 << 20, &[(0, &head), (3 << 20, &tail)]);
    let dst = dir.join("dst");
    fs::write(&dst, b"old contents").expect("write dst");
    let mut cmd = iocport();
    cmd.args(["copy", "--block", "64K", "--depth", "8"])
        .arg(&src)
        .arg(&dst);
    with_file_size_limit(&mut cmd, 1 << 20);
    let err = one_line_error(&cmd.output().expect("run iocport"));
    assert!(err.contains("File too large"), "{err:?}");
    assert!(err.contains("unchanged"), "{err:?}");
    assert_eq!(fs::read(&dst).expect("read dst"), b"old contents");
    assert!(leftovers(&dir.0).is_empty(), "{:?}", leftovers(&dir.0));
}

#[test]
fn no_space_left_on_a_tiny_tmpfs() {
    if !is_root() {
        eprintln!("note: no_space_left_on_a_tiny_tmpfs skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = TempDir::new("enospc");
    let src = dir.join("src");
    let chunk = random_bytes(1 << 20, 16);
    // Sparse, so that the copy is not preallocated and the writes themselves run out of space.
    write_sparse(
        &src,
        8 << 20,
        &[
            (0, &chunk),
            (2 << 20, &chunk),
            (4 << 20, &chunk),
            (6 << 20, &chunk),
        ],
    );
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    // The child gets a private mount namespace with a 1 MiB tmpfs on `mnt`, runs the copy into
    // it, then lists what is left there; the mount disappears with the child.
    let script = r#""$1" copy -q --block 128K "$2" "$3/dst"; rc=$?; ls -A "$3"; exit $rc"#;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_iocport"))
        .arg(&src)
        .arg(&mnt);
    let target = CString::new(mnt.as_os_str().as_encoded_bytes()).expect("path without NUL");
    // SAFETY: the closure makes only unshare and mount system calls with C strings prepared
    // before the fork: async-signal-safe, no allocation.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return fail();
            }
            let root = c"/";
            let flags = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                return fail();
            }
            let opts = c"size=1m";
            if libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                opts.as_ptr().cast(),
            ) != 0
            {
                return fail();
            }
            Ok(())
        });
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("note: no_space_left_on_a_tiny_tmpfs skipped: cannot mount a tmpfs: {e}");
            return;
        }
    };
    let err = one_line_error(&out);
    assert!(err.contains("No space left on device"), "{err:?}");
    let left = String::from_utf8_lossy(&out.stdout);
    assert!(
        left.trim().is_empty(),
        "left on the full file system: {left:?}"
    );
}

#[test]
fn ctrl_c_removes_the_temporary_file() {
    let dir = TempDir::new("sigint");
    let src = dir.join("src");
    let data = random_bytes(32 << 20, 17);
    write_file(&src, &data, 0o644);
    let dst = dir.join("dst");
    // Small blocks, one at a time, and a verification pass: slow enough to be interrupted.
    let child = iocport()
        .args(["copy", "-q", "--verify", "--block", "4K", "--depth", "1"])
        .arg(&src)
        .arg(&dst)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iocport");
    // The temporary file exists only once the signals are redirected to the port.
    let deadline = Instant::now() + Duration::from_secs(20);
    while leftovers(&dir.0).is_empty() && !dst.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().expect("wait for iocport");
    if out.status.success() {
        eprintln!("note: the copy finished before SIGINT arrived");
        assert!(fs::read(&dst).expect("read copy") == data);
    } else {
        let err = one_line_error(&out);
        assert!(err.contains("interrupted by SIGINT"), "{err:?}");
        assert!(!dst.exists(), "no file under DST's name");
    }
    assert!(leftovers(&dir.0).is_empty(), "{:?}", leftovers(&dir.0));
}

#[test]
fn bad_block_size_is_a_usage_error() {
    let dir = TempDir::new("bad-block");
    let src = dir.join("src");
    write_file(&src, b"x", 0o644);
    let out = copy(&[&"--block", &"12Q", &src, &dir.join("dst")]);
    assert!(!out.status.success());
    assert!(!dir.join("dst").exists());
    let out = iocport().arg("copy").output().expect("run iocport");
    assert!(!out.status.success(), "SRC and DST are required");
}

// With io_uring forced where a seccomp filter forbids it (without `IOCPORT_BACKEND=io_uring` the
// copy falls back to epoll: tests/seccomp.rs).
#[test]
fn io_uring_forced_but_forbidden_is_one_line_and_leaves_nothing() {
    let dir = TempDir::new("no-uring");
    let src = dir.join("src");
    write_file(&src, &random_bytes(100_000, 18), 0o644);
    let dst = dir.join("dst");
    let mut cmd = iocport();
    cmd.env("IOCPORT_BACKEND", "io_uring")
        .arg("copy")
        .arg(&src)
        .arg(&dst);
    without_io_uring(&mut cmd);
    let err = one_line_error(&cmd.output().expect("run iocport"));
    assert!(
        err.contains("unavailable") && err.contains("io_uring_setup is not permitted"),
        "{err:?}"
    );
    assert!(!dst.exists());
    assert!(leftovers(&dir.0).is_empty(), "{:?}", leftovers(&dir.0));
}
