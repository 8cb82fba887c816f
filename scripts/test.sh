#!/usr/bin/env bash
# Every test iocport has: unit, integration and doc tests; the stress tests at full size (release);
# the loom model checks of the port in a bounded configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets
cargo test --workspace --doc
cargo test -p iocport --release --test stress

# loom explores every interleaving of small models of the port (tests/loom.rs). Its own target dir
# keeps the cfg(loom) build from invalidating the normal one.
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
    cargo test -p iocport --release --test loom
