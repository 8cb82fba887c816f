//! `iocport bench`: suites of cases, each run for iocport and its peers side by side.
//!
//! A *suite* (one sibling module per suite: `port.rs`, `nop.rs`, `file.rs`, `echo.rs`, `http.rs`,
//! `copy.rs`, `wake.rs`) is a list of *cases*. In a case every *system* (iocport and each peer) runs
//! the same workload; the runner here interleaves them round by round, rotating the order each
//! round, so that noise on a shared machine hits every system alike, and reports the **median** over
//! the rounds of every metric, with its spread ((max - min) / median).
//!
//! Beside the medians, it takes for every peer the **per-round ratio** of iocport to that peer
//! ([`RoundRatio`]): in each round, iocport's value over the peer's value of the same round (both
//! measured within seconds of each other), oriented so that above 1 iocport is better, then the
//! median and the spread of those ratios over the rounds (rounds where either system has no value
//! are left out). When the machine's speed drifts, both values of a round move together and the
//! ratio keeps still where the two medians would not. This is the figure of the table's "iocport
//! vs peer" column, of the generated section's "iocport vs peers" column, and the one that
//! targets which are a ratio to a peer are judged by ([`check`]).
//!
//! Results are [`Record`]s `{suite, case, system, metric, value}`; a peer's record also carries
//! `round_ratio: {median, spread, rounds}`, iocport's per-round ratio to it (absent from
//! `--quick` runs and from documents written before; readers then use the ratio of the medians).
//! Metric names carry their unit, and
//! the unit says which direction is better: a name ending in `_per_s` is a rate (higher is better),
//! and so is `iops` (I/O operations per second, the file suite's metric, named as fio names it);
//! a name ending in `_bytes` is an amount of memory (lower is better, shown in B, KiB or MiB);
//! anything else is a time in nanoseconds (lower is better).
//!
//! # What a run writes
//!
//! Every run prints one table (grouped by suite, iocport against each peer) and writes into the
//! output directory (`--out`, default `bench-out/`): `results.json` (the [`Results`] document:
//! per-suite run metadata, target verdicts and the records), `results.md` (the same as the
//! generated section of BENCHMARKS.md) and the charts (`summary.svg`, `SUITE.svg`,
//! `SUITE-p99.svg`, see [`chart`]). `--json FILE` also writes the bare records as a JSON array.
//!
//! The table ends with every figure that is **not comparable**, and why: a system that took no part
//! (a tool not installed, a peer whose server failed to start, a suite that failed) or a median
//! whose spread is over 50% ([`SPREAD_LIMIT`]). A peer whose round fails is dropped from its case
//! (the case goes on) except with `--quick`, which checks that every system works. Before the
//! suites run, the peers whose tools are missing are named (`scripts/bench-deps.sh` installs them).
//!
//! A run writes nothing else: the repository's files are left alone. Only `--update-docs` (a full
//! run) updates the committed figures: its suites' records replace theirs in
//! `docs/bench/results.json` (the other suites' are kept), and the charts in `docs/bench/` and the
//! section of BENCHMARKS.md between `<!-- bench:begin -->` and `<!-- bench:end -->` are rendered
//! again from that merged file. `--render-docs` runs nothing and only renders them again.
//! `--no-docs`, once the way to keep them unchanged, is now what every run does; it is accepted
//! and does nothing.

mod chart;
mod child;
mod copy;
mod echo;
mod echo_child;
mod file;
mod http;
mod markdown;
mod nop;
mod port;
mod results;
mod wake;

pub(crate) use echo_child::{main as echo_child_main, Args as EchoChildArgs};

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use results::Results;

/// The iocport system's name in records; peers use their crate name.
pub(crate) const IOCPORT: &str = "iocport";
/// iocport with [`iocport::SubmitMode::CallerInterrupted`] (the default is `Caller`).
pub(crate) const IOCPORT_INTERRUPTED: &str = "iocport-interrupted";
/// iocport with [`iocport::SubmitMode::KernelThread`] (`IORING_SETUP_SQPOLL`).
pub(crate) const IOCPORT_SQPOLL: &str = "iocport-sqpoll";
/// iocport on its fallback backend, forced ([`iocport::BackendChoice::Epoll`]: epoll for sockets,
/// a thread pool for files), where `iocport` runs on io_uring.
pub(crate) const IOCPORT_EPOLL: &str = "iocport-epoll";

/// How one iocport system of the I/O suites sets up its port.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flavor {
    /// Who submits the operations.
    pub mode: iocport::SubmitMode,
    /// The backend, when the system forces one; `None` leaves the choice to the port
    /// (`IOCPORT_BACKEND`, else io_uring where it can be set up).
    pub backend: Option<iocport::BackendChoice>,
}

impl Flavor {
    /// The default: callers submit, the port picks the backend.
    pub const DEFAULT: Flavor = Flavor::new(iocport::SubmitMode::Caller, None);

    const fn new(mode: iocport::SubmitMode, backend: Option<iocport::BackendChoice>) -> Flavor {
        Flavor { mode, backend }
    }

    /// The epoll backend forced, callers submitting.
    pub const EPOLL: Flavor = Flavor::new(
        iocport::SubmitMode::Caller,
        Some(iocport::BackendChoice::Epoll),
    );

    /// A builder with this flavor's submission mode and backend.
    pub fn builder(self) -> iocport::Builder {
        crate::with_backend(iocport::Builder::new(), self.backend).submit_mode(self.mode)
    }

    /// Checks that `port` (whose I/O is set up) runs on the backend this flavor forces: a
    /// measurement under the wrong name is worse than none.
    pub fn check<T: Send + 'static, B: iocport::IoBuf>(
        self,
        port: &iocport::CompletionPort<T, B>,
    ) -> Result<(), String> {
        check_backend(self.backend, port.backend())
    }
}

/// Whether `got` is the backend `want` forces (anything goes when nothing is forced).
pub(crate) fn check_backend(
    want: Option<iocport::BackendChoice>,
    got: Option<iocport::BackendInfo>,
) -> Result<(), String> {
    let want = match want {
        Some(iocport::BackendChoice::Epoll) => iocport::Backend::Epoll,
        Some(iocport::BackendChoice::IoUring) => iocport::Backend::IoUring,
        _ => return Ok(()),
    };
    match got {
        Some(info) if info.backend == want => Ok(()),
        Some(info) => Err(format!(
            "the port runs on {} ({}), not on the {want} backend this system forces",
            info.backend, info.reason
        )),
        None => Err(format!(
            "the port reports no backend, where {want} was forced"
        )),
    }
}

/// The iocport systems of the in-process I/O suites (nop, file, echo), in table order: the
/// default, the two other submission modes, and the epoll backend.
pub(crate) const IOCPORT_FLAVORS: [(&str, Flavor); 4] = [
    (IOCPORT, Flavor::DEFAULT),
    (
        IOCPORT_INTERRUPTED,
        Flavor::new(iocport::SubmitMode::CallerInterrupted, None),
    ),
    (
        IOCPORT_SQPOLL,
        Flavor::new(iocport::SubmitMode::KernelThread, None),
    ),
    (IOCPORT_EPOLL, Flavor::EPOLL),
];

/// The note of an I/O suite about `iocport-epoll` (`how`: how that system forces the backend),
/// and about the backend `iocport` itself got where that is not io_uring.
pub(crate) fn epoll_note(how: &str) -> String {
    let mut note = format!(
        "iocport-epoll: iocport on its fallback backend, forced ({how}): epoll readiness for \
         sockets, a thread pool for files"
    );
    let auto = iocport::Builder::new()
        .concurrency(1)
        .build::<(), Vec<u8>>()
        .map(|p| {
            let b = p.backend();
            p.close();
            b
        });
    match auto {
        Ok(Some(info)) if info.backend == iocport::Backend::IoUring => {}
        Ok(Some(info)) => {
            let _ = write!(
                note,
                "; NB: iocport itself runs on {} here ({}), so the two measure the same backend",
                info.backend, info.reason
            );
        }
        Ok(None) => {}
        Err(e) => {
            let _ = write!(note, "; NB: a default port cannot be set up here: {e}");
        }
    }
    note
}

/// How a benchmark run is sized.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// Short runs (`--quick`): one round, small counts, no warm-up. Checks that every case works.
    pub quick: bool,
    /// Measured rounds per case; the median is reported.
    pub rounds: usize,
    /// Whether each system runs one unmeasured round first.
    pub warmup: bool,
}

impl Config {
    fn new(quick: bool) -> Config {
        if quick {
            Config {
                quick,
                rounds: 1,
                warmup: false,
            }
        } else {
            Config {
                quick,
                rounds: 5,
                warmup: true,
            }
        }
    }

    /// For a full run, this configuration with `rounds` rounds and `warmup` (suites whose rounds are
    /// long run fewer); with `--quick`, unchanged.
    pub fn with_rounds(&self, rounds: usize, warmup: bool) -> Config {
        if self.quick {
            *self
        } else {
            Config {
                rounds,
                warmup,
                ..*self
            }
        }
    }

    /// `full` normally, `quick` with `--quick`.
    pub fn size(&self, full: usize, quick: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

/// One result: the median of `metric` for `system` in `case`. This is also the JSON record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The suite the case belongs to (`port`, `http`, ...). Set by [`run_case`].
    #[serde(default)]
    pub suite: String,
    /// The case, e.g. `mpmc_2x2`.
    pub case: String,
    /// `iocport`, or the peer's crate name (`crossbeam-channel`, `std-mpsc`, `futex`).
    pub system: String,
    /// What was measured, unit included (`ns_per_op`, `packets_per_s`, `rtt_p50_ns`, ...).
    pub metric: String,
    /// The median over the rounds.
    pub value: f64,
    /// `(max - min) / median` over the rounds: how noisy the measurement was. Not in the JSON.
    #[serde(skip)]
    pub spread: f64,
    /// On a peer's record: iocport's ratio to this peer computed round by round (see
    /// [`RoundRatio`]). `None` on iocport's own systems, with `--quick`, and in documents written
    /// before it existed (readers then fall back to the ratio of the medians). In the JSON as
    /// `"round_ratio": {"median", "spread", "rounds"}`, left out when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_ratio: Option<RoundRatio>,
}

/// iocport's ratio to one peer on one metric, taken in each round from the two values measured in
/// that round (close together in time, so that a mood of the machine or the disk which slows both
/// cancels out), then summarised over the rounds. Oriented like [`speedup`]: above 1 iocport is
/// better, whether the metric is a rate or a time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RoundRatio {
    /// The median of the per-round ratios.
    pub median: f64,
    /// `(max - min) / median` of the per-round ratios.
    pub spread: f64,
    /// How many rounds had a value of both systems (a round where either failed or measured
    /// nothing usable is left out).
    pub rounds: usize,
}

impl RoundRatio {
    /// The ratio of `ours` (iocport's values, one per round) to `theirs` (the peer's, same
    /// rounds) on `metric`: each round's [`speedup`], over the rounds where both have a positive
    /// value; `None` when there is no such round.
    pub fn of(metric: &str, ours: &[Option<f64>], theirs: &[Option<f64>]) -> Option<RoundRatio> {
        let mut ratios: Vec<f64> = ours
            .iter()
            .zip(theirs)
            .filter_map(|(o, p)| match (*o, *p) {
                (Some(o), Some(p)) if o > 0.0 && p > 0.0 => Some(speedup(metric, o, p)),
                _ => None,
            })
            .collect();
        if ratios.is_empty() {
            return None;
        }
        let med = median(&mut ratios);
        let (lo, hi) = (ratios[0], ratios[ratios.len() - 1]);
        Some(RoundRatio {
            median: med,
            spread: if med > 0.0 { (hi - lo) / med } else { 0.0 },
            rounds: ratios.len(),
        })
    }

    /// `median per-round ratio 0.85x (spread 12% over 9 rounds)`.
    pub fn describe(&self) -> String {
        format!(
            "median per-round ratio {:.2}x (spread {:.0}% over {} round{})",
            self.median,
            self.spread * 100.0,
            self.rounds,
            if self.rounds == 1 { "" } else { "s" }
        )
    }
}

/// iocport's ratio to the peer of `r` (a peer's record) on its metric, above 1 iocport better,
/// and the spread of that ratio over the rounds: the median of the per-round ratios where the
/// record has them, else the ratio of the two medians (no spread). `None` when iocport has no
/// value in the case.
pub(crate) fn ratio_to_peer(r: &Record, records: &[Record]) -> Option<(f64, Option<f64>)> {
    if let Some(rr) = r.round_ratio {
        return Some((rr.median, Some(rr.spread)));
    }
    let ours = records
        .iter()
        .find(|o| o.case == r.case && o.metric == r.metric && o.system == IOCPORT)?;
    (ours.value > 0.0 && r.value > 0.0).then(|| (speedup(&r.metric, ours.value, r.value), None))
}

/// Whether a larger value of `metric` is better (a rate) or worse (a time, an amount of memory).
pub(crate) fn higher_is_better(metric: &str) -> bool {
    metric.ends_with("_per_s") || metric == "iops"
}

/// A goal iocport should meet in one case, checked after the run (a goal of another system of
/// the suite is a [`Goal::Of`]).
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The case the goal is about.
    pub case: &'static str,
    /// The iocport metric the goal is about.
    pub metric: &'static str,
    /// What the metric must satisfy.
    pub goal: Goal,
}

/// What a [`Target`] asks of iocport's value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Goal {
    /// At most this value (for times). No suite's target uses it today.
    #[allow(dead_code)]
    AtMost(f64),
    /// No worse than `factor` times the peer's value (for times: `iocport <= factor * peer`).
    WithinFactorOf {
        /// The peer's system name.
        peer: &'static str,
        /// How much worse than the peer is still acceptable.
        factor: f64,
    },
    /// At least `factor` times the peer's value (for rates: `iocport >= factor * peer`).
    AtLeastFactorOf {
        /// The peer's system name.
        peer: &'static str,
        /// The fraction of the peer's rate that must be reached.
        factor: f64,
    },
    /// At least `factor` times the best (highest) rate among `peers` that were measured; peers
    /// that were skipped do not count, and the goal is "not measured" when none was.
    AtLeastFactorOfBest {
        /// The peers' system names.
        peers: &'static [&'static str],
        /// The fraction of the best peer's rate that must be reached.
        factor: f64,
    },
    /// `goal`, asked of `system`'s value instead of iocport's: a target for another iocport
    /// system of the suite, such as the C library's echo server (`iocport-c`). The verdict's
    /// goal starts with the system's name; its value is that system's.
    Of {
        /// The system the goal is about.
        system: &'static str,
        /// What its value must satisfy.
        goal: &'static Goal,
    },
}

impl Goal {
    /// The system whose value the goal is about, and the goal with any [`Goal::Of`] taken off.
    fn subject(self) -> (&'static str, Goal) {
        let (mut system, mut goal) = (IOCPORT, self);
        while let Goal::Of { system: s, goal: g } = goal {
            (system, goal) = (s, *g);
        }
        (system, goal)
    }
}

/// What a suite hands back: its records, notes to print under the table, and its targets.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Every (case, system, metric) median, in case order, iocport first in each case.
    pub records: Vec<Record>,
    /// Remarks on how a case was set up (printed under the table).
    pub notes: Vec<String>,
    /// Goals for iocport, checked and printed after the table.
    pub targets: Vec<Target>,
    /// Systems that took no part (a tool not installed, a server that failed to start): their
    /// figures are missing, and the summary lists them as not comparable.
    pub missing: Vec<Missing>,
}

impl Report {
    /// Records that `tool` is not installed, so `systems` are skipped: a note, and an entry in
    /// [`Report::missing`].
    pub fn missing_tool(&mut self, tool: &str, systems: &str) {
        self.notes.push(missing_tool_note(tool, systems));
        self.missing.push(Missing {
            system: systems.to_owned(),
            why: format!("{tool} is not installed (`bash scripts/bench-deps.sh` installs it)"),
        });
    }
}

/// A system with no figures in a run, and why.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Missing {
    /// The system (or systems, or `case: system`).
    pub system: String,
    /// Why it has no figures.
    pub why: String,
}

/// Above this spread ((max - min) / median over the rounds) a median is not comparable.
pub(crate) const SPREAD_LIMIT: f64 = 0.5;

/// Peers dropped by [`run_case`] because a round of theirs failed, until [`run`] moves them into
/// the suite's [`Report::missing`]. A static rather than a return value so that the suites, which
/// only collect records, need not thread it through.
static DROPPED: Mutex<Vec<(String, Missing)>> = Mutex::new(Vec::new());

/// Takes the peers [`run_case`] dropped in `suite`.
fn take_dropped(suite: &str) -> Vec<Missing> {
    let mut all = DROPPED.lock().unwrap_or_else(|e| e.into_inner());
    let (ours, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|(s, _)| s == suite);
    *all = rest;
    ours.into_iter().map(|(_, m)| m).collect()
}

/// Whether `system` is one of iocport's systems (`iocport`, `iocport-epoll`, `iocport-c`, ...)
/// rather than a peer.
pub(crate) fn is_iocport(system: &str) -> bool {
    system == IOCPORT || system.starts_with("iocport-")
}

/// One round of one system in a case: returns the `(metric, value)` pairs it measured.
pub(crate) type RoundFn<'a> = Box<dyn FnMut() -> Result<Vec<(&'static str, f64)>, String> + 'a>;

/// One system taking part in a case.
pub(crate) struct Contender<'a> {
    /// `iocport` or the peer's name.
    pub system: &'static str,
    /// Runs one round.
    pub round: RoundFn<'a>,
}

impl<'a> Contender<'a> {
    /// A contender whose round yields values for the given metrics.
    pub fn new(
        system: &'static str,
        round: impl FnMut() -> Result<Vec<(&'static str, f64)>, String> + 'a,
    ) -> Contender<'a> {
        Contender {
            system,
            round: Box::new(round),
        }
    }
}

/// Runs one case: every contender once per round, rounds interleaved (the starting contender rotates
/// each round), then one record per (system, metric) holding the median over the rounds.
///
/// A round of an iocport system that fails fails the case. A round of a peer that fails (a server
/// that does not start, a tool that exits with an error) drops that peer from the case: the case
/// goes on without it, and the run's summary lists the peer as not comparable. With `--quick`,
/// whose job is to check that every system works, a peer's failure fails the case too.
pub(crate) fn run_case(
    cfg: &Config,
    suite: &str,
    case: &str,
    mut contenders: Vec<Contender<'_>>,
) -> Result<Vec<Record>, String> {
    let n = contenders.len();
    say(format!(
        "bench {suite}/{case}: {} system(s), {} round(s)",
        n, cfg.rounds
    ));
    // Whether each contender is still in the case.
    let mut alive = vec![true; n];
    let fail = |alive: &mut [bool], idx: usize, system: &str, e: String| {
        let e = format!("{suite}/{case} ({system}): {e}");
        // `--quick` checks that every system works, peers included.
        if is_iocport(system) || cfg.quick {
            return Err(e);
        }
        say(format!("{e}: {system} dropped from {case}"));
        alive[idx] = false;
        DROPPED.lock().unwrap_or_else(|e| e.into_inner()).push((
            suite.to_owned(),
            Missing {
                system: format!("{case}: {system}"),
                why: format!("failed: {e}"),
            },
        ));
        Ok(())
    };
    if cfg.warmup {
        for (idx, c) in contenders.iter_mut().enumerate() {
            status(format!("{suite}/{case}: warm-up, {}", c.system));
            if let Err(e) = (c.round)() {
                fail(&mut alive, idx, c.system, e)?;
            }
        }
    }
    // samples[contender] = [(metric, value in each round)], metric order as first reported; `None`
    // for a round the contender did not run (dropped) or where it did not report the metric.
    let mut samples: Vec<Vec<Series>> = vec![Vec::new(); n];
    for round in 0..cfg.rounds {
        for i in 0..n {
            let idx = (i + round) % n;
            if !alive[idx] {
                continue;
            }
            let c = &mut contenders[idx];
            status(format!(
                "{suite}/{case}: round {}/{}, {}",
                round + 1,
                cfg.rounds,
                c.system
            ));
            let values = match (c.round)() {
                Ok(values) => values,
                Err(e) => {
                    fail(&mut alive, idx, c.system, e)?;
                    continue;
                }
            };
            for (metric, value) in values {
                if !value.is_finite() || value < 0.0 {
                    return Err(format!(
                        "{suite}/{case} ({}): bad measurement {metric} = {value}",
                        c.system
                    ));
                }
                let slot = &mut samples[idx];
                let series = match slot.iter().position(|(m, _)| *m == metric) {
                    Some(j) => &mut slot[j].1,
                    None => {
                        slot.push((metric, vec![None; cfg.rounds]));
                        &mut slot.last_mut().expect("just pushed").1
                    }
                };
                series[round] = Some(value);
            }
        }
    }
    // iocport's values, for the per-round ratios of the peers.
    let ours = contenders
        .iter()
        .position(|c| c.system == IOCPORT)
        .filter(|&i| alive[i])
        .map(|i| samples[i].clone());
    let mut records = Vec::new();
    for ((c, metrics), alive) in contenders.iter().zip(samples).zip(alive) {
        if !alive {
            continue;
        }
        for (metric, series) in metrics {
            let mut values: Vec<f64> = series.iter().flatten().copied().collect();
            let med = median(&mut values);
            let (lo, hi) = (values[0], values[values.len() - 1]);
            let round_ratio = match &ours {
                Some(ours) if !is_iocport(c.system) && !cfg.quick => ours
                    .iter()
                    .find(|(m, _)| *m == metric)
                    .and_then(|(_, o)| RoundRatio::of(metric, o, &series)),
                _ => None,
            };
            records.push(Record {
                suite: suite.to_owned(),
                case: case.to_owned(),
                system: c.system.to_owned(),
                metric: metric.to_owned(),
                value: med,
                spread: if med > 0.0 { (hi - lo) / med } else { 0.0 },
                round_ratio,
            });
        }
    }
    Ok(records)
}

/// One metric of one contender: its name and its value in each round (`None` for a round without
/// one).
type Series = (&'static str, Vec<Option<f64>>);

/// The median of `values` (sorted in place). `values` must not be empty.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The `p`-th percentile (0..=100, nearest rank) of `sorted`, which must be sorted and not empty.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The number of CPUs this process may run on (what a concurrency value of 0 means).
pub(crate) fn cpus() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// Joins a scoped thread, turning a panic into an error.
pub(crate) fn join<T>(h: thread::ScopedJoinHandle<'_, Result<T, String>>) -> Result<T, String> {
    h.join()
        .unwrap_or_else(|_| Err("a benchmark thread panicked".to_owned()))
}

/// The `(metric, value)` pairs one round of one system measured.
pub(crate) type Values = Vec<(&'static str, f64)>;

/// The longest any single blocking wait in the I/O suites may take before the round fails: a lost
/// completion shows as an error, never as a hung benchmark.
pub(crate) const IO_WAIT: Duration = Duration::from_secs(10);

/// The note for a peer that needs an external tool which is not installed.
pub(crate) fn missing_tool_note(tool: &str, systems: &str) -> String {
    format!("{tool} not found: {systems} skipped (install it with `bash scripts/bench-deps.sh`)")
}

// ---------------------------------------------------------------------------------------------
// Progress

/// The progress bar of the run in progress, if any (hidden when stderr is not a terminal).
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// The bar, if one is running.
fn bar() -> Option<ProgressBar> {
    BAR.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Prints a line on stderr, above the progress bar when one is drawn.
pub(crate) fn say(line: impl AsRef<str>) {
    match bar() {
        Some(b) if !b.is_hidden() => b.println(line.as_ref()),
        _ => eprintln!("{}", line.as_ref()),
    }
}

/// Shows what is running now next to the progress bar.
pub(crate) fn status(msg: String) {
    if let Some(b) = bar() {
        b.set_message(msg);
    }
}

/// One progress bar over the suites of a run, on stderr; removed when dropped.
struct Progress(ProgressBar);

impl Progress {
    fn start(suites: usize) -> Progress {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(suites as u64), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:24} {pos}/{len} suites  {msg}",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        *BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Progress(bar)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
        *BAR.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

// ---------------------------------------------------------------------------------------------
// Suites and the command

/// The first line of `tool FLAG`'s output (stdout or stderr): a peer's version, for the notes.
pub(crate) fn tool_version(tool: &Path, flag: &str) -> Option<String> {
    let out = std::process::Command::new(tool)
        .arg(flag)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = [out.stdout, out.stderr].concat();
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// A suite: its name and its entry point.
struct Suite {
    name: &'static str,
    run: fn(&Config) -> Result<Report, String>,
}

/// Every suite, in the order `iocport bench` with no names runs them. `wake` is short (a second)
/// and guards a design decision (leader/followers), so it is part of "all".
const SUITES: &[Suite] = &[
    Suite {
        name: "port",
        run: port::run,
    },
    Suite {
        name: "nop",
        run: nop::run,
    },
    Suite {
        name: "file",
        run: file::run,
    },
    Suite {
        name: "echo",
        run: echo::run,
    },
    Suite {
        name: "http",
        run: http::run,
    },
    Suite {
        name: "copy",
        run: copy::run,
    },
    Suite {
        name: "wake",
        run: wake::run,
    },
];

/// The position of `suite` in [`SUITES`] (unknown names sort last): the order of tables, charts
/// and merged records.
pub(crate) fn suite_order(suite: &str) -> usize {
    SUITES
        .iter()
        .position(|s| s.name == suite)
        .unwrap_or(SUITES.len())
}

/// Arguments of `iocport bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Suites to run (default: all, in this order): port, nop, file, echo, http, copy, wake.
    suites: Vec<String>,
    /// Short runs, for CI: checks that every case works (peers included), not how fast.
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON records {"suite", "case", "system", "metric", "value"} to
    /// FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Where this run's results.json, results.md and SVG charts go. A run writes nothing else
    /// unless --update-docs is given.
    #[arg(long, value_name = "DIR", default_value = "bench-out")]
    out: PathBuf,
    /// Also update the committed figures: merge this run's suites into docs/bench/results.json,
    /// then render docs/bench/*.svg and BENCHMARKS.md's generated section again from it. Must be
    /// run from the project's directory; not with --quick.
    #[arg(long, conflicts_with = "quick")]
    update_docs: bool,
    /// Deprecated, does nothing: runs leave docs/bench/ and BENCHMARKS.md alone unless
    /// --update-docs is given. Accepted so that older command lines still run.
    #[arg(long, conflicts_with = "update_docs")]
    no_docs: bool,
    /// Run nothing: render docs/bench/*.svg and BENCHMARKS.md's generated section again from
    /// docs/bench/results.json.
    #[arg(long, conflicts_with_all = ["suites", "quick", "json", "update_docs", "no_docs"])]
    render_docs: bool,
}

/// Runs `iocport bench`.
pub(crate) fn main(args: Args) -> Result<(), String> {
    if args.render_docs {
        let root = project_root().ok_or(
            "--render-docs: BENCHMARKS.md not found (run it from the project's directory)",
        )?;
        let merged = Results::load(&root.join(results::DOCS_JSON))?;
        return write_docs(&root, &merged);
    }
    if args.no_docs {
        eprintln!(
            "bench: --no-docs is deprecated and does nothing: runs leave docs/bench/ and \
             BENCHMARKS.md alone unless --update-docs is given"
        );
    }
    run(&args)
}

/// A tool a peer needs, which `scripts/bench-deps.sh` installs.
struct PeerTool {
    /// The program.
    tool: &'static str,
    /// Where to look besides PATH.
    also: &'static [&'static str],
    /// The suite whose peers need it.
    suite: &'static str,
    /// The systems it runs.
    systems: &'static str,
}

/// Every external tool a peer needs. The other peers (tokio, crossbeam-channel, std, the raw
/// ring, cp) are crates built into this binary or part of the base system.
const PEER_TOOLS: &[PeerTool] = &[
    PeerTool {
        tool: "fio",
        also: &[],
        suite: "file",
        systems: "fio-io_uring, fio-psync",
    },
    PeerTool {
        tool: "wrk",
        also: &[],
        suite: "http",
        systems: "the whole suite",
    },
    PeerTool {
        tool: "nginx",
        also: &["/usr/sbin/nginx", "/usr/local/sbin/nginx"],
        suite: "http",
        systems: "nginx",
    },
];

/// Before a run: says which peers the chosen suites will lack, and how to install them.
fn preflight(chosen: &[&Suite]) {
    let missing: Vec<String> = PEER_TOOLS
        .iter()
        .filter(|p| chosen.iter().any(|s| s.name == p.suite))
        .filter(|p| child::find_tool(p.tool, p.also).is_none())
        .map(|p| format!("{} ({}: {})", p.tool, p.suite, p.systems))
        .collect();
    if !missing.is_empty() {
        say(format!(
            "bench: not installed: {}; those figures will be missing and the summary lists them \
             (`bash scripts/bench-deps.sh` installs them, as root or with sudo, with apt-get)",
            missing.join(", ")
        ));
    }
}

/// The suites named (all when none is), in the order given, each once.
fn choose(names: &[String]) -> Result<Vec<&'static Suite>, String> {
    let mut chosen: Vec<&Suite> = Vec::new();
    for name in names {
        let suite = SUITES.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<_> = SUITES.iter().map(|s| s.name).collect();
            format!(
                "unknown benchmark suite '{name}'; known suites: {}",
                known.join(", ")
            )
        })?;
        if !chosen.iter().any(|s| s.name == suite.name) {
            chosen.push(suite);
        }
    }
    if chosen.is_empty() {
        chosen = SUITES.iter().collect();
    }
    Ok(chosen)
}

/// Runs the chosen suites, prints the table and the list of figures that are not comparable,
/// writes the outputs. A suite that fails (or panics) is reported and the others still run; the run
/// then fails at the end.
fn run(args: &Args) -> Result<(), String> {
    let chosen = choose(&args.suites)?;
    let cfg = Config::new(args.quick);
    let root = project_root();
    // An explicit request that cannot be honoured fails before minutes of measuring.
    if args.update_docs && root.is_none() {
        return Err(
            "--update-docs: BENCHMARKS.md not found from the current directory (run it \
                    from the project's directory)"
                .into(),
        );
    }
    let context = results::RunContext::probe(root.as_deref(), args.quick);
    preflight(&chosen);

    let mut done: Vec<(&str, Report)> = Vec::new();
    let mut failed: Vec<(&str, String)> = Vec::new();
    {
        let progress = Progress::start(chosen.len());
        for suite in chosen {
            status(suite.name.to_owned());
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| (suite.run)(&cfg)))
                .unwrap_or_else(|_| Err("panicked".to_owned()));
            let dropped = take_dropped(suite.name);
            match outcome {
                Ok(mut report) => {
                    for r in &mut report.records {
                        if r.suite.is_empty() {
                            r.suite = suite.name.to_owned();
                        }
                    }
                    report.missing.extend(dropped);
                    done.push((suite.name, report));
                }
                Err(e) => {
                    say(format!("FAILED: bench {}: {e}", suite.name));
                    failed.push((suite.name, e));
                }
            }
            progress.0.inc(1);
        }
    }

    print!("{}", table(&done, &cfg));
    print!(
        "{}",
        not_comparable_section(&not_comparable(&done, &failed, &cfg), &cfg)
    );
    let this_run = Results::from_run(&context, &done);
    publish(args, root.as_deref(), &this_run)?;
    if failed.is_empty() {
        Ok(())
    } else {
        let mut msg = format!("{} suite(s) failed:", failed.len());
        for (suite, e) in &failed {
            let _ = write!(msg, "\n  bench {suite}: {e}");
        }
        Err(msg)
    }
}

/// Writes what a run produced: the records to `--json`, `results.json`, `results.md` and the
/// charts to `--out`, and, only with `--update-docs`, the committed figures under `root`.
fn publish(args: &Args, root: Option<&Path>, this_run: &Results) -> Result<(), String> {
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&this_run.records)
            .map_err(|e| format!("cannot encode the results as JSON: {e}"))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!(
            "wrote {} records to {}",
            this_run.records.len(),
            path.display()
        );
    }
    write_out(&args.out, this_run)?;
    if args.update_docs {
        let root = root.ok_or("--update-docs: BENCHMARKS.md not found")?;
        update_docs(root, this_run)?;
    } else if !args.quick {
        eprintln!(
            "docs/bench/ and BENCHMARKS.md are unchanged (--update-docs merges this run into them)"
        );
    }
    Ok(())
}

/// Every figure of a run that is not comparable, one line each, saying why: a system that took no
/// part (a tool not installed, a server that failed, a suite that failed) or a median whose spread
/// is over [`SPREAD_LIMIT`]. A `--quick` run has one round, so no spread is measured.
fn not_comparable(done: &[(&str, Report)], failed: &[(&str, String)], cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (suite, report) in done {
        for m in &report.missing {
            out.push(format!("{suite}: {}: missing: {}", m.system, m.why));
        }
        if cfg.quick {
            continue;
        }
        for r in &report.records {
            if r.spread > SPREAD_LIMIT {
                // The per-round ratio may still be steady when both systems swing together.
                let ratio = r
                    .round_ratio
                    .map(|rr| format!("; iocport's {}", rr.describe()))
                    .unwrap_or_default();
                out.push(format!(
                    "{suite}/{} {} {}: spread {:.0}% over the rounds (over {:.0}%){ratio}",
                    r.case,
                    r.system,
                    r.metric,
                    r.spread * 100.0,
                    SPREAD_LIMIT * 100.0
                ));
            }
        }
    }
    for (suite, e) in failed {
        out.push(format!("{suite}: the whole suite: failed: {e}"));
    }
    out
}

/// The end of the summary: the lines of [`not_comparable`], or that every figure is comparable.
fn not_comparable_section(lines: &[String], cfg: &Config) -> String {
    if lines.is_empty() {
        return if cfg.quick {
            "\nnot comparable: no peer missing (--quick runs one round: no spread measured)\n"
                .into()
        } else {
            format!(
                "\nnot comparable: none (every peer ran, and no spread is over {:.0}%)\n",
                SPREAD_LIMIT * 100.0
            )
        };
    }
    let mut out = format!(
        "\nnot comparable ({}): these figures are missing, or too noisy to compare\n",
        lines.len()
    );
    for l in lines {
        let _ = writeln!(out, "  - {l}");
    }
    out
}

/// Writes this run's `results.json`, charts and `results.md` into `dir`.
fn write_out(dir: &Path, run: &Results) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let json = dir.join("results.json");
    run.save(&json)?;
    let charts = chart::write_all(dir, run)?;
    let md = markdown::section(run, "", &charts);
    let md_path = dir.join("results.md");
    std::fs::write(&md_path, md).map_err(|e| format!("cannot write {}: {e}", md_path.display()))?;
    eprintln!(
        "wrote {}, {} and {} chart(s) to {}",
        json.display(),
        md_path.display(),
        charts.len(),
        dir.display()
    );
    Ok(())
}

/// Merges this run into `docs/bench/results.json` under `root`, then renders the committed charts
/// and BENCHMARKS.md's section from the merged file.
fn update_docs(root: &Path, run: &Results) -> Result<(), String> {
    let path = root.join(results::DOCS_JSON);
    let committed = if path.exists() {
        Results::load(&path)?
    } else {
        Results::default()
    };
    let merged = committed.merge(run.clone());
    merged.save(&path)?;
    let suites: Vec<&str> = run.runs.iter().map(|r| r.suite.as_str()).collect();
    eprintln!(
        "merged the results of {} into {}",
        suites.join(", "),
        path.display()
    );
    write_docs(root, &merged)
}

/// Renders `docs/bench/*.svg` and BENCHMARKS.md's generated section from `merged`.
fn write_docs(root: &Path, merged: &Results) -> Result<(), String> {
    let dir = root.join(results::DOCS_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let charts = chart::write_all(&dir, merged)?;
    let section = markdown::section(merged, &format!("{}/", results::DOCS_DIR), &charts);
    let doc_path = root.join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&doc_path)
        .map_err(|e| format!("cannot read {}: {e}", doc_path.display()))?;
    let (doc, found) = markdown::splice(&doc, &section)?;
    std::fs::write(&doc_path, doc)
        .map_err(|e| format!("cannot write {}: {e}", doc_path.display()))?;
    if !found {
        eprintln!(
            "{} had no {} ... {} markers: the generated section was appended at its end",
            doc_path.display(),
            markdown::BEGIN,
            markdown::END
        );
    }
    eprintln!(
        "rendered {} chart(s) in {} and the generated section of {} from {}",
        charts.len(),
        dir.display(),
        doc_path.display(),
        root.join(results::DOCS_JSON).display()
    );
    Ok(())
}

/// The project's directory: the current directory or the nearest ancestor holding BENCHMARKS.md
/// and `crates/iocport-cli`. Deliberately not the source tree the binary was built from: a run
/// started elsewhere must not rewrite a checkout it was not started in.
pub(crate) fn project_root() -> Option<PathBuf> {
    let is_root =
        |d: &Path| d.join("BENCHMARKS.md").is_file() && d.join("crates/iocport-cli").is_dir();
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors().find(|d| is_root(d)).map(Path::to_path_buf)
}

// ---------------------------------------------------------------------------------------------
// Showing values

/// A value scaled to a readable unit: `(value / divisor, unit)`. Rates of bytes in MiB/s or GiB/s,
/// other rates in /s, k/s or M/s, amounts of memory (`_bytes`) in B, KiB (from 1 KiB) or MiB (from
/// 1 MiB), times in ns (below 10 us), us (below 10 ms) or ms.
pub(crate) fn unit_for(metric: &str, value: f64) -> (f64, &'static str) {
    const KIB: f64 = 1024.0;
    const MIB: f64 = (1u64 << 20) as f64;
    const GIB: f64 = (1u64 << 30) as f64;
    if metric.ends_with("_bytes") {
        if value >= MIB {
            (MIB, "MiB")
        } else if value >= KIB {
            (KIB, "KiB")
        } else {
            (1.0, "B")
        }
    } else if metric.starts_with("bytes") && higher_is_better(metric) {
        if value >= GIB {
            (GIB, "GiB/s")
        } else {
            (MIB, "MiB/s")
        }
    } else if higher_is_better(metric) {
        if value >= 1e6 {
            (1e6, "M/s")
        } else if value >= 1e3 {
            (1e3, "k/s")
        } else {
            (1.0, "/s")
        }
    } else if value >= 1e7 {
        (1e6, "ms")
    } else if value >= 1e4 {
        (1e3, "us")
    } else {
        (1.0, "ns")
    }
}

/// A value with its unit, for tables.
pub(crate) fn show_value(metric: &str, value: f64) -> String {
    let (div, unit) = unit_for(metric, value);
    let v = value / div;
    if unit == "M/s" || unit.ends_with("iB/s") || unit.ends_with("iB") {
        format!("{v:.2} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// How many times faster iocport is than the peer: `peer / iocport` for times, `iocport / peer` for
/// rates. Above 1 iocport is better.
pub(crate) fn speedup(metric: &str, iocport: f64, peer: f64) -> f64 {
    if higher_is_better(metric) {
        iocport / peer
    } else {
        peer / iocport
    }
}

/// "1.23x faster (spread 8%)" / "1.50x slower (spread 12%)" / "-" for a peer's record: iocport
/// against it by [`ratio_to_peer`] (the spread is that of the per-round ratios, when there are).
fn versus(r: &Record, records: &[Record]) -> String {
    match ratio_to_peer(r, records) {
        Some((s, spread)) => {
            let spread = spread
                .map(|x| format!(" (spread {:.0}%)", x * 100.0))
                .unwrap_or_default();
            if s >= 1.0 {
                format!("{s:.2}x faster{spread}")
            } else {
                format!("{:.2}x slower{spread}", 1.0 / s)
            }
        }
        None => "-".into(),
    }
}

/// The summary table of a run, grouped by suite, then each suite's notes, the targets, and
/// whether each was met.
fn table(done: &[(&str, Report)], cfg: &Config) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "suite".into(),
        "case".into(),
        "system".into(),
        "metric".into(),
        "value".into(),
        "spread".into(),
        "iocport vs peer".into(),
    ]];
    // Indices of rows that start a suite, to draw a rule above them.
    let mut starts = Vec::new();
    for (suite, report) in done {
        starts.push(rows.len());
        let mut last_case = "";
        for (i, r) in report.records.iter().enumerate() {
            let vs = if r.system == IOCPORT {
                String::new()
            } else {
                versus(r, &report.records)
            };
            let case = if r.case == last_case {
                String::new()
            } else {
                r.case.clone()
            };
            last_case = &r.case;
            rows.push([
                if i == 0 {
                    suite.to_string()
                } else {
                    String::new()
                },
                case,
                r.system.clone(),
                r.metric.clone(),
                show_value(&r.metric, r.value),
                if cfg.quick {
                    "-".into()
                } else {
                    format!("{:.0}%", r.spread * 100.0)
                },
                vs,
            ]);
        }
        if report.records.is_empty() {
            rows.push([
                suite.to_string(),
                "(nothing measured: see the notes)".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nmedian of the rounds{}; spread = (max - min) / median over the rounds",
        if cfg.quick {
            " (--quick: one round, a smoke test, not a measurement)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "'iocport vs peer': how many times faster iocport is than that peer on the same metric \
         (times: peer/iocport, rates: iocport/peer); 'faster' means iocport is better"
    );
    if !cfg.quick {
        let _ = writeln!(
            out,
            "  it is the median of the per-round ratios (each round's iocport value against the \
             peer's value of the same round), with the spread of those ratios: read it, not the \
             two medians, where the machine is noisy; targets against a peer are judged by it too"
        );
    }
    for (i, row) in rows.iter().enumerate() {
        if i > 1 && starts.contains(&i) {
            let _ = writeln!(out, "{}", "-".repeat(total));
        }
        let mut line = String::new();
        for (j, (cell, w)) in row.iter().zip(widths).enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            if j == 4 || j == 5 {
                let _ = write!(line, "{cell:>w$}  ");
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
        if i == 0 {
            let _ = writeln!(out, "{}", "=".repeat(total));
        }
    }
    for (suite, report) in done {
        if report.notes.is_empty() && report.targets.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{suite}:");
        for n in &report.notes {
            let _ = writeln!(out, "  - {n}");
        }
        for t in &report.targets {
            let _ = writeln!(out, "  target: {}", check(t, &report.records).line());
        }
    }
    out
}

/// Whether `t` is met by `records`.
///
/// A goal that is a ratio of iocport to a peer ([`Goal::AtLeastFactorOf`],
/// [`Goal::WithinFactorOf`], [`Goal::AtLeastFactorOfBest`] against the peer with the best median)
/// is judged by the median of the per-round ratios ([`Record::round_ratio`]) where the peer's
/// record has them, since a machine's mood that slows both systems in a round cancels out in that
/// round's ratio; the verdict then carries that ratio ([`results::Verdict::per_round`]). Otherwise
/// (a `--quick` run, an older document, a goal of another iocport system) it compares the medians.
pub(crate) fn check(t: &Target, records: &[Record]) -> results::Verdict {
    let (system, goal) = t.goal.subject();
    let record = |system: &str| {
        records
            .iter()
            .find(|r| r.case == t.case && r.metric == t.metric && r.system == system)
    };
    let find = |system: &str| record(system).map(|r| r.value);
    // The per-round ratio of iocport to `peer`, when the goal's direction matches the metric's.
    let per_round = |peer: &str, rate_goal: bool| {
        if system != IOCPORT || rate_goal != higher_is_better(t.metric) {
            return None;
        }
        record(peer).and_then(|r| r.round_ratio)
    };
    let mut v = results::Verdict {
        case: t.case.to_owned(),
        metric: t.metric.to_owned(),
        goal: String::new(),
        iocport: find(system),
        needed: None,
        ratio: None,
        result: String::new(),
        per_round: None,
    };
    // The goal's factor, for a goal that is a ratio to a peer.
    let mut factor_of_peer = None;
    let needed = match goal {
        Goal::AtMost(limit) => {
            v.goal = format!("<= {}", show_value(t.metric, limit));
            Some(limit)
        }
        Goal::WithinFactorOf { peer, factor } => {
            v.goal = format!("<= {factor}x {peer}");
            v.per_round = per_round(peer, false);
            factor_of_peer = Some(factor);
            find(peer).map(|p| factor * p)
        }
        Goal::AtLeastFactorOf { peer, factor } => {
            v.goal = format!(">= {factor}x {peer}");
            v.per_round = per_round(peer, true);
            factor_of_peer = Some(factor);
            find(peer).map(|p| factor * p)
        }
        Goal::AtLeastFactorOfBest { peers, factor } => {
            let best = peers
                .iter()
                .filter_map(|&p| find(p).map(|v| (p, v)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            v.goal = match best {
                Some((peer, _)) => format!(">= {factor}x best of ({}): {peer}", peers.join(", ")),
                None => format!(">= {factor}x best of ({})", peers.join(", ")),
            };
            v.per_round = best.and_then(|(peer, _)| per_round(peer, true));
            factor_of_peer = Some(factor);
            best.map(|(_, theirs)| factor * theirs)
        }
        Goal::Of { .. } => unreachable!("subject() takes every Of off"),
    };
    if system != IOCPORT {
        v.goal = format!("{system} {}", v.goal);
    }
    v.needed = needed;
    let lower_is_better = matches!(goal, Goal::AtMost(_) | Goal::WithinFactorOf { .. });
    match (v.iocport, needed) {
        (None, _) => v.result = "not measured".into(),
        (Some(_), None) => v.result = "peer not measured".into(),
        (Some(ours), Some(limit)) => {
            // How far iocport got, 1 being exactly the target and above 1 better.
            let ratio = match (v.per_round, factor_of_peer) {
                // The per-round ratio is a speedup (above 1: iocport better); the goal asks for
                // `speedup >= factor` of a rate, `1 / speedup <= factor` of a time.
                (Some(rr), Some(factor)) if lower_is_better => rr.median * factor,
                (Some(rr), Some(factor)) if factor > 0.0 => rr.median / factor,
                (Some(_), Some(_)) => f64::MAX,
                _ if lower_is_better && ours > 0.0 => limit / ours,
                _ if lower_is_better => f64::MAX,
                _ if limit > 0.0 => ours / limit,
                _ => f64::MAX,
            };
            v.ratio = Some(ratio.min(1e9));
            v.result = if ratio >= 1.0 {
                "MET".into()
            } else if lower_is_better {
                format!("MISSED by {:.0}%", (1.0 / ratio - 1.0) * 100.0)
            } else {
                format!("MISSED by {:.0}%", (1.0 - ratio) * 100.0)
            };
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn speedup_direction() {
        assert!(speedup("ns_per_op", 10.0, 20.0) > 1.0);
        assert!(speedup("packets_per_s", 20.0, 10.0) > 1.0);
        assert!(speedup("iops", 20.0, 10.0) > 1.0);
    }

    #[test]
    fn unknown_suite_is_an_error() {
        let e = choose(&["nope".into()]).err().unwrap();
        assert!(
            e.contains("nope") && e.contains("port") && e.contains("http"),
            "{e}"
        );
        let all = choose(&[]).unwrap();
        assert_eq!(all.len(), SUITES.len());
        let two = choose(&["copy".into(), "port".into(), "copy".into()]).unwrap();
        assert_eq!(
            two.iter().map(|s| s.name).collect::<Vec<_>>(),
            ["copy", "port"]
        );
    }

    #[test]
    fn values_show_with_units() {
        assert_eq!(show_value("req_per_s", 138_100.0), "138.1 k/s");
        assert_eq!(show_value("ops_per_s", 12_920_000.0), "12.92 M/s");
        assert_eq!(show_value("bytes_per_s", 512.0 * 1048576.0), "512.00 MiB/s");
        assert_eq!(show_value("bytes_per_s", 2.5 * 1073741824.0), "2.50 GiB/s");
        assert_eq!(show_value("rss_per_conn_bytes", 700.0), "700.0 B");
        assert_eq!(show_value("rss_per_conn_bytes", 9_472.0), "9.25 KiB");
        assert_eq!(
            show_value("rss_per_conn_bytes", 3.0 * 1048576.0),
            "3.00 MiB"
        );
        assert!(!higher_is_better("rss_per_conn_bytes"));
        assert_eq!(speedup("rss_per_conn_bytes", 4096.0, 8192.0), 2.0);
        assert_eq!(show_value("rtt_p99_ns", 621.0), "621.0 ns");
        assert_eq!(show_value("rtt_p99_ns", 9_304.0), "9304.0 ns");
        assert_eq!(show_value("p99_ns", 3_495_000.0), "3495.0 us");
        assert_eq!(show_value("p99_ns", 25_740_000.0), "25.7 ms");
    }

    /// A full run of one suite, then of another: the committed results hold both, the charts
    /// are written, and BENCHMARKS.md changes only between the markers.
    #[test]
    fn full_runs_update_the_docs_by_suite() {
        use results::tests::{rec, run};
        let root = std::env::temp_dir().join(format!("iocport-docs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let before = "# Benchmarks\n\nAnalysis.\n\n";
        let after = "\n\n## Where we fall short\n\nCauses.\n";
        let doc = format!("{before}{}\nold\n{}{after}", markdown::BEGIN, markdown::END);
        std::fs::write(root.join("BENCHMARKS.md"), &doc).unwrap();

        let echo = Results {
            runs: vec![run("echo", "first")],
            records: vec![
                rec("echo", "echo_conn16", IOCPORT, "req_per_s", 2.0),
                rec("echo", "echo_conn16", "tokio", "req_per_s", 1.0),
            ],
        };
        update_docs(&root, &echo).unwrap();
        let http = Results {
            runs: vec![run("http", "second")],
            records: vec![
                rec("http", "http_4k", IOCPORT, "requests_per_s", 3.0),
                rec("http", "http_4k", "nginx", "requests_per_s", 4.0),
            ],
        };
        update_docs(&root, &http).unwrap();

        let merged = Results::load(&root.join(results::DOCS_JSON)).unwrap();
        let suites: Vec<_> = merged.runs.iter().map(|r| r.suite.as_str()).collect();
        assert_eq!(suites, ["echo", "http"]);
        assert_eq!(merged.records.len(), 4);
        for chart in ["echo.svg", "http.svg"] {
            let svg = std::fs::read_to_string(root.join(results::DOCS_DIR).join(chart)).unwrap();
            assert!(svg.contains(IOCPORT));
        }
        let doc = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap();
        assert!(doc.starts_with(before) && doc.ends_with(after), "{doc}");
        assert!(!doc.contains("\nold\n"));
        assert!(doc.contains("![echo: throughput (higher is better)](docs/bench/echo.svg)"));
        assert!(doc.contains("| http_4k | requests_per_s | 3.0 /s | 4.0 /s | nginx 0.75x |"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// `iocport bench ARGS...` parsed as the command line would be.
    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied())).map(|c| c.args)
    }

    /// Every file under `dir` with its contents, `out` left out.
    fn snapshot(dir: &Path, out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p == out {
                } else if p.is_dir() {
                    todo.push(p);
                } else {
                    let bytes = std::fs::read(&p).unwrap();
                    files.push((p, bytes));
                }
            }
        }
        files.sort();
        files
    }

    /// A run's outputs go to `--out` only; the committed figures (docs/bench/, BENCHMARKS.md)
    /// change only with `--update-docs`.
    #[test]
    fn a_default_run_leaves_the_docs_alone_and_update_docs_writes_them() {
        use results::tests::{rec, run};
        let root = std::env::temp_dir().join(format!("iocport-out-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(results::DOCS_DIR)).unwrap();
        let doc = format!(
            "# Benchmarks\n\n{}\nold\n{}\n",
            markdown::BEGIN,
            markdown::END
        );
        std::fs::write(root.join("BENCHMARKS.md"), &doc).unwrap();
        let committed = Results {
            runs: vec![run("http", "committed")],
            records: vec![rec("http", "http_4k", IOCPORT, "requests_per_s", 3.0)],
        };
        committed.save(&root.join(results::DOCS_JSON)).unwrap();
        let this_run = Results {
            runs: vec![run("echo", "new")],
            records: vec![
                rec("echo", "echo_conn16", IOCPORT, "req_per_s", 2.0),
                rec("echo", "echo_conn16", "tokio", "req_per_s", 1.0),
            ],
        };
        let out = root.join("bench-out");
        let out_arg = out.to_str().unwrap();

        let before = snapshot(&root, &out);
        let args = parse(&["--out", out_arg]).unwrap();
        assert!(!args.update_docs);
        publish(&args, Some(&root), &this_run).unwrap();
        assert_eq!(
            snapshot(&root, &out),
            before,
            "a default run changed the docs"
        );
        for file in ["results.json", "results.md", "echo.svg"] {
            assert!(out.join(file).is_file(), "{file} not in {}", out.display());
        }
        assert_eq!(Results::load(&out.join("results.json")).unwrap(), this_run);
        // --no-docs is accepted and changes nothing.
        publish(
            &parse(&["--no-docs", "--out", out_arg]).unwrap(),
            Some(&root),
            &this_run,
        )
        .unwrap();
        assert_eq!(snapshot(&root, &out), before);

        publish(
            &parse(&["--update-docs", "--out", out_arg]).unwrap(),
            Some(&root),
            &this_run,
        )
        .unwrap();
        let merged = Results::load(&root.join(results::DOCS_JSON)).unwrap();
        let suites: Vec<_> = merged.runs.iter().map(|r| r.suite.as_str()).collect();
        assert_eq!(suites, ["echo", "http"]);
        assert!(root.join(results::DOCS_DIR).join("echo.svg").is_file());
        let doc = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap();
        assert!(
            !doc.contains("\nold\n") && doc.contains("echo_conn16"),
            "{doc}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn docs_flags() {
        assert!(parse(&["--update-docs", "--quick"]).is_err());
        assert!(parse(&["--update-docs", "--no-docs"]).is_err());
        assert!(parse(&["--render-docs", "--update-docs"]).is_err());
        assert!(parse(&["--render-docs", "port"]).is_err());
        let a = parse(&["port", "--update-docs"]).unwrap();
        assert!(a.update_docs && !a.render_docs && a.suites == ["port"]);
        assert_eq!(parse(&[]).unwrap().out, Path::new("bench-out"));
    }

    #[test]
    fn not_comparable_lists_missing_peers_and_wide_spreads() {
        let wide = |system: &str, spread| Record {
            spread,
            suite: "echo".into(),
            ..rec("echo_conn16", system, "req_per_s", 1.0)
        };
        let mut echo = Report {
            records: vec![
                wide(IOCPORT, 0.2),
                wide("tokio", 0.67),
                wide("thread-per-conn", 0.5),
            ],
            ..Report::default()
        };
        echo.missing.push(Missing {
            system: "iocport-c".into(),
            why: "not built: cc not found".into(),
        });
        let mut file = Report::default();
        file.missing_tool("fio", "fio-io_uring and fio-psync");
        assert!(file.notes[0].contains("fio not found"), "{:?}", file.notes);
        let done = [("file", file), ("echo", echo)];
        let failed = [("http", "nginx did not start".to_owned())];
        let full = Config::new(false);
        let lines = not_comparable(&done, &failed, &full);
        assert_eq!(
            lines,
            [
                "file: fio-io_uring and fio-psync: missing: fio is not installed \
                 (`bash scripts/bench-deps.sh` installs it)",
                "echo: iocport-c: missing: not built: cc not found",
                // 50% exactly is still comparable.
                "echo/echo_conn16 tokio req_per_s: spread 67% over the rounds (over 50%)",
                "http: the whole suite: failed: nginx did not start",
            ]
        );
        let section = not_comparable_section(&lines, &full);
        assert!(section.contains("not comparable (4)"), "{section}");
        assert!(
            section.contains("\n  - echo/echo_conn16 tokio"),
            "{section}"
        );
        // --quick: one round, so spreads say nothing; missing peers are still listed.
        let quick = Config::new(true);
        assert_eq!(not_comparable(&done, &[], &quick).len(), 2);
        let none = not_comparable_section(&[], &full);
        assert!(none.contains("not comparable: none"), "{none}");
    }

    /// A peer whose round fails is dropped from its case and listed; an iocport system's failure,
    /// or any failure with --quick, fails the case.
    #[test]
    fn a_failing_peer_is_dropped_from_its_case() {
        let cfg = Config {
            quick: false,
            rounds: 3,
            warmup: false,
        };
        let ok = |system| Contender::new(system, || Ok(vec![("ops_per_s", 10.0)]));
        let mut calls = 0;
        let flaky = Contender::new("flaky-peer", move || {
            calls += 1;
            if calls == 2 {
                Err("exited with status 1".into())
            } else {
                Ok(vec![("ops_per_s", 5.0)])
            }
        });
        let suite = "test-drop";
        let records = run_case(&cfg, suite, "c", vec![ok(IOCPORT), flaky, ok("peer")]).unwrap();
        let systems: Vec<_> = records.iter().map(|r| r.system.as_str()).collect();
        assert_eq!(systems, [IOCPORT, "peer"]);
        let dropped = take_dropped(suite);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].system, "c: flaky-peer");
        assert!(
            dropped[0].why.contains("exited with status 1"),
            "{dropped:?}"
        );
        assert!(take_dropped(suite).is_empty());

        let broken = |system| Contender::new(system, || Err("no".into()));
        let e = run_case(&cfg, suite, "c", vec![broken("iocport-epoll"), ok("peer")]);
        assert!(e.unwrap_err().contains("iocport-epoll"));
        let e = run_case(
            &Config::new(true),
            suite,
            "c",
            vec![ok(IOCPORT), broken("peer")],
        );
        assert!(e.unwrap_err().contains("(peer): no"));
        assert!(take_dropped(suite).is_empty());
    }

    #[test]
    fn round_ratio_median_and_spread() {
        let ours = [Some(90.0), Some(50.0), Some(120.0)];
        let theirs = [Some(100.0), Some(50.0), Some(100.0)];
        let rr = RoundRatio::of("iops", &ours, &theirs).unwrap();
        // Per round: 0.9, 1.0, 1.2.
        assert_eq!(rr.rounds, 3);
        assert!((rr.median - 1.0).abs() < 1e-12, "{rr:?}");
        assert!((rr.spread - 0.3).abs() < 1e-12, "{rr:?}");
        // The medians of each system (90 and 100) say 0.9x: the per-round ratio sees that the
        // slow round was slow for both.
        let rr = RoundRatio::of("iops", &[Some(2.0), Some(4.0)], &[Some(1.0), Some(1.0)]).unwrap();
        assert_eq!((rr.median, rr.rounds), (3.0, 2));
        assert!(rr.describe().contains("3.00x (spread 67% over 2 rounds)"));
    }

    #[test]
    fn round_ratio_skips_rounds_without_both_values() {
        // The peer failed (or was not run) in round 2; iocport measured nothing usable in round 4.
        let ours = [Some(10.0), Some(10.0), Some(10.0), Some(0.0)];
        let theirs = [Some(20.0), None, Some(5.0), Some(10.0)];
        let rr = RoundRatio::of("iops", &ours, &theirs).unwrap();
        assert_eq!(rr.rounds, 2);
        assert_eq!(rr.median, (0.5 + 2.0) / 2.0);
        assert!(RoundRatio::of("iops", &[Some(1.0), None], &[None, Some(1.0)]).is_none());
        assert!(RoundRatio::of("iops", &[], &[]).is_none());
    }

    #[test]
    fn round_ratio_of_a_time_is_above_1_when_iocport_is_faster() {
        // Latency: iocport 80 us against the peer's 100 us, then 50 against 100.
        let ours = [Some(80_000.0), Some(50_000.0)];
        let theirs = [Some(100_000.0), Some(100_000.0)];
        let rr = RoundRatio::of("rtt_p99_ns", &ours, &theirs).unwrap();
        assert!((rr.median - (1.25 + 2.0) / 2.0).abs() < 1e-12, "{rr:?}");
        let rr = RoundRatio::of("rtt_p99_ns", &theirs, &ours).unwrap();
        assert!(rr.median < 1.0, "{rr:?}");
    }

    /// run_case pairs each peer's rounds with iocport's rounds, and a peer dropped mid-case
    /// has no record (and no ratio) at all.
    #[test]
    fn run_case_reports_per_round_ratios() {
        let cfg = Config {
            quick: false,
            rounds: 3,
            warmup: false,
        };
        // The machine's mood changes by round: each round both systems see the same factor.
        let moods = [1.0, 0.25, 1.0];
        let seq = |system, base: f64, metric| {
            let mut round = 0;
            Contender::new(system, move || {
                let v = base * moods[round];
                round += 1;
                Ok(vec![(metric, v), ("p99_ns", 1000.0 / v)])
            })
        };
        let records = run_case(
            &cfg,
            "test-ratio",
            "c",
            vec![
                seq(IOCPORT, 90.0, "iops"),
                seq("iocport-ring", 80.0, "iops"),
                seq("peer", 100.0, "iops"),
            ],
        )
        .unwrap();
        let get = |system: &str, metric: &str| {
            records
                .iter()
                .find(|r| r.system == system && r.metric == metric)
                .unwrap()
        };
        assert!(get(IOCPORT, "iops").round_ratio.is_none());
        assert!(get("iocport-ring", "iops").round_ratio.is_none());
        let rr = get("peer", "iops").round_ratio.unwrap();
        assert_eq!(rr.rounds, 3);
        assert!((rr.median - 0.9).abs() < 1e-9 && rr.spread < 1e-9, "{rr:?}");
        // The time metric: the peer's p99 is lower (better), so the ratio is below 1 too.
        let rr = get("peer", "p99_ns").round_ratio.unwrap();
        assert!((rr.median - 0.9).abs() < 1e-9, "{rr:?}");
        assert!(get("peer", "iops").spread > 0.5);
        // The table shows the per-round ratio, with its spread.
        let report = Report {
            records: records.clone(),
            ..Report::default()
        };
        let text = table(&[("test-ratio", report)], &cfg);
        assert!(text.contains("1.11x slower (spread 0%)"), "{text}");
        assert!(text.contains("median of the per-round ratios"), "{text}");

        // --quick: one round, no ratio.
        let quick = run_case(
            &Config::new(true),
            "test-ratio",
            "c",
            vec![seq(IOCPORT, 1.0, "iops"), seq("peer", 1.0, "iops")],
        )
        .unwrap();
        assert!(quick.iter().all(|r| r.round_ratio.is_none()));
    }

    /// Targets against a peer are judged by the median per-round ratio when there is one.
    #[test]
    fn targets_use_the_per_round_ratio() {
        let with = |system: &str, metric: &str, value, median| Record {
            round_ratio: Some(RoundRatio {
                median,
                spread: 0.1,
                rounds: 9,
            }),
            ..rec("c", system, metric, value)
        };
        // The medians say 0.8x; the rounds, 0.95x.
        let records = [
            rec("c", IOCPORT, "iops", 80.0),
            with("fio", "iops", 100.0, 0.95),
            with("psync", "iops", 50.0, 1.7),
            rec("c", IOCPORT, "p99_ns", 120.0),
            with("tokio", "p99_ns", 100.0, 1.05),
        ];
        let t = |metric, goal| Target {
            case: "c",
            metric,
            goal,
        };
        let v = check(
            &t(
                "iops",
                Goal::AtLeastFactorOf {
                    peer: "fio",
                    factor: 0.9,
                },
            ),
            &records,
        );
        assert_eq!(v.result, "MET");
        assert!((v.ratio.unwrap() - 0.95 / 0.9).abs() < 1e-12);
        assert_eq!(v.needed, Some(90.0));
        assert!(
            v.line().ends_with(
                "MET (judged by the median per-round ratio 0.95x (spread 10% over 9 rounds))"
            ),
            "{}",
            v.line()
        );
        let v = check(
            &t(
                "iops",
                Goal::AtLeastFactorOf {
                    peer: "fio",
                    factor: 1.0,
                },
            ),
            &records,
        );
        assert_eq!(v.result, "MISSED by 5%");
        // The best peer by median (fio) is the one the ratio is taken to.
        let v = check(
            &t(
                "iops",
                Goal::AtLeastFactorOfBest {
                    peers: &["fio", "psync"],
                    factor: 0.9,
                },
            ),
            &records,
        );
        assert_eq!(
            (v.result.as_str(), v.per_round.unwrap().median),
            ("MET", 0.95)
        );
        // A time: iocport's p99 within 1x tokio's; per round iocport was 1.05x better.
        let v = check(
            &t(
                "p99_ns",
                Goal::WithinFactorOf {
                    peer: "tokio",
                    factor: 1.0,
                },
            ),
            &records,
        );
        assert_eq!(v.result, "MET");
        let v = check(
            &t(
                "p99_ns",
                Goal::WithinFactorOf {
                    peer: "tokio",
                    factor: 0.5,
                },
            ),
            &records,
        );
        // 1 / (1.05 * 0.5) - 1 = 90%.
        assert_eq!(v.result, "MISSED by 90%");
        // Without per-round ratios (an older document): the medians.
        let plain = [
            rec("c", IOCPORT, "iops", 80.0),
            rec("c", "fio", "iops", 100.0),
        ];
        let v = check(
            &t(
                "iops",
                Goal::AtLeastFactorOf {
                    peer: "fio",
                    factor: 0.9,
                },
            ),
            &plain,
        );
        assert!(
            v.per_round.is_none() && v.result == "MISSED by 11%",
            "{v:?}"
        );
    }

    /// Records without `round_ratio` (docs/bench/results.json from before) still load, and it is
    /// left out of the JSON when absent.
    #[test]
    fn round_ratio_in_json_is_optional() {
        let old = r#"{"suite":"file","case":"c","system":"fio","metric":"iops","value":2.0}"#;
        let r: Record = serde_json::from_str(old).unwrap();
        assert!(r.round_ratio.is_none());
        assert_eq!(serde_json::to_string(&r).unwrap(), old);
        let r = Record {
            round_ratio: Some(RoundRatio {
                median: 0.5,
                spread: 0.25,
                rounds: 9,
            }),
            ..r
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.ends_with(r#""value":2.0,"round_ratio":{"median":0.5,"spread":0.25,"rounds":9}}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
    }

    fn rec(case: &str, system: &str, metric: &str, value: f64) -> Record {
        Record {
            suite: "s".into(),
            case: case.into(),
            system: system.into(),
            metric: metric.into(),
            value,
            spread: 0.0,
            round_ratio: None,
        }
    }

    #[test]
    fn targets_are_checked() {
        let records = [
            rec("c", IOCPORT, "req_per_s", 90.0),
            rec("c", "peer", "req_per_s", 100.0),
            rec("t", IOCPORT, "p99_ns", 50.0),
        ];
        let t = |case, metric, goal| Target { case, metric, goal };
        let v = check(
            &t(
                "c",
                "req_per_s",
                Goal::AtLeastFactorOf {
                    peer: "peer",
                    factor: 1.0,
                },
            ),
            &records,
        );
        assert_eq!(v.result, "MISSED by 10%");
        assert_eq!(v.ratio, Some(0.9));
        let v = check(
            &t(
                "c",
                "req_per_s",
                Goal::AtLeastFactorOf {
                    peer: "peer",
                    factor: 0.9,
                },
            ),
            &records,
        );
        assert_eq!(v.result, "MET");
        let v = check(&t("t", "p99_ns", Goal::AtMost(40.0)), &records);
        assert_eq!(v.result, "MISSED by 25%");
        let v = check(
            &t(
                "c",
                "req_per_s",
                Goal::AtLeastFactorOf {
                    peer: "absent",
                    factor: 1.0,
                },
            ),
            &records,
        );
        assert_eq!(v.result, "peer not measured");
        assert!(v.line().contains("peer not measured"));
    }

    #[test]
    fn targets_of_other_systems_check_their_value() {
        let records = [
            rec("c", IOCPORT, "req_per_s", 100.0),
            rec("c", "iocport-c", "req_per_s", 95.0),
            rec("c", "peer", "req_per_s", 120.0),
        ];
        let of = |goal: &'static Goal| Target {
            case: "c",
            metric: "req_per_s",
            goal: Goal::Of {
                system: "iocport-c",
                goal,
            },
        };
        let v = check(
            &of(&Goal::AtLeastFactorOf {
                peer: IOCPORT,
                factor: 0.9,
            }),
            &records,
        );
        assert_eq!((v.iocport, v.result.as_str()), (Some(95.0), "MET"));
        assert_eq!(v.goal, "iocport-c >= 0.9x iocport");
        assert!(
            v.line().starts_with("c/req_per_s iocport-c 95")
                && v.line().contains("(target >= 0.9x"),
            "{}",
            v.line()
        );
        let v = check(
            &of(&Goal::AtLeastFactorOf {
                peer: "peer",
                factor: 1.0,
            }),
            &records,
        );
        assert_eq!(v.result, "MISSED by 21%");
        let v = check(
            &Target {
                case: "c",
                metric: "req_per_s",
                goal: Goal::Of {
                    system: "absent",
                    goal: &Goal::AtMost(1.0),
                },
            },
            &records,
        );
        assert_eq!(v.result, "not measured");
    }
}
