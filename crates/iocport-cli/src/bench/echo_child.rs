//! The child-process side of the `echo` suite's `echo_conn4000` case, and what both sides of it
//! need from the system.
//!
//! `echo_conn4000` reports the resident memory a server spends per connection, which can only be
//! read of a process that holds nothing but the server. So the suite re-executes its own binary as
//! `iocport bench-echo-server SYSTEM` (a hidden subcommand): the child starts that in-process
//! server ([`super::echo`]'s `iocport`, `iocport-interrupted`, `iocport-sqpoll`, `iocport-epoll`,
//! `tokio` or `thread-per-conn`) on an ephemeral port of 127.0.0.1, prints `listening on
//! 127.0.0.1:PORT`, and stops the server and exits 0 when its stdin closes; a failure goes to
//! stderr with a nonzero exit. That is the protocol of the C server (`iocport-c`), so one piece of
//! code runs both.
//!
//! Both processes raise their soft `RLIMIT_NOFILE` to the hard limit ([`raise_nofile`]): the
//! client holds one descriptor per connection, the server one per connection and a few more.
//! [`vm_rss`] reads a process's resident set from `/proc/PID/status`.

use std::fs;

/// Arguments of the hidden `iocport bench-echo-server`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The system whose server to run: iocport, iocport-interrupted, iocport-sqpoll,
    /// iocport-epoll, tokio or thread-per-conn.
    system: String,
}

/// Runs `iocport bench-echo-server SYSTEM` until its stdin closes.
pub(crate) fn main(args: Args) -> Result<(), String> {
    raise_nofile()?;
    super::echo::serve_child(&args.system)
}

/// Raises this process's soft limit of open descriptors to its hard limit; returns the soft limit
/// now in force.
pub(crate) fn raise_nofile() -> Result<u64, String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit`, which `lim` is, and keeps no pointer to it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!(
            "getrlimit(RLIMIT_NOFILE): {}",
            std::io::Error::last_os_error()
        ));
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one `rlimit`, which `raised` is, and keeps no pointer to it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(format!(
                "setrlimit(RLIMIT_NOFILE, {}): {}",
                lim.rlim_max,
                std::io::Error::last_os_error()
            ));
        }
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(lim.rlim_cur)
}

/// The resident set of process `pid` in bytes: `VmRSS` of `/proc/PID/status` (its anonymous,
/// file-backed and shared pages that are in memory; not the kernel's own memory, such as socket
/// buffers).
pub(crate) fn vm_rss(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_vm_rss(&status).ok_or_else(|| format!("no VmRSS in {path} (has the process exited?)"))
}

/// `VmRSS:    1234 kB` of a `/proc/PID/status` text, in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmPeak:\t  10 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n"),
            Some(1234 * 1024)
        );
        assert_eq!(parse_vm_rss("Name:\tx\nState:\tZ (zombie)\n"), None);
        let ours = vm_rss(std::process::id()).unwrap();
        assert!(ours > 64 * 1024, "{ours}");
        assert!(vm_rss(u32::MAX).is_err());
    }

    #[test]
    fn raises_nofile_to_the_hard_limit() {
        let soft = raise_nofile().unwrap();
        // Again: nothing left to raise, the same limit.
        assert_eq!(raise_nofile().unwrap(), soft);
        assert!(soft >= 64);
    }
}
