//! The `http` suite: static files over HTTP/1.1 on 127.0.0.1, `iocport serve` against nginx,
//! both under the same `wrk` load.
//!
//! Cases `http_4k` and `http_1m`: `wrk -t2 -c64 -d{secs}s --latency` fetching one 4 KiB or 1 MiB
//! file over keep-alive connections for [`RUNTIME`] per round ([`QUICK_RUNTIME`] with `--quick`).
//! Metrics: `requests_per_s`, and wrk's latency distribution `p50_ns` and `p99_ns`.
//!
//! - `iocport`: this very binary (`std::env::current_exe()`) as `iocport serve DIR --listen
//!   127.0.0.1:0 --threads N`, N = CPUs; it prints `http://127.0.0.1:PORT` on stderr once it
//!   listens, and stops on SIGINT.
//! - `iocport-epoll`: the same with `--backend epoll` (the epoll backend forced: readiness for the
//!   sockets, a thread pool for the file reads).
//! - `nginx`: `worker_processes N`, `sendfile on`, `access_log off`, keep-alive without a request
//!   limit, a config written for the run (`daemon off; master_process on;`, pid, logs and temp
//!   paths in the run's directory), listening on a free port of 127.0.0.1. Stopped with SIGINT.
//!
//! Every round starts a fresh server, checks that it serves the file byte for byte, runs wrk, and
//! stops the server; a [`Guard`] stops it on any error too. wrk is killed if it overruns its
//! duration by [`WRK_GRACE`]. Without wrk the suite is skipped; without nginx only iocport and
//! iocport-epoll are measured; both with a note naming `scripts/bench-deps.sh`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::child::{find_tool, Guard};
use super::{
    cpus, epoll_note, run_case, tool_version, Config, Contender, Goal, Report, Target, Values,
    IOCPORT, IOCPORT_EPOLL,
};

const SUITE: &str = "http";
const NGINX: &str = "nginx";
/// One round's load in a full run.
const RUNTIME: Duration = Duration::from_secs(5);
/// One round's load with `--quick`.
const QUICK_RUNTIME: Duration = Duration::from_secs(1);
/// Measured rounds per case in a full run (after one warm-up round): a round is [`RUNTIME`] long.
const FULL_ROUNDS: usize = 3;
/// wrk's load: threads and connections.
const WRK_THREADS: usize = 2;
const CONNECTIONS: usize = 64;
/// How long wrk may run past its duration before it is killed.
const WRK_GRACE: Duration = Duration::from_secs(15);
/// How long a server may take to start listening.
const START_WAIT: Duration = Duration::from_secs(10);
/// The files served, by case.
const FILES: [(&str, &str, usize); 2] =
    [("http_4k", "4k.bin", 4096), ("http_1m", "1m.bin", 1 << 20)];

/// Runs the suite.
pub(crate) fn run(cfg: &Config) -> Result<Report, String> {
    let mut report = Report::default();
    let Some(wrk) = find_tool("wrk", &[]) else {
        report.missing_tool("wrk", "the http suite (iocport serve and nginx)");
        return Ok(report);
    };
    let nginx = find_tool("nginx", &["/usr/sbin/nginx", "/usr/local/sbin/nginx"]);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let runtime = if cfg.quick { QUICK_RUNTIME } else { RUNTIME };
    let http_cfg = cfg.with_rounds(FULL_ROUNDS, true);
    let threads = cpus();
    let dir = RunDir::create()?;
    let docroot = dir.path.join("www");
    fs::create_dir_all(&docroot)
        .map_err(|e| format!("cannot create {}: {e}", docroot.display()))?;
    for (_, name, size) in FILES {
        let content: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let path = docroot.join(name);
        fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    // nginx's workers run as `nobody` when it is started as root: whatever the umask, they must
    // be able to read the files.
    readable_by_all(&[&dir.path, &docroot], &FILES.map(|f| docroot.join(f.1)))?;

    let nginx_version = nginx.as_deref().map(version_of_nginx);
    report.notes.push(format!(
        "http_*: {} -t{WRK_THREADS} -c{CONNECTIONS} -d{}s --latency fetching one file over \
         keep-alive connections, {} round(s) per system{}; a fresh server per round; iocport \
         serve --threads {threads}{}",
        tool_version(&wrk, "-v")
            .map(|v| v.split(" [").next().unwrap_or("wrk").to_owned())
            .unwrap_or_else(|| "wrk".into()),
        runtime.as_secs(),
        http_cfg.rounds,
        if http_cfg.warmup {
            " after a warm-up round"
        } else {
            ""
        },
        match &nginx_version {
            Some(v) => format!(
                "; {v} with worker_processes {threads}, sendfile on, access_log off, \
                 keepalive_requests unlimited"
            ),
            None => String::new(),
        },
    ));
    report
        .notes
        .push(epoll_note("iocport serve --backend epoll"));
    if nginx.is_none() {
        report.missing_tool("nginx", "the nginx peer");
    }

    for (case, file, size) in FILES {
        let url_path = format!("/{file}");
        let load = Load {
            wrk: &wrk,
            path: &url_path,
            size,
            docroot: &docroot,
            runtime,
        };
        let exe = &exe;
        let mut contenders = vec![
            Contender::new(IOCPORT, move || {
                let server = ServeServer::start(exe, load.docroot, threads, &[])?;
                load.round(server)
            }),
            Contender::new(IOCPORT_EPOLL, move || {
                let server =
                    ServeServer::start(exe, load.docroot, threads, &["--backend", "epoll"])?;
                load.round(server)
            }),
        ];
        if let Some(nginx) = &nginx {
            let dir = &dir.path;
            contenders.push(Contender::new(NGINX, move || {
                let server = NginxServer::start(nginx, dir, load.docroot, threads)?;
                load.round(server)
            }));
        }
        report
            .records
            .extend(run_case(&http_cfg, SUITE, case, contenders)?);
    }
    report.targets.extend([
        Target {
            case: "http_4k",
            metric: "requests_per_s",
            goal: Goal::AtLeastFactorOf {
                peer: NGINX,
                factor: 1.3,
            },
        },
        Target {
            case: "http_1m",
            metric: "requests_per_s",
            goal: Goal::AtLeastFactorOf {
                peer: NGINX,
                factor: 1.0,
            },
        },
    ]);
    Ok(report)
}

/// Gives `dirs` mode 0755 and `files` mode 0644.
fn readable_by_all(dirs: &[&Path], files: &[PathBuf]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &Path, mode| {
        fs::set_permissions(p, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot chmod {}: {e}", p.display()))
    };
    dirs.iter().try_for_each(|d| set(d, 0o755))?;
    files.iter().try_for_each(|f| set(f, 0o644))
}

/// A directory for one run (docroot, nginx's config and logs), removed on drop.
struct RunDir {
    path: PathBuf,
}

impl RunDir {
    fn create() -> Result<RunDir, String> {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "iocport-bench-http-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(RunDir { path })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A server under test, running in a child process.
trait Server {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;
    /// Stops it (SIGINT) and checks that it exited cleanly.
    fn stop(self) -> Result<(), String>;
}

/// One round's load: the file every system serves and how wrk fetches it.
#[derive(Clone, Copy)]
struct Load<'a> {
    wrk: &'a Path,
    path: &'a str,
    size: usize,
    docroot: &'a Path,
    runtime: Duration,
}

impl Load<'_> {
    /// Checks that `server` serves the file, runs wrk against it, stops it.
    fn round(&self, server: impl Server) -> Result<Values, String> {
        let addr = server.addr();
        let checked = check_get(
            addr,
            self.path,
            &self.docroot.join(&self.path[1..]),
            self.size,
        );
        let measured = checked.and_then(|()| self.wrk(addr));
        let stopped = server.stop();
        let values = measured?;
        stopped?;
        Ok(values)
    }

    /// `wrk` for the round's runtime, parsed.
    fn wrk(&self, addr: SocketAddr) -> Result<Values, String> {
        let url = format!("http://{addr}{}", self.path);
        let mut cmd = Command::new(self.wrk);
        cmd.arg(format!("-t{WRK_THREADS}"))
            .arg(format!("-c{CONNECTIONS}"))
            .arg(format!("-d{}s", self.runtime.as_secs().max(1)))
            .arg("--latency")
            .arg(&url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut wrk = Guard::spawn("wrk", &mut cmd)?;
        let (Some(mut stdout), Some(mut stderr)) = (
            wrk.child().and_then(|c| c.stdout.take()),
            wrk.child().and_then(|c| c.stderr.take()),
        ) else {
            return Err("wrk has no output pipes".into());
        };
        // wrk's report is short (about 1 KiB): it fits in the pipe until wrk has exited.
        let status = wrk.wait(self.runtime + WRK_GRACE)?;
        let (mut out, mut err) = (String::new(), String::new());
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        if !status.success() {
            return Err(format!("wrk failed ({status}): {}", err.trim()));
        }
        let r = parse_wrk(&out)?;
        if r.requests == 0 {
            return Err("wrk completed no request".into());
        }
        if r.bad_status > 0 {
            return Err(format!(
                "{} of {} responses were not 2xx or 3xx",
                r.bad_status, r.requests
            ));
        }
        if r.socket_errors * 100 > r.requests {
            return Err(format!(
                "{} socket errors in {} requests",
                r.socket_errors, r.requests
            ));
        }
        Ok(vec![
            ("requests_per_s", r.requests_per_s),
            ("p50_ns", r.p50_ns),
            ("p99_ns", r.p99_ns),
        ])
    }
}

/// What wrk reported.
#[derive(Debug, PartialEq)]
struct WrkReport {
    requests_per_s: f64,
    p50_ns: f64,
    p99_ns: f64,
    requests: u64,
    /// Responses with a status other than 2xx or 3xx.
    bad_status: u64,
    /// Socket errors: connect, read, write, timeout.
    socket_errors: u64,
}

/// Parses wrk's `--latency` report.
fn parse_wrk(out: &str) -> Result<WrkReport, String> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let mut requests = None;
    let mut bad_status = 0;
    let mut socket_errors = 0;
    let mut in_distribution = false;
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_distribution = true;
        } else if in_distribution && t.contains('%') {
            let mut parts = t.split_whitespace();
            let (Some(pct), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let ns = parse_duration_ns(value)
                .ok_or_else(|| format!("wrk: cannot read the latency '{value}'"))?;
            match pct {
                "50%" | "50.000%" => p50 = Some(ns),
                "99%" | "99.000%" => p99 = Some(ns),
                _ => {}
            }
        } else {
            in_distribution = false;
        }
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            bad_status = v.trim().parse().unwrap_or(u64::MAX);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 3"
            socket_errors = v
                .split(',')
                .filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if t.contains(" requests in ") {
            requests = t.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    Ok(WrkReport {
        requests_per_s: rps.ok_or("wrk printed no Requests/sec")?,
        p50_ns: p50.ok_or("wrk printed no 50% latency (was --latency given?)")?,
        p99_ns: p99.ok_or("wrk printed no 99% latency (was --latency given?)")?,
        requests: requests.ok_or("wrk printed no request count")?,
        bad_status,
        socket_errors,
    })
}

/// A wrk duration (`751.00us`, `1.87ms`, `2.00s`, `1.50m`) in nanoseconds.
fn parse_duration_ns(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    Some(v * scale)
}

/// One `GET path` with `Connection: close`: the response must be 200 with exactly the bytes of
/// `file` (`size` of them).
fn check_get(addr: SocketAddr, path: &str, file: &Path, size: usize) -> Result<(), String> {
    let expected = fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    debug_assert_eq!(expected.len(), size);
    let mut s = TcpStream::connect_timeout(&addr, START_WAIT)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(START_WAIT))
        .and_then(|()| s.set_write_timeout(Some(START_WAIT)))
        .map_err(|e| format!("socket options: {e}"))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send the check request: {e}"))?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)
        .map_err(|e| format!("read the check response: {e}"))?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the check response has no header end")?;
    let head = String::from_utf8_lossy(&response[..head_end]);
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("GET {path} answered '{status}', not 200"));
    }
    let body = &response[head_end + 4..];
    if body != expected.as_slice() {
        return Err(format!(
            "GET {path} returned {} body bytes that differ from the file's {size}",
            body.len()
        ));
    }
    Ok(())
}

/// A free port of 127.0.0.1 (bound, read, released: the server binds it right after).
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// `nginx/1.22.1`.
fn version_of_nginx(nginx: &Path) -> String {
    tool_version(nginx, "-v")
        .and_then(|l| l.rsplit(' ').next().map(str::to_owned))
        .unwrap_or_else(|| "nginx".into())
}

// ---------------------------------------------------------------------------------------------
// iocport serve

/// `iocport serve`, started from this binary.
struct ServeServer {
    guard: Guard,
    addr: SocketAddr,
    /// The last lines it wrote to stderr, for error messages.
    log: Arc<Mutex<Vec<String>>>,
}

impl ServeServer {
    /// Starts it (with `extra` arguments after the usual ones) and waits for the line announcing
    /// its address.
    fn start(
        exe: &Path,
        docroot: &Path,
        threads: usize,
        extra: &[&str],
    ) -> Result<ServeServer, String> {
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg(docroot)
            .args(["--listen", "127.0.0.1:0", "--threads"])
            .arg(threads.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut guard = Guard::spawn("iocport serve", &mut cmd)?;
        let stderr = guard
            .child()
            .and_then(|c| c.stderr.take())
            .ok_or("iocport serve has no stderr")?;
        // A thread reads stderr to its end (so the pipe never fills), keeps the last lines, and
        // hands over the address when it appears.
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if !sent {
                        if let Some(addr) = announced_addr(&line) {
                            let _ = tx.send(addr);
                            sent = true;
                        }
                    }
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    if log.len() >= 20 {
                        log.remove(0);
                    }
                    log.push(line);
                }
            });
        }
        let deadline = Instant::now() + START_WAIT;
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(addr) => break addr,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stderr closed without an address: it exited (or is about to).
                    let status = guard.wait(STOP_WAIT_SHORT)?;
                    // Let the reader store the last lines.
                    std::thread::sleep(Duration::from_millis(20));
                    return Err(format!(
                        "iocport serve exited ({status}) before listening: {}",
                        tail(&log)
                    ));
                }
            }
            if let Some(status) = guard.try_wait()? {
                std::thread::sleep(Duration::from_millis(20));
                return Err(format!(
                    "iocport serve exited ({status}) before listening: {}",
                    tail(&log)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "iocport serve printed no http://127.0.0.1:PORT within {START_WAIT:?}: {}",
                    tail(&log)
                ));
            }
        };
        Ok(ServeServer { guard, addr, log })
    }
}

/// How long a child whose stderr closed may take to exit.
const STOP_WAIT_SHORT: Duration = Duration::from_secs(5);

/// The address in a line containing `http://127.0.0.1:PORT`.
fn announced_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("http://127.0.0.1:")? + "http://".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The lines kept from a server's stderr, joined.
fn tail(log: &Mutex<Vec<String>>) -> String {
    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    if log.is_empty() {
        "(no output)".into()
    } else {
        log.join(" | ")
    }
}

/// Stops a server process with SIGINT: an error, with the last lines of its log (`tail`), if it
/// had exited already (during the load) or exits unsuccessfully.
fn stop_server(guard: &mut Guard, name: &str, tail: impl Fn() -> String) -> Result<(), String> {
    if let Some(status) = guard.try_wait()? {
        return Err(format!(
            "{name} exited ({status}) during the load: {}",
            tail()
        ));
    }
    let status = guard.stop()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{name} exited with {status} after SIGINT: {}",
            tail()
        ))
    }
}

impl Server for ServeServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn stop(mut self) -> Result<(), String> {
        stop_server(&mut self.guard, "iocport serve", || {
            // Let the thread that reads its stderr catch up with the last lines.
            std::thread::sleep(Duration::from_millis(20));
            tail(&self.log)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// nginx

/// nginx with a config of the run's own.
struct NginxServer {
    guard: Guard,
    addr: SocketAddr,
    /// Its error log.
    log: PathBuf,
}

impl NginxServer {
    /// Writes the config, starts nginx in the foreground and waits until it accepts connections.
    fn start(
        nginx: &Path,
        dir: &Path,
        docroot: &Path,
        workers: usize,
    ) -> Result<NginxServer, String> {
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let prefix = dir.join("nginx");
        fs::create_dir_all(&prefix)
            .map_err(|e| format!("cannot create {}: {e}", prefix.display()))?;
        let conf = prefix.join("nginx.conf");
        let log = prefix.join("error.log");
        let _ = fs::remove_file(&log);
        fs::write(&conf, nginx_conf(&prefix, docroot, addr, workers))
            .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        let mut cmd = Command::new(nginx);
        cmd.arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut guard = Guard::spawn("nginx", &mut cmd)?;
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Some(status) = guard.try_wait()? {
                return Err(format!(
                    "nginx exited ({status}) before listening: {}",
                    log_tail(&log)
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(NginxServer { guard, addr, log });
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nginx did not listen on {addr} within {START_WAIT:?}: {}",
                    log_tail(&log)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Server for NginxServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn stop(mut self) -> Result<(), String> {
        stop_server(&mut self.guard, "nginx", || log_tail(&self.log))
    }
}

/// The last lines of a log file.
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(empty error log)".into()
    } else {
        tail
    }
}

/// nginx's config: `workers` processes, static files from `docroot` on `addr`, everything it
/// writes (pid, logs, temp files) under `prefix`.
fn nginx_conf(prefix: &Path, docroot: &Path, addr: SocketAddr, workers: usize) -> String {
    let p = prefix.display();
    format!(
        "# Written by `iocport bench http`.\n\
         worker_processes {workers};\n\
         daemon off;\n\
         master_process on;\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\n\
         events {{\n    worker_connections 1024;\n}}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   sendfile on;\n\
         \x20   tcp_nopush on;\n\
         \x20   keepalive_timeout 65;\n\
         \x20   keepalive_requests 100000000;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   client_body_temp_path {p}/client_body;\n\
         \x20   proxy_temp_path {p}/proxy;\n\
         \x20   fastcgi_temp_path {p}/fastcgi;\n\
         \x20   uwsgi_temp_path {p}/uwsgi;\n\
         \x20   scgi_temp_path {p}/scgi;\n\
         \x20   server {{\n\
         \x20       listen {addr};\n\
         \x20       root {};\n\
         \x20   }}\n\
         }}\n",
        docroot.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as wrk 4.1.0 (Debian 12) prints it with `--latency`.
    const SAMPLE: &str = "Running 1s test @ http://127.0.0.1:18080/4k.bin
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.18ms    1.10ms   5.20ms   79.99%
    Req/Sec    30.80k     1.99k   34.27k    75.00%
  Latency Distribution
     50%  751.00us
     75%    1.87ms
     90%    2.78ms
     99%    3.96ms
  61300 requests in 1.00s, 254.36MB read
Requests/sec:  61125.85
Transfer/sec:    253.64MB
";

    #[test]
    fn parses_wrk_latency_report() {
        let r = parse_wrk(SAMPLE).unwrap();
        assert_eq!(
            r,
            WrkReport {
                requests_per_s: 61125.85,
                p50_ns: 751_000.0,
                p99_ns: 3_960_000.0,
                requests: 61300,
                bad_status: 0,
                socket_errors: 0,
            }
        );
    }

    #[test]
    fn parses_wrk_errors() {
        let out = SAMPLE.replace(
            "Requests/sec:",
            "  Socket errors: connect 0, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 82842\nRequests/sec:",
        );
        let r = parse_wrk(&out).unwrap();
        assert_eq!((r.bad_status, r.socket_errors), (82842, 5));
        assert!(parse_wrk("Running 1s test\n").is_err());
        let no_latency = SAMPLE.replace("Latency Distribution", "");
        assert!(parse_wrk(&no_latency).unwrap_err().contains("--latency"));
    }

    #[test]
    fn wrk_durations() {
        assert_eq!(parse_duration_ns("751.00us"), Some(751_000.0));
        assert_eq!(parse_duration_ns("1.87ms"), Some(1_870_000.0));
        assert_eq!(parse_duration_ns("2.00s"), Some(2e9));
        assert_eq!(parse_duration_ns("1.50m"), Some(90e9));
        assert_eq!(parse_duration_ns("7"), None);
        assert_eq!(parse_duration_ns("3.0xs"), None);
    }

    #[test]
    fn finds_the_announced_address() {
        assert_eq!(
            announced_addr("iocport serve: listening on http://127.0.0.1:40123/ (2 threads)"),
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 40123)))
        );
        assert_eq!(
            announced_addr("http://127.0.0.1:8080"),
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)))
        );
        assert_eq!(announced_addr("starting"), None);
    }

    #[test]
    fn nginx_config_is_self_contained() {
        let conf = nginx_conf(
            Path::new("/tmp/x"),
            Path::new("/tmp/x/www"),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 8081)),
            2,
        );
        for line in [
            "worker_processes 2;",
            "daemon off;",
            "master_process on;",
            "pid /tmp/x/nginx.pid;",
            "access_log off;",
            "sendfile on;",
            "listen 127.0.0.1:8081;",
            "root /tmp/x/www;",
        ] {
            assert!(conf.contains(line), "{line} missing from\n{conf}");
        }
    }

    /// A stand-in for `iocport serve`: the handshake (the address read from stderr), the stop
    /// (SIGINT, exit 0), and a server that fails before listening.
    #[test]
    fn serve_handshake_and_failures() {
        use std::os::unix::fs::PermissionsExt;
        let dir = RunDir::create().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path.join(name);
            fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let good = script(
            "good",
            "[ \"$1 $3 $4 $5\" = \"serve --listen 127.0.0.1:0 --threads\" ] || exit 9\n\
             trap 'exit 0' INT\n\
             echo \"fake serve: listening on http://127.0.0.1:4321 with $6 threads\" >&2\n\
             while :; do sleep 0.01; done",
        );
        let server = ServeServer::start(&good, &dir.path, 2, &[]).unwrap();
        assert_eq!(server.addr(), SocketAddr::from((Ipv4Addr::LOCALHOST, 4321)));
        server.stop().unwrap();

        // iocport-epoll's extra arguments come after the usual ones.
        let epoll = script(
            "epoll",
            "[ \"$1 $3 $4 $5 $7 $8\" = \"serve --listen 127.0.0.1:0 --threads --backend epoll\" ] \
             || exit 9\n\
             trap 'exit 0' INT\n\
             echo \"fake serve: listening on http://127.0.0.1:4323\" >&2\n\
             while :; do sleep 0.01; done",
        );
        let server = ServeServer::start(&epoll, &dir.path, 2, &["--backend", "epoll"]).unwrap();
        assert_eq!(server.addr(), SocketAddr::from((Ipv4Addr::LOCALHOST, 4323)));
        server.stop().unwrap();

        let failing = script("failing", "echo 'serve: not built yet' >&2; exit 1");
        let e = ServeServer::start(&failing, &dir.path, 2, &[])
            .err()
            .unwrap();
        assert!(
            e.contains("before listening") && e.contains("not built yet"),
            "{e}"
        );

        let crashing = script(
            "crashing",
            "echo 'http://127.0.0.1:4322' >&2; trap 'exit 3' INT; while :; do sleep 0.01; done",
        );
        let server = ServeServer::start(&crashing, &dir.path, 2, &[]).unwrap();
        let e = server.stop().unwrap_err();
        assert!(e.contains("after SIGINT"), "{e}");
    }

    /// nginx against a check request and a short wrk run, when both are installed.
    #[test]
    fn nginx_serves_and_wrk_measures() {
        let (Some(nginx), Some(wrk)) = (
            find_tool("nginx", &["/usr/sbin/nginx"]),
            find_tool("wrk", &[]),
        ) else {
            eprintln!("nginx or wrk not installed: skipped");
            return;
        };
        let dir = RunDir::create().unwrap();
        let docroot = dir.path.join("www");
        fs::create_dir_all(&docroot).unwrap();
        fs::write(docroot.join("4k.bin"), vec![7u8; 4096]).unwrap();
        let load = Load {
            wrk: &wrk,
            path: "/4k.bin",
            size: 4096,
            docroot: &docroot,
            runtime: Duration::from_secs(1),
        };
        let server = NginxServer::start(&nginx, &dir.path, &docroot, 1).unwrap();
        let values = load.round(server).unwrap();
        let names: Vec<_> = values.iter().map(|v| v.0).collect();
        assert_eq!(names, ["requests_per_s", "p50_ns", "p99_ns"]);
        assert!(values.iter().all(|v| v.1 > 0.0));
        // A missing file is an error, not a fast server.
        let server = NginxServer::start(&nginx, &dir.path, &docroot, 1).unwrap();
        let e = check_get(server.addr(), "/nope.bin", &docroot.join("4k.bin"), 4096).unwrap_err();
        assert!(e.contains("404"), "{e}");
        server.stop().unwrap();
    }
}
