#!/usr/bin/env bash
# Runs the whole-system tests in two lanes side by side. A lane boots one machine at a time;
# much of a test is a machine waiting (a trial's stability window, a watchdog, the owner's
# chat), and a boot under TCG keeps about one core busy, so two lanes use a 2-core CI
# machine's second core. Each test binary builds its images once; lanes share built images
# (build_inputs.rs) and the image cache lock.
#
# Usage: test-lanes.sh "<cargo test args of lane a>" "<cargo test args of lane b>"
# Every line is printed as it comes, prefixed with its lane; each lane's whole output is also
# in out/test-logs/lane-<a|b>.log. The exit status is non-zero when either lane failed.
set -u

cargo=${CARGO:-cargo}
logs=out/test-logs
mkdir -p "$logs"

# Compiled once, before the lanes start, so they do not queue on cargo's lock to build the
# same test binaries.
# shellcheck disable=SC2086 # the lanes' arguments are lists of cargo flags
$cargo test --workspace --no-run $1 $2 || exit 1

lane() {
    local name=$1 args=$2
    echo "[$name] cargo test --workspace $args"
    # shellcheck disable=SC2086
    $cargo test --workspace $args -- --test-threads=1 --nocapture 2>&1 |
        tee "$logs/lane-$name.log" | sed -u "s/^/[$name] /"
    local status=${PIPESTATUS[0]}
    echo "[$name] finished with status $status"
    return "$status"
}

started=$(date +%s)
lane a "$1" &
a=$!
lane b "$2" &
b=$!
wait "$a"
status_a=$?
wait "$b"
status_b=$?
echo "whole-system tests: lane a status $status_a, lane b status $status_b, $(($(date +%s) - started)) s"
[ "$status_a" -eq 0 ] && [ "$status_b" -eq 0 ]
