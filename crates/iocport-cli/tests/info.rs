//! `iocport info`, run as a real process: the text names what it reports, and the JSON parses and
//! agrees with what this process can find out itself (kernel release, resource limits, CPUs); the
//! backend is named with the library's reason for it, whether it is the default, forced by
//! `IOCPORT_BACKEND` or the fallback where a seccomp filter refuses io_uring.
//!
//! `IOCPORT_BACKEND` is removed from the environment of every run except those that set it, so
//! that the tests mean the same when the suite runs with it set.

mod util;

use std::process::{Command, Output};

use serde_json::Value;
use util::without_io_uring;

/// `iocport info ARGS`, with the backend left to the library (no `IOCPORT_BACKEND`).
fn info_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iocport"));
    cmd.arg("info").args(args).env_remove("IOCPORT_BACKEND");
    cmd
}

/// Runs `cmd`, which must succeed.
fn output(mut cmd: Command) -> Output {
    let out = cmd.output().expect("run iocport info");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `iocport info ARGS`, which must succeed.
fn info(args: &[&str]) -> Output {
    output(info_cmd(args))
}

fn json() -> Value {
    let out = info(&["--json"]);
    serde_json::from_slice(&out.stdout).expect("iocport info --json prints JSON")
}

/// The running kernel's release, as `uname -r` prints it.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .expect("read osrelease")
        .trim()
        .to_owned()
}

/// `getrlimit` of this process (the child inherits it); `None` for `RLIM_INFINITY`.
fn rlimit(resource: libc::__rlimit_resource_t) -> (Option<u64>, Option<u64>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit that outlives the call.
    assert_eq!(unsafe { libc::getrlimit(resource, &mut lim) }, 0);
    let v = |x| (x != libc::RLIM_INFINITY).then_some(x);
    (v(lim.rlim_cur), v(lim.rlim_max))
}

/// A limit from the JSON: a number, or `None` for `"unlimited"`.
fn json_limit(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => {
            assert_eq!(s, "unlimited");
            None
        }
        v => Some(v.as_u64().expect("a limit is a number or \"unlimited\"")),
    }
}

#[test]
fn text_names_backend_kernel_limits_and_opcodes() {
    let out = info(&[]);
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    for word in [
        "backend",
        "io_uring",
        "kernel",
        "RLIMIT_MEMLOCK",
        "RLIMIT_NOFILE",
        "cpus",
        "op Read",
        "feature nodrop",
    ] {
        assert!(text.contains(word), "no {word:?} in:\n{text}");
    }
    assert!(
        text.contains(&kernel_release()),
        "kernel release missing:\n{text}"
    );
    // Aligned: every value starts in the same column.
    let columns: Vec<usize> = text
        .lines()
        .map(|l| {
            let key_end = l
                .trim_start()
                .find("  ")
                .expect("two spaces after the name")
                + (l.len() - l.trim_start().len());
            key_end + l[key_end..].len() - l[key_end..].trim_start().len()
        })
        .collect();
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "values not aligned:\n{text}"
    );
}

#[test]
fn json_parses_with_the_fields_and_agrees_with_this_process() {
    let v = json();
    let b = &v["backend"];
    // With the backend left to the library, a port always runs: on io_uring, or on epoll.
    assert_eq!(b["available"], true, "{b}");
    let reason = b["reason"].as_str().expect("backend.reason is a string");
    assert!(!reason.is_empty());
    let available = b["io_uring"]["available"]
        .as_bool()
        .expect("backend.io_uring.available is a bool");
    if available {
        assert_eq!(
            b["kind"], "io_uring",
            "io_uring is the default where it works"
        );
        assert!(b["io_uring"]["reason"].is_null());
        assert!(b["submit_mode"].is_string());
    } else {
        assert_eq!(b["kind"], "epoll", "the fallback where io_uring is refused");
        let why = b["io_uring"]["reason"]
            .as_str()
            .expect("a reason when io_uring is unavailable");
        assert!(!why.is_empty());
        assert!(b["submit_mode"].is_null());
        eprintln!("note: io_uring is unavailable here: {why}");
    }
    assert!(b["probes"].is_array());
    assert_eq!(v["kernel"]["release"], kernel_release());
    assert_eq!(v["kernel"]["sysname"], "Linux");

    for (name, resource) in [
        ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ] {
        let lim = &v["rlimits"][name];
        let (soft, hard) = rlimit(resource);
        assert_eq!(json_limit(&lim["soft"]), soft, "{name} soft");
        assert_eq!(json_limit(&lim["hard"]), hard, "{name} hard");
    }

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(v["cpus"]["available"].as_u64(), Some(cpus as u64));

    let used = v["opcodes"]["used"].as_array().expect("opcodes.used");
    let read = used
        .iter()
        .find(|o| o["name"] == "Read")
        .expect("Read is an opcode iocport uses");
    assert_eq!(read["code"], 22, "IORING_OP_READ");
    if available {
        // iocport cannot run without reads, and it set up a ring, so the probe answered.
        assert_eq!(read["supported"], true);
        assert_eq!(v["io_uring"]["features"]["nodrop"], true);
        assert_eq!(v["io_uring"]["features"]["ext_arg"], true);
        assert_eq!(v["io_uring"]["setup"], true);
    }
    let all = v["opcodes"]["all"].as_array().expect("opcodes.all");
    assert!(all.len() > used.len());
    for op in used {
        assert!(
            all.iter()
                .any(|a| a["code"] == op["code"] && a["supported"] == op["supported"]),
            "{op} is in the full list with the same answer"
        );
    }
}

/// The value of the text row named `name` (its first occurrence).
fn row<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .filter(|rest| rest.starts_with("  "))
                .map(str::trim_start)
        })
        .unwrap_or_else(|| panic!("no {name:?} row in:\n{text}"))
}

#[test]
fn text_and_json_agree_on_backend_and_availability() {
    let text = String::from_utf8(info(&[]).stdout).expect("UTF-8");
    let v = json();
    let kind = v["backend"]["kind"].as_str().expect("backend.kind");
    let reason = v["backend"]["reason"].as_str().expect("backend.reason");
    let backend = row(&text, "backend");
    assert!(
        backend.starts_with(&format!("{kind} ({reason}")),
        "{backend:?} vs {kind} ({reason})"
    );
    let available = v["backend"]["io_uring"]["available"] == true;
    let uring = row(&text, "  io_uring");
    assert_eq!(uring == "available", available, "{uring:?}");
    assert_eq!(uring.starts_with("unavailable: "), !available, "{uring:?}");
}

// The library's own probes: each feature it uses beyond the minimum, with its answer, in the text
// and the JSON; `IOCPORT_TEST_MISSING` (the switch the test suite uses to run the older kernels'
// paths) shows up as "no".
#[test]
fn probes_show_each_feature_and_the_pretended_missing_ones() {
    let v = json();
    if v["backend"]["kind"] != "io_uring" {
        eprintln!("note: io_uring is unavailable here; its probes are not shown");
        return;
    }
    assert!(v["backend"]["submit_mode"].is_string());
    let probes = v["backend"]["probes"].as_array().expect("backend.probes");
    let find = |v: &Value, name: &str| -> Value {
        v["backend"]["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("probe {name}"))
            .clone()
    };
    assert!(probes.len() > 3);
    assert_eq!(find(&v, "IORING_FEAT_NODROP")["available"], true);
    let text = String::from_utf8(info(&[]).stdout).unwrap();
    assert!(text.contains("probe IORING_ASYNC_CANCEL_FD"), "{text}");

    let run = |missing: Option<&str>| -> Value {
        let mut cmd = info_cmd(&["--json"]);
        cmd.env_remove("IOCPORT_TEST_MISSING");
        if let Some(m) = missing {
            cmd.env("IOCPORT_TEST_MISSING", m);
        }
        serde_json::from_slice(&cmd.output().unwrap().stdout).unwrap()
    };
    let real = run(None);
    let pretend = run(Some("cancel_fd,multishot_poll"));
    assert_eq!(find(&pretend, "IORING_ASYNC_CANCEL_FD")["available"], false);
    assert_eq!(find(&pretend, "IORING_POLL_ADD_MULTI")["available"], false);
    assert_eq!(
        find(&pretend, "IORING_ASYNC_CANCEL_ANY")["available"],
        find(&real, "IORING_ASYNC_CANCEL_ANY")["available"]
    );
}

#[test]
fn all_lists_opcodes_iocport_does_not_use() {
    let short = String::from_utf8(info(&[]).stdout).expect("UTF-8");
    let long = String::from_utf8(info(&["--all"]).stdout).expect("UTF-8");
    assert!(!short.contains("op Splice"), "{short}");
    assert!(long.contains("op Splice"), "{long}");
    assert!(long.lines().count() > short.lines().count() + 30);
}

#[test]
fn a_seccomp_filter_against_io_uring_is_reported_as_the_reason() {
    let mut cmd = info_cmd(&["--json"]);
    without_io_uring(&mut cmd);
    let out = cmd.output().expect("run iocport info");
    assert!(out.status.success(), "info reports, it does not fail");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let b = &v["backend"];
    // The port falls back to epoll, and says why.
    assert_eq!(b["available"], true, "{b}");
    assert_eq!(b["kind"], "epoll", "{b}");
    let reason = b["reason"].as_str().expect("backend.reason");
    assert!(reason.contains("EPERM"), "{reason}");
    assert_eq!(b["io_uring"]["available"], false);
    let why = b["io_uring"]["reason"].as_str().expect("a reason");
    assert!(why.contains("seccomp"), "{why}");
    assert_eq!(v["io_uring"]["setup"], false);
    assert_eq!(v["io_uring"]["seccomp"], 2);
    assert!(
        v["io_uring"]["io_uring_disabled"].is_u64() || v["io_uring"]["io_uring_disabled"].is_null()
    );
    let read = v["opcodes"]["used"]
        .as_array()
        .expect("opcodes.used")
        .iter()
        .find(|o| o["name"] == "Read")
        .expect("Read is listed");
    assert_eq!(read["supported"], Value::Null, "unknown without a ring");

    let mut cmd = info_cmd(&[]);
    without_io_uring(&mut cmd);
    let text = String::from_utf8(output(cmd).stdout).expect("UTF-8");
    assert!(row(&text, "backend").starts_with("epoll ("), "{text}");
    let uring = row(&text, "  io_uring");
    assert!(
        uring.starts_with("unavailable: ") && uring.contains("seccomp"),
        "{text}"
    );
    assert!(
        text.contains("RLIMIT_NOFILE"),
        "the rest is still reported:\n{text}"
    );
}

// Catches: `IOCPORT_BACKEND` ignored by the port `info` sets up, or the reason lost on the way.
#[test]
fn iocport_backend_epoll_is_named_with_the_reason() {
    let plain = json();
    let mut cmd = info_cmd(&["--json"]);
    cmd.env("IOCPORT_BACKEND", "epoll");
    let v: Value = serde_json::from_slice(&output(cmd).stdout).expect("JSON");
    let b = &v["backend"];
    assert_eq!(b["available"], true, "{b}");
    assert_eq!(b["kind"], "epoll", "{b}");
    let reason = b["reason"].as_str().expect("backend.reason");
    assert!(reason.contains("IOCPORT_BACKEND"), "{reason}");
    assert!(b["submit_mode"].is_null(), "{b}");
    assert!(b["probes"].is_array(), "{b}");
    // Whether io_uring works is still reported, and as without the variable.
    assert_eq!(
        b["io_uring"]["available"], plain["backend"]["io_uring"]["available"],
        "{b}"
    );

    let mut cmd = info_cmd(&[]);
    cmd.env("IOCPORT_BACKEND", "epoll");
    let text = String::from_utf8(output(cmd).stdout).expect("UTF-8");
    let backend = row(&text, "backend");
    assert!(backend.starts_with("epoll ("), "{backend}");
    assert!(backend.contains("IOCPORT_BACKEND"), "{backend}");
}

// Catches: a port forced onto io_uring reported as the fallback, or an error instead of a report
// where io_uring is forced and refused.
#[test]
fn iocport_backend_io_uring_is_named_or_refused_with_the_reason() {
    let mut cmd = info_cmd(&["--json"]);
    cmd.env("IOCPORT_BACKEND", "io_uring");
    let v: Value = serde_json::from_slice(&output(cmd).stdout).expect("JSON");
    let b = &v["backend"];
    if b["io_uring"]["available"] == true {
        assert_eq!(b["kind"], "io_uring", "{b}");
        let reason = b["reason"].as_str().expect("backend.reason");
        assert!(reason.contains("IOCPORT_BACKEND"), "{reason}");
    } else {
        assert_eq!(b["available"], false, "{b}");
    }

    // Forced onto io_uring under a filter that refuses it: no port, and the report says why.
    let mut cmd = info_cmd(&["--json"]);
    cmd.env("IOCPORT_BACKEND", "io_uring");
    without_io_uring(&mut cmd);
    let v: Value = serde_json::from_slice(&output(cmd).stdout).expect("JSON");
    let b = &v["backend"];
    assert_eq!(b["available"], false, "{b}");
    assert!(b["kind"].is_null(), "{b}");
    assert!(!b["reason"].as_str().expect("a reason").is_empty(), "{b}");
    assert_eq!(b["io_uring"]["available"], false, "{b}");
    assert!(b["probes"].as_array().expect("probes").is_empty(), "{b}");

    let mut cmd = info_cmd(&[]);
    cmd.env("IOCPORT_BACKEND", "io_uring");
    without_io_uring(&mut cmd);
    let text = String::from_utf8(output(cmd).stdout).expect("UTF-8");
    assert!(row(&text, "backend").starts_with("none: "), "{text}");
}

// Catches: a misspelt `IOCPORT_BACKEND` making `info` fail instead of reporting it.
#[test]
fn an_unknown_iocport_backend_is_reported() {
    let mut cmd = info_cmd(&["--json"]);
    cmd.env("IOCPORT_BACKEND", "kqueue");
    let v: Value = serde_json::from_slice(&output(cmd).stdout).expect("JSON");
    let b = &v["backend"];
    assert_eq!(b["available"], false, "{b}");
    let reason = b["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("IOCPORT_BACKEND") && reason.contains("kqueue"),
        "{reason}"
    );
}
