//! From a request target to a file beneath the served directory, and the cache of small files.
//!
//! # Staying inside DIR
//!
//! The target's path is percent-decoded segment by segment into a relative path. A segment that
//! decodes to `..`, or that contains an encoded `/` (`%2f`) or a NUL byte, is refused outright:
//! 404, as for a file that does not exist (nothing about the tree outside is revealed). Empty and
//! `.` segments are dropped. A malformed escape (`%zz`) is a 400.
//!
//! The relative path is then opened with `openat2(dirfd, path, RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)`: the kernel itself refuses any resolution that leaves the directory,
//! through `..` or through a symlink (an absolute symlink is refused even if it points back inside).
//! Those refusals (`EXDEV`, `ELOOP`) are 404 too. Should `openat2` be missing (Linux before 5.6 or
//! a seccomp filter), the path is canonicalised and checked to start with the canonical DIR instead.
//!
//! # The cache
//!
//! Files up to a size limit are kept in memory, keyed by their relative path, together with their
//! identity: device, inode, size, mtime and ctime ([`FileId`]). Each request still `stat`s the path
//! (one system call) and uses the cached bytes only if the identity is unchanged, so an edited,
//! replaced or removed file is never served stale. Any write or `utimensat` moves the ctime to the
//! current time, which user space cannot set back. A file is cached only if its ctime is at least
//! [`SETTLED`] in the past when it is read (and unchanged after the read): a change made within the
//! same clock tick as the cached ctime is then impossible, the "racy git" rule. A path that does
//! not stat the same is looked up afresh with `openat2`, so the cache never bypasses the
//! confinement check for anything but the very inode it already served.

use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::http::{self, HttpDate, Status};

/// How long a file must have been left alone before its contents may be cached.
pub(super) const SETTLED: Duration = Duration::from_secs(1);
/// Cache shards: lookups on different shards never contend.
const SHARDS: usize = 16;
/// The name served for a directory path ending in `/`.
const INDEX: &[u8] = b"index.html";

/// A request path after decoding, in the connection's scratch buffer.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Decoded {
    /// `index.html` was appended: the path named a directory (it ended in `/`).
    pub(super) index: bool,
    /// Where the query (`?...`) starts in the target, or its length.
    pub(super) query_at: usize,
}

/// Decodes the path of `target` into `rel` (relative to DIR, no leading `/`, then a NUL so that it
/// can be passed to the kernel as is).
///
/// # Errors
///
/// [`Status::BadRequest`] for a target that is not a path (or an absolute URL) or holds a malformed
/// escape; [`Status::NotFound`] for a path that tries to leave DIR or hides a separator or a NUL.
pub(super) fn decode(target: &[u8], rel: &mut Vec<u8>) -> Result<Decoded, Status> {
    let query_at = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let mut path = &target[..query_at];
    if path.first() != Some(&b'/') {
        // The absolute form (RFC 9112 section 3.2.2): skip the scheme and the authority.
        let rest = strip_prefix_ignore_case(path, b"http://")
            .or_else(|| strip_prefix_ignore_case(path, b"https://"))
            .ok_or(Status::BadRequest)?;
        path = rest
            .iter()
            .position(|&b| b == b'/')
            .map_or(&b"/"[..], |i| &rest[i..]);
    }
    rel.clear();
    let mut last_was_dir = true;
    for raw in path[1..].split(|&b| b == b'/') {
        let mark = rel.len();
        if mark > 0 {
            rel.push(b'/');
        }
        let start = rel.len();
        let mut bytes = raw.iter();
        while let Some(&b) = bytes.next() {
            let b = if b == b'%' {
                let hi = bytes.next().and_then(|&h| hex(h));
                let lo = bytes.next().and_then(|&l| hex(l));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => (hi << 4) | lo,
                    _ => return Err(Status::BadRequest),
                }
            } else {
                b
            };
            if b == b'/' || b == 0 {
                return Err(Status::NotFound);
            }
            rel.push(b);
        }
        match &rel[start..] {
            b"" | b"." => {
                rel.truncate(mark);
                last_was_dir = true;
            }
            b".." => return Err(Status::NotFound),
            _ => last_was_dir = false,
        }
    }
    if last_was_dir {
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(INDEX);
    }
    rel.push(0);
    Ok(Decoded {
        index: last_was_dir,
        query_at,
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `rel` percent-encoded for a `Location` header: unreserved characters and `/` stay.
pub(super) fn push_encoded(out: &mut Vec<u8>, rel: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in rel {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// The Content-Type for a path, by its extension.
pub(super) fn mime_type(rel: &[u8]) -> &'static str {
    mime_guess::from_path(Path::new(OsStr::from_bytes(rel)))
        .first_raw()
        .unwrap_or("application/octet-stream")
}

/// What identifies one version of a file: if any of it changes, the cached contents are stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
    mode: u32,
    /// Size in bytes.
    pub(super) size: u64,
    /// Modification time, seconds and nanoseconds since the epoch.
    pub(super) mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn from_stat(st: &libc::stat) -> FileId {
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }

    /// A directory.
    pub(super) fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// A regular file.
    pub(super) fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }

    /// The modification time as an HTTP date.
    pub(super) fn last_modified(&self) -> HttpDate {
        // An HTTP date can say neither a time before 1970 nor one after 9999 (and `httpdate`
        // panics on them): a file dated outside that range is reported at the nearest end.
        const LAST: i64 = 253_402_300_799; // 9999-12-31 23:59:59 UTC
        let secs = self.mtime.0.clamp(0, LAST).unsigned_abs();
        http::http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Whether the file was last changed at least [`SETTLED`] before `now`.
    pub(super) fn settled(&self, now: SystemTime) -> bool {
        let Ok(since_epoch) = now.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let ctime = Duration::new(
            self.ctime.0.max(0).unsigned_abs(),
            u32::try_from(self.ctime.1.clamp(0, 999_999_999)).unwrap_or(0),
        );
        ctime + SETTLED <= since_epoch
    }
}

/// `fstat(fd)`.
pub(super) fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileId> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is writable memory the size of a `struct stat`, which the kernel fills in.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fstat` succeeded, so it initialised the whole struct.
    Ok(FileId::from_stat(unsafe { st.assume_init_ref() }))
}

/// `struct open_how` of `openat2(2)` (libc's is `non_exhaustive`, so it cannot be built here).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// The served directory, open.
#[derive(Debug)]
pub(super) struct Root {
    dir: OwnedFd,
    /// The canonical path, for the fallback without `openat2`.
    path: PathBuf,
    /// `openat2` works here; cleared (for good) the first time it says `ENOSYS`.
    openat2: AtomicBool,
}

impl Root {
    /// Opens DIR: it must exist, be a directory and be readable.
    ///
    /// # Errors
    ///
    /// One line saying what is wrong with DIR.
    pub(super) fn open(dir: &Path) -> Result<Root, String> {
        let shown = dir.display();
        let path = dir
            .canonicalize()
            .map_err(|e| format!("cannot serve {shown}: {e}"))?;
        if !path.is_dir() {
            return Err(format!("cannot serve {shown}: not a directory"));
        }
        std::fs::read_dir(&path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&path)
            .map_err(|e| format!("cannot open {shown}: {e}"))?;
        Ok(Root {
            dir: dir.into(),
            path,
            openat2: AtomicBool::new(true),
        })
    }

    /// The canonical path of DIR.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// `stat` of `rel` (following symlinks) relative to DIR.
    pub(super) fn stat(&self, rel: &CStr) -> io::Result<FileId> {
        let mut st = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `rel` is NUL-terminated and outlives the call; `st` is writable memory the size
        // of a `struct stat`, which the kernel fills in. The kernel only reads the path.
        let rc = unsafe {
            libc::fstatat(
                self.dir.as_raw_fd(),
                rel.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_NO_AUTOMOUNT,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fstatat` succeeded, so it initialised the whole struct.
        Ok(FileId::from_stat(unsafe { st.assume_init_ref() }))
    }

    /// Opens `rel` for reading, refusing (with `EXDEV` or `ELOOP`) any resolution that leaves DIR.
    /// Non-blocking, so that a FIFO planted in DIR cannot stall the opening thread.
    pub(super) fn open_file(&self, rel: &CStr) -> io::Result<File> {
        let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
        if self.openat2.load(Ordering::Relaxed) {
            match self.openat2(rel, flags) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    self.openat2.store(false, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        // Fallback: resolve in user space, then check the prefix. (A symlink swapped in between
        // the check and the open could still escape; openat2 has no such window.)
        let full = self.path.join(OsStr::from_bytes(rel.to_bytes()));
        let real = full.canonicalize()?;
        if !real.starts_with(&self.path) {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(real)
    }

    fn openat2(&self, rel: &CStr, flags: i32) -> io::Result<File> {
        let how = OpenHow {
            flags: u64::from(flags.unsigned_abs()),
            mode: 0,
            resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
        };
        // `EAGAIN`: a concurrent rename made the kernel unsure the walk stayed beneath; retry.
        let mut tries = 0;
        loop {
            // SAFETY: `rel` is NUL-terminated and outlives the call; `how` is an initialised
            // `struct open_how` of the size passed. The kernel only reads both.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    self.dir.as_raw_fd(),
                    rel.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            };
            if rc >= 0 {
                let fd = i32::try_from(rc).map_err(|_| io::Error::other("openat2: bad fd"))?;
                // SAFETY: `openat2` just returned this descriptor, and nothing else owns it.
                return Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) if tries < 8 => tries += 1,
                _ => return Err(e),
            }
        }
    }
}

/// The status for a failed open or stat.
pub(super) fn open_status(e: &io::Error) -> Status {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => Status::Forbidden,
        Some(
            libc::ENOENT
            | libc::ENOTDIR
            | libc::EXDEV
            | libc::ELOOP
            | libc::ENAMETOOLONG
            | libc::ENXIO
            | libc::ENODEV,
        ) => Status::NotFound,
        _ => Status::InternalError,
    }
}

/// A small file's contents and what its responses need, as of one [`FileId`].
#[derive(Debug)]
pub(super) struct Cached {
    /// The version these bytes are.
    pub(super) id: FileId,
    /// The whole file.
    pub(super) body: Box<[u8]>,
    /// Its Content-Type.
    pub(super) mime: &'static str,
    /// Its Last-Modified.
    pub(super) modified: HttpDate,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Box<[u8]>, Arc<Cached>>,
    bytes: usize,
}

/// Small files' contents by relative path, in shards under their own locks.
#[derive(Debug)]
pub(super) struct Cache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// The most bytes one shard holds; a shard that would exceed it is emptied first.
    shard_limit: usize,
    /// The largest file cached (0: nothing is).
    file_limit: u64,
}

impl Cache {
    /// A cache of at most `total` bytes in all, holding files of at most `file_limit` bytes.
    pub(super) fn new(total: usize, file_limit: u64) -> Cache {
        let shard_limit = total / SHARDS;
        Cache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            shard_limit,
            file_limit: if shard_limit == 0 {
                0
            } else {
                file_limit.min(shard_limit as u64)
            },
        }
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a file of `size` bytes may be cached.
    pub(super) fn takes(&self, size: u64) -> bool {
        size <= self.file_limit
    }

    /// The entry for `key`, whatever its age: the caller checks its [`FileId`].
    pub(super) fn get(&self, key: &[u8]) -> Option<Arc<Cached>> {
        if self.file_limit == 0 {
            return None;
        }
        self.shard(key).map.get(key).cloned()
    }

    /// Stores `entry` for `key`, replacing an older one.
    pub(super) fn insert(&self, key: &[u8], entry: Cached) {
        let size = entry.body.len();
        if !self.takes(size as u64) {
            return;
        }
        let mut shard = self.shard(key);
        if let Some(old) = shard.map.remove(key) {
            shard.bytes -= old.body.len();
        }
        if shard.bytes + size > self.shard_limit {
            shard.map.clear();
            shard.bytes = 0;
        }
        shard.bytes += size;
        shard.map.insert(key.into(), Arc::new(entry));
    }
}

/// What a relative path leads to.
#[derive(Debug)]
pub(super) enum Found {
    /// A cached file, still the same version.
    Cached(Arc<Cached>),
    /// A regular file, opened, and its identity.
    File(File, FileId),
    /// A directory.
    Dir,
    /// Nothing servable: this status.
    Error(Status),
}

/// Looks `rel` (NUL-terminated) up: in the cache if the path still stats the same, else opened
/// beneath DIR.
pub(super) fn lookup(root: &Root, cache: &Cache, rel: &[u8]) -> Found {
    let Ok(c) = CStr::from_bytes_with_nul(rel) else {
        return Found::Error(Status::NotFound);
    };
    let key = c.to_bytes();
    if let Some(entry) = cache.get(key) {
        if root.stat(c).is_ok_and(|id| id == entry.id) {
            return Found::Cached(entry);
        }
    }
    let file = match root.open_file(c) {
        Ok(f) => f,
        Err(e) => return Found::Error(open_status(&e)),
    };
    match fstat(file.as_fd()) {
        Ok(id) if id.is_file() => Found::File(file, id),
        Ok(id) if id.is_dir() => Found::Dir,
        Ok(_) => Found::Error(Status::NotFound),
        Err(_) => Found::Error(Status::InternalError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(target: &str) -> Result<(String, bool), Status> {
        let mut rel = Vec::new();
        let d = decode(target.as_bytes(), &mut rel)?;
        assert_eq!(rel.pop(), Some(0));
        Ok((String::from_utf8(rel).unwrap(), d.index))
    }

    #[test]
    fn decodes_paths() {
        assert_eq!(dec("/"), Ok(("index.html".into(), true)));
        assert_eq!(dec("/a/b.txt?x=1"), Ok(("a/b.txt".into(), false)));
        assert_eq!(dec("/a//./b%20c"), Ok(("a/b c".into(), false)));
        assert_eq!(dec("/dir/"), Ok(("dir/index.html".into(), true)));
        assert_eq!(dec("/dir/."), Ok(("dir/index.html".into(), true)));
        assert_eq!(dec("http://host:8/x"), Ok(("x".into(), false)));
        assert_eq!(dec("http://host"), Ok(("index.html".into(), true)));
    }

    #[test]
    fn refuses_escapes() {
        assert_eq!(dec("/../etc/passwd"), Err(Status::NotFound));
        assert_eq!(dec("/a/%2e%2e/%2E%2E/x"), Err(Status::NotFound));
        assert_eq!(dec("/a%2fb"), Err(Status::NotFound));
        assert_eq!(dec("/a%00b"), Err(Status::NotFound));
        assert_eq!(dec("/a%zz"), Err(Status::BadRequest));
        assert_eq!(dec("/a%4"), Err(Status::BadRequest));
        assert_eq!(dec("*"), Err(Status::BadRequest));
    }

    #[test]
    fn encodes_locations() {
        let mut out = Vec::new();
        push_encoded(&mut out, b"a b/\xc3\xa9?");
        assert_eq!(out, b"a%20b/%C3%A9%3F");
    }

    #[test]
    fn cache_limits() {
        let cache = Cache::new(16 * 100, 50);
        assert!(cache.takes(50) && !cache.takes(51));
        let id = FileId {
            dev: 1,
            ino: 2,
            mode: libc::S_IFREG,
            size: 3,
            mtime: (0, 0),
            ctime: (0, 0),
        };
        let entry = |n: usize| Cached {
            id,
            body: vec![7; n].into(),
            mime: "text/plain",
            modified: [b' '; 29],
        };
        cache.insert(b"a", entry(40));
        assert_eq!(cache.get(b"a").map(|e| e.body.len()), Some(40));
        cache.insert(b"a", entry(30));
        assert_eq!(cache.get(b"a").map(|e| e.body.len()), Some(30));
        assert!(Cache::new(0, 50).get(b"a").is_none());
        assert!(id.settled(SystemTime::now()));
    }
}
