#!/usr/bin/env bash
# Outage benchmark: the real `octoup upgrade` against simulated clusters with known step
# durations, measured from the simulator's event history, compared with the critical-path
# bound and with the vendor's HA runbook. See docs/benchmarks.md, "Outage".
#
#   scripts/bench-outage.sh [NODES...]      # default: 1 3 16
#   TIME_SCALE=0.04 scripts/bench-outage.sh # real seconds per simulated second
#   ROUNDS=3 scripts/bench-outage.sh        # runs per cluster size; the median is shown
#   TRACE=1 scripts/bench-outage.sh 32      # also: who spent each phase boundary, per run
#   OCTOUP=path/to/octoup scripts/bench-outage.sh  # another build (no build made here)
#
# Needs: jq, a release build (made here). Not run in CI. Run it on a quiet machine: the
# simulated seconds are real time divided by the time scale, so anything else using the CPU
# shows up as outage.
#
# Durations (simulated seconds): stop S, backup B (BACKUP + RESTORE VERIFYONLY), install I,
# database upgrade U, start T. Measured outage: from the first node's service stopping to
# the last node serving the target (the simulator's service-stopping and service-started
# events, in simulated seconds).
#   bound  = S + max(B, I) + U + T                 (no ordering can beat the critical path)
#   vendor = S + B + I + U + T                     (the vendor's HA runbook: each step runs on
#            every HAServer target in parallel, Octopus's default for a step's targets, but
#            the steps run one after another, so the backup does not overlap the installs;
#            the same for any number of nodes)
set -euo pipefail
cd "$(dirname "$0")/.."

S=10 BACKUP=50 VERIFY=10 I=90 U=120 T=30
B=$((BACKUP + VERIFY))
TIME_SCALE=${TIME_SCALE:-0.04}
ROUNDS=${ROUNDS:-3}
NODES=("$@")
[ ${#NODES[@]} -gt 0 ] || NODES=(1 3 16)

command -v jq >/dev/null || { echo "missing jq (apt-get install jq)" >&2; exit 2; }
if [ -z "${OCTOUP:-}" ]; then
    cargo build --release -q -p octoup-cli
    OCTOUP=${CARGO_TARGET_DIR:-$PWD/target}/release/octoup
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/octoup-outage.XXXXXX")
cleanup() {
    for d in "$WORK"/n*/r*/sim; do
        [ -d "$d" ] && "$OCTOUP" sim down --dir "$d" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

max() { if [ "$1" -gt "$2" ]; then echo "$1"; else echo "$2"; fi; }
BOUND=$((S + $(max "$B" "$I") + U + T))

# One upgrade of an n-node cluster in `dir`; prints one line: outage, then the phases
# (stop, backup+install, database upgrade, start) in simulated seconds, then real seconds.
run_once() {
    local n=$1 dir=$2 t0 t1 target
    mkdir -p "$dir"
    printf 'time_scale = %s\nnodes = %s\n[durations]\nstop = %s\nbackup = %s\nverify = %s\ninstall = %s\ndb_upgrade = %s\nstart = %s\n' \
        "$TIME_SCALE" "$n" "$S" "$BACKUP" "$VERIFY" "$I" "$U" "$T" >"$dir/spec.toml"
    "$OCTOUP" sim up --dir "$dir/sim" --spec "$dir/spec.toml" >/dev/null
    # The native strategy: its backup B is what overlaps the installs in the bound and what
    # the vendor's runbook takes in the outage (scripts/bench-db-size.sh measures the others).
    sed -i 's/^\[database\]$/[database]\nstrategy = "native"/' "$dir/sim/octoup.toml"
    t0=$(date +%s.%N)
    if ! "$OCTOUP" upgrade -y --json --config "$dir/sim/octoup.toml" >"$dir/report.json"; then
        echo "octoup upgrade failed for $n nodes:" >&2
        cat "$dir/report.json" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    if ! "$OCTOUP" sim check --dir "$dir/sim" >/dev/null; then
        "$OCTOUP" sim check --dir "$dir/sim" >&2
        exit 1
    fi
    "$OCTOUP" sim history --dir "$dir/sim" --json >"$dir/history.json"
    "$OCTOUP" sim down --dir "$dir/sim" >/dev/null
    if [ -n "${TRACE:-}" ]; then
        # Who spent each phase boundary (scripts/trace-outage.py), to stderr.
        echo "trace: $n nodes, $(basename "$dir")" >&2
        python3 scripts/trace-outage.py "$dir/history.json" "$dir"/sim/octoup-state/logs/[0-9]*.log "$TIME_SCALE" >&2
    fi
    target=$(jq -r .to "$dir/report.json")
    # Phase ends: last node stopped; backup verified and every node installed; schema
    # upgraded; last node serving the target.
    jq -r --arg t "$target" --argjson real "$(awk -v a="$t0" -v c="$t1" 'BEGIN { print c - a }')" '
        def at(f): [ .[] | select(f) | .sim_seconds ];
        (at(.kind == "service-stopping") | min) as $start
        | (at(.kind == "service-stopped") | max) as $stopped
        | ((at(.kind == "install-finished" and .version == $t) + at(.kind == "db-backup-verified")) | max) as $installed
        | (at(.kind == "db-upgrade-finished") | max) as $upgraded
        | (at(.kind == "service-started" and .binary_version == $t) | max) as $served
        | [$served - $start, $stopped - $start, $installed - $stopped, $upgraded - $installed, $served - $upgraded, $real]
        | map(. * 10 | round / 10) | @tsv' "$dir/history.json"
}

printf 'S=%s B=%s (backup %s + verify %s) I=%s U=%s T=%s simulated seconds; time scale %s; median of %s rounds\n' \
    "$S" "$B" "$BACKUP" "$VERIFY" "$I" "$U" "$T" "$TIME_SCALE" "$ROUNDS"
printf 'bound S+max(B,I)+U+T = %s; vendor runbook S+B+I+U+T = %s\n\n' "$BOUND" "$((S + B + I + U + T))"
printf '| nodes | outage (sim s) | bound | vs bound | vendor runbook | saving vs vendor | stop | backup+install | db upgrade | start | run (real s) |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for n in "${NODES[@]}"; do
    : >"$WORK/n$n.tsv"
    for r in $(seq 1 "$ROUNDS"); do
        run_once "$n" "$WORK/n$n/r$r" >>"$WORK/n$n.tsv"
    done
    read -r outage stop work db start real < <(sort -n -k1,1 "$WORK/n$n.tsv" | sed -n "$(((ROUNDS + 1) / 2))p")
    vendor=$((S + B + I + U + T))
    awk -v n="$n" -v o="$outage" -v b="$BOUND" -v s="$vendor" -v st="$stop" -v w="$work" \
        -v d="$db" -v t="$start" -v r="$real" 'BEGIN {
            printf "| %d | %.1f | %d | %+.1f%% | %d | %.1f%% | %.1f | %.1f | %.1f | %.1f | %.1f |\n",
                n, o, b, (o / b - 1) * 100, s, (1 - o / s) * 100, st, w, d, t, r }'
done
