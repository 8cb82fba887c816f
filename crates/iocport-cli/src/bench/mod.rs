//! `iocport bench`: suites of cases, each run for iocport and its peers side by side.
//!
//! A *suite* (one sibling module per suite: `port.rs`, `nop.rs`, `file.rs`, `echo.rs`) is a list of
//! *cases*. In a case every *system* (iocport and each peer) runs the same workload; the runner here
//! interleaves them round by round, rotating the order each round, so that noise on a shared machine
//! hits every system alike, and reports the **median** over the rounds of every metric.
//!
//! Results are [`Record`]s `{case, system, metric, value}`: printed as a table with, for each peer,
//! how many times faster iocport is, and optionally written as a JSON array.
//!
//! Metric names carry their unit, and the unit says which direction is better: a name ending in
//! `_per_s` is a rate (higher is better), and so is `iops` (I/O operations per second, the file
//! suite's metric, named as fio names it); anything else is a time in nanoseconds (lower is better).

mod echo;
mod file;
mod nop;
mod port;
mod wake;

use std::fmt::Write as _;
use std::path::Path;
use std::thread;
use std::time::Duration;

use serde::Serialize;

/// The iocport system's name in records; peers use their crate name.
pub(crate) const IOCPORT: &str = "iocport";

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
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Record {
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
}

/// Whether a larger value of `metric` is better (a rate) or worse (a time).
pub(crate) fn higher_is_better(metric: &str) -> bool {
    metric.ends_with("_per_s") || metric == "iops"
}

/// A goal iocport should meet in one case, checked after the run.
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
    /// At most this value (for times).
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
pub(crate) fn run_case(
    cfg: &Config,
    suite: &str,
    case: &str,
    mut contenders: Vec<Contender<'_>>,
) -> Result<Vec<Record>, String> {
    let n = contenders.len();
    eprintln!(
        "bench {suite}/{case}: {} system(s), {} round(s)",
        n, cfg.rounds
    );
    if cfg.warmup {
        for c in &mut contenders {
            (c.round)().map_err(|e| format!("{suite}/{case} ({}): {e}", c.system))?;
        }
    }
    // samples[contender] = [(metric, values over rounds)], metric order as first reported.
    let mut samples: Vec<Vec<(&'static str, Vec<f64>)>> = vec![Vec::new(); n];
    for round in 0..cfg.rounds {
        for i in 0..n {
            let idx = (i + round) % n;
            let c = &mut contenders[idx];
            let values = (c.round)().map_err(|e| format!("{suite}/{case} ({}): {e}", c.system))?;
            for (metric, value) in values {
                if !value.is_finite() || value < 0.0 {
                    return Err(format!(
                        "{suite}/{case} ({}): bad measurement {metric} = {value}",
                        c.system
                    ));
                }
                let slot = &mut samples[idx];
                match slot.iter_mut().find(|(m, _)| *m == metric) {
                    Some((_, v)) => v.push(value),
                    None => slot.push((metric, vec![value])),
                }
            }
        }
    }
    let mut records = Vec::new();
    for (c, metrics) in contenders.iter().zip(samples) {
        for (metric, mut values) in metrics {
            let med = median(&mut values);
            let (lo, hi) = (values[0], values[values.len() - 1]);
            records.push(Record {
                case: case.to_owned(),
                system: c.system.to_owned(),
                metric: metric.to_owned(),
                value: med,
                spread: if med > 0.0 { (hi - lo) / med } else { 0.0 },
            });
        }
    }
    Ok(records)
}

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

/// A suite: its name and its entry point.
struct Suite {
    name: &'static str,
    run: fn(&Config) -> Result<Report, String>,
}

/// Every suite, in the order `iocport bench` with no names runs them.
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
        name: "wake",
        run: wake::run,
    },
];

/// Runs the named suites (all when empty), prints the table, and writes the JSON records to `json`.
pub fn run(suites: &[String], quick: bool, json: Option<&Path>) -> Result<(), String> {
    let mut chosen: Vec<&Suite> = Vec::new();
    for name in suites {
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

    let cfg = Config::new(quick);
    let mut report = Report::default();
    for suite in chosen {
        let r = (suite.run)(&cfg).map_err(|e| format!("bench {}: {e}", suite.name))?;
        report.records.extend(r.records);
        report.notes.extend(r.notes);
        report.targets.extend(r.targets);
    }

    print!("{}", table(&report, &cfg));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report.records)
            .map_err(|e| format!("cannot encode the results as JSON: {e}"))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!(
            "wrote {} records to {}",
            report.records.len(),
            path.display()
        );
    }
    Ok(())
}

/// A value with its unit, for the table.
fn show_value(metric: &str, value: f64) -> String {
    if higher_is_better(metric) {
        if value >= 1e6 {
            format!("{:.2} M/s", value / 1e6)
        } else {
            format!("{:.1} k/s", value / 1e3)
        }
    } else if value >= 100_000.0 {
        format!("{:.1} us", value / 1e3)
    } else {
        format!("{value:.1} ns")
    }
}

/// How many times faster iocport is than the peer: `peer / iocport` for times, `iocport / peer` for
/// rates. Above 1 iocport is better.
fn speedup(metric: &str, iocport: f64, peer: f64) -> f64 {
    if higher_is_better(metric) {
        iocport / peer
    } else {
        peer / iocport
    }
}

/// The results table, the notes, and the targets.
fn table(report: &Report, cfg: &Config) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "case".into(),
        "system".into(),
        "metric".into(),
        "value".into(),
        "spread".into(),
        "iocport vs peer".into(),
    ]];
    let mut last_case = "";
    for r in &report.records {
        let vs = if r.system == IOCPORT {
            String::new()
        } else {
            let ours = report
                .records
                .iter()
                .find(|o| o.case == r.case && o.metric == r.metric && o.system == IOCPORT);
            match ours {
                Some(o) if o.value > 0.0 && r.value > 0.0 => {
                    let s = speedup(&r.metric, o.value, r.value);
                    if s >= 1.0 {
                        format!("{s:.2}x faster")
                    } else {
                        format!("{:.2}x slower", 1.0 / s)
                    }
                }
                _ => "-".into(),
            }
        };
        let case = if r.case == last_case {
            String::new()
        } else {
            r.case.clone()
        };
        last_case = &r.case;
        rows.push([
            case,
            r.system.clone(),
            r.metric.clone(),
            show_value(&r.metric, r.value),
            if cfg.rounds > 1 {
                format!("{:.0}%", r.spread * 100.0)
            } else {
                "-".into()
            },
            vs,
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nmedian of {} round(s){}; spread = (max - min) / median over the rounds",
        cfg.rounds,
        if cfg.quick {
            " (--quick: a smoke test, not a measurement)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "'iocport vs peer': how many times faster iocport is than that peer on the same metric \
         (times: peer/iocport, rates: iocport/peer); 'faster' means iocport is better"
    );
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (j, (cell, w)) in row.iter().zip(widths).enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            if j == 3 || j == 4 {
                let _ = write!(line, "{cell:>w$}  ");
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            let _ = writeln!(out, "{}", "-".repeat(total));
        }
    }
    if !report.notes.is_empty() {
        let _ = writeln!(out, "\nnotes:");
        for n in &report.notes {
            let _ = writeln!(out, "  - {n}");
        }
    }
    if !report.targets.is_empty() {
        let _ = writeln!(out, "\ntargets:");
        for t in &report.targets {
            let _ = writeln!(out, "  {}", check(t, &report.records));
        }
    }
    out
}

/// One line saying whether `t` is met.
fn check(t: &Target, records: &[Record]) -> String {
    let find = |system: &str| {
        records
            .iter()
            .find(|r| r.case == t.case && r.metric == t.metric && r.system == system)
            .map(|r| r.value)
    };
    let Some(ours) = find(IOCPORT) else {
        return format!("{}/{}: not measured", t.case, t.metric);
    };
    let (met, limit, what) = match t.goal {
        Goal::AtMost(limit) => (
            ours <= limit,
            limit,
            format!("<= {}", show_value(t.metric, limit)),
        ),
        Goal::WithinFactorOf { peer, factor } | Goal::AtLeastFactorOf { peer, factor } => {
            let Some(theirs) = find(peer) else {
                return format!("{}/{}: {peer} not measured", t.case, t.metric);
            };
            let limit = factor * theirs;
            let (met, op) = match t.goal {
                Goal::AtLeastFactorOf { .. } => (ours >= limit, ">="),
                _ => (ours <= limit, "<="),
            };
            let what = format!("{op} {factor}x {peer} = {}", show_value(t.metric, limit));
            (met, limit, what)
        }
        Goal::AtLeastFactorOfBest { peers, factor } => {
            let best = peers
                .iter()
                .filter_map(|&p| find(p).map(|v| (p, v)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let Some((peer, theirs)) = best else {
                return format!(
                    "{}/{}: none of {} measured",
                    t.case,
                    t.metric,
                    peers.join(", ")
                );
            };
            let limit = factor * theirs;
            let what = format!(
                ">= {factor}x best of ({}) = {peer}: {}",
                peers.join(", "),
                show_value(t.metric, limit)
            );
            (ours >= limit, limit, what)
        }
    };
    let verdict = if met {
        "MET".to_owned()
    } else if ours > limit {
        format!("MISSED by {:.0}%", (ours / limit - 1.0) * 100.0)
    } else {
        format!("MISSED by {:.0}%", (1.0 - ours / limit) * 100.0)
    };
    format!(
        "{}/{} iocport {} (target {what}): {verdict}",
        t.case,
        t.metric,
        show_value(t.metric, ours)
    )
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
        let e = run(&["nope".into()], true, None).unwrap_err();
        assert!(e.contains("nope") && e.contains("port"), "{e}");
    }
}
