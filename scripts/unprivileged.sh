#!/usr/bin/env bash
# Runs the test binaries of the library and of the command as an unprivileged user, the way a
# program using iocport usually runs: uid and gid 65534 (nobody/nogroup), no supplementary groups,
# no capabilities, and RLIMIT_MEMLOCK 8 MiB (soft and hard; the common default). Twice: with the
# backend the library picks by itself (io_uring where it is allowed), then with
# IOCPORT_BACKEND=epoll.
#
#   bash scripts/unprivileged.sh                # every test binary of the workspace
#   bash scripts/unprivileged.sh info seccomp   # only the test targets with these names (or
#                                               # full labels, as iocport-cli/test/seccomp)
#
# Must be started as root (it switches user with setpriv; prlimit sets the limit). The binaries
# are built as root first (`cargo test --workspace --all-targets --no-run`, so nothing is rebuilt
# after `cargo test --workspace --all-targets`), then each test binary runs in its package's
# directory, as `cargo test` would run it, with a fresh TMPDIR (and HOME) owned by the user.
# Doc tests are not run (they have no binary to run as another user).
#
# Permissions: the test binaries have their paths compiled in (CARGO_BIN_EXE_iocport, the
# examples beside it, CARGO_MANIFEST_DIR), so they run where they are. The user needs search (x)
# permission on every directory from / down to them and to the package directories, and execute
# permission on the binaries; a clone under /root, or made with umask 077, lacks it. The script
# adds the missing o+x bits (o+rx on binaries) to exactly those paths, prints each one it changes,
# and puts every mode back when it exits, however it exits.
#
# Tests that cannot run unprivileged skip themselves with a note (mounting a tmpfs needs root, for
# instance): every test whose output mentions a skip is listed by name with its note, and so is
# every #[ignore]d test. Exit status: 0 if every binary passed in both runs; 1 if a test failed (the
# binary and the tests are named, with the end of the log); 2 if the run could not be set up.
set -euo pipefail
cd "$(dirname "$0")/.."

USER_ID=65534
GROUP_ID=65534
MEMLOCK=$((8 << 20))
# The most one test binary may take before it (and every process in its group) is killed.
BINARY_TIMEOUT=20m

die() {
    echo "unprivileged.sh: $*" >&2
    exit 2
}

[[ "$(id -u)" -eq 0 ]] || die "must run as root, to switch to uid $USER_ID"
for tool in setpriv prlimit timeout cargo; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# ---------------------------------------------------------------------------------------------
# Build, and find the binaries.

echo "== unprivileged: building the test binaries (as root)"
build_json=$(cargo test --workspace --all-targets --no-run --message-format=json)

# One line per executable: "<test|other> <package>/<target kind>/<target name> <package dir>
# <executable>" (the library's unit tests are iocport/lib/iocport, the command's
# iocport-cli/bin/iocport, an integration test iocport-cli/test/seccomp).
artifacts=$(printf '%s\n' "$build_json" | grep '"reason":"compiler-artifact"' |
    grep '"executable":"' | while IFS= read -r line; do
    exe=$(sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' <<<"$line")
    manifest=$(sed -n 's/.*"manifest_path":"\([^"]*\)".*/\1/p' <<<"$line")
    name=$(sed -n 's/.*"target":{[^}]*"name":"\([^"]*\)".*/\1/p' <<<"$line")
    target_kind=$(sed -n 's/.*"target":{"kind":\["\([^"]*\)".*/\1/p' <<<"$line")
    if grep -q '"profile":{[^}]*"test":true' <<<"$line"; then
        kind=test
    else
        kind=other
    fi
    dir=$(dirname "$manifest")
    printf '%s %s/%s/%s %s %s\n' "$kind" "$(basename "$dir")" "$target_kind" "$name" "$dir" "$exe"
done)
[[ -n "$artifacts" ]] || die "cargo reported no executables"

# The test binaries to run (all, or those named on the command line).
declare -a tests=()
while read -r kind name dir exe; do
    [[ "$kind" == test ]] || continue
    if [[ $# -gt 0 ]]; then
        wanted=false
        for w in "$@"; do [[ "$w" == "${name##*/}" || "$w" == "$name" ]] && wanted=true; done
        $wanted || continue
    fi
    tests+=("$name $dir $exe")
done <<<"$artifacts"
[[ ${#tests[@]} -gt 0 ]] || die "no test binary matches: $*"

# ---------------------------------------------------------------------------------------------
# Permissions for the user, put back on exit.

declare -a changed=()  # "old-mode:path", in the order changed
TMP=""
LOGS=""
cleanup() {
    local i entry
    for ((i = ${#changed[@]} - 1; i >= 0; i--)); do
        entry=${changed[i]}
        chmod "${entry%%:*}" "${entry#*:}" || echo "unprivileged.sh: could not restore the mode of ${entry#*:}" >&2
    done
    [[ -n "$TMP" ]] && rm -rf "$TMP"
    [[ -n "$LOGS" ]] && rm -rf "$LOGS"
    return 0
}
trap cleanup EXIT

# grant BITS PATH: adds the permission bits BITS (chmod syntax, like o+x) to PATH if they change
# its mode, remembering the old mode.
grant() {
    local bits=$1 path=$2 before after
    before=$(stat -c %a "$path")
    chmod "$bits" "$path"
    after=$(stat -c %a "$path")
    if [[ "$before" != "$after" ]]; then
        changed+=("$before:$path")
        echo "unprivileged.sh: chmod $bits $path (was $before; put back on exit)"
    fi
}

# reach PATH: every directory from / down to PATH (PATH too, if it is a directory) gets o+x.
reach() {
    local p
    p=$(realpath "$1")
    [[ -d "$p" ]] || p=$(dirname "$p")
    while :; do
        grant o+x "$p"
        [[ "$p" == / ]] && break
        p=$(dirname "$p")
    done
}

# Every executable cargo built (the tests, the `iocport` binary the command's tests start, the
# examples the seccomp test starts), and every package directory a test runs in.
while read -r _kind _name dir exe; do
    reach "$dir"
    reach "$exe"
    grant o+rx "$exe"
done <<<"$artifacts"

as_user=(setpriv --reuid="$USER_ID" --regid="$GROUP_ID" --clear-groups --)

# A TMPDIR (and HOME) the user owns.
TMP=$(mktemp -d /tmp/iocport-unprivileged.XXXXXX)
chown "$USER_ID:$GROUP_ID" "$TMP"
chmod 700 "$TMP"
LOGS=$(mktemp -d /tmp/iocport-unprivileged-logs.XXXXXX)

# Check, as the user, that everything is reachable.
for t in "${tests[@]}"; do
    read -r name dir exe <<<"$t"
    "${as_user[@]}" test -x "$exe" ||
        die "uid $USER_ID still cannot execute $exe (an ACL or a mount option?)"
    "${as_user[@]}" sh -c 'cd "$1"' sh "$dir" ||
        die "uid $USER_ID still cannot enter $dir"
done
"${as_user[@]}" sh -c 'touch "$1/probe" && rm "$1/probe"' sh "$TMP" ||
    die "uid $USER_ID cannot write to $TMP"

# ---------------------------------------------------------------------------------------------
# Run.

declare -a failures=() notes=()
passed=0

# run_pass LABEL [BACKEND]: every test binary once, with IOCPORT_BACKEND=BACKEND if given.
run_pass() {
    local label=$1 backend=${2:-} t name dir exe log rc env_backend
    if [[ -n "$backend" ]]; then
        env_backend=(IOCPORT_BACKEND="$backend")
    else
        env_backend=(-u IOCPORT_BACKEND)
    fi
    echo "== unprivileged ($label): uid $USER_ID, gid $GROUP_ID, RLIMIT_MEMLOCK $MEMLOCK"
    for t in "${tests[@]}"; do
        read -r name dir exe <<<"$t"
        log="$LOGS/$label-${name//\//-}.log"
        rc=0
        (
            cd "$dir"
            env "${env_backend[@]}" TMPDIR="$TMP" HOME="$TMP" \
                timeout --kill-after=30s "$BINARY_TIMEOUT" \
                prlimit --memlock="$MEMLOCK:$MEMLOCK" -- \
                "${as_user[@]}" "$exe" --show-output
        ) >"$log" 2>&1 || rc=$?
        summary=$(grep -E '^test result: ' "$log" | tail -n1 || true)
        if [[ $rc -eq 0 ]]; then
            passed=$((passed + 1))
            echo "ok     $label  $name  ${summary#test result: }"
        else
            local why="exit status $rc"
            [[ $rc -eq 124 || $rc -eq 137 ]] && why="killed after $BINARY_TIMEOUT"
            echo "FAILED $label  $name  ($why) ${summary#test result: }"
            local failed
            failed=$(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log")
            if [[ -n "$failed" ]]; then
                while IFS= read -r f; do failures+=("$label: $name: $f"); done <<<"$failed"
            else
                failures+=("$label: $name: the binary failed ($why) outside any single test")
            fi
            echo "------ end of the log of $name ($label) ------"
            tail -n 60 "$log"
            echo "------"
        fi
        # Tests that skipped themselves (with the note they printed), and ignored tests.
        while IFS= read -r note; do
            [[ -n "$note" ]] && notes+=("$label: $name: $note")
        done < <(awk '
            /^---- .* stdout ----$/ { test = $2; next }
            /^(successes|failures):$/ { test = "" }
            test != "" && /skipp|cannot run|needs root/ { print test ": " $0 }
        ' "$log" | sort -u)
        while IFS= read -r ign; do
            [[ -n "$ign" ]] && notes+=("$label: $name: $ign: #[ignore]d, not run")
        done < <(sed -n 's/^test \(.*\) \.\.\. ignored.*$/\1/p' "$log")
    done
}

run_pass default
run_pass epoll epoll

echo "== unprivileged: summary"
echo "$passed of $((2 * ${#tests[@]})) binary runs passed"
if [[ ${#notes[@]} -gt 0 ]]; then
    echo "Tests not run (or not fully run) unprivileged, with their reason:"
    printf '  %s\n' "${notes[@]}"
fi
if [[ ${#failures[@]} -gt 0 ]]; then
    echo "Failed:"
    printf '  %s\n' "${failures[@]}"
    exit 1
fi
echo "unprivileged.sh: every test binary passed as uid $USER_ID, on both backends"
