//! The backend a port runs on, chosen when its I/O is set up: io_uring unless it is refused or
//! the program asks otherwise, then the epoll fallback. One enum, so that the op table calls the
//! backend without dynamic dispatch.

use std::io;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::error::Error;
use crate::op::{Lending, Op};

use super::fd::FdEntry;
use super::{
    epoll, uring, Backend, BackendChoice, BackendInfo, CancelTarget, Completion, Config, Feature,
    Features, BACKEND_VAR,
};

/// A request that found the submission queue full (io_uring only: the fallback's queue has no
/// bound other than the op table's).
pub(crate) type Entry = uring::Entry;

pub(crate) enum Driver {
    /// Boxed: the ring is large, and the op table reaches it through one pointer either way.
    Uring(Box<uring::Driver>),
    Epoll(epoll::Driver),
}

/// Calls `$method` on whichever backend runs.
macro_rules! each {
    ($self:ident, $d:ident => $e:expr) => {
        match $self {
            Driver::Uring($d) => $e,
            Driver::Epoll($d) => $e,
        }
    };
}

/// What the program asked for: the builder's choice, else `IOCPORT_BACKEND`, else auto.
fn choice(config: &Config) -> Result<(BackendChoice, &'static str), Error> {
    if let Some(c) = config.backend {
        return Ok((c, "chosen by the program (Builder::backend)"));
    }
    match std::env::var(BACKEND_VAR) {
        Ok(v) => match BackendChoice::parse(&v) {
            Some(BackendChoice::Auto) => Ok((BackendChoice::Auto, "")),
            Some(BackendChoice::IoUring) => {
                Ok((BackendChoice::IoUring, "forced by IOCPORT_BACKEND=io_uring"))
            }
            Some(BackendChoice::Epoll) => {
                Ok((BackendChoice::Epoll, "forced by IOCPORT_BACKEND=epoll"))
            }
            None => Err(Error::InvalidBackend { value: v }),
        },
        Err(_) => Ok((BackendChoice::Auto, "")),
    }
}

impl Driver {
    /// Sets up the backend the program chose; with [`BackendChoice::Auto`], io_uring, or epoll if
    /// io_uring cannot be set up (logged once per process, and kept in the port's
    /// [`BackendInfo`]).
    pub(crate) fn new(config: &Config) -> Result<(Driver, BackendInfo), Error> {
        let (choice, why) = choice(config)?;
        let info = |backend, reason: &str| BackendInfo {
            backend,
            reason: reason.to_owned(),
        };
        match choice {
            BackendChoice::IoUring => Ok((
                Driver::Uring(Box::new(uring::Driver::new(config)?)),
                info(Backend::IoUring, why),
            )),
            BackendChoice::Epoll => Ok((
                Driver::Epoll(epoll::Driver::new(config)?),
                info(Backend::Epoll, why),
            )),
            BackendChoice::Auto => match uring::Driver::new(config) {
                Ok(d) => Ok((
                    Driver::Uring(Box::new(d)),
                    info(Backend::IoUring, "the default"),
                )),
                Err(Error::Unavailable { reason, source }) => {
                    static LOGGED: AtomicBool = AtomicBool::new(false);
                    if !LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(%reason, error = %source, "io_uring is unavailable; ports use the epoll backend");
                    }
                    let driver = epoll::Driver::new(config)?;
                    Ok((Driver::Epoll(driver), info(Backend::Epoll, &reason)))
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Prepares a newly associated fd (the fallback puts sockets and pipes in non-blocking mode
    /// and registers them with epoll).
    pub(crate) fn attach(&self, fd: &FdEntry) -> Result<(), Error> {
        match self {
            Driver::Uring(_) => Ok(()),
            Driver::Epoll(d) => d.attach(fd),
        }
    }

    pub(crate) fn report(&self) -> &[Feature] {
        each!(self, d => d.report())
    }

    pub(crate) fn features(&self) -> Features {
        each!(self, d => d.features())
    }

    #[inline]
    pub(crate) fn supports(&self, op: Op) -> bool {
        each!(self, d => d.supports(op))
    }

    /// The kernel's provided buffer ring for `recv_provided`, registered (io_uring), or `None`
    /// where the backend keeps provided buffers in a list (epoll).
    pub(crate) fn register_buf_ring(&self) -> Result<Option<super::provided::Ring>, Error> {
        match self {
            Driver::Uring(d) => d.register_buf_ring().map(Some),
            Driver::Epoll(_) => Ok(None),
        }
    }

    /// Whether `op` runs in stages, each a completion of its own that the op table turns into the
    /// next stage's request (`Lending::transmit_step`), not into a packet: `transmit_file` on
    /// io_uring, which splices through a pipe. The epoll backend sends it whole.
    #[inline]
    pub(crate) fn staged(&self, op: Op) -> bool {
        matches!(self, Driver::Uring(_)) && op == Op::TransmitFile
    }

    /// # Safety
    ///
    /// As `uring::Driver::push_op`.
    #[inline]
    pub(crate) unsafe fn push_op<B>(
        &self,
        op: Op,
        fd: Option<&FdEntry>,
        lending: &mut Lending<B>,
        user_data: u64,
    ) -> Result<(), Entry> {
        // SAFETY: as the caller guarantees.
        unsafe {
            match self {
                Driver::Uring(d) => d.push_op(op, fd.map_or(-1, FdEntry::raw), lending, user_data),
                Driver::Epoll(d) => {
                    d.push_op(op, fd, lending, user_data);
                    Ok(())
                }
            }
        }
    }

    /// # Safety
    ///
    /// As `uring::Driver::push_entry`.
    pub(crate) unsafe fn push_entry(&self, entry: &Entry) -> bool {
        match self {
            // SAFETY: as the caller guarantees.
            Driver::Uring(d) => unsafe { d.push_entry(entry) },
            Driver::Epoll(_) => unreachable!("the epoll backend never gives an entry back"),
        }
    }

    /// # Safety
    ///
    /// As `uring::Driver::push_cancel`.
    pub(crate) unsafe fn push_cancel(&self, target: CancelTarget) -> bool {
        // SAFETY: as the caller guarantees.
        each!(self, d => unsafe { d.push_cancel(target) })
    }

    #[inline]
    pub(crate) fn needs_rearm(&self) -> bool {
        match self {
            Driver::Uring(d) => d.needs_rearm(),
            Driver::Epoll(_) => false,
        }
    }

    /// # Safety
    ///
    /// As `uring::Driver::rearm`.
    pub(crate) unsafe fn rearm(&self) -> bool {
        match self {
            // SAFETY: as the caller guarantees.
            Driver::Uring(d) => unsafe { d.rearm() },
            Driver::Epoll(_) => true,
        }
    }

    #[inline]
    pub(crate) fn submit(&self, reap: &mut dyn FnMut()) -> io::Result<()> {
        each!(self, d => d.submit(reap))
    }

    pub(crate) fn try_submit(&self) -> io::Result<bool> {
        each!(self, d => d.try_submit())
    }

    pub(crate) fn make_room(&self, reap: &mut dyn FnMut()) -> io::Result<()> {
        each!(self, d => d.make_room(reap))
    }

    pub(crate) fn wait(&self, deadline: Option<Instant>, leader: bool) -> io::Result<()> {
        each!(self, d => d.wait(deadline, leader))
    }

    #[inline]
    pub(crate) fn reap(
        &self,
        block: bool,
        max: usize,
        f: &mut dyn FnMut(Completion) -> bool,
    ) -> usize {
        each!(self, d => d.reap(block, max, f))
    }

    pub(crate) fn wake(&self) {
        each!(self, d => d.wake())
    }
}
