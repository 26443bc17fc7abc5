#!/usr/bin/env bash
# Runs the whole-system tests in two lanes side by side. A lane boots one machine at a time;
# much of a test is a machine waiting (a trial's stability window, a watchdog, the owner's
# chat), and a boot under TCG keeps about one core busy, so two lanes use a 2-core CI
# machine's second core. Each test binary builds its images once; lanes share built images
# (build_inputs.rs) and the image cache lock.
#
# Usage: test-lanes.sh "--test NAME ... (lane a)" "--test NAME ... (lane b)"
# Every line is printed as it comes, prefixed with its lane and the time it arrived; each lane's
# whole output is also in out/test-logs/lane-<a|b>.log, with how long each test binary took.
# The exit status is non-zero when either lane failed.
set -u

cargo=${CARGO:-cargo}
logs=out/test-logs
mkdir -p "$logs"

# Compiled once, before the lanes start, with make test-unit's selection (every target), and
# the lanes run the test executables themselves, from their package's folder as cargo does.
# Selecting only the lanes' tests resolved the dependencies' features differently (syn for
# fewer crates), so cargo built most dependencies a second time; and two cargos in parallel
# would queue on cargo's lock.
artifacts=$($cargo test --workspace --all-targets --no-run --message-format=json-render-diagnostics) ||
    exit 1

# The executable and package folder of each test target named by `--test NAME` in $1.
executables() {
    printf '%s\n' "$artifacts" | python3 -c '
import json, os, sys
wanted = [a for a in sys.argv[1:] if a != "--test"]
found = {}
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and t.get("kind") == ["test"] and m.get("executable"):
        found[t["name"]] = (m["executable"], os.path.dirname(m["manifest_path"]))
for name in wanted:
    if name not in found:
        sys.exit(f"test-lanes: no test target named {name}")
    print(name, *found[name])
' $1 # split on purpose: a list of flags
}

# Each line with the wall-clock time it arrived: where a lane's minutes go.
stamped() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%(%H:%M:%S)T %s\n' -1 "$line"
    done
}

lane() {
    local name=$1 targets status=0 test exe dir started_test
    targets=$(executables "$2") || return 1
    while read -r test exe dir; do
        echo "[$name] $test: $exe"
        started_test=$SECONDS
        (cd "$dir" && "$exe" --test-threads=1 --nocapture) 2>&1 | stamped |
            tee -a "$logs/lane-$name.log" | sed -u "s/^/[$name] /"
        [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
        echo "[$name] $test took $((SECONDS - started_test)) s" | tee -a "$logs/lane-$name.log"
    done <<<"$targets"
    echo "[$name] finished with status $status"
    return "$status"
}

rm -f "$logs"/lane-?.log
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
