//! The results document: what a run measured, where and when, and how it fared against its
//! targets. One is written per run (`bench-out/results.json`); the committed one
//! (`docs/bench/results.json`) is the merge of the latest run with `--update-docs` of every suite,
//! and BENCHMARKS.md's generated section and the committed charts are rendered from it alone.
//!
//! Merging goes by suite: a run's suites replace theirs, every other suite is kept as it was. So
//! `iocport bench echo` updates the echo figures and nothing else, and each suite keeps the date,
//! commit and machine it was measured on.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{check, cpus, show_value, suite_order, Record, Report, RoundRatio, IOCPORT};

/// The committed figures, relative to the project's directory.
pub(crate) const DOCS_DIR: &str = "docs/bench";
/// The committed results document, relative to the project's directory.
pub(crate) const DOCS_JSON: &str = "docs/bench/results.json";

/// A results document: per-suite runs and every record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Results {
    /// One entry per suite, in suite order.
    pub runs: Vec<SuiteRun>,
    /// Every record, grouped by suite in suite order.
    pub records: Vec<Record>,
}

/// How and where one suite was last run, and its targets' verdicts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SuiteRun {
    /// The suite's name.
    pub suite: String,
    /// When it ran, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// The commit it ran at (`git rev-parse --short HEAD`), if known.
    pub commit: Option<String>,
    /// Whether the work tree had uncommitted changes to tracked files then.
    #[serde(default)]
    pub dirty: bool,
    /// The command line, e.g. `iocport bench echo http`.
    pub command: String,
    /// A `--quick` run (never merged into the committed document: `--update-docs` refuses it).
    pub quick: bool,
    /// The machine it ran on.
    pub machine: Machine,
    /// How its cases were set up, and what was skipped and why.
    pub notes: Vec<String>,
    /// Its targets, checked against its records.
    pub targets: Vec<Verdict>,
}

/// A target checked against the records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Verdict {
    /// The case the target is about.
    pub case: String,
    /// The iocport metric it is about.
    pub metric: String,
    /// What is asked, e.g. `>= 1x nginx`.
    pub goal: String,
    /// iocport's value, if measured.
    pub iocport: Option<f64>,
    /// The value iocport had to reach (rates) or stay under (times), if known.
    pub needed: Option<f64>,
    /// How far iocport got, as a ratio where 1 is exactly the target and above 1 is better: for rates
    /// `iocport / needed`, for times `needed / iocport`.
    pub ratio: Option<f64>,
    /// `MET`, `MISSED by 12%`, `not measured`, `peer not measured`.
    pub result: String,
    /// For a goal that is a ratio to a peer: iocport's per-round ratio to that peer, by whose
    /// median the goal was judged (`ratio` is then that median over the goal's factor, for
    /// times its product with it). `None` when the medians were compared (a `--quick` run, a
    /// document written before per-round ratios, a goal without a peer or of another system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_round: Option<RoundRatio>,
}

impl Verdict {
    /// Whether the target is met (`None` when it could not be checked).
    pub fn met(&self) -> Option<bool> {
        self.ratio.map(|r| r >= 1.0)
    }

    /// One line: `case/metric iocport V (target GOAL = NEEDED): RESULT` (with the system's name for
    /// a goal of another iocport system, such as `iocport-c`).
    pub fn line(&self) -> String {
        let ours = self
            .iocport
            .map(|v| show_value(&self.metric, v))
            .unwrap_or_else(|| "-".into());
        // "<= 50.0 ns" already says what is needed; "<= 1.2x crossbeam-channel" does not.
        let needed = self
            .needed
            .map(|v| show_value(&self.metric, v))
            .filter(|v| !self.goal.ends_with(v.as_str()))
            .map(|v| format!(" = {v}"))
            .unwrap_or_default();
        // A goal of another iocport system (`Goal::Of`) starts with its name: show that system.
        let (system, goal) = match self.goal.split_once(' ') {
            Some((name, rest)) if name.starts_with("iocport-") => (name, rest),
            _ => ("iocport", self.goal.as_str()),
        };
        let basis = self
            .per_round
            .map(|rr| format!(" (judged by the {})", rr.describe()))
            .unwrap_or_default();
        format!(
            "{}/{} {system} {ours} (target {goal}{needed}): {}{basis}",
            self.case, self.metric, self.result
        )
    }
}

/// The machine a suite ran on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Machine {
    /// The CPU model (`model name` in /proc/cpuinfo).
    pub cpu: String,
    /// How many CPUs the benchmark could run on.
    pub cpus: usize,
    /// Memory, e.g. `24 GiB`.
    pub memory: String,
    /// The kernel, as `uname -srm` puts it.
    pub kernel: String,
}

impl Machine {
    /// This machine, from /proc.
    pub fn probe() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map(|kib| format!("{:.0} GiB", kib / (1u64 << 20) as f64))
            .unwrap_or_else(|| "? GiB".into());
        // What uname(2) reports, as the kernel also shows it under /proc/sys/kernel.
        let read = |p: &str| fs::read_to_string(p).map(|s| s.trim().to_owned());
        let kernel = format!(
            "{} {} {}",
            read("/proc/sys/kernel/ostype").unwrap_or_else(|_| "Linux".into()),
            read("/proc/sys/kernel/osrelease").unwrap_or_else(|_| "?".into()),
            std::env::consts::ARCH
        );
        Machine {
            cpu,
            cpus: cpus(),
            memory,
            kernel,
        }
    }

    /// `CPU, N CPUs, memory, kernel`.
    pub fn summary(&self) -> String {
        format!(
            "{}, {} CPUs, {}, {}",
            self.cpu, self.cpus, self.memory, self.kernel
        )
    }
}

/// What every suite of one run shares: date, commit, command, machine.
#[derive(Clone, Debug)]
pub(crate) struct RunContext {
    date: String,
    commit: Option<String>,
    dirty: bool,
    command: String,
    quick: bool,
    machine: Machine,
}

impl RunContext {
    /// Now, this machine, this command line, and the commit of the project at `root`.
    pub fn probe(root: Option<&Path>, quick: bool) -> RunContext {
        let git = |args: &[&str]| -> Option<String> {
            let out = Command::new("git")
                .arg("-C")
                .arg(root?)
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        let commit = git(&["rev-parse", "--short", "HEAD"]).filter(|c| !c.is_empty());
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        let mut command = vec!["iocport".to_owned()];
        command.extend(std::env::args().skip(1));
        RunContext {
            date: utc_now(),
            commit,
            dirty,
            command: command.join(" "),
            quick,
            machine: Machine::probe(),
        }
    }
}

impl Results {
    /// The document of one run: a [`SuiteRun`] and the records of every suite that completed.
    pub fn from_run(ctx: &RunContext, done: &[(&str, Report)]) -> Results {
        let mut results = Results::default();
        for (suite, report) in done {
            results.runs.push(SuiteRun {
                suite: suite.to_string(),
                date: ctx.date.clone(),
                commit: ctx.commit.clone(),
                dirty: ctx.dirty,
                command: ctx.command.clone(),
                quick: ctx.quick,
                machine: ctx.machine.clone(),
                notes: report.notes.clone(),
                targets: report
                    .targets
                    .iter()
                    .map(|t| check(t, &report.records))
                    .collect(),
            });
            results.records.extend(report.records.iter().cloned());
        }
        results.sort();
        results
    }

    /// `self` (the committed document) updated with `new` (one run): every suite of `new` that
    /// measured something replaces that suite's run and records; a suite of `new` with no record
    /// (all its systems skipped) is only added when `self` has nothing for it, so a run on a
    /// machine without wrk does not erase the committed http figures. Other suites are kept.
    pub fn merge(mut self, new: Results) -> Results {
        for run in new.runs {
            let measured = new.records.iter().any(|r| r.suite == run.suite);
            let known = self.runs.iter().any(|r| r.suite == run.suite);
            if !measured && known {
                continue;
            }
            self.runs.retain(|r| r.suite != run.suite);
            self.records.retain(|r| r.suite != run.suite);
            self.records
                .extend(new.records.iter().filter(|r| r.suite == run.suite).cloned());
            self.runs.push(run);
        }
        self.sort();
        self
    }

    /// Suite order for runs and records (stable within a suite).
    fn sort(&mut self) {
        self.runs.sort_by_key(|r| suite_order(&r.suite));
        self.records.sort_by_key(|r| suite_order(&r.suite));
    }

    /// The records of `suite`.
    pub fn suite_records<'a>(&'a self, suite: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.records.iter().filter(move |r| r.suite == suite)
    }

    /// Every system measured in `suite`, iocport first, then in order of appearance.
    pub fn systems(&self, suite: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.suite_records(suite) {
            if !out.contains(&r.system) {
                out.push(r.system.clone());
            }
        }
        if let Some(i) = out.iter().position(|s| s == IOCPORT) {
            let s = out.remove(i);
            out.insert(0, s);
        }
        out
    }

    /// Reads a document written by [`Results::save`].
    pub fn load(path: &Path) -> Result<Results, String> {
        let text =
            fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a results document: {e}", path.display()))
    }

    /// Writes the document as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| format!("cannot encode the results as JSON: {e}"))?;
        fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// Now, `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_date(secs)
}

/// `secs` since the epoch as `YYYY-MM-DD HH:MM UTC` (proleptic Gregorian calendar; the day
/// arithmetic is Howard Hinnant's `civil_from_days`).
fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rec(suite: &str, case: &str, system: &str, metric: &str, value: f64) -> Record {
        Record {
            suite: suite.into(),
            case: case.into(),
            system: system.into(),
            metric: metric.into(),
            value,
            spread: 0.0,
            round_ratio: None,
        }
    }

    pub(crate) fn run(suite: &str, date: &str) -> SuiteRun {
        SuiteRun {
            suite: suite.into(),
            date: date.into(),
            commit: Some("abc1234".into()),
            dirty: false,
            command: format!("iocport bench {suite}"),
            quick: false,
            machine: Machine {
                cpu: "Test CPU".into(),
                cpus: 2,
                memory: "4 GiB".into(),
                kernel: "Linux 6.1.0 x86_64".into(),
            },
            notes: vec![format!("{suite} note")],
            targets: Vec::new(),
        }
    }

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn merge_replaces_only_the_suites_that_ran() {
        let committed = Results {
            runs: vec![run("port", "old"), run("echo", "old"), run("http", "old")],
            records: vec![
                rec("port", "mpmc_1x1", IOCPORT, "packets_per_s", 1.0),
                rec("echo", "echo_conn16", IOCPORT, "req_per_s", 2.0),
                rec("echo", "echo_conn16", "tokio", "req_per_s", 3.0),
                rec("http", "http_4k", IOCPORT, "requests_per_s", 4.0),
            ],
        };
        let new = Results {
            // echo measured again; http skipped (no wrk); copy is new.
            runs: vec![run("echo", "new"), run("http", "new"), run("copy", "new")],
            records: vec![
                rec("echo", "echo_conn128", IOCPORT, "req_per_s", 20.0),
                rec("copy", "copy_1gib", IOCPORT, "bytes_per_s", 50.0),
            ],
        };
        let merged = committed.merge(new);
        let dates: Vec<_> = merged
            .runs
            .iter()
            .map(|r| (r.suite.as_str(), r.date.as_str()))
            .collect();
        assert_eq!(
            dates,
            [
                ("port", "old"),
                ("echo", "new"),
                ("http", "old"),
                ("copy", "new")
            ]
        );
        let recs: Vec<_> = merged
            .records
            .iter()
            .map(|r| (r.suite.as_str(), r.case.as_str(), r.value))
            .collect();
        assert_eq!(
            recs,
            [
                ("port", "mpmc_1x1", 1.0),
                ("echo", "echo_conn128", 20.0),
                ("http", "http_4k", 4.0),
                ("copy", "copy_1gib", 50.0),
            ]
        );
    }

    #[test]
    fn a_skipped_suite_is_added_when_new() {
        let new = Results {
            runs: vec![run("http", "new")],
            records: Vec::new(),
        };
        let merged = Results::default().merge(new);
        assert_eq!(merged.runs.len(), 1);
        assert!(merged.records.is_empty());
    }

    #[test]
    fn documents_round_trip_and_old_records_load() {
        let doc = Results {
            runs: vec![run("echo", "d")],
            records: vec![rec("echo", "e", IOCPORT, "req_per_s", 1.5)],
        };
        let text = serde_json::to_string(&doc).unwrap();
        assert!(text.contains("\"suite\":\"echo\""), "{text}");
        assert_eq!(serde_json::from_str::<Results>(&text).unwrap(), doc);
        // A record written before records had a suite still loads.
        let old: Record =
            serde_json::from_str(r#"{"case":"c","system":"iocport","metric":"iops","value":2.0}"#)
                .unwrap();
        assert_eq!(old.suite, "");
    }

    #[test]
    fn machine_probe_reads_proc() {
        let m = Machine::probe();
        assert!(m.cpus >= 1);
        assert!(m.kernel.starts_with("Linux"), "{}", m.kernel);
        assert!(m.summary().contains("CPUs"));
    }
}
