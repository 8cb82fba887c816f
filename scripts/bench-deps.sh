#!/usr/bin/env bash
# Installs the external tools that `iocport bench` compares against. Without them the peers that
# need them are reported as skipped (and listed as not comparable), never as failures.
# Debian/Ubuntu with apt-get; run as root (or with sudo available). Idempotent: a tool already on
# PATH is left alone.
#
#   bash scripts/bench-deps.sh                 fails (exit 1) if a tool cannot be installed: CI
#   bash scripts/bench-deps.sh --best-effort   installs what it can, says what is still missing
#                                              and why, and exits 0: the README's first command,
#                                              which must run on any machine
#
#   fio    the `file` suite's peers `fio-io_uring` and `fio-psync` (random reads at a queue depth)
#   wrk    the `http` suite's load generator (both iocport serve and nginx are measured with it)
#   nginx  the `http` suite's peer. Debian's `nginx` package is the server binary alone (the
#          `nginx-light`/`-full`/`-extras` packages only add modules); the benchmark runs it with a
#          config of its own, so the packaged service is not wanted and must not keep running.
#
# Debian's nginx postinst starts the service (`invoke-rc.d nginx start`), which in a container
# without systemd runs /etc/init.d/nginx and leaves a server on port 80. A policy-rc.d that exits
# 101 ("action forbidden") stops that during the install; any nginx the packaged service left
# running anyway is stopped afterwards.
set -euo pipefail

BEST_EFFORT=0
case "${1:-}" in
    "") ;;
    --best-effort) BEST_EFFORT=1 ;;
    *) echo "usage: bash scripts/bench-deps.sh [--best-effort]" >&2; exit 2 ;;
esac

# Cannot install: an error, or with --best-effort a warning (the benchmark runs without them).
give_up() {
    if [ "$BEST_EFFORT" -eq 1 ]; then
        echo "bench-deps: $1; iocport bench will skip the peers that need them" >&2
        exit 0
    fi
    echo "bench-deps: $1" >&2
    exit 1
}

# tool -> package
declare -A PACKAGE=([fio]=fio [wrk]=wrk [nginx]=nginx)

have() {
    # nginx lives in /usr/sbin, which a non-root PATH may lack.
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]
}

missing=()
for tool in fio wrk nginx; do
    if have "$tool"; then
        echo "bench-deps: $tool is already installed"
    else
        missing+=("${PACKAGE[$tool]}")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || give_up "need root or sudo to install ${missing[*]}"
    SUDO="sudo"
fi
command -v apt-get >/dev/null 2>&1 || give_up "apt-get not found; install ${missing[*]} by hand"

# Forbid service starts while installing, restoring whatever policy-rc.d was there before.
POLICY=/usr/sbin/policy-rc.d
SAVED=""
if [ -e "$POLICY" ]; then
    SAVED="$(mktemp)"
    $SUDO cp -p "$POLICY" "$SAVED"
fi
restore_policy() {
    if [ -n "$SAVED" ]; then
        $SUDO cp -p "$SAVED" "$POLICY"
        rm -f "$SAVED"
    else
        $SUDO rm -f "$POLICY"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# bench-deps.sh: no service starts during the install\nexit 101\n' |
    $SUDO tee "$POLICY" >/dev/null
$SUDO chmod 755 "$POLICY"

export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -q &&
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; }; then
    echo "bench-deps: apt-get could not install ${missing[*]}" >&2
fi

# The packaged nginx service must not be left running (it would hold port 80 and compete for the
# CPUs with the benchmark).
if [ -x /etc/init.d/nginx ] && [ -s /run/nginx.pid ]; then
    $SUDO /etc/init.d/nginx stop >/dev/null 2>&1 || true
fi
if [ -s /run/nginx.pid ]; then
    $SUDO kill -QUIT "$(cat /run/nginx.pid)" 2>/dev/null || true
fi

still=()
for tool in fio wrk nginx; do
    have "$tool" || still+=("$tool")
done
[ "${#still[@]}" -eq 0 ] || give_up "still missing: ${still[*]}"
echo "bench-deps: fio, wrk and nginx are installed"
