//! External processes for the suites that run other programs (`http`: iocport serve, nginx, wrk;
//! `copy`: iocport copy, cp): finding them, and a guard that never leaves one running.
//!
//! A [`Guard`] owns a child. However the suite ends (success, error, panic), dropping the guard
//! stops the child: SIGINT first (a server's orderly stop), then, after a grace period, SIGKILL for
//! the child and for its own children (nginx's workers). Every wait is bounded.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// How long a stopped child may take to exit after SIGINT before it is killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// `name` on PATH, else the first of `also` that exists.
pub(crate) fn find_tool(name: &str, also: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
    });
    on_path.or_else(|| also.iter().map(PathBuf::from).find(|p| is_executable(p)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A running child process that is stopped when the guard is dropped.
pub(crate) struct Guard {
    /// `None` once the child has been reaped.
    child: Option<Child>,
    /// The program's name, for messages.
    name: String,
}

impl Guard {
    /// Starts `cmd`; `name` is used in messages.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Guard, String> {
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Guard {
            child: Some(child),
            name: name.to_owned(),
        })
    }

    /// The child, while it has not been reaped.
    pub fn child(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Its exit status if it has exited (and then reaps it), `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, String> {
        let Some(child) = self.child.as_mut() else {
            return Err(format!("{} was already reaped", self.name));
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Ok(Some(status))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(format!("waiting for {}: {e}", self.name)),
        }
    }

    /// Waits up to `limit` for the child to exit by itself; after that it is stopped and this is
    /// an error.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!("{} ran longer than {limit:?}; killed", self.name));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGINT and waits up to [`STOP_GRACE`] for the child to exit: its exit status, or an
    /// error (after SIGKILL) when it did not stop in time.
    pub fn stop(&mut self) -> Result<ExitStatus, String> {
        let Some(child) = self.child.as_ref() else {
            return Err(format!("{} had already exited", self.name));
        };
        signal(child.id(), libc::SIGINT);
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "{} did not stop within {STOP_GRACE:?} of SIGINT; killed",
                    self.name
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL for the child and its children, then reaps the child.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let kids = children_of(child.id());
            let _ = child.kill();
            for pid in kids {
                signal(pid, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Err(e) = self.stop() {
                super::say(format!("bench: {e}"));
            }
        }
    }
}

/// Sends `sig` to `pid`.
fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) reads no memory of ours. The pid is our own unreaped child (a zombie keeps
    // its pid reserved until we wait for it) or, for SIGKILL, one of its children found just
    // before; at worst the signal finds no such process.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The processes whose parent is `pid` (from /proc/*/stat).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let child: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = fs::read_to_string(e.path().join("stat")).ok()?;
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses; it ends at the last ')'.
        let after = &stat[stat.rfind(')')? + 1..];
        let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == pid).then_some(child)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tools_on_path_and_elsewhere() {
        assert!(find_tool("sh", &[]).is_some());
        assert!(find_tool("no-such-tool-iocport", &[]).is_none());
        assert_eq!(
            find_tool("no-such-tool-iocport", &["/bin/sh"]),
            Some(PathBuf::from("/bin/sh"))
        );
    }

    #[test]
    fn a_dropped_guard_stops_its_child_and_grandchildren() {
        // A shell that ignores SIGINT and has a child of its own: both must be gone after drop.
        let mut g = Guard::spawn(
            "sh",
            Command::new("sh").args(["-c", "trap '' INT; sleep 30 & wait"]),
        )
        .unwrap();
        let pid = g.child().unwrap().id();
        thread::sleep(Duration::from_millis(100));
        let kids = children_of(pid);
        assert_eq!(kids.len(), 1, "{kids:?}");
        let t = Instant::now();
        drop(g);
        assert!(t.elapsed() < STOP_GRACE + Duration::from_secs(2));
        thread::sleep(Duration::from_millis(50));
        assert!(!Path::new(&format!("/proc/{}", kids[0])).exists() || is_zombie(kids[0]));
    }

    fn is_zombie(pid: u32) -> bool {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'))
            .unwrap_or(true)
    }

    #[test]
    fn stop_and_bounded_wait() {
        let mut g = Guard::spawn("sleep", Command::new("sleep").arg("30")).unwrap();
        assert!(g.try_wait().unwrap().is_none());
        let status = g.stop().unwrap();
        assert!(!status.success());
        let mut g = Guard::spawn("sleep", Command::new("sleep").arg("30")).unwrap();
        let e = g.wait(Duration::from_millis(50)).unwrap_err();
        assert!(e.contains("killed"), "{e}");
        let mut g = Guard::spawn("true", &mut Command::new("true")).unwrap();
        assert!(g.wait(Duration::from_secs(5)).unwrap().success());
    }
}
