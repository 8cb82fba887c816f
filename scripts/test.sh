#!/usr/bin/env bash
# Every test iocport has: unit, integration and doc tests; the stress tests at full size (release);
# the loom model checks. The unit and integration tests run on both backends and the kernels' paths:
#   1. as the machine is (io_uring where it is allowed);
#   2. with IOCPORT_BACKEND=epoll: the fallback that runs where io_uring is refused (as mio's CI
#      forces its poll backend); a test file that exercises io_uring itself forces io_uring and
#      says so (README, "Testing");
#   3. with IOCPORT_TEST_MISSING=all, which makes the io_uring backend believe the kernel lacks
#      every optional feature it probes (cancel by fd, cancel any, multishot poll, COOP_TASKRUN),
#      so the paths older kernels (5.11-5.18) take are tested here too;
#   4. as an unprivileged user (uid 65534, RLIMIT_MEMLOCK 8 MiB) on both backends, when run as root
#      (scripts/unprivileged.sh).
# The seccomp tests (crates/iocport-cli/tests/seccomp.rs) run the examples and the command where a
# filter refuses io_uring_setup, in every pass.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets
echo "== again, on the epoll backend"
IOCPORT_BACKEND=epoll cargo test --workspace --all-targets
echo "== again, with every optional kernel feature pretended missing"
IOCPORT_TEST_MISSING=all cargo test --workspace --all-targets
if [ "$(id -u)" -eq 0 ]; then
    echo "== again, as an unprivileged user, on both backends"
    bash scripts/unprivileged.sh
else
    echo "== skipping the unprivileged run (it needs root to switch user)"
fi
cargo test --workspace --doc
IOCPORT_BACKEND=epoll cargo test --workspace --doc
cargo test -p iocport --release --test stress
IOCPORT_BACKEND=epoll cargo test -p iocport --release --test stress

# loom explores every interleaving of small models of the port (tests/loom.rs), of leader/followers
# over a model ring (tests/loom_io.rs), of the epoll backend's claim of an operation against
# cancel and close (tests/loom_claim.rs), and of the C library's in-flight record. Its own target dir keeps the cfg(loom) build from
# invalidating the normal one.
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
    cargo test -p iocport --release --test loom
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
    cargo test -p iocport --release --test loom_io
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
    cargo test -p iocport --release --test loom_claim
# The C library's record of the operations in flight on an fd, against cancel, close and
# completion (crates/iocport-capi/src/inflight.rs).
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p iocport-capi --release --lib inflight
# The waits of the Win32 layer: sets against wait-any, wait-all and two waiters of one auto-reset
# event, with no lost wake-up (crates/iocport-capi/src/wait.rs).
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
    cargo test -p iocport-capi --release --lib wait::loom
# The C library's locks (crates/iocport-capi/src/locks.rs): CRITICAL_SECTION ownership and
# recursion, and the condition variable's sleep/wake glue (no lost wake-up, timeout against wake).
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=4 CARGO_TARGET_DIR=target/loom \
    cargo test -p iocport-capi --release --lib locks::
