//! `iocport info`: what this machine's kernel offers iocport.
//!
//! Everything is asked of the kernel directly rather than inferred from its version, since
//! distributions backport io_uring features and sandboxes take them away:
//!
//! - **backend**: the backend a port created here runs on (`io_uring`, or the `epoll` fallback)
//!   and the library's reason for it (the default, `IOCPORT_BACKEND`, or why io_uring was
//!   refused), found by creating a port with [`iocport::Builder`] (the library's own set-up and
//!   checks), with the kernel features that backend probed; and whether io_uring itself can be
//!   used here and, when it cannot, why: the library's error, the sysctl
//!   `kernel.io_uring_disabled`, the process's seccomp mode, and the error of a plain
//!   `io_uring_setup` are put together into one reason;
//! - **kernel**: `uname(2)`;
//! - **io_uring**: the ring's sizes and every `IORING_FEAT_*` flag the kernel reported in the setup
//!   parameters (iocport needs `nodrop` and `ext_arg`), and whether `IORING_SETUP_COOP_TASKRUN` is
//!   accepted (iocport uses it where it is);
//! - **opcodes**: `IORING_REGISTER_PROBE`: whether each opcode iocport uses is supported (and with
//!   `--all`, every opcode the `io-uring` crate knows);
//! - **limits**: `RLIMIT_MEMLOCK` (rings were charged to it before Linux 5.12) and `RLIMIT_NOFILE`
//!   (one fd per associated file or socket), soft and hard;
//! - **cpus**: available to this process (affinity) and online; a port's default concurrency value
//!   is the first.
//!
//! The text output is one aligned `name  value` line per item. `--json` prints one object with the
//! same content (always including the full opcode list); a limit of `RLIM_INFINITY` is the string
//! `"unlimited"` there, other limits are numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use io_uring::{opcode, IoUring, Probe};
use serde::Serialize;

/// Arguments of `iocport info`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// List every io_uring opcode the io-uring crate knows, not only those iocport uses.
    #[arg(long)]
    all: bool,
}

/// Runs `iocport info`.
pub(crate) fn main(args: Args) -> Result<(), String> {
    let info = Info::gather();
    let text = if args.json {
        let mut text = serde_json::to_string_pretty(&info).map_err(|e| format!("info: {e}"))?;
        text.push('\n');
        text
    } else {
        info.text(args.all)
    };
    // A reader that stops early (`iocport info | head`) is not an error.
    match io::Write::write_all(&mut io::stdout().lock(), text.as_bytes()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(format!("info: stdout: {e}")),
        _ => Ok(()),
    }
}

/// The sysctl that restricts io_uring (Linux 6.6 and later).
const DISABLED_SYSCTL: &str = "/proc/sys/kernel/io_uring_disabled";
/// Submission entries of the probing ring: small, so that it fits under any memlock limit.
const PROBE_ENTRIES: u32 = 8;

/// The opcodes iocport submits, with the API that submits each. Kept in step with `Request` in
/// the library's `op.rs` (and the cancel and wake-up entries of `io.rs` and `driver.rs`).
const USED: &[(&str, u8, &str)] = &[
    ("Nop", opcode::Nop::CODE, "nop"),
    ("Timeout", opcode::Timeout::CODE, "timer"),
    ("Read", opcode::Read::CODE, "read, read_at"),
    ("Write", opcode::Write::CODE, "write, write_at"),
    ("Readv", opcode::Readv::CODE, "readv, readv_at"),
    ("Writev", opcode::Writev::CODE, "writev, writev_at"),
    ("Recv", opcode::Recv::CODE, "recv"),
    ("Send", opcode::Send::CODE, "send"),
    ("RecvMsg", opcode::RecvMsg::CODE, "recv_from"),
    ("SendMsg", opcode::SendMsg::CODE, "send_to"),
    ("Accept", opcode::Accept::CODE, "accept"),
    ("Connect", opcode::Connect::CODE, "connect"),
    ("Shutdown", opcode::Shutdown::CODE, "shutdown"),
    ("Fsync", opcode::Fsync::CODE, "fsync, fdatasync"),
    (
        "PollAdd",
        opcode::PollAdd::CODE,
        "poll; waking a waiting thread",
    ),
    (
        "AsyncCancel",
        opcode::AsyncCancel::CODE,
        "cancel, cancel_all, close",
    ),
];

/// Every opcode the io-uring crate (0.7) can build, one name per code.
const ALL: &[(&str, u8)] = &[
    ("Nop", opcode::Nop::CODE),
    ("Readv", opcode::Readv::CODE),
    ("Writev", opcode::Writev::CODE),
    ("Fsync", opcode::Fsync::CODE),
    ("ReadFixed", opcode::ReadFixed::CODE),
    ("WriteFixed", opcode::WriteFixed::CODE),
    ("PollAdd", opcode::PollAdd::CODE),
    ("PollRemove", opcode::PollRemove::CODE),
    ("SyncFileRange", opcode::SyncFileRange::CODE),
    ("SendMsg", opcode::SendMsg::CODE),
    ("RecvMsg", opcode::RecvMsg::CODE),
    ("Timeout", opcode::Timeout::CODE),
    ("TimeoutRemove", opcode::TimeoutRemove::CODE),
    ("Accept", opcode::Accept::CODE),
    ("AsyncCancel", opcode::AsyncCancel::CODE),
    ("LinkTimeout", opcode::LinkTimeout::CODE),
    ("Connect", opcode::Connect::CODE),
    ("Fallocate", opcode::Fallocate::CODE),
    ("OpenAt", opcode::OpenAt::CODE),
    ("Close", opcode::Close::CODE),
    ("FilesUpdate", opcode::FilesUpdate::CODE),
    ("Statx", opcode::Statx::CODE),
    ("Read", opcode::Read::CODE),
    ("Write", opcode::Write::CODE),
    ("Fadvise", opcode::Fadvise::CODE),
    ("Madvise", opcode::Madvise::CODE),
    ("Send", opcode::Send::CODE),
    ("Recv", opcode::Recv::CODE),
    ("OpenAt2", opcode::OpenAt2::CODE),
    ("EpollCtl", opcode::EpollCtl::CODE),
    ("Splice", opcode::Splice::CODE),
    ("ProvideBuffers", opcode::ProvideBuffers::CODE),
    ("RemoveBuffers", opcode::RemoveBuffers::CODE),
    ("Tee", opcode::Tee::CODE),
    ("Shutdown", opcode::Shutdown::CODE),
    ("RenameAt", opcode::RenameAt::CODE),
    ("UnlinkAt", opcode::UnlinkAt::CODE),
    ("MkDirAt", opcode::MkDirAt::CODE),
    ("SymlinkAt", opcode::SymlinkAt::CODE),
    ("LinkAt", opcode::LinkAt::CODE),
    ("MsgRing", opcode::MsgRingData::CODE),
    ("FSetXattr", opcode::FSetXattr::CODE),
    ("SetXattr", opcode::SetXattr::CODE),
    ("FGetXattr", opcode::FGetXattr::CODE),
    ("GetXattr", opcode::GetXattr::CODE),
    ("Socket", opcode::Socket::CODE),
    ("UringCmd", opcode::UringCmd16::CODE),
    ("SendZc", opcode::SendZc::CODE),
    ("SendMsgZc", opcode::SendMsgZc::CODE),
    ("ReadMulti", opcode::ReadMulti::CODE),
    ("WaitId", opcode::WaitId::CODE),
    ("FutexWait", opcode::FutexWait::CODE),
    ("FutexWake", opcode::FutexWake::CODE),
    ("FutexWaitV", opcode::FutexWaitV::CODE),
    ("FixedFdInstall", opcode::FixedFdInstall::CODE),
    ("Ftruncate", opcode::Ftruncate::CODE),
    ("Bind", opcode::Bind::CODE),
    ("Listen", opcode::Listen::CODE),
    ("RecvZc", opcode::RecvZc::CODE),
    ("EpollWait", opcode::EpollWait::CODE),
    ("ReadvFixed", opcode::ReadvFixed::CODE),
    ("WritevFixed", opcode::WritevFixed::CODE),
    ("Pipe", opcode::Pipe::CODE),
];

/// Everything `info` reports; also the JSON object.
#[derive(Serialize)]
struct Info {
    backend: Backend,
    kernel: Kernel,
    io_uring: Uring,
    opcodes: Opcodes,
    rlimits: BTreeMap<&'static str, Limit>,
    cpus: Cpus,
}

/// The backend iocport runs on here, and whether io_uring could.
#[derive(Serialize)]
struct Backend {
    /// Whether a port could be set up here at all (on any backend).
    available: bool,
    /// `io_uring` or `epoll` (`iocport::Backend`): what a port set up here runs on, as chosen by
    /// `IOCPORT_BACKEND` or by io_uring being refused; `None` when no port could be set up.
    kind: Option<String>,
    /// Why that backend (`iocport::BackendInfo::reason`), or why no port could be set up.
    reason: String,
    /// Who submits operations by default (`iocport::SubmitMode`); `None` unless the backend is
    /// io_uring (the only one it applies to).
    submit_mode: Option<String>,
    /// Whether a port can run on io_uring here, whatever backend was chosen.
    io_uring: UringVerdict,
    /// Every kernel feature the backend probed when it set the port up, with its answer.
    probes: Vec<PortProbe>,
}

/// Whether the library can set up io_uring here.
#[derive(Serialize)]
struct UringVerdict {
    available: bool,
    /// Why not, when it is not: the library's error with its likely cause.
    reason: Option<String>,
}

/// One of the library's own probes (`CompletionPort::features`).
#[derive(Serialize)]
struct PortProbe {
    name: &'static str,
    available: bool,
    purpose: &'static str,
}

/// `uname(2)`.
#[derive(Serialize)]
struct Kernel {
    sysname: String,
    release: String,
    version: String,
    machine: String,
}

/// What the kernel's io_uring is like, and what may restrict it.
#[derive(Serialize)]
struct Uring {
    /// `kernel.io_uring_disabled`: 0, 1 or 2; `None` where the sysctl does not exist.
    io_uring_disabled: Option<u8>,
    /// The `Seccomp:` mode of `/proc/self/status` (0 none, 1 strict, 2 filter).
    seccomp: Option<u8>,
    /// Whether a plain `io_uring_setup` succeeded, and its error if not.
    setup: bool,
    setup_error: Option<String>,
    /// Whether `IORING_SETUP_COOP_TASKRUN` (Linux 5.19) is accepted.
    coop_taskrun: Option<bool>,
    /// The probing ring's sizes.
    sq_entries: Option<u32>,
    cq_entries: Option<u32>,
    /// Every `IORING_FEAT_*` flag: name (without the prefix, lower case) to whether it is set.
    features: BTreeMap<&'static str, bool>,
}

/// An opcode and whether the kernel supports it.
#[derive(Serialize)]
struct Opcode {
    name: String,
    code: u8,
    /// `None` when the kernel could not be asked (no ring, or no `IORING_REGISTER_PROBE`).
    supported: Option<bool>,
    /// The iocport API that submits it, for the opcodes iocport uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    used_by: Option<&'static str>,
}

/// The opcode probe.
#[derive(Serialize)]
struct Opcodes {
    /// Why the kernel could not be asked, if it could not.
    probe_error: Option<String>,
    /// The opcodes iocport submits.
    used: Vec<Opcode>,
    /// Every opcode the io-uring crate knows, and any other the kernel reports as supported.
    all: Vec<Opcode>,
    /// How many opcodes the kernel supports, known to the crate or not.
    supported_count: Option<usize>,
}

/// A resource limit: a number, or `"unlimited"` for `RLIM_INFINITY`.
#[derive(Serialize)]
struct Limit {
    soft: LimitValue,
    hard: LimitValue,
}

/// One side of a resource limit.
#[derive(Serialize)]
#[serde(untagged)]
enum LimitValue {
    Value(u64),
    Unlimited(&'static str),
}

/// CPU counts.
#[derive(Serialize)]
struct Cpus {
    /// Usable by this process (`sched_getaffinity`, cgroup quotas): a port's default concurrency.
    available: usize,
    /// Online in the machine (`sysconf(_SC_NPROCESSORS_ONLN)`).
    online: Option<usize>,
}

/// One of the `is_feature_*` methods of `io_uring::Parameters`.
type FeatureFlag = fn(&io_uring::Parameters) -> bool;

/// The names of the `is_feature_*` flags of `io_uring::Parameters`, in the kernel's order, and
/// whether iocport requires each.
const FEATURES: &[(&str, FeatureFlag, bool)] = &[
    (
        "single_mmap",
        io_uring::Parameters::is_feature_single_mmap,
        false,
    ),
    ("nodrop", io_uring::Parameters::is_feature_nodrop, true),
    (
        "submit_stable",
        io_uring::Parameters::is_feature_submit_stable,
        false,
    ),
    (
        "rw_cur_pos",
        io_uring::Parameters::is_feature_rw_cur_pos,
        false,
    ),
    (
        "cur_personality",
        io_uring::Parameters::is_feature_cur_personality,
        false,
    ),
    (
        "fast_poll",
        io_uring::Parameters::is_feature_fast_poll,
        false,
    ),
    (
        "poll_32bits",
        io_uring::Parameters::is_feature_poll_32bits,
        false,
    ),
    (
        "sqpoll_nonfixed",
        io_uring::Parameters::is_feature_sqpoll_nonfixed,
        false,
    ),
    ("ext_arg", io_uring::Parameters::is_feature_ext_arg, true),
    (
        "native_workers",
        io_uring::Parameters::is_feature_native_workers,
        false,
    ),
    (
        "resource_tagging",
        io_uring::Parameters::is_feature_resource_tagging,
        false,
    ),
    (
        "skip_cqe_on_success",
        io_uring::Parameters::is_feature_skip_cqe_on_success,
        false,
    ),
    (
        "linked_file",
        io_uring::Parameters::is_feature_linked_file,
        false,
    ),
    (
        "recvsend_bundle",
        io_uring::Parameters::is_feature_recvsend_bundle,
        false,
    ),
    (
        "min_timeout",
        io_uring::Parameters::is_feature_min_timeout,
        false,
    ),
    (
        "no_iowait",
        io_uring::Parameters::is_feature_no_iowait,
        false,
    ),
];

impl Info {
    /// Asks the kernel.
    fn gather() -> Info {
        let disabled_sysctl = std::fs::read_to_string(DISABLED_SYSCTL)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let seccomp = seccomp_mode();

        // A plain ring, with COOP_TASKRUN where the kernel takes it (as iocport sets it up).
        let mut coop_taskrun = None;
        let ring = match IoUring::builder().setup_coop_taskrun().build(PROBE_ENTRIES) {
            Ok(ring) => {
                coop_taskrun = Some(true);
                Ok(ring)
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let r = IoUring::new(PROBE_ENTRIES);
                if r.is_ok() {
                    coop_taskrun = Some(false);
                }
                r
            }
            Err(e) => Err(e),
        };
        let (features, sq_entries, cq_entries) = match &ring {
            Ok(ring) => {
                let p = ring.params();
                let features = FEATURES.iter().map(|&(name, f, _)| (name, f(p))).collect();
                (features, Some(p.sq_entries()), Some(p.cq_entries()))
            }
            Err(_) => (BTreeMap::new(), None, None),
        };

        let mut probe = Probe::new();
        let probed = match &ring {
            Ok(ring) => ring
                .submitter()
                .register_probe(&mut probe)
                .map_err(|e| format!("IORING_REGISTER_PROBE failed: {e}")),
            Err(_) => Err("no ring to probe".to_owned()),
        };
        let supported = |code: u8| probed.as_ref().ok().map(|_| probe.is_supported(code));
        let used = USED
            .iter()
            .map(|&(name, code, used_by)| Opcode {
                name: name.to_owned(),
                code,
                supported: supported(code),
                used_by: Some(used_by),
            })
            .collect();
        let mut all: Vec<Opcode> = ALL
            .iter()
            .map(|&(name, code)| Opcode {
                name: name.to_owned(),
                code,
                supported: supported(code),
                used_by: USED.iter().find(|u| u.1 == code).map(|u| u.2),
            })
            .collect();
        let mut supported_count = None;
        if probed.is_ok() {
            // Opcodes newer than the crate: the kernel names them by number only.
            for code in 0..=u8::MAX {
                if probe.is_supported(code) && !ALL.iter().any(|a| a.1 == code) {
                    all.push(Opcode {
                        name: format!("#{code}"),
                        code,
                        supported: Some(true),
                        used_by: None,
                    });
                }
            }
            supported_count = Some((0..=u8::MAX).filter(|&c| probe.is_supported(c)).count());
        }
        all.sort_by_key(|o| o.code);

        let setup_error = ring.as_ref().err().map(|e| e.to_string());
        let backend = backend(ring.as_ref().err(), disabled_sysctl, seccomp);
        drop(ring);

        let mut rlimits = BTreeMap::new();
        rlimits.insert("RLIMIT_MEMLOCK", rlimit(libc::RLIMIT_MEMLOCK));
        rlimits.insert("RLIMIT_NOFILE", rlimit(libc::RLIMIT_NOFILE));

        Info {
            backend,
            kernel: uname(),
            io_uring: Uring {
                io_uring_disabled: disabled_sysctl,
                seccomp,
                setup: setup_error.is_none(),
                setup_error,
                coop_taskrun,
                sq_entries,
                cq_entries,
                features,
            },
            opcodes: Opcodes {
                probe_error: probed.err(),
                used,
                all,
                supported_count,
            },
            rlimits,
            cpus: Cpus {
                available: std::thread::available_parallelism().map_or(1, |n| n.get()),
                online: {
                    // SAFETY: sysconf takes no pointers.
                    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
                    usize::try_from(n).ok().filter(|&n| n > 0)
                },
            },
        }
    }

    /// The aligned text report; `all` adds every opcode.
    fn text(&self, all: bool) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));

        let b = &self.backend;
        row(
            "backend",
            match (&b.kind, &b.submit_mode) {
                (Some(kind), Some(mode)) => format!("{kind} ({}; submit mode {mode})", b.reason),
                (Some(kind), None) => format!("{kind} ({})", b.reason),
                (None, _) => format!("none: {}", b.reason),
            },
        );
        row(
            "  io_uring",
            match &b.io_uring.reason {
                None => "available".to_owned(),
                Some(r) => format!("unavailable: {r}"),
            },
        );
        for p in &self.backend.probes {
            // Opcodes are listed below with the kernel's own probe.
            if p.name.starts_with("IORING_OP_") {
                continue;
            }
            row(
                &format!("  probe {}", p.name),
                format!("{}: {}", yes_no(p.available), p.purpose),
            );
        }
        let k = &self.kernel;
        row(
            "kernel",
            format!("{} {} {} ({})", k.sysname, k.release, k.machine, k.version),
        );
        let u = &self.io_uring;
        row(
            "io_uring_disabled",
            match u.io_uring_disabled {
                None => "(no such sysctl: kernel older than 6.6)".to_owned(),
                Some(0) => "0 (io_uring allowed)".to_owned(),
                Some(1) => "1 (only CAP_SYS_ADMIN and kernel.io_uring_group may use it)".to_owned(),
                Some(n) => format!("{n} (io_uring disabled for everyone)"),
            },
        );
        row(
            "seccomp",
            match u.seccomp {
                None => "unknown".to_owned(),
                Some(0) => "0 (none)".to_owned(),
                Some(1) => "1 (strict)".to_owned(),
                Some(n) => format!("{n} (filter: may forbid io_uring_setup)"),
            },
        );
        row(
            "io_uring_setup",
            match (&u.setup_error, u.sq_entries, u.cq_entries) {
                (Some(e), _, _) => format!("failed: {e}"),
                (None, Some(sq), Some(cq)) => format!(
                    "ok ({sq} SQ / {cq} CQ entries; COOP_TASKRUN {})",
                    yes_no(u.coop_taskrun.unwrap_or(false))
                ),
                (None, _, _) => "ok".to_owned(),
            },
        );
        for &(name, _, required) in FEATURES {
            if let Some(&on) = u.features.get(name) {
                let note = if required {
                    "  (required by iocport)"
                } else {
                    ""
                };
                row(
                    &format!("  feature {name}"),
                    format!("{}{note}", yes_no(on)),
                );
            }
        }
        let o = &self.opcodes;
        match (&o.probe_error, o.supported_count) {
            (Some(e), _) => row("opcodes", format!("unknown: {e}")),
            (None, Some(n)) => row(
                "opcodes",
                format!(
                    "{n} supported by the kernel; {} of the {} iocport uses",
                    o.used
                        .iter()
                        .filter(|op| op.supported == Some(true))
                        .count(),
                    o.used.len()
                ),
            ),
            (None, None) => {}
        }
        let list = if all { &o.all } else { &o.used };
        for op in list {
            let state = match op.supported {
                Some(s) => yes_no(s),
                None => "?",
            };
            let used = op
                .used_by
                .map(|u| format!("  (iocport: {u})"))
                .unwrap_or_default();
            row(
                &format!("  op {} [{}]", op.name, op.code),
                format!("{state}{used}"),
            );
        }
        for (name, limit) in &self.rlimits {
            row(
                name,
                format!(
                    "soft {}, hard {}",
                    limit_text(&limit.soft),
                    limit_text(&limit.hard)
                ),
            );
        }
        let c = &self.cpus;
        row(
            "cpus",
            match c.online {
                Some(online) => format!("{} available, {online} online", c.available),
                None => format!("{} available", c.available),
            },
        );

        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:width$}  {v}");
        }
        out
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A limit for people: bytes-sized limits get a unit too.
fn limit_text(v: &LimitValue) -> String {
    match *v {
        LimitValue::Unlimited(s) => s.to_owned(),
        LimitValue::Value(n) if n >= 1 << 20 && n % 1024 == 0 => {
            format!("{n} ({:.1} MiB)", n as f64 / f64::from(1 << 20))
        }
        LimitValue::Value(n) => n.to_string(),
    }
}

/// Sets up a port as a program would (the builder's defaults, `IOCPORT_BACKEND` if set) and
/// reports its backend, the reason for it and its probes; and whether io_uring itself can be used,
/// asking the library for an io_uring port if the first one is not on io_uring. `setup` is the
/// error of a plain `io_uring_setup`, `disabled` the sysctl and `seccomp` the seccomp mode, put
/// into the reason when io_uring is refused.
fn backend(setup: Option<&io::Error>, disabled: Option<u8>, seccomp: Option<u8>) -> Backend {
    let build = |choice: Option<iocport::BackendChoice>| {
        let builder = iocport::Builder::new().entries(PROBE_ENTRIES);
        let builder = match choice {
            Some(c) => builder.backend(c),
            None => builder,
        };
        builder.build::<(), Vec<u8>>()
    };
    // Whether io_uring itself works, asked of the library separately, so that the two answers do
    // not mix.
    let uring = || match build(Some(iocport::BackendChoice::IoUring)) {
        Ok(port) => {
            port.close();
            UringVerdict {
                available: true,
                reason: None,
            }
        }
        Err(e) => UringVerdict {
            available: false,
            reason: Some(unavailable_reason(
                &match e {
                    iocport::Error::Unavailable { reason, .. } => reason,
                    e => e.to_string(),
                },
                setup,
                disabled,
                seccomp,
            )),
        },
    };
    match build(None) {
        Ok(port) => {
            let probes = port
                .features()
                .unwrap_or_default()
                .into_iter()
                .map(|f| PortProbe {
                    name: f.name,
                    available: f.available,
                    purpose: f.purpose,
                })
                .collect();
            let info = port.backend();
            port.close();
            let kind = info.as_ref().map(|i| i.backend);
            let on_uring = kind == Some(iocport::Backend::IoUring);
            Backend {
                available: true,
                kind: kind.map(|k| k.to_string()),
                reason: info
                    .map_or_else(|| "(the port reports no backend)".to_owned(), |i| i.reason),
                submit_mode: on_uring.then(|| format!("{:?}", iocport::SubmitMode::default())),
                io_uring: if on_uring {
                    UringVerdict {
                        available: true,
                        reason: None,
                    }
                } else {
                    uring()
                },
                probes,
            }
        }
        // No port at all: io_uring forced and refused, or `IOCPORT_BACKEND` not understood.
        Err(e) => Backend {
            available: false,
            kind: None,
            reason: e.to_string(),
            submit_mode: None,
            io_uring: uring(),
            probes: Vec::new(),
        },
    }
}

/// Puts iocport's own reason (`iocport::Error::Unavailable`), the plain setup error, the sysctl
/// and seccomp together into the likely cause.
fn unavailable_reason(
    iocport: &str,
    setup: Option<&io::Error>,
    disabled: Option<u8>,
    seccomp: Option<u8>,
) -> String {
    let errno = setup.and_then(io::Error::raw_os_error);
    let cause = match (errno, disabled, seccomp) {
        (Some(libc::EPERM), Some(2), _) => {
            Some("kernel.io_uring_disabled = 2 disables io_uring for everyone".to_owned())
        }
        (Some(libc::EPERM), Some(1), _) => Some(
            "kernel.io_uring_disabled = 1: only CAP_SYS_ADMIN and members of \
             kernel.io_uring_group may use io_uring"
                .to_owned(),
        ),
        (Some(libc::EPERM), _, Some(2)) => Some(
            "a seccomp filter (as a container runtime's default) forbids io_uring_setup".to_owned(),
        ),
        (Some(libc::ENOSYS), _, _) => Some(
            "the kernel has no io_uring (too old, or built without CONFIG_IO_URING)".to_owned(),
        ),
        _ => None,
    };
    match cause {
        Some(c) => format!("{c} ({iocport})"),
        None => iocport.to_owned(),
    }
}

/// The `Seccomp:` field of `/proc/self/status`.
fn seccomp_mode() -> Option<u8> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `getrlimit(resource)`; unknown values (the call failing) read as 0.
fn rlimit(resource: libc::__rlimit_resource_t) -> Limit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit that outlives the call.
    unsafe { libc::getrlimit(resource, &mut lim) };
    let value = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            LimitValue::Unlimited("unlimited")
        } else {
            LimitValue::Value(v)
        }
    };
    Limit {
        soft: value(lim.rlim_cur),
        hard: value(lim.rlim_max),
    }
}

/// `uname(2)`.
fn uname() -> Kernel {
    // SAFETY: utsname is plain bytes; all zeros is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is valid, writable memory for one utsname; uname fills it with NUL-terminated
    // strings and cannot fail with a valid pointer.
    unsafe { libc::uname(&mut u) };
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Kernel {
        sysname: field(&u.sysname),
        release: field(&u.release),
        version: field(&u.version),
        machine: field(&u.machine),
    }
}
