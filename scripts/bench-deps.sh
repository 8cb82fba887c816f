#!/usr/bin/env bash
# Installs the external tools that `iocport bench` compares against: fio (the `file` suite's peers
# `fio-io_uring` and `fio-psync`). Without it those peers are reported as skipped, not as failures.
# Debian/Ubuntu with apt-get; run as root (or with sudo available).
set -euo pipefail

if command -v fio >/dev/null 2>&1; then
    echo "fio is already installed: $(fio --version)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "bench-deps: need root or sudo to install fio" >&2; exit 1; }
    SUDO="sudo"
fi
command -v apt-get >/dev/null 2>&1 || { echo "bench-deps: apt-get not found; install fio by hand" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends fio
echo "installed $(fio --version)"
