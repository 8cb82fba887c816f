#!/usr/bin/env bash
# Every test iocport has: unit, integration and doc tests; the stress tests at full size (release);
# the loom model checks of the port in a bounded configuration. The unit and integration tests run
# twice: as the kernel is, then with IOCPORT_TEST_MISSING=all, which makes the io_uring backend
# believe the kernel lacks every optional feature it probes (cancel by fd, cancel any, multishot
# poll, COOP_TASKRUN), so the paths older kernels (5.11-5.18) take are tested here too.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets
echo "== again, with every optional kernel feature pretended missing"
IOCPORT_TEST_MISSING=all cargo test --workspace --all-targets
cargo test --workspace --doc
cargo test -p iocport --release --test stress

# loom explores every interleaving of small models of the port (tests/loom.rs). Its own target dir
# keeps the cfg(loom) build from invalidating the normal one.
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
    cargo test -p iocport --release --test loom
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test -p iocport --release --test loom_io
