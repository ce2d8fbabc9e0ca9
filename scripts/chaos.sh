#!/usr/bin/env bash
# Chaos: the real `octoup upgrade` against simulated installations, SIGKILLed at a random
# moment, then re-run (each re-run itself killed with probability KILL_RERUN_PCT) until one
# exits; a paused run is finished by further `octoup upgrade`s. Then the run must have ended
# upgraded and `octoup-sim check` (the invariant checker) must pass. See docs/recovery.md,
# "Chaos". Not run in CI.
#
#   scripts/chaos.sh                 # 200 runs, 1 and 3 nodes alternating, a random seed
#   SEED=1234 RUNS=50 scripts/chaos.sh
#   TIME_SCALE=0.002                 # real seconds per simulated second
#   KILL_RERUN_PCT=30                # chance that a re-run is killed too
#   PROFILE=release                  # build profile (default: debug)
#   KEEP=1                           # keep every run's directory, not only the broken ones
#   STEP_TIMEOUT=20                  # [timeouts] stop, start, command (s) in the sim's config
#   STALL_MS=15000                   # an attempt slower than this is counted as a stall
#
# Prints the seed first: the same SEED replays the same kill moments (the moments are drawn
# from bash's $RANDOM; what the run was doing at that moment still depends on the machine).
# A violation keeps the run's directory (sim/, each attempt's JSON, the history) and prints
# it. Exit 0 when there were no violations, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-200}
SEED=${SEED:-$(( $(date +%s) % 32768 ))}
TIME_SCALE=${TIME_SCALE:-0.002}
KILL_RERUN_PCT=${KILL_RERUN_PCT:-30}
PROFILE=${PROFILE:-debug}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-30}
STEP_TIMEOUT=${STEP_TIMEOUT:-20}
STALL_MS=${STALL_MS:-15000}
RANDOM=$SEED
echo "chaos: seed $SEED, $RUNS runs, time scale $TIME_SCALE, re-runs killed ${KILL_RERUN_PCT}%"

if [ "$PROFILE" = release ]; then
    cargo build --release -q -p octoup-cli -p octoup-sim || exit 2
else
    cargo build -q -p octoup-cli -p octoup-sim || exit 2
fi
BIN=${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE
OCTOUP=$BIN/octoup
SIM=$BIN/octoup-sim

WORK=$(mktemp -d "${TMPDIR:-/tmp}/octoup-chaos.XXXXXX")
LIVE=""
cleanup() {
    [ -n "$LIVE" ] && "$SIM" down --dir "$LIVE" >/dev/null 2>&1
    [ -n "${KEEP:-}" ] || [ -e "$WORK/keep" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/lib/chaos-common.sh
. "$(dirname "$0")/lib/chaos-common.sh"

# Starts a simulated installation of $2 nodes in $1.
sim_up() {
    mkdir -p "$1"
    printf 'time_scale = %s\nnodes = %s\n' "$TIME_SCALE" "$2" >"$1/spec.toml"
    "$SIM" up --dir "$1/sim" --spec "$1/spec.toml" >"$1/up.txt" 2>&1 || return 1
    # A step found `running` after a kill is waited for up to its timeout (capped at 600 s)
    # before it runs again; short timeouts keep such waits from stalling the whole script.
    printf '\n[timeouts]\nstop = %s\nstart = %s\ncommand = %s\n' \
        "$STEP_TIMEOUT" "$STEP_TIMEOUT" "$STEP_TIMEOUT" >>"$1/sim/octoup.toml"
}

# `octoup upgrade` in $1, killed after $2 ms (none when empty); sets RC, KILLED and MS.
attempt() {
    local dir=$1 delay=$2 k=$3
    signalled "$dir" "$k" "${delay:+KILL}" "${delay:-0}" \
        "$OCTOUP" upgrade --yes --json --config "$dir/sim/octoup.toml"
    KILLED=$SIGNALLED
    echo "attempt $k: delay ${delay:-none} ms, exit $RC, ${MS} ms" >>"$dir/attempts.txt"
    if [ "$MS" -gt "$STALL_MS" ]; then
        STALLED=1
        stalls=$((stalls + 1))
    fi
}

# The wall time of one clean upgrade of $1 nodes, in ms: the window the kills are drawn in.
calibrate() {
    local dir=$WORK/calibrate-$1 t0 t1
    sim_up "$dir" "$1" || { echo "octoup-sim up failed: $dir/up.txt" >&2; touch "$WORK/keep"; exit 2; }
    LIVE=$dir/sim
    t0=$(now_ms)
    attempt "$dir" "" 0
    t1=$(now_ms)
    "$SIM" check --dir "$dir/sim" >"$dir/check.txt" 2>&1
    local checked=$?
    "$SIM" down --dir "$dir/sim" >/dev/null 2>&1
    LIVE=""
    if [ "$RC" -ne 0 ] || [ "$checked" -ne 0 ]; then
        echo "a clean upgrade of $1 node(s) failed (exit $RC): $dir" >&2
        touch "$WORK/keep"
        exit 2
    fi
    echo $((t1 - t0))
}

WINDOW_1=$(calibrate 1) || exit 2
WINDOW_3=$(calibrate 3) || exit 2
echo "clean upgrade: 1 node ${WINDOW_1} ms, 3 nodes ${WINDOW_3} ms"

runs=0 kills=0 reruns=0 rerun_kills=0 paused=0 violations=0 upgraded=0 stalls=0 stalled_runs=0 late_kills=0
max_rerun_ms=0
declare -A outcomes=()
T0=$(date +%s)
for ((i = 1; i <= RUNS; i++)); do
    nodes=$(( i % 2 == 1 ? 1 : 3 ))
    window=$(( nodes == 1 ? WINDOW_1 : WINDOW_3 ))
    dir=$WORK/run-$i
    if ! sim_up "$dir" "$nodes"; then
        echo "run $i: octoup-sim up failed, kept $dir" >&2
        touch "$WORK/keep"
        violations=$((violations + 1))
        continue
    fi
    LIVE=$dir/sim
    runs=$((runs + 1))
    echo "run $i: $nodes node(s)" >"$dir/attempts.txt"
    STALLED=0
    k=0
    attempt "$dir" "$(uniform "$window")" $k
    kills=$((kills + KILLED))
    while [ "$KILLED" -eq 1 ] && [ $k -lt "$MAX_ATTEMPTS" ]; do
        k=$((k + 1))
        reruns=$((reruns + 1))
        delay=""
        [ $((RANDOM % 100)) -lt "$KILL_RERUN_PCT" ] && delay=$(uniform "$window")
        attempt "$dir" "$delay" $k
        kills=$((kills + KILLED))
        rerun_kills=$((rerun_kills + KILLED))
        [ "$MS" -gt "$max_rerun_ms" ] && max_rerun_ms=$MS
    done
    problem=""
    first_rc=$RC
    # A paused run names its next step; further `octoup upgrade`s finish it.
    while [ "$RC" -eq 4 ] && [ $k -lt "$MAX_ATTEMPTS" ]; do
        grep -q '"next_step"' "$dir/attempt-$k.json" || problem="paused without a next step"
        k=$((k + 1))
        reruns=$((reruns + 1))
        attempt "$dir" "" $k
        [ "$MS" -gt "$max_rerun_ms" ] && max_rerun_ms=$MS
    done
    [ "$first_rc" -eq 4 ] && paused=$((paused + 1))
    outcome=$(sed -n 's/.*"outcome": *"\([a-z-]*\)".*/\1/p' "$dir/attempt-$k.json" | head -1)
    outcomes[${outcome:-none}:$RC]=$(( ${outcomes[${outcome:-none}:$RC]:-0} + 1 ))
    # Killed after the journal said upgraded (before the report was printed): the re-run
    # finds the installation on the target, and `octoup status` shows the run upgraded.
    if [ "$RC" -eq 0 ] && [ "$outcome" = up-to-date ] &&
        "$OCTOUP" status --json --config "$dir/sim/octoup.toml" 2>/dev/null | grep -q '^  "state": "upgraded"'; then
        outcome=upgraded
        late_kills=$((late_kills + 1))
    fi
    if [ "$RC" -ne 0 ] || [ "$outcome" != upgraded ]; then
        problem="${problem:+$problem; }ended $outcome (exit $RC) after $((k + 1)) attempt(s)"
    fi
    if ! "$SIM" check --dir "$dir/sim" >"$dir/check.txt" 2>&1; then
        problem="${problem:+$problem; }octoup-sim check: $(tr '\n' ' ' <"$dir/check.txt")"
    fi
    [ -n "$problem" ] && "$SIM" history --dir "$dir/sim" >"$dir/history.txt" 2>&1
    "$SIM" down --dir "$dir/sim" >/dev/null 2>&1
    LIVE=""
    if [ -n "$problem" ]; then
        violations=$((violations + 1))
        "$OCTOUP" status --config "$dir/sim/octoup.toml" >"$dir/status.txt" 2>&1
        touch "$WORK/keep"
        echo "run $i ($nodes node(s)): VIOLATION: $problem; kept $dir" >&2
    else
        upgraded=$((upgraded + 1))
    fi
    stalled_runs=$((stalled_runs + STALLED))
    keep_or_drop "$dir" "$i ($nodes node(s))" "$problem" "$STALLED" "an attempt"
    if (( i % 20 == 0 )); then
        echo "  $i runs: $kills kills, $reruns re-runs, $violations violations, $stalls stalls ($(( $(date +%s) - T0 )) s)"
    fi
done
wall=$(( $(date +%s) - T0 ))
echo "seed $SEED: $runs runs, $kills kills ($rerun_kills of re-runs), $reruns re-runs, longest re-run ${max_rerun_ms} ms, $paused paused first, $upgraded upgraded and checked, $violations violations ($late_kills killed after the journal said upgraded: re-run up-to-date), $stalls stalled attempts in $stalled_runs runs, ${wall} s"
for o in "${!outcomes[@]}"; do echo "  final outcome:exit $o: ${outcomes[$o]}"; done
[ -e "$WORK/keep" ] && echo "kept: $WORK"
[ "$violations" -eq 0 ]
