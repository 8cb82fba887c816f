//! Helpers shared by the command's integration tests (each test file uses some of them).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};

/// Makes `io_uring_setup` fail with `EPERM` in the child, as a container runtime's default
/// seccomp profile does: a seccomp filter installed between fork and exec. Needs no privileges
/// (`PR_SET_NO_NEW_PRIVS` is set first). The backend is left as `cmd`'s environment says.
pub fn without_io_uring(cmd: &mut Command) {
    Refusal::eperm().apply(cmd);
}

/// A seccomp filter that refuses `io_uring_setup` with one errno and allows everything else.
pub struct Refusal {
    /// `EPERM` or `ENOSYS`: what `io_uring_setup` returns.
    pub errno: i32,
    /// The errno's name, as the reasons spell it.
    pub name: &'static str,
    /// The compiled filter, shared with the `pre_exec` hooks.
    bpf: Arc<BpfProgram>,
}

impl Refusal {
    /// Compiles the filter (in the parent: this allocates).
    pub fn new(errno: i32, name: &'static str) -> Refusal {
        let arch = std::env::consts::ARCH
            .try_into()
            .expect("seccompiler supports this architecture");
        // No rules for the system call: it matches whatever its arguments.
        let rules = BTreeMap::from([(libc::SYS_io_uring_setup, Vec::new())]);
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )
        .expect("a valid seccomp filter");
        let bpf = BpfProgram::try_from(filter).expect("the filter compiles to BPF");
        assert!(!bpf.is_empty());
        Refusal {
            errno,
            name,
            bpf: Arc::new(bpf),
        }
    }

    pub fn eperm() -> Refusal {
        Refusal::new(libc::EPERM, "EPERM")
    }

    pub fn enosys() -> Refusal {
        Refusal::new(libc::ENOSYS, "ENOSYS")
    }

    /// Makes `cmd`'s child run under the filter, with the backend left to the library.
    pub fn confine<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env_remove("IOCPORT_BACKEND");
        self.apply(cmd)
    }

    /// Makes `cmd`'s child run under the filter.
    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        // Cloned here, before the fork: the hook only reads it.
        let bpf = Arc::clone(&self.bpf);
        // SAFETY: the hook runs in the child between fork and exec, where only async-signal-safe
        // work is allowed: `apply_filter` makes two system calls (`prctl(PR_SET_NO_NEW_PRIVS)` and
        // `seccomp(SECCOMP_SET_MODE_FILTER)`) with a pointer to the program compiled before the
        // fork, and allocates nothing on success or on the errors it returns for them; the
        // program is not empty (checked in `new`), so no other error can come back.
        unsafe {
            cmd.pre_exec(move || match seccompiler::apply_filter(&bpf) {
                Ok(()) => Ok(()),
                Err(seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e)) => Err(e),
                Err(_) => Err(std::io::ErrorKind::InvalidInput.into()),
            });
        }
        cmd
    }
}
