#!/usr/bin/env bash
# Outage against database size: the real `octoup upgrade` (release build) of a one-node
# simulated installation whose database holds SIZES GB of used data, backed up at the
# reference's measured throughput (75 MB/s plain; shared/reference/sql-hosting-and-
# backups.md §4), for three ways of making the rollback point. See docs/benchmarks.md,
# "Outage against database size".
#
#   scripts/bench-db-size.sh [SIZES...]       # default: 1 10 100 250
#   TIME_SCALE=0.01 scripts/bench-db-size.sh  # real seconds per simulated second
#   SNAPSHOT_ONLY=1 TIME_SCALE=0.1 scripts/bench-db-size.sh 1 250   # the snapshot column only
#   OCTOUP=path/to/octoup scripts/bench-db-size.sh  # another build (no build made here)
#
#   plain    [database] strategy = "native", compression = false, one file
#   tuned    native with COMPRESSION, 2 stripes, MAXTRANSFERSIZE = 4 MiB, BUFFERCOUNT = 64
#   snapshot the verified backup before the outage, a database snapshot in it
#
# The simulator's durations follow the size, the throughput and the compression/stripe/
# transfer factors; S, I, U, T are fixed. Measured outage: first service stop to the node
# serving the target, from the simulator's history. Needs jq. Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

S=10 I=90 U=120 T=30 RATE=75
TIME_SCALE=${TIME_SCALE:-0.01}
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1 10 100 250)

command -v jq >/dev/null || { echo "missing jq (apt-get install jq)" >&2; exit 2; }
if [ -z "${OCTOUP:-}" ]; then
    cargo build --release -q -p octoup-cli
    OCTOUP=${CARGO_TARGET_DIR:-$PWD/target}/release/octoup
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/octoup-dbsize.XXXXXX")
cleanup() {
    for d in "$WORK"/*/sim; do
        [ -d "$d" ] && "$OCTOUP" sim down --dir "$d" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# One upgrade; prints: outage (sim s), backup step (sim s), verify step (sim s), hold (sim s).
run_once() {
    local size=$1 how=$2 dir=$WORK/$1-$2 target
    mkdir -p "$dir"
    printf 'time_scale = %s\nnodes = 1\n[durations]\nstop = %s\ninstall = %s\ndb_upgrade = %s\nstart = %s\n[database]\nsize_gb = %s\nthroughput_mb_s = %s\ndata_free_gb = %s\nbackup_free_gb = %s\n' \
        "$TIME_SCALE" "$S" "$I" "$U" "$T" "$size" "$RATE" "$((size * 3))" "$((size * 3))" >"$dir/spec.toml"
    "$OCTOUP" sim up --dir "$dir/sim" --spec "$dir/spec.toml" >/dev/null
    local config=$dir/sim/octoup.toml
    case $how in
        plain) printf '\n[database]\nstrategy = "native"\ncompression = false\n' ;;
        tuned) printf '\n[database]\nstrategy = "native"\ncompression = true\nstripes = 2\nmax_transfer_size = 4194304\nbuffer_count = 64\n' ;;
        snapshot) printf '\n[database]\nstrategy = "snapshot"\n' ;;
    esac >"$dir/extra.toml"
    # The simulator's config has a [database] table: merge ours into it.
    python3 - "$config" "$dir/extra.toml" <<'EOF'
import sys, tomllib
config, extra = sys.argv[1], sys.argv[2]
text = open(config).read()
add = tomllib.load(open(extra, "rb"))["database"]
lines = []
for k, v in add.items():
    lines.append(f"{k} = {str(v).lower() if isinstance(v, bool) else (chr(34) + v + chr(34) if isinstance(v, str) else v)}")
text = text.replace("[database]\n", "[database]\n" + "\n".join(lines) + "\n", 1)
open(config, "w").write(text)
EOF
    if ! "$OCTOUP" upgrade -y --json --config "$config" >"$dir/report.json"; then
        echo "octoup upgrade failed ($size GB, $how):" >&2
        cat "$dir/report.json" >&2
        exit 1
    fi
    "$OCTOUP" sim check --dir "$dir/sim" >/dev/null || { "$OCTOUP" sim check --dir "$dir/sim" >&2; exit 1; }
    "$OCTOUP" sim history --dir "$dir/sim" --json >"$dir/history.json"
    "$OCTOUP" sim down --dir "$dir/sim" >/dev/null
    target=$(jq -r .to "$dir/report.json")
    outage=$(jq -r --arg t "$target" '
        ([ .[] | select(.kind == "service-stopping") | .sim_seconds ] | min) as $a
        | ([ .[] | select(.kind == "service-started" and .binary_version == $t) | .sim_seconds ] | max) as $b
        | $b - $a' "$dir/history.json")
    step() { jq -r --arg n "$1" --argjson k "$TIME_SCALE" \
        '[.steps[] | select(.name == $n) | .seconds // 0] | (add // 0) / $k' "$dir/report.json"; }
    printf '%s %s %s %s\n' "$outage" "$(step backup-database)" "$(step verify-backup)" "$(step snapshot-database)"
}

printf 'S=%s I=%s U=%s T=%s simulated seconds, plain backup at %s MB/s; time scale %s\n' "$S" "$I" "$U" "$T" "$RATE" "$TIME_SCALE"
printf 'flat part S+I+U+T = %s (the snapshot goal: within 5%% of it)\n\n' "$((S + I + U + T))"
printf '| used GB | plain outage | plain backup+verify | tuned outage | tuned backup+verify | tuned speed-up | snapshot outage | vs S+I+U+T | snapshot step | snapshot pre-outage backup+verify |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
FLAT=$((S + I + U + T))
for size in "${SIZES[@]}"; do
    if [ -n "${SNAPSHOT_ONLY:-}" ]; then
        # Only the snapshot strategy (its outage is the flat part; the others are not).
        read -r so sb sv ss < <(run_once "$size" snapshot)
        awk -v g="$size" -v so="$so" -v sb="$sb" -v sv="$sv" -v ss="$ss" -v f="$FLAT" 'BEGIN {
            printf "| %s | | | | | | %.1f | %+.1f%% | %.1f | %.0f |\n",
                g, so, (so / f - 1) * 100, ss, sb + sv }'
        continue
    fi
    read -r po pb pv _ < <(run_once "$size" plain)
    read -r to tb tv _ < <(run_once "$size" tuned)
    read -r so sb sv ss < <(run_once "$size" snapshot)
    awk -v g="$size" -v po="$po" -v pb="$pb" -v pv="$pv" -v to="$to" -v tb="$tb" -v tv="$tv" \
        -v so="$so" -v sb="$sb" -v sv="$sv" -v ss="$ss" -v f="$FLAT" 'BEGIN {
        printf "| %s | %.0f | %.0f | %.0f | %.0f | %.2f× | %.1f | %+.1f%% | %.1f | %.0f |\n",
            g, po, pb + pv, to, tb + tv, (tb > 0 ? pb / tb : 0), so, (so / f - 1) * 100, ss, sb + sv }'
done
