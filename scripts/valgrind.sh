#!/usr/bin/env bash
# Runs representative I/O tests under valgrind's memcheck, on both backends: the kernel must never
# write into freed memory, and closing a port (or dropping handles) with operations in flight must
# free everything.
#
#   scripts/valgrind.sh            # io_cancel's close/drop/stale-id tests + io_file's round trip
#   scripts/valgrind.sh FILTER...  # io_cancel tests matching FILTER instead
#
# Only single-threaded tests are run: valgrind 3.19 does not treat io_uring_enter as a blocking
# system call, so while one thread waits in it (a port's leader in `get`) valgrind runs no other
# thread, and tests where another thread must make progress meanwhile stall until the wait times
# out. (Measured: a 100 ms sleep on the main thread took 3 s while a worker sat in get(3 s).)
#
# Note: memcheck cannot see the kernel's asynchronous writes into buffers lent to io_uring (it sees
# the syscalls io_uring_setup/enter/register, not the work the kernel does later); buffers are
# initialised before they are lent, so this stays quiet, but it means memcheck checks our own
# memory handling (use-after-free, leaks, double frees) rather than the kernel's accesses.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "valgrind.sh: valgrind is not installed" >&2
    exit 2
fi

# Build the test binaries and find their paths.
build_json=$(cargo test -p iocport --test io_cancel --test io_file --no-run --message-format=json)
bin_of() {
    printf '%s\n' "$build_json" | grep '"executable":"[^"]*' -o | cut -d'"' -f4 | grep "/$1-" | tail -n1
}
io_cancel=$(bin_of io_cancel)
io_file=$(bin_of io_file)
[[ -x "$io_cancel" && -x "$io_file" ]] || { echo "valgrind.sh: test binaries not found" >&2; exit 2; }

# Can valgrind run an io_uring program at all? (Older valgrinds reject io_uring_setup with ENOSYS:
# then the port reports Error::Unavailable and every I/O test would fail for that reason alone.)
probe_log=$(mktemp)
trap 'rm -f "$probe_log"' EXIT
if ! valgrind -q --error-exitcode=1 "$io_cancel" --test-threads=1 --exact \
    cancel_of_completed_op_is_not_found >"$probe_log" 2>&1; then
    if grep -qiE "unavailable|io_uring|unhandled syscall|ENOSYS" "$probe_log"; then
        echo "valgrind.sh: valgrind $(valgrind --version) cannot run io_uring programs here:" >&2
        grep -iE "unavailable|io_uring|unhandled syscall" "$probe_log" | head -n5 >&2
        exit 3
    fi
    cat "$probe_log" >&2
    exit 1
fi

vg=(valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
    --error-exitcode=1 --track-origins=yes -q)

if [[ $# -gt 0 ]]; then
    filters=("$@")
else
    filters=(close_with_thousand_recvs_in_flight handle_drop_cancels_ops_and_closes_the_fd_after_the_last
             stale_id_never_cancels_the_slots_new_tenant cancel_all_cancels_only_this_handles_ops
             cancelled_timer_reports_ecanceled)
fi
# On both backends: io_uring, then the epoll fallback (its thread pool and fd queues own the
# operations' memory in user space, which memcheck sees in full).
for backend in io_uring epoll; do
    export IOCPORT_BACKEND=$backend
    for t in "${filters[@]}"; do
        echo "== valgrind ($backend) io_cancel $t"
        "${vg[@]}" "$io_cancel" --test-threads=1 --exact "$t"
    done
    echo "== valgrind ($backend) io_file write_at_fsync_read_at_round_trip"
    "${vg[@]}" "$io_file" --test-threads=1 --exact write_at_fsync_read_at_round_trip
done
echo "valgrind.sh: note: $(valgrind --version) runs io_uring, but blocks every thread while one waits in io_uring_enter; multi-threaded I/O tests are not run under it"
echo "valgrind.sh: no memory errors, no definite or indirect leaks"
