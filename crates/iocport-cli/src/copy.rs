//! `iocport copy SRC DST`: a file copy with many reads and writes in flight through one completion
//! port.
//!
//! # Design
//!
//! The source and a temporary file next to the destination are [associated] with one
//! [`CompletionPort`] (keys [`SRC`] and [`DST`]). The file is cut into blocks (`--block`, 256 KiB
//! by default) and `--depth` of them (32) are in flight at once. Each *slot* owns one buffer for
//! the whole copy: it reads its block with `read_at`, writes it with `write_at` at the same offset
//! when the read's packet arrives, then takes the next block. Buffers move into each operation and
//! come back in its packet, so nothing is allocated per block, and a short read or write simply
//! continues from where it stopped (the buffer type, [`Window`], hands the kernel a sub-range).
//!
//! One thread drives the port (`get_many`, then one [`batch`] submission for everything the
//! packets started). A copy needs no more: the per-packet work is a few instructions, and the
//! copying itself happens in the kernel, inline in `io_uring_enter` for page-cache hits and on
//! io_uring's own workers for what would block, so the two sides already overlap. More threads
//! calling `get` would only share the slot table under a lock and take turns.
//!
//! The same port carries everything else the copy waits for: the final `fdatasync` of the copy,
//! the verification threads' results (posted packets), and a read of a signalfd, so that Ctrl-C
//! (SIGINT or SIGTERM) is a packet like any other and ends the copy cleanly.
//!
//! # What it guarantees
//!
//! - **All or nothing.** The data goes to `.NAME.iocport-tmp-PID` in DST's directory, which is
//!   synced, then renamed over DST. On any error (I/O, verification, Ctrl-C) the temporary file
//!   is removed and DST, if it existed, is left as it was. SIGXFSZ is ignored so that exceeding
//!   `RLIMIT_FSIZE` is an `EFBIG` error (and a clean-up), not a killed process.
//! - **Durability by default.** One `fdatasync` of the copy (through the port) before the rename,
//!   one `fsync` of the directory after. `--no-sync` skips both, as `cp` does (it never syncs): use
//!   it to compare with `cp` fairly, or when durability does not matter.
//! - **Metadata.** The copy gets the source's permission bits (`rwxrwxrwx`; setuid, setgid and
//!   sticky are dropped, as `cp` does without `-p`) and is owned by the caller. An existing DST is
//!   replaced by the rename, so a symbolic link DST is followed (its target is replaced) and a
//!   read-only DST in a writable directory can be replaced, as with `rsync`.
//! - **Sizes.** The size read when the copy starts is copied: a source that grows meanwhile is
//!   copied up to that size; one that shrinks ends where a read meets end-of-file, and the copy
//!   is cut there. Holes of sparse files (found with `SEEK_DATA`/`SEEK_HOLE`) are skipped, so the
//!   copy is sparse too; other files are preallocated (`fallocate`) to their final size first,
//!   which also reports a full disk or an exceeded `RLIMIT_FSIZE` before any data is written.
//! - **Refusals.** A source that is missing, a directory or not a regular file; SRC and DST being
//!   the same file (same device and inode, also through links); a DST that is a directory after
//!   resolution.
//!
//! # Verification
//!
//! `--verify` reads both files back after the copy is synced, before the rename, and compares
//! their CRC-32 checksums; on a mismatch DST is left unchanged. The reads are plain sequential
//! `read(2)` calls on two threads rather than operations on the port, on purpose: the check then
//! shares no code with the block machinery it checks (an offset bug in the copy cannot be
//! repeated by the check), and sequential reads with kernel read-ahead are as fast as the port
//! for one stream. When the copy was synced, its pages are dropped from the page cache first
//! (`POSIX_FADV_DONTNEED`, possible because they are clean), so the copy is read back from the
//! device rather than from memory.
//!
//! # Performance
//!
//! A large source that is mostly not in the page cache (`--direct auto`, the default) is read
//! with `O_DIRECT`: the device writes straight into the copy's buffers, so each byte is copied
//! once in memory (into the copy's page cache) instead of twice, as `cp` (coreutils 9.1, one
//! `copy_file_range` in the kernel) also does. On a 1 GiB file on ext4 with the page cache dropped
//! first, in a 2-CPU virtual machine, 5 interleaved runs each: `iocport copy --no-sync` took a
//! median 0.90 s, the same with `--direct never` 2.02 s, `cp` 1.25 s. Whether the source is cached
//! is judged from 16 sampled pages (`RWF_NOWAIT` reads); a cached source is read through the page
//! cache, where reads complete at once on the driving thread while the writes run on io_uring's
//! workers (ext4 cannot take them without blocking), and `iocport copy --no-sync` took 0.14 s to
//! 0.22 s where `cp` took 0.25 s. The defaults, 32 blocks of 256 KiB, did at least as well as
//! 16 x 128 KiB, 64 x 64 KiB, 4 x 256 KiB and 8 x 1 MiB. `O_DIRECT` on the copy measured the same
//! as buffered writes (within the noise), so it is not offered.
//!
//! [associated]: iocport::CompletionPort::associate
//! [`batch`]: iocport::CompletionPort::batch

use std::alloc::{self, Layout};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use iocport::{Builder, CompletionPort, Data, Handle, IoBuf, OpError, Packet, Started};

use crate::signal;

/// Completion key of the source file's operations.
const SRC: usize = 0;
/// Completion key of the destination (temporary) file's operations.
const DST: usize = 1;
/// Completion key of the signalfd read.
const SIGNALS: usize = 2;
/// Completion key of the checksum results the verification threads post.
const VERIFY: usize = 3;

/// Alignment of the block buffers: a page, so that the copies the kernel makes work on whole
/// pages.
const ALIGN: usize = 4096;
/// The largest `--block`: a read or write of more than this gains nothing and the kernel caps
/// single transfers a little below 2 GiB anyway.
const MAX_BLOCK: usize = 64 << 20;
/// The most memory all blocks together may take.
const MAX_BUFFERS: usize = 1 << 30;
/// The size of each read of the verification pass.
const VERIFY_CHUNK: usize = 1 << 20;

/// Arguments of `iocport copy`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The file to copy (a regular file).
    src: PathBuf,
    /// Where to copy it: a file name (replaced only once the copy is complete), or an existing
    /// directory to copy into under the source's name.
    dst: PathBuf,
    /// After the copy, read both files back and compare their CRC-32 checksums; DST is replaced
    /// only if they match.
    #[arg(long)]
    verify: bool,
    /// How many blocks are in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    depth: u32,
    /// The size of each block: bytes, or with a suffix K, M or G (powers of 1024: 256K, 1M).
    #[arg(long, default_value = "256K", value_parser = parse_size)]
    block: usize,
    /// No progress bar and no summary line (errors are still printed).
    #[arg(long, short)]
    quiet: bool,
    /// Do not sync the copy to the device before renaming it into place (`cp` never syncs; use
    /// this to compare with it). Faster, but a crash soon after may lose the copy's data.
    #[arg(long)]
    no_sync: bool,
    /// Read the source with O_DIRECT (straight from the device into the copy's buffers, one
    /// memory copy fewer per byte): `auto` does for a large source that is mostly not in the page
    /// cache, `always` wherever the file system allows it, `never` reads through the page cache.
    #[arg(long, value_enum, default_value_t = Direct::Auto)]
    direct: Direct,
    /// The I/O backend: io_uring, or the epoll fallback (whose thread pool runs the file reads
    /// and writes) [default: $IOCPORT_BACKEND, else auto].
    #[arg(long, value_enum, value_name = "BACKEND")]
    backend: Option<crate::BackendArg>,
}

/// When the source is read with `O_DIRECT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Direct {
    /// For a source of at least [`DIRECT_MIN`] bytes of which most is not in the page cache.
    Auto,
    /// Wherever the file system allows it.
    Always,
    /// Never.
    Never,
}

/// `--direct auto` leaves smaller sources to the page cache: they are quick either way.
const DIRECT_MIN: u64 = 64 << 20;
/// What `O_DIRECT` reads must be aligned to (offset, length and buffer); blocks are multiples of
/// it and buffers are allocated aligned to it ([`ALIGN`]).
const DIRECT_ALIGN: usize = 4096;

/// Runs `iocport copy`.
pub(crate) fn main(args: Args) -> Result<(), String> {
    if args.block.saturating_mul(args.depth as usize) > MAX_BUFFERS {
        return Err(format!(
            "--depth {} x --block {} is more than {} MiB of buffers",
            args.depth,
            args.block,
            MAX_BUFFERS >> 20
        ));
    }
    let started = Instant::now();
    // Before any thread exists, so that every thread inherits the mask: SIGINT and SIGTERM become
    // a packet on the port instead of killing the process with the temporary file left behind.
    let signals =
        signal::stop_signals().map_err(|e| format!("cannot set up signal handling: {e}"))?;
    // SAFETY: SIG_IGN installs no handler, so no code runs in signal context; the call changes
    // only this process's disposition of SIGXFSZ.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };

    let plan = Plan::new(&args.src, &args.dst)?;
    let src = File::open(&plan.src).map_err(|e| {
        format!(
            "cannot open '{}' for reading: {}",
            plan.src.display(),
            os_message(&e)
        )
    })?;
    // Read-ahead doubles for sequential access; the advice is only a hint, so its result is
    // ignored. SAFETY: the call takes no pointers and `src` is open.
    unsafe { libc::posix_fadvise(src.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    let tmp = TempFile::create(&plan.dst)?;
    let sparse = plan.blocks_bytes < plan.size;
    preallocate(&tmp.file, plan.size, sparse).map_err(|e| plan.write_error("preallocating", &e))?;

    let progress = progress_bar(plan.size, args.quiet);
    let port: CompletionPort<Op, Window> =
        crate::with_backend(Builder::new(), args.backend.map(Into::into))
            .concurrency(1)
            .entries((args.depth * 2).clamp(8, 4096))
            .build()
            .map_err(|e| e.to_string())?;
    let mut copier = Copier::new(&port, &plan, &tmp, &src, &progress, &args)?;
    let signal_fd = port
        .associate(signals, SIGNALS)
        .map_err(|e| format!("cannot associate the signalfd with the port: {e}"))?;
    // The handle is not skip-on-success: the read is always in flight, and its packet is the
    // signal.
    if let Err(e) = signal_fd.read(Window::new(signal::SIGINFO_SIZE)?, Op::Signal) {
        return Err(format!("cannot watch for signals: {}", e.error));
    }

    let result = copier.run(&args, &tmp.path);
    progress.finish_and_clear();
    let verified = result?;
    drop(copier);
    drop(signal_fd);

    tmp.set_mode(plan.mode)
        .map_err(|e| plan.write_error("setting the permissions of", &e))?;
    tmp.persist(&plan.dst)
        .map_err(|e| plan.write_error("renaming the copy into place as", &e))?;
    if !args.no_sync {
        sync_dir(plan.dir()).map_err(|e| {
            format!(
                "the copy is in place as '{}', but syncing its directory failed: {}",
                plan.dst.display(),
                os_message(&e)
            )
        })?;
    }
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        let check = verified
            .map(|crc| format!(", verified (crc32 {crc:08x})"))
            .unwrap_or_default();
        eprintln!(
            "copied '{}' -> '{}': {} bytes in {secs:.3} s ({:.1} MiB/s){check}",
            plan.src.display(),
            plan.dst.display(),
            plan.size,
            plan.size as f64 / f64::from(1 << 20) / secs.max(1e-9),
        );
    }
    Ok(())
}

/// Parses `--block`: a number of bytes, optionally followed by `K`, `M` or `G` (or `KiB`, ...).
fn parse_size(s: &str) -> Result<usize, String> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits);
    let n: usize = number
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 4096, 64K, 1M)"))?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("'{s}': unknown unit '{suffix}' (use K, M or G)")),
    };
    let bytes = n
        .checked_mul(1 << shift)
        .filter(|b| (1..=MAX_BLOCK).contains(b))
        .ok_or_else(|| format!("'{s}': a block must be 1 byte to {} MiB", MAX_BLOCK >> 20))?;
    Ok(bytes)
}

/// The text of an OS error without Rust's " (os error N)" suffix: `No such file or directory`.
fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

// ---------------------------------------------------------------------------------------------
// What to copy where

/// The checked source and the resolved destination.
struct Plan {
    src: PathBuf,
    /// The file to create or replace: DST, DST/basename(SRC) if DST is a directory, with
    /// symbolic links followed.
    dst: PathBuf,
    /// The source's size when the copy starts: what is copied.
    size: u64,
    /// The bytes the source occupies on its device (`st_blocks` * 512): less than `size` for a
    /// sparse file.
    blocks_bytes: u64,
    /// The source's permission bits.
    mode: u32,
}

impl Plan {
    /// Checks the source and works out the destination; refuses a copy onto the source itself.
    fn new(src: &Path, dst: &Path) -> Result<Plan, String> {
        let meta = fs::metadata(src)
            .map_err(|e| format!("cannot copy '{}': {}", src.display(), os_message(&e)))?;
        if meta.is_dir() {
            return Err(format!(
                "cannot copy '{}': it is a directory",
                src.display()
            ));
        }
        if !meta.is_file() {
            return Err(format!(
                "cannot copy '{}': not a regular file",
                src.display()
            ));
        }
        let mut target = dst.to_path_buf();
        match fs::metadata(dst) {
            Ok(m) if m.is_dir() => match src.file_name() {
                Some(name) => target.push(name),
                None => return Err(format!("cannot copy '{}': no file name", src.display())),
            },
            _ if dst.as_os_str().as_bytes().ends_with(b"/") => {
                return Err(format!(
                    "cannot copy to '{}': no such directory",
                    dst.display()
                ));
            }
            _ => {}
        }
        let target = follow_links(target)?;
        match fs::metadata(&target) {
            Ok(m) if m.dev() == meta.dev() && m.ino() == meta.ino() => {
                return Err(format!(
                    "'{}' and '{}' are the same file",
                    src.display(),
                    target.display()
                ));
            }
            Ok(m) if m.is_dir() => {
                return Err(format!(
                    "cannot overwrite directory '{}' with a file",
                    target.display()
                ));
            }
            _ => {}
        }
        Ok(Plan {
            src: src.to_path_buf(),
            dst: target,
            size: meta.len(),
            blocks_bytes: meta.blocks().saturating_mul(512),
            mode: meta.mode() & 0o777,
        })
    }

    /// The destination's directory.
    fn dir(&self) -> &Path {
        match self.dst.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// The one-line error for a failure while `doing` something to the copy.
    fn write_error(&self, doing: &str, e: &io::Error) -> String {
        format!(
            "{doing} '{}' failed: {}; {}",
            self.dst.display(),
            os_message(e),
            self.unchanged()
        )
    }

    /// What a failed copy left at DST: nothing new.
    fn unchanged(&self) -> String {
        if self.dst.exists() {
            format!("'{}' is unchanged", self.dst.display())
        } else {
            format!("'{}' was not created", self.dst.display())
        }
    }
}

/// Follows `path` while it is a symbolic link (relative targets are relative to the link's
/// directory), so that the file it points to is what gets replaced, as `cp` writes through a link.
fn follow_links(mut path: PathBuf) -> Result<PathBuf, String> {
    for _ in 0..40 {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&path).map_err(|e| {
                    format!("cannot read link '{}': {}", path.display(), os_message(&e))
                })?;
                path = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(format!(
        "cannot copy to '{}': too many levels of symbolic links",
        path.display()
    ))
}

// ---------------------------------------------------------------------------------------------
// The temporary file

/// The copy under construction: `.NAME.iocport-tmp-PID` in DST's directory, removed on drop
/// unless [`persist`](TempFile::persist)ed.
struct TempFile {
    path: PathBuf,
    /// The file, for the set-up done before it is associated with the port (which takes a
    /// duplicate of it) and the permission change at the end.
    file: File,
    /// Renamed into place: not to be removed.
    kept: bool,
}

impl TempFile {
    /// Creates the temporary file for `dst` (mode 0600 until the copy is complete).
    fn create(dst: &Path) -> Result<TempFile, String> {
        let dir = match dst.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = dst.file_name().map(|n| n.as_bytes()).unwrap_or(b"copy");
        // Room for the dot and the suffix within NAME_MAX (255 bytes).
        let name = &name[..name.len().min(200)];
        let pid = std::process::id();
        for attempt in 0u32.. {
            let mut file_name = b".".to_vec();
            file_name.extend_from_slice(name);
            file_name.extend_from_slice(format!(".iocport-tmp-{pid}").as_bytes());
            if attempt > 0 {
                file_name.extend_from_slice(format!("-{attempt}").as_bytes());
            }
            let path = dir.join(std::ffi::OsString::from_vec(file_name));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        kept: false,
                    })
                }
                // A leftover of an earlier run that had our pid: try the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => continue,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Err(format!(
                        "cannot create a file in '{}': {}",
                        dir.display(),
                        os_message(&e)
                    ))
                }
                Err(e) => {
                    return Err(format!(
                        "cannot create '{}': {}",
                        dst.display(),
                        os_message(&e)
                    ))
                }
            }
        }
        unreachable!("the loop returns by its 100th attempt")
    }

    /// Gives the copy its final permission bits.
    fn set_mode(&self, mode: u32) -> io::Result<()> {
        self.file.set_permissions(fs::Permissions::from_mode(mode))
    }

    /// Renames the copy over `dst`; from now on it is not removed.
    fn persist(mut self, dst: &Path) -> io::Result<()> {
        fs::rename(&self.path, dst)?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Reserves the copy's blocks up front with `fallocate`, so that a full disk or a file size limit
/// is reported before any data is written, and the file system can lay the file out in one go.
/// Skipped for a sparse source (it would fill the holes) and where the file system cannot
/// preallocate; the copy then gets its length when the data is in ([`Copier::run`]).
fn preallocate(file: &File, size: u64, sparse: bool) -> io::Result<()> {
    if size == 0 || sparse {
        return Ok(());
    }
    let len = i64::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: the call takes no pointers; `file` is open for writing.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::ENOSYS) => Ok(()),
        _ => Err(e),
    }
}

/// Makes the rename durable: `fsync` of the directory.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The progress bar on stderr: hidden with `--quiet` or when stderr is not a terminal.
fn progress_bar(size: u64, quiet: bool) -> ProgressBar {
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{bar:30.cyan/blue} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr()).with_style(style)
}

// ---------------------------------------------------------------------------------------------
// Buffers

/// A block buffer: a page-aligned heap allocation of which the kernel sees the window
/// `start..end`, so that an operation can continue a short transfer in the same buffer.
struct Window {
    ptr: NonNull<u8>,
    cap: usize,
    start: usize,
    end: usize,
}

// SAFETY: a Window owns its allocation exclusively (like a Box<[u8]>); nothing in it is tied to a
// thread.
unsafe impl Send for Window {}

impl Window {
    /// A zeroed buffer of `cap` bytes (at least 1), all of it in the window.
    fn new(cap: usize) -> Result<Window, String> {
        let cap = cap.max(1);
        let layout =
            Layout::from_size_align(cap, ALIGN).map_err(|e| format!("buffer of {cap}: {e}"))?;
        // SAFETY: the layout's size is not zero.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr =
            NonNull::new(ptr).ok_or_else(|| format!("out of memory for a {cap}-byte buffer"))?;
        Ok(Window {
            ptr,
            cap,
            start: 0,
            end: cap,
        })
    }

    /// Lets the kernel see bytes `start..end` of the buffer.
    fn set(&mut self, start: usize, end: usize) {
        assert!(start <= end && end <= self.cap, "window out of the buffer");
        self.start = start;
        self.end = end;
    }

    /// The bytes in the window.
    fn bytes(&self) -> &[u8] {
        // SAFETY: `start..end` lies within the allocation (`set` checks it), which is initialised
        // (zeroed at first, then written by the kernel) and borrowed shared with `self`.
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().add(self.start), self.end - self.start)
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this size and alignment (checked there), freed once.
        unsafe {
            alloc::dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(self.cap, ALIGN),
            )
        }
    }
}

// SAFETY: the bytes live in a heap allocation the Window owns, which does not move when the
// Window does; `start..end` is within it (checked by `set`) and changes only through `&mut self`.
unsafe impl IoBuf for Window {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: `start <= cap`, so the result is within the allocation or one past its end.
        unsafe { self.ptr.as_ptr().add(self.start) }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }
}

// ---------------------------------------------------------------------------------------------
// The copy

/// What a packet on the copy's port is about.
enum Op {
    /// Slot `i`'s read (key [`SRC`]) or write (key [`DST`]).
    Block(usize),
    /// The `fdatasync` of the copy.
    Sync,
    /// The signalfd read: SIGINT or SIGTERM arrived.
    Signal,
    /// A verification thread's result, posted to the port.
    Checksum(Side, io::Result<Sum>),
}

/// Which file a checksum is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Source,
    Copy,
}

/// A file's CRC-32 and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sum {
    crc: u32,
    len: u64,
}

/// Where a slot's block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Holding no block.
    Idle,
    /// Being read: `done` bytes of `len` have arrived.
    Reading,
    /// Being written: `done` bytes of `len` have gone.
    Writing,
}

/// One buffer and the block it is moving.
struct Slot {
    /// The buffer: `None` while an operation has it.
    buf: Option<Window>,
    offset: u64,
    len: usize,
    done: usize,
    phase: Phase,
}

/// The source's data, block by block: its data extents (`SEEK_DATA`/`SEEK_HOLE`) cut into blocks.
struct Extents<'a> {
    file: &'a File,
    size: u64,
    /// The next offset to hand out.
    pos: u64,
    /// The end of the data extent `pos` is in.
    data_end: u64,
    /// Whether the file system answers `SEEK_DATA`; without it the whole file is data.
    seek: bool,
    /// Set when `SEEK_DATA` found no data because the file now ends before `size`: where it ends.
    shrunk: Option<u64>,
}

/// A second descriptor of the source opened with `O_DIRECT`, when `--direct` asks for one and it can
/// be had: not for sparse sources (their data extents need not be aligned) or blocks that are not
/// a multiple of [`DIRECT_ALIGN`], and only if the file system allows `O_DIRECT` and the path
/// still names the file `src` (same device and inode).
fn open_direct(src: &File, plan: &Plan, args: &Args) -> Option<File> {
    let eligible = plan.blocks_bytes >= plan.size && args.block % DIRECT_ALIGN == 0;
    let wanted = match args.direct {
        Direct::Never => false,
        Direct::Always => true,
        Direct::Auto => plan.size >= DIRECT_MIN && !mostly_cached(src, plan.size),
    };
    if !eligible || !wanted {
        return None;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(&plan.src)
        .ok()?;
    let (a, b) = (src.metadata().ok()?, file.metadata().ok()?);
    (a.dev() == b.dev() && a.ino() == b.ino()).then_some(file)
}

/// Whether most of `file` is in the page cache, judged from 16 evenly spread pages: a read with
/// `RWF_NOWAIT` succeeds only for a cached one.
fn mostly_cached(file: &File, size: u64) -> bool {
    const SAMPLES: u64 = 16;
    let mut page = [0u8; DIRECT_ALIGN];
    let hits = (0..SAMPLES)
        .filter(|k| {
            let offset = (size / SAMPLES * k) & !(DIRECT_ALIGN as u64 - 1);
            let iov = libc::iovec {
                iov_base: page.as_mut_ptr().cast(),
                iov_len: page.len(),
            };
            // SAFETY: `iov` describes `page`, which outlives the call; the fd is open for
            // reading; the kernel writes at most `iov_len` bytes.
            let n = unsafe {
                libc::preadv2(file.as_raw_fd(), &iov, 1, offset as i64, libc::RWF_NOWAIT)
            };
            n > 0
        })
        .count() as u64;
    hits * 2 >= SAMPLES
}

impl Extents<'_> {
    /// The next block of at most `max` bytes, `(offset, len)`, and how many bytes of hole were
    /// skipped to reach it; `None` at the end.
    fn next(&mut self, max: usize) -> io::Result<(u64, Option<(u64, usize)>)> {
        let mut skipped = 0;
        if self.pos >= self.data_end && self.pos < self.size {
            if self.seek {
                match self.lseek(self.pos, libc::SEEK_DATA) {
                    Ok(data) => {
                        let data = data.min(self.size);
                        skipped = data - self.pos;
                        self.pos = data;
                        self.data_end = self.lseek(data, libc::SEEK_HOLE)?.min(self.size);
                    }
                    // No data after `pos`: the rest is a hole, or the file shrank below `pos`
                    // (then the copy ends where the file now does, as when a read meets its end).
                    Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                        let now = self.file.metadata()?.len();
                        if now < self.size {
                            self.shrunk = Some(now);
                        }
                        skipped = self.size - self.pos;
                        self.pos = self.size;
                    }
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                        self.seek = false;
                        self.data_end = self.size;
                    }
                    Err(e) => return Err(e),
                }
            } else {
                self.data_end = self.size;
            }
        }
        if self.pos >= self.size || self.pos >= self.data_end {
            return Ok((skipped, None));
        }
        let len = (self.data_end - self.pos).min(max as u64) as usize;
        let block = (self.pos, len);
        self.pos += len as u64;
        Ok((skipped, Some(block)))
    }

    fn lseek(&self, offset: u64, whence: i32) -> io::Result<u64> {
        let offset =
            i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: the call takes no pointers; the file is open. Moving its position is harmless:
        // every read gives its own offset.
        let rc = unsafe { libc::lseek(self.file.as_raw_fd(), offset, whence) };
        u64::try_from(rc).map_err(|_| io::Error::last_os_error())
    }
}

/// The copy's state: the slots, the operations in flight and the first failure.
struct Copier<'a> {
    port: &'a CompletionPort<Op, Window>,
    plan: &'a Plan,
    src: Handle<Op, Window>,
    dst: Handle<Op, Window>,
    /// The source's handle reads with `O_DIRECT`: lengths are rounded up to [`DIRECT_ALIGN`], and
    /// a short read means end of file.
    direct: bool,
    /// The copy, for setting its final length (`ftruncate`).
    dst_file: &'a File,
    extents: Extents<'a>,
    slots: Vec<Slot>,
    block: usize,
    /// Operations and verification threads whose packet has not been handled yet.
    in_flight: usize,
    /// Packets of operations that completed at once, handled before the next `get`.
    ready: VecDeque<Packet<Op, Window>>,
    /// Bytes copied or skipped as holes, for the progress bar.
    progress_pos: u64,
    progress: &'a ProgressBar,
    /// The lowest offset at which a read met end-of-file: the source shrank to it.
    eof: Option<u64>,
    /// The checksums of a verification in progress.
    sums: [Option<Sum>; 2],
    /// The first failure; once set, no new operation starts.
    failure: Option<String>,
    /// Set on failure: tells the verification threads to give up.
    stop: Arc<AtomicBool>,
}

impl<'a> Copier<'a> {
    fn new(
        port: &'a CompletionPort<Op, Window>,
        plan: &'a Plan,
        tmp: &'a TempFile,
        src: &'a File,
        progress: &'a ProgressBar,
        args: &Args,
    ) -> Result<Copier<'a>, String> {
        let dup = |f: &File, what: &Path| {
            f.try_clone()
                .map_err(|e| format!("cannot duplicate the fd of '{}': {e}", what.display()))
        };
        let direct_fd = open_direct(src, plan, args);
        let direct = direct_fd.is_some();
        let src_fd = match direct_fd {
            Some(f) => f,
            None => dup(src, &plan.src)?,
        };
        let src_handle = port.associate(src_fd, SRC).map_err(|e| {
            format!(
                "cannot associate '{}' with the port: {e}",
                plan.src.display()
            )
        })?;
        let dst_handle = port
            .associate(dup(&tmp.file, &tmp.path)?, DST)
            .map_err(|e| {
                format!(
                    "cannot associate '{}' with the port: {e}",
                    tmp.path.display()
                )
            })?;
        // Reads that hit the page cache complete at once (RWF_NOWAIT), without a trip through the
        // ring. Not writes: ext4 refuses buffered RWF_NOWAIT writes (EAGAIN every time, measured
        // with strace), so the first try would be one wasted system call per block.
        src_handle.set_skip_on_success(true);
        let depth =
            (args.depth as usize).min(plan.size.div_ceil(args.block as u64).max(1) as usize);
        let slots = (0..depth)
            .map(|_| {
                Ok(Slot {
                    buf: Some(Window::new(args.block)?),
                    offset: 0,
                    len: 0,
                    done: 0,
                    phase: Phase::Idle,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Copier {
            port,
            plan,
            direct,
            src: src_handle,
            dst: dst_handle,
            dst_file: &tmp.file,
            extents: Extents {
                file: src,
                size: plan.size,
                pos: 0,
                data_end: 0,
                seek: true,
                shrunk: None,
            },
            slots,
            block: args.block,
            in_flight: 0,
            ready: VecDeque::new(),
            progress_pos: 0,
            progress,
            eof: None,
            sums: [None, None],
            failure: None,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Copies, syncs and verifies; returns the checksum if verified.
    fn run(&mut self, args: &Args, tmp_path: &Path) -> Result<Option<u32>, String> {
        let port = self.port;
        port.batch(|| {
            for i in 0..self.slots.len() {
                self.next_block(i);
            }
        });
        self.pump()?;
        // The final length: the size we started with (which also creates a trailing hole of a
        // sparse source), or where the source was found to end if it shrank meanwhile.
        let len = self
            .eof
            .map_or(self.plan.size, |eof| eof.min(self.plan.size));
        self.dst_file
            .set_len(len)
            .map_err(|e| self.plan.write_error("setting the length of", &e))?;
        if len < self.plan.size {
            self.progress.suspend(|| {
                eprintln!(
                    "iocport: warning: '{}' shrank to {len} bytes during the copy",
                    self.plan.src.display()
                )
            });
        }
        if !args.no_sync {
            let sync = self.dst.fdatasync(Op::Sync);
            self.started(sync, None);
            self.pump()?;
        }
        if args.verify {
            return self.verify(tmp_path, !args.no_sync).map(Some);
        }
        Ok(None)
    }

    /// Handles packets until nothing is in flight; the first failure, if any.
    fn pump(&mut self) -> Result<(), String> {
        let port = self.port;
        let max = self.slots.len() * 2 + 2;
        let mut packets = Vec::with_capacity(max);
        self.drain_ready();
        while self.in_flight > 0 {
            packets.clear();
            port.get_many(&mut packets, max, None)
                .map_err(|e| format!("the completion port failed: {e}"))?;
            port.batch(|| {
                for packet in packets.drain(..) {
                    self.on_packet(packet);
                }
                self.drain_ready();
            });
        }
        match self.failure.take() {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Handles the packets of operations that completed at once (which may start more).
    fn drain_ready(&mut self) {
        while let Some(packet) = self.ready.pop_front() {
            self.on_packet(packet);
        }
    }

    /// Records what `start` said about an operation: in flight, done at once (queued on
    /// `ready`), or refused (its buffer goes back to `slot`).
    fn started(
        &mut self,
        started: Result<Started<Op, Window>, OpError<Op, Window>>,
        slot: Option<usize>,
    ) {
        match started {
            Ok(Started::Pending(_)) => self.in_flight += 1,
            Ok(Started::Done(packet)) => {
                self.in_flight += 1;
                self.ready.push_back(packet);
            }
            Err(mut e) => {
                if let (Some(i), Data::Buf(buf)) =
                    (slot, std::mem::replace(&mut e.data, Data::None))
                {
                    self.slots[i].buf = Some(buf);
                    self.slots[i].phase = Phase::Idle;
                }
                self.fail(format!("cannot start an operation: {}", e.error));
            }
        }
    }

    fn on_packet(&mut self, mut packet: Packet<Op, Window>) {
        let result = packet.result();
        match packet.value {
            Op::Block(i) => {
                self.in_flight -= 1;
                self.slots[i].buf = packet.take_buf();
                match packet.key {
                    SRC => self.on_read(i, result),
                    _ => self.on_write(i, result),
                }
            }
            Op::Sync => {
                self.in_flight -= 1;
                if let Err(e) = result {
                    let msg = self.plan.write_error("syncing", &e);
                    self.fail(msg);
                }
            }
            Op::Signal => {
                let mut buf = packet.take_buf();
                let signo = buf
                    .as_mut()
                    .and_then(|b| signal::signal_number(b.bytes()))
                    .map(|n| match n as i32 {
                        libc::SIGINT => "SIGINT".to_owned(),
                        libc::SIGTERM => "SIGTERM".to_owned(),
                        n => format!("signal {n}"),
                    });
                let why = match (result, signo) {
                    (Ok(_), Some(name)) => format!("interrupted by {name}"),
                    (Ok(_), None) => "interrupted by a signal".to_owned(),
                    (Err(e), _) => format!("watching for signals failed: {}", os_message(&e)),
                };
                let msg = format!("copy {why}; {}", self.plan.unchanged());
                self.fail(msg);
            }
            Op::Checksum(side, sum) => {
                self.in_flight -= 1;
                match sum {
                    Ok(sum) => self.sums[side as usize] = Some(sum),
                    Err(e) => {
                        let path = match side {
                            Side::Source => &self.plan.src,
                            Side::Copy => &self.plan.dst,
                        };
                        let msg = format!(
                            "verify: reading '{}' failed: {}; {}",
                            path.display(),
                            os_message(&e),
                            self.plan.unchanged()
                        );
                        self.fail(msg);
                    }
                }
            }
        }
    }

    fn on_read(&mut self, i: usize, result: io::Result<usize>) {
        if self.failure.is_some() {
            self.slots[i].phase = Phase::Idle;
            return;
        }
        let slot = &mut self.slots[i];
        match result {
            Err(e) => {
                slot.phase = Phase::Idle;
                let msg = format!(
                    "reading '{}' failed: {}; {}",
                    self.plan.src.display(),
                    os_message(&e),
                    self.plan.unchanged()
                );
                self.fail(msg);
            }
            Ok(0) => {
                // End of file before the size we started with: the source shrank.
                let end = slot.offset + slot.done as u64;
                self.eof = Some(self.eof.map_or(end, |e| e.min(end)));
                if slot.done > 0 {
                    slot.len = slot.done;
                    self.write(i, 0);
                } else {
                    slot.phase = Phase::Idle;
                    self.next_block(i);
                }
            }
            Ok(n) => {
                slot.done += n;
                if slot.done >= slot.len {
                    // An `O_DIRECT` read of a grown source may bring more than the block: only the
                    // size at the start is copied.
                    slot.done = slot.len;
                    self.write(i, 0);
                } else if self.direct {
                    // `O_DIRECT` reads of a regular file are short only at its end: it shrank.
                    let end = slot.offset + slot.done as u64;
                    self.eof = Some(self.eof.map_or(end, |e| e.min(end)));
                    slot.len = slot.done;
                    self.write(i, 0);
                } else {
                    let done = slot.done;
                    self.read(i, done);
                }
            }
        }
    }

    fn on_write(&mut self, i: usize, result: io::Result<usize>) {
        if self.failure.is_some() {
            self.slots[i].phase = Phase::Idle;
            return;
        }
        let slot = &mut self.slots[i];
        match result {
            Ok(n) if n > 0 => {
                slot.done += n;
                if slot.done < slot.len {
                    let done = slot.done;
                    self.write(i, done);
                } else {
                    slot.phase = Phase::Idle;
                    self.progress_pos += slot.len as u64;
                    self.progress.set_position(self.progress_pos);
                    self.next_block(i);
                }
            }
            other => {
                slot.phase = Phase::Idle;
                let e = other
                    .err()
                    .unwrap_or_else(|| io::Error::new(io::ErrorKind::WriteZero, "wrote nothing"));
                let msg = self.plan.write_error("writing", &e);
                self.fail(msg);
            }
        }
    }

    /// Gives slot `i` the next block and starts reading it, or leaves it idle at the end.
    fn next_block(&mut self, i: usize) {
        if self.failure.is_some() {
            return;
        }
        let next = self.extents.next(self.block);
        if let Some(end) = self.extents.shrunk.take() {
            self.eof = Some(self.eof.map_or(end, |e| e.min(end)));
        }
        match next {
            Ok((skipped, block)) => {
                if skipped > 0 {
                    self.progress_pos += skipped;
                    self.progress.set_position(self.progress_pos);
                }
                let Some((offset, len)) = block else { return };
                if self.eof.is_some_and(|eof| offset >= eof) {
                    return;
                }
                let slot = &mut self.slots[i];
                slot.offset = offset;
                slot.len = len;
                slot.done = 0;
                self.read(i, 0);
            }
            Err(e) => {
                let msg = format!(
                    "finding the data of '{}' failed: {}; {}",
                    self.plan.src.display(),
                    os_message(&e),
                    self.plan.unchanged()
                );
                self.fail(msg);
            }
        }
    }

    /// Reads the rest of slot `i`'s block, from byte `from` of it.
    fn read(&mut self, i: usize, from: usize) {
        let slot = &mut self.slots[i];
        let Some(mut buf) = slot.buf.take() else {
            unreachable!("an idle slot holds its buffer")
        };
        // `O_DIRECT` needs whole aligned units: the last block is read rounded up (blocks are
        // multiples of the unit, so the buffer has room), and `from` is always 0 there.
        let end = if self.direct {
            slot.len.next_multiple_of(DIRECT_ALIGN)
        } else {
            slot.len
        };
        buf.set(from, end);
        slot.phase = Phase::Reading;
        let started = self
            .src
            .read_at(buf, slot.offset + from as u64, Op::Block(i));
        self.started(started, Some(i));
    }

    /// Writes slot `i`'s block from byte `from` of it on.
    fn write(&mut self, i: usize, from: usize) {
        let slot = &mut self.slots[i];
        if slot.phase == Phase::Reading {
            slot.done = 0;
        }
        let Some(mut buf) = slot.buf.take() else {
            unreachable!("a slot between operations holds its buffer")
        };
        buf.set(from, slot.len);
        slot.phase = Phase::Writing;
        let started = self
            .dst
            .write_at(buf, slot.offset + from as u64, Op::Block(i));
        self.started(started, Some(i));
    }

    /// Records the first failure and cancels what is in flight; later failures are consequences.
    fn fail(&mut self, msg: String) {
        if self.failure.is_none() {
            self.failure = Some(msg);
            self.stop.store(true, Ordering::Relaxed);
            let _ = self.src.cancel_all();
            let _ = self.dst.cancel_all();
        }
    }

    /// Checksums the source and the copy on two threads, which post their results to the port.
    fn verify(&mut self, tmp_path: &Path, synced: bool) -> Result<u32, String> {
        let port = self.port;
        let plan = self.plan;
        // What was copied: the size at the start, or less if the source shrank. A source that
        // grew meanwhile is checked over that length only.
        let copied = fs::metadata(tmp_path)
            .map_err(|e| format!("verify: cannot stat the copy: {e}; {}", plan.unchanged()))?
            .len();
        let files = [
            (Side::Source, plan.src.clone()),
            (Side::Copy, tmp_path.to_path_buf()),
        ];
        let result = std::thread::scope(|s| {
            for (side, path) in files {
                let stop = Arc::clone(&self.stop);
                self.in_flight += 1;
                s.spawn(move || {
                    // The packet must come whatever happens: `pump` waits for it.
                    let sum = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        checksum(&path, side == Side::Copy && synced, copied, &stop)
                    }))
                    .unwrap_or_else(|_| Err(io::Error::other("the checksum thread panicked")));
                    // The port stays open until `pump` has seen this packet.
                    let _ = port.post(VERIFY, 0, Op::Checksum(side, sum));
                });
            }
            self.pump()
        });
        result?;
        match self.sums {
            [Some(a), Some(b)] if a == b => Ok(a.crc),
            [Some(a), Some(b)] => Err(format!(
                "verify failed: '{}' has crc32 {:08x} over {} bytes, the copy {:08x} over {} bytes; {}",
                plan.src.display(),
                a.crc,
                a.len,
                b.crc,
                b.len,
                plan.unchanged()
            )),
            _ => Err(format!("verify: a checksum is missing; {}", plan.unchanged())),
        }
    }
}

/// The CRC-32 and length of the first `limit` bytes of the file at `path` (fewer if it is shorter),
/// read sequentially. With `uncached`, its pages are first dropped from the page cache (they must
/// be clean: the file was synced), so that the device is read. Gives up early, with an error, if
/// `stop` is set.
fn checksum(path: &Path, uncached: bool, limit: u64, stop: &AtomicBool) -> io::Result<Sum> {
    let mut file = File::open(path)?;
    if uncached {
        // A hint: if it fails, the check reads the page cache instead. SAFETY: no pointers.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    // SAFETY: as above.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; VERIFY_CHUNK];
    let mut len = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"));
        }
        let want = buf
            .len()
            .min(usize::try_from(limit - len).unwrap_or(usize::MAX));
        match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Sum {
        crc: hasher.finalize(),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1G").is_err(), "above MAX_BLOCK");
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("K").is_err());
    }

    #[test]
    fn os_message_drops_the_code() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(os_message(&e), "No such file or directory");
    }
}
