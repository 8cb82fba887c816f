//! The C test suite of iocport-capi: compiles every program in `tests/c/` against the public header
//! (`include/iocport/windows.h`) and runs it.
//!
//! Each `tests/c/<area>.c` is built twice, as C11 (`cc -std=c11 -Wall -Wextra -Werror
//! -D_GNU_SOURCE`) and as C++17 (`c++ -x c++ -std=c++17 -Wall -Wextra -Werror`), linked with the
//! crate's shared library (`libiocport_capi.so`, which cargo leaves in `target/<profile>/deps/`,
//! the directory of this test binary), and run as its own process with a deadline: `c_<area>` and
//! `cxx_<area>` are one test each, so a failure names its area and language. `static_post_get`
//! links `post_get.c` with the static library (`libiocport_capi.a`) instead.
//!
//! `CC` and `CXX` choose the compilers (default `cc` and `c++`). The children inherit the
//! environment: `IOCPORT_CAPI_KEEP_GOING=1` makes a program report every failed check instead of
//! stopping at the first (see `tests/c/common.h`); and `IOCPORT_BACKEND` (`io_uring` or `epoll`),
//! which `scripts/test.sh` sets for its second pass: failure messages say which backend was asked
//! for. Executables go to `CARGO_TARGET_TMPDIR` and are deleted after a passing run.
//!
//! The shared library's SONAME is `libiocport.so.0` (the name the install script gives it), so a
//! program linked with `libiocport_capi.so` asks the loader for `libiocport.so.0`: this driver puts
//! a symbolic link of that name to the fresh library in a directory of its own and adds it to the
//! programs' run path.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// How long one C test program may run before it is killed.
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    C,
    Cxx,
}

impl Lang {
    fn tag(self) -> &'static str {
        match self {
            Lang::C => "c",
            Lang::Cxx => "cxx",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Shared,
    Static,
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn backend() -> String {
    match std::env::var("IOCPORT_BACKEND") {
        Ok(b) if !b.is_empty() => format!("IOCPORT_BACKEND={b}"),
        _ => "IOCPORT_BACKEND unset (the default: io_uring where the kernel allows it)".to_string(),
    }
}

/// `target/<profile>/deps/`: where this test binary and the crate's cdylib are.
fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .expect("the test binary's directory")
        .to_path_buf()
}

/// The shared library cargo built for this run.
fn cdylib() -> PathBuf {
    let lib = deps_dir().join("libiocport_capi.so");
    assert!(
        lib.is_file(),
        "the cdylib {} is missing: cargo builds it with the crate (crate-type cdylib in \
         crates/iocport-capi/Cargo.toml); run `cargo build -p iocport-capi` and check the build",
        lib.display()
    );
    lib
}

/// The static library: cargo writes it to `deps/` and copies it up to `target/<profile>/`.
fn staticlib() -> PathBuf {
    let deps = deps_dir();
    let candidates = [
        deps.join("libiocport_capi.a"),
        deps.parent()
            .map(|p| p.join("libiocport_capi.a"))
            .unwrap_or_default(),
    ];
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "the staticlib libiocport_capi.a is in neither {} nor {}: cargo builds it with the crate \
         (crate-type staticlib in crates/iocport-capi/Cargo.toml)",
        candidates[0].display(),
        candidates[1].display()
    );
}

/// Where executables and links go: `CARGO_TARGET_TMPDIR`, or the temporary directory when the
/// tests run as a user who cannot write there (scripts/unprivileged.sh runs them as uid 65534).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let probe = target.join(format!(".iocport-capi-probe-{}", std::process::id()));
        if fs::write(&probe, b"").is_ok() {
            let _ = fs::remove_file(&probe);
            target.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
}

/// A directory holding `libiocport.so.0` (the cdylib's SONAME) as a link to the fresh cdylib.
fn soname_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let lib = cdylib();
        let dir = scratch().join("iocport-capi-lib");
        fs::create_dir_all(&dir).expect("create the library link directory");
        for name in ["libiocport.so.0", "libiocport.so"] {
            // Replace atomically: another test process may be using the link.
            let tmp = dir.join(format!("{name}.{}", std::process::id()));
            let _ = fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&lib, &tmp).expect("create the library link");
            fs::rename(&tmp, dir.join(name)).expect("rename the library link");
        }
        dir
    })
}

/// A compiler from the environment (`CC`, `CXX`), which may carry arguments ("ccache gcc").
fn compiler(var: &str, default: &str) -> Command {
    let spec = std::env::var(var).unwrap_or_default();
    let mut words = spec.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words);
            cmd
        }
        None => Command::new(default),
    }
}

/// Removes what failed runs of earlier processes left (kept for debugging) once it is an hour old.
fn remove_stale(dir: &Path, stem: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(stem) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn compile(area: &str, lang: Lang, link: Link) -> PathBuf {
    let crate_dir = crate_dir();
    let src = crate_dir.join("tests/c").join(format!("{area}.c"));
    assert!(src.is_file(), "{} is missing", src.display());
    let out_dir = scratch().join("iocport-capi-c");
    fs::create_dir_all(&out_dir).expect("create the output directory");
    let link_tag = match link {
        Link::Shared => "",
        Link::Static => "-static",
    };
    let stem = format!("{area}-{}{link_tag}-", lang.tag());
    remove_stale(&out_dir, &stem);
    let exe = out_dir.join(format!("{stem}{}", std::process::id()));

    let mut cmd = match lang {
        Lang::C => {
            let mut c = compiler("CC", "cc");
            c.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE"]);
            c
        }
        Lang::Cxx => {
            let mut c = compiler("CXX", "c++");
            c.args(["-x", "c++", "-std=c++17", "-Wall", "-Wextra", "-Werror"]);
            c
        }
    };
    cmd.arg("-g")
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg("-I")
        .arg(crate_dir.join("tests/c"))
        .arg(&src);
    if lang == Lang::Cxx {
        // What follows are not C++ sources.
        cmd.args(["-x", "none"]);
    }
    cmd.arg("-o").arg(&exe);
    match link {
        Link::Shared => {
            let deps = deps_dir();
            cdylib();
            let sodir = soname_dir();
            cmd.arg("-L")
                .arg(&deps)
                .arg("-liocport_capi")
                .arg(format!("-Wl,-rpath,{}", sodir.display()))
                .arg(format!("-Wl,-rpath,{}", deps.display()))
                .arg("-lpthread")
                .arg("-ldl");
        }
        Link::Static => {
            // The archive by path, so the linker cannot take the .so instead; then what Rust's
            // standard library needs (`rustc --print native-static-libs`).
            cmd.arg(staticlib()).args([
                "-lgcc_s",
                "-lutil",
                "-lrt",
                "-lpthread",
                "-lm",
                "-ldl",
                "-lc",
            ]);
        }
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the compiler ({cmd:?}): {e}"));
    assert!(
        output.status.success(),
        "compiling {} as {} failed ({}):\n{cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
        src.display(),
        match lang {
            Lang::C => "C11",
            Lang::Cxx => "C++17",
        },
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    exe
}

fn read_all(path: &Path) -> String {
    let mut s = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut s);
    }
    String::from_utf8_lossy(&s).into_owned()
}

fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => format!("killed after the {}s deadline", DEADLINE.as_secs()),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!(
                "killed by signal {sig}{}",
                if s.core_dumped() {
                    " (core dumped)"
                } else {
                    ""
                }
            ),
            _ => format!("{s}"),
        },
    }
}

fn run(exe: &Path, what: &str, env: &[(&str, &Path)]) {
    let stdout_path = exe.with_extension("stdout");
    let stderr_path = exe.with_extension("stderr");
    let mut child = Command::new(exe)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("create the stdout file"))
        .stderr(File::create(&stderr_path).expect("create the stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait for the test program") {
            Some(status) => break Some(status),
            None if start.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => thread::sleep(Duration::from_millis(10)),
        }
    };
    let elapsed = start.elapsed();
    let out = read_all(&stdout_path);
    let err = read_all(&stderr_path);
    let ok = matches!(status, Some(s) if s.success());
    if ok {
        let _ = fs::remove_file(exe);
        let _ = fs::remove_file(&stdout_path);
        let _ = fs::remove_file(&stderr_path);
        eprintln!(
            "{what}: passed in {:.2}s ({})",
            elapsed.as_secs_f64(),
            backend()
        );
        return;
    }
    panic!(
        "{what} failed: {} after {:.2}s, with {}\nprogram: {}\n--- stdout\n{out}\n--- stderr\n{err}",
        describe(status),
        elapsed.as_secs_f64(),
        backend(),
        exe.display(),
    );
}

/// Builds `tests/c/plugins/<name>.c` as a shared library linked with the crate's shared library,
/// next to `exe` (the program that loads it).
fn compile_plugin(name: &str, exe: &Path) -> PathBuf {
    let crate_dir = crate_dir();
    let src = crate_dir.join("tests/c/plugins").join(format!("{name}.c"));
    assert!(src.is_file(), "{} is missing", src.display());
    let out = exe.with_extension(format!("{name}.so"));
    let deps = deps_dir();
    cdylib();
    let sodir = soname_dir();
    let mut cmd = compiler("CC", "cc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE"])
        .args(["-g", "-fPIC", "-shared"])
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(&deps)
        .arg("-liocport_capi")
        .arg(format!("-Wl,-rpath,{}", sodir.display()))
        .arg(format!("-Wl,-rpath,{}", deps.display()));
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the compiler ({cmd:?}): {e}"));
    assert!(
        output.status.success(),
        "compiling {} as a shared library failed ({}):\n{cmd:?}\n--- stderr\n{}",
        src.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr),
    );
    out
}

fn check(area: &str, lang: Lang) {
    let exe = compile(area, lang, Link::Shared);
    let what = match lang {
        Lang::C => format!("tests/c/{area}.c (C11)"),
        Lang::Cxx => format!("tests/c/{area}.c (C++17)"),
    };
    // dlopen.c loads a library of tests/c/plugins, named in IOCPORT_CAPI_PLUGIN.
    if area == "dlopen" {
        let plugin = compile_plugin("ctor_thread", &exe);
        run(&exe, &what, &[("IOCPORT_CAPI_PLUGIN", &plugin)]);
        let _ = fs::remove_file(&plugin);
        return;
    }
    run(&exe, &what, &[]);
}

macro_rules! c_tests {
    ($($area:ident => $c:ident, $cxx:ident;)*) => {
        $(
            #[test]
            fn $c() {
                check(stringify!($area), Lang::C);
            }

            #[test]
            fn $cxx() {
                check(stringify!($area), Lang::Cxx);
            }
        )*

        /// Every program in tests/c has its tests above.
        #[test]
        fn every_c_file_is_tested() {
            let known = [$(stringify!($area)),*];
            let dir = crate_dir().join("tests/c");
            for entry in fs::read_dir(&dir).expect("read tests/c") {
                let path = entry.expect("a tests/c entry").path();
                if path.extension().is_some_and(|e| e == "c") {
                    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                    assert!(
                        known.contains(&stem.as_str()),
                        "{} has no test in tests/c_api.rs: add it to c_tests!",
                        path.display()
                    );
                }
            }
        }
    };
}

c_tests! {
    port => c_port, cxx_port;
    post_get => c_post_get, cxx_post_get;
    files => c_files, cxx_files;
    sockets => c_sockets, cxx_sockets;
    acceptex => c_acceptex, cxx_acceptex;
    cancel => c_cancel, cxx_cancel;
    close => c_close, cxx_close;
    errors => c_errors, cxx_errors;
    skip => c_skip, cxx_skip;
    gqcsex => c_gqcsex, cxx_gqcsex;
    concurrency => c_concurrency, cxx_concurrency;
    bsd => c_bsd, cxx_bsd;
    races => c_races, cxx_races;
    transmit => c_transmit, cxx_transmit;
    locks => c_locks, cxx_locks;
    interlocked => c_interlocked, cxx_interlocked;
    sysinfo => c_sysinfo, cxx_sysinfo;
    console => c_console, cxx_console;
    fmtmsg => c_fmtmsg, cxx_fmtmsg;
    ws2tcpip => c_ws2tcpip, cxx_ws2tcpip;
    threads => c_threads, cxx_threads;
    events => c_events, cxx_events;
    dlopen => c_dlopen, cxx_dlopen;
}

/// post_get.c linked with the static library.
#[test]
fn static_post_get() {
    let exe = compile("post_get", Lang::C, Link::Static);
    run(
        &exe,
        "tests/c/post_get.c (C11, static libiocport_capi.a)",
        &[],
    );
}
