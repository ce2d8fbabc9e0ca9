#!/usr/bin/env bash
# Installer download benchmark: `octoup stage` vs `curl -o` on the same simulated installer
# over loopback, in the same run. Prints throughput of each, the ratio, and octoup's peak RSS.
#
#   scripts/bench-download.sh [SIZE_BYTES] [ROUNDS]     # default 1 GiB, 3 rounds
#
# Needs: curl, GNU time at /usr/bin/time (`apt-get install time`), a release build (made here).
# Not run in CI. Each octoup round starts from an empty cache, so every byte is downloaded,
# hashed (SHA-256 in the same pass), fsynced and verified against x-amz-meta-sha256.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${1:-1073741824}
ROUNDS=${2:-3}
VERSION=2024.2.9409

for tool in curl /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install curl time)" >&2; exit 2; }
done

cargo build --release -q -p octoup-cli -p octoup-sim
# Client, server and kernel share the CPUs: other work on the machine skews the figures.
read -r load _ </proc/loadavg 2>/dev/null || load=0
awk -v l="$load" 'BEGIN { exit !(l > 1.0) }' && echo "warning: load average $load; the figures will be noisy" >&2
OCTOUP=$PWD/target/release/octoup
SIM=$PWD/target/release/octoup-sim

WORK=$(mktemp -d "${TMPDIR:-/tmp}/octoup-bench.XXXXXX")
cleanup() { "$SIM" down --dir "$WORK/sim" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/sim"
printf 'time_scale = 0.001\n[installer]\nsize = %s\n' "$SIZE" >"$WORK/spec.toml"
"$SIM" up --dir "$WORK/sim" --spec "$WORK/spec.toml" >/dev/null

# The simulator's config, with rollback staging off (one installer per round) and the
# cache in the work directory.
CONFIG=$WORK/octoup.toml
grep -v '^\[rollback\]' "$WORK/sim/octoup.toml" >"$CONFIG"
printf '\n[rollback]\nenabled = false\n' >>"$CONFIG"
URL=$(sed -n 's/^url = "\(http[^"]*{version}[^"]*\)"/\1/p' "$CONFIG" | head -1)
URL=${URL//\{version\}/$VERSION}
CACHE=$(sed -n 's/^dir = "\(.*octoup-state\)"/\1/p' "$CONFIG" | head -1)/cache

# Warm-up: the simulator computes the installer's SHA-256 (for its header) once.
curl -sfI "$URL" >/dev/null

mib_s() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1048576 }'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { print b - a }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b < a) ? b : a }'; }
best_curl=999999 best_same=999999 best_octoup=999999 peak_rss=0
for round in $(seq 1 "$ROUNDS"); do
    # Plain curl: no hash, no fsync (its data is still in the page cache when it exits).
    rm -f "$WORK/curl.msi"
    t=$(curl -sf -o "$WORK/curl.msi" -w '%{time_total}' "$URL")
    rm -f "$WORK/curl.msi"
    # curl made durable: the same download, then fsync of the file (octoup fsyncs too).
    t0=$(now)
    curl -sf -o "$WORK/curl.msi" "$URL"
    sync "$WORK/curl.msi"
    same=$(since "$t0")
    rm -f "$WORK/curl.msi"

    rm -rf "$CACHE"
    /usr/bin/time -v -o "$WORK/time.txt" "$OCTOUP" stage --json --config "$CONFIG" --to "$VERSION" >"$WORK/stage.json"
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$WORK/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time.txt")
    grep -q '"header-sha256"' "$WORK/stage.json" || { echo "octoup stage did not verify:" >&2; cat "$WORK/stage.json" >&2; exit 1; }

    printf 'round %s: curl -o %s MiB/s, curl -o + sync %s MiB/s, octoup stage %s MiB/s (peak RSS %s MiB)\n' \
        "$round" "$(mib_s "$SIZE" "$t")" "$(mib_s "$SIZE" "$same")" "$(mib_s "$SIZE" "$wall")" "$((rss / 1024))"
    best_curl=$(min "$best_curl" "$t")
    best_same=$(min "$best_same" "$same")
    best_octoup=$(min "$best_octoup" "$wall")
    [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
done

echo
echo "installer: $SIZE bytes over loopback; best of $ROUNDS rounds; $(nproc) CPUs; load before: $load"
echo "curl -o (no hash, no fsync):              $(mib_s "$SIZE" "$best_curl") MiB/s"
echo "curl -o, then sync (durable, no hash):    $(mib_s "$SIZE" "$best_same") MiB/s"
echo "octoup stage (SHA-256, fsync, verified):  $(mib_s "$SIZE" "$best_octoup") MiB/s (whole process)"
echo "octoup / curl -o:                         $(awk -v a="$best_curl" -v b="$best_octoup" 'BEGIN { printf "%.2f", a / b }')x"
echo "octoup / curl -o + sync:                  $(awk -v a="$best_same" -v b="$best_octoup" 'BEGIN { printf "%.2f", a / b }')x"
echo "octoup peak RSS:                          $((peak_rss / 1024)) MiB"
