#!/usr/bin/env bash
# Chaos for `octoup rehearse`: the real binary against simulated installations set up for
# rehearsal the way the e2e tests do it (crates/octoup-cli/tests/octoup/rehearse.rs: the
# simulator's stand-in for the vendor's image, built FROM scratch; a real Docker engine).
# Each run starts `octoup rehearse --json`, SIGKILLs it (or, with probability SIGINT_PCT,
# sends SIGINT: Ctrl-C must tear down at once and exit 130) after a random delay drawn over
# a clean rehearsal's whole wall time, then runs `octoup rehearse --cleanup` (each attempt
# itself killed with probability KILL_CLEANUP_PCT, then re-run) until one exits; with
# probability NEXT_PCT a full `octoup rehearse` cleans up instead (it tears down leftovers
# first). Then it requires:
#   - no container and no network labelled `octoup.rehearsal=<id>` for any rehearsal the
#     run journaled (ids are journaled before anything is made; other rehearsals on the same
#     engine are ignored), and no scratch database on either SQL Server (the simulator's
#     state, and a `db-dropped` in its history for every copy it made);
#   - production untouched: `octoup sim check` passes, its schema, maintenance mode and
#     nodes as before;
#   - every rehearsal in the journal ([state] dir/rehearsals/*.json) torn down;
#   - no secret (master key, SQL passwords, API key) in any file under octoup's state
#     directory, nor in octoup's output.
# See docs/rehearsal.md, "Chaos". Not run in CI.
#
#   scripts/chaos-rehearse.sh        # 48 runs (about 4 minutes), kinds rotating, a random seed
#   SEED=1234 RUNS=12 scripts/chaos-rehearse.sh
#   TIME_SCALE=0.002                 # real seconds per simulated second
#   DB_UPGRADE=1000                  # simulated seconds of migrations (the kill window's bulk)
#   SIGINT_PCT=25                    # chance that the interrupt is a Ctrl-C, not a SIGKILL
#   KILL_CLEANUP_PCT=30              # chance that a `--cleanup` attempt is killed too
#   CLEANUP_WINDOW_MS=400            # ... after a uniform delay in [0, this)
#   NEXT_PCT=20                      # chance that the next `octoup rehearse` cleans up
#   PROFILE=release                  # build profile (default: debug)
#   KEEP=1                           # keep every run's directory, not only the broken ones
#   STALL_MS=15000                   # a cleanup attempt slower than this is a stall
#   CTRL_C_MS=30000                  # a Ctrl-C'd rehearsal must exit within this
#   KINDS="same elsewhere azure failing"   # the kinds of installation, in rotation
#   SKIP_CLEANUP=1                   # self-test: no cleanup at all, so the checks must fire
#
# Kinds: `same` (the copy on production's SQL Server), `elsewhere` (a separate rehearsal SQL
# Server: the spec's rehearsal_sql_server), `azure` (Azure SQL Database: CREATE DATABASE AS
# COPY OF), `failing` (a data-dependent migration fails: no-go).
#
# Prints the seed first: the same SEED replays the same kill moments and signals (drawn from
# bash's $RANDOM; what the rehearsal was doing at that moment still depends on the machine).
# A violation keeps the run's directory (sim/, each attempt's JSON and stderr, attempts.txt,
# the history, the journal) and prints it. Exit 0 when there were no violations, 1 otherwise,
# 2 when the set-up failed.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-48}
SEED=${SEED:-$(( $(date +%s) % 32768 ))}
TIME_SCALE=${TIME_SCALE:-0.002}
DB_UPGRADE=${DB_UPGRADE:-1000}
SIGINT_PCT=${SIGINT_PCT:-25}
KILL_CLEANUP_PCT=${KILL_CLEANUP_PCT:-30}
CLEANUP_WINDOW_MS=${CLEANUP_WINDOW_MS:-400}
SKIP_CLEANUP=${SKIP_CLEANUP:-}
NEXT_PCT=${NEXT_PCT:-20}
PROFILE=${PROFILE:-debug}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-10}
STALL_MS=${STALL_MS:-15000}
CTRL_C_MS=${CTRL_C_MS:-30000}
KINDS=${KINDS:-same elsewhere azure failing}
TARGET=${TARGET:-2024.3.13050}
KEEP=${KEEP:-}
RANDOM=$SEED
read -r -a kinds <<<"$KINDS"
echo "chaos-rehearse: seed $SEED, $RUNS runs (${kinds[*]}), time scale $TIME_SCALE, migrations ${DB_UPGRADE} simulated s, Ctrl-C ${SIGINT_PCT}%, cleanups killed ${KILL_CLEANUP_PCT}%, next rehearsal cleans ${NEXT_PCT}%"

for tool in docker jq; do
    command -v "$tool" >/dev/null || { echo "chaos-rehearse: needs $tool" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || {
    echo "chaos-rehearse: no Docker engine answers (start one: dockerd >/tmp/dockerd.log 2>&1 &)" >&2
    exit 2
}

if [ "$PROFILE" = release ]; then
    cargo build --release -q -p octoup-cli -p octoup-sim || exit 2
else
    cargo build -q -p octoup-cli -p octoup-sim || exit 2
fi
BIN=${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE
OCTOUP=$BIN/octoup
IMAGE=octoup-sim/octopusdeploy:$TARGET

WORK=$(mktemp -d "${TMPDIR:-/tmp}/octoup-chaos-rehearse.XXXXXX")
LIVE=""
# Removes what a live run's rehearsals left on the engine (by their journaled ids) and
# stops its simulator.
teardown_live() {
    local dir=$1 id
    for id in $(journal_ids "$dir"); do
        docker ps -aq --filter "label=octoup.rehearsal=$id" | xargs -r docker rm -f >/dev/null 2>&1 || true
        docker network ls -q --filter "label=octoup.rehearsal=$id" | xargs -r docker network rm >/dev/null 2>&1 || true
    done
    "$OCTOUP" sim down --dir "$dir/sim" >/dev/null 2>&1 || true
}
cleanup() {
    if [ -n "$LIVE" ]; then teardown_live "$LIVE"; fi
    if [ -z "$KEEP" ] && [ ! -e "$WORK/keep" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/lib/chaos-common.sh
. "$(dirname "$0")/lib/chaos-common.sh"

# The ids of the rehearsals journaled in run directory $1.
journal_ids() {
    local f
    for f in "$1"/sim/octoup-state/rehearsals/*.json; do
        [ -e "$f" ] || continue
        jq -r '.id' "$f" 2>/dev/null || true
    done
}

# What the engine still holds under the label octoup.rehearsal=<id> of a rehearsal journaled
# in run directory $1: "container|network <id> <name>" lines. Only this run's ids: other
# rehearsals (another test run on the same engine) are not this script's business.
labelled() {
    local id
    for id in $(journal_ids "$1"); do
        docker ps -a --filter "label=octoup.rehearsal=$id" --format "container $id {{.Names}}"
        docker network ls --filter "label=octoup.rehearsal=$id" --format "network $id {{.Name}}"
    done
}

# The rehearsal image: the simulator's stand-in for the vendor's, FROM scratch (as
# octoup-testkit's sim_image builds it).
"$BIN/octoup-sim" image --version "$TARGET" --out "$WORK/image" >/dev/null || exit 2
docker build --quiet --tag "$IMAGE" "$WORK/image" >/dev/null 2>&1 || { echo "docker build failed" >&2; exit 2; }

# The exit status a clean rehearsal of kind $1 ends with: 0 go, 3 no-go.
expected_rc() { if [ "$1" = failing ]; then echo 3; else echo 0; fi; }

# Starts a simulated installation of kind $2 in $1, set up for rehearsal as the e2e tests
# do it: the image, data_dir, master_key_file (and the [rehearsal.sql] `up` wrote).
sim_up() {
    local dir=$1 kind=$2 sim=$1/sim
    mkdir -p "$dir"
    {
        printf 'time_scale = %s\nnodes = 1\n' "$TIME_SCALE"
        [ "$kind" = elsewhere ] && printf 'rehearsal_sql_server = true\n'
        printf '\n[durations]\ndb_upgrade = %s\n' "$DB_UPGRADE"
        case $kind in
            azure) printf '\n[database]\nhosting = "azure-sql-database"\n' ;;
            failing) printf '\n[database]\nmigration_failure = "Cannot insert duplicate key row in object dbo.Chaos"\n' ;;
        esac
    } >"$dir/spec.toml"
    "$OCTOUP" sim up --dir "$sim" --spec "$dir/spec.toml" >"$dir/up.txt" 2>&1 || return 1
    jq -r '.secrets.master_key' "$sim/state.json" >"$sim/rehearsal-master-key.txt"
    printf '\n[rehearsal]\nimage = "%s"\ndata_dir = "%s"\nmaster_key_file = "%s"\n' \
        "${IMAGE%"$TARGET"}{version}" "$sim/rehearsal-data" "$sim/rehearsal-master-key.txt" \
        >>"$sim/octoup.toml"
    production "$sim" >"$dir/production-before.json"
}

# What must not change on production: the schema, maintenance mode, every node.
production() {
    jq -cS '{schema: .database.schema_version, maintenance: .database.maintenance.is_in_maintenance_mode,
            nodes: [.nodes[] | [.name, .service, .drain, .installed_version]]}' "$1/state.json"
}

# Runs `octoup rehearse ARGS...` in run dir $1 as attempt $2, interrupted by signal $3
# (KILL or INT; none when empty) after $4 ms; sets RC, MS and SIGNALLED (the signal was sent
# while it ran).
attempt() {
    local dir=$1 k=$2 signal=$3 delay=$4
    shift 4
    signalled "$dir" "$k" "$signal" "$delay" \
        "$OCTOUP" rehearse "$@" --json --config "$dir/sim/octoup.toml"
    echo "attempt $k: rehearse $* ${signal:+SIG$signal after ${delay} ms}, exit $RC, ${MS} ms" >>"$dir/attempts.txt"
}

# Orphans of a killed octoup (its children run in their own process groups): a docker CLI
# naming a rehearsal, a sqlcmd stand-in of this run. Waits up to 20 s for them to end, so
# what they do late is checked too; says which were still running.
settle() {
    local dir=$1 n
    for n in $(seq 1 100); do
        if ! pgrep -f "sqlcmd --dir $dir/sim" >/dev/null && ! pgrep -f "docker .*octoup-rehearsal-" >/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "orphans still running after 20 s: $(pgrep -af "sqlcmd --dir $dir/sim|docker .*octoup-rehearsal-" | tr '\n' ';')"
}

# The violations of run dir $1 (kind $2), one a line; nothing when it is clean.
violations_of() {
    local dir=$1 kind=$2 sim=$1/sim f state secret name new
    # No container, no network labelled octoup.rehearsal=<id> of this run's rehearsals.
    new=$(labelled "$dir")
    if [ -n "$new" ]; then echo "left on the engine: $(echo "$new" | tr '\n' ';')"; fi
    # No scratch database on either SQL Server, and each copy made was dropped.
    for state in "$sim/state.json" "$sim/rehearsal-sql/state.json"; do
        [ -e "$state" ] || continue
        local dbs
        dbs=$(jq -r '[.instance_dbs.databases[]?.name] | join(" ")' "$state")
        if [ -n "$dbs" ]; then echo "scratch database(s) left in ${state#"$dir/"}: $dbs"; fi
    done
    local undropped
    undropped=$(jq -rs '
        def key(name): "\(.server // "production")/\(name | ascii_downcase)";
        ([.[] | select(.kind == "db-restored-as") | key(.database)]
         + [.[] | select(.kind == "db-copy-started") | key(.copy)] | unique)
        - ([.[] | select(.kind == "db-dropped" or .kind == "db-copy-failed") | key(.database // .copy)] | unique)
        | join(" ")' "$sim/history.jsonl")
    if [ -n "$undropped" ]; then echo "copies never dropped (history): $undropped"; fi
    # Production untouched: the checker (R1 covers the rehearsal), and its state.
    if ! "$OCTOUP" sim check --dir "$sim" >"$dir/check.txt" 2>&1; then
        echo "octoup sim check: $(tr '\n' ' ' <"$dir/check.txt")"
    fi
    if [ "$(production "$sim")" != "$(cat "$dir/production-before.json")" ]; then
        echo "production changed: $(cat "$dir/production-before.json") → $(production "$sim")"
    fi
    # Every journaled rehearsal torn down.
    for f in "$sim"/octoup-state/rehearsals/*.json; do
        [ -e "$f" ] || continue
        if ! jq -e '.teardown.done == true and .status != "running"' "$f" >/dev/null 2>&1; then
            echo "not torn down in the journal: ${f#"$dir/"}: $(jq -c '{status, teardown}' "$f" 2>&1 | head -c 400)"
        fi
    done
    # No secret in octoup's state directory, nor in what octoup printed.
    for name in master_key sql_password admin_api_key; do
        secret=$(jq -r ".secrets.$name" "$sim/state.json")
        check_secret "$dir" "$name" "$secret"
    done
    if [ -e "$sim/rehearsal-sql/state.json" ]; then
        check_secret "$dir" "rehearsal sql_password" "$(jq -r '.secrets.sql_password' "$sim/rehearsal-sql/state.json")"
    fi
}

check_secret() {
    local dir=$1 name=$2 secret=$3 hits
    [ -n "$secret" ] && [ "$secret" != null ] || return 0
    hits=$(grep -rlF -- "$secret" "$dir/sim/octoup-state" "$dir"/attempt-* 2>/dev/null | sed "s|^$dir/||" | tr '\n' ' ' || true)
    if [ -n "$hits" ]; then echo "the $name is in: $hits"; fi
}

# The wall time of one clean rehearsal of kind $1, in ms, into CAL_MS: the window the kills
# are drawn in.
calibrate() {
    local kind=$1 dir=$WORK/calibrate-$1 t0 problems
    sim_up "$dir" "$kind" || { echo "octoup sim up failed: $dir/up.txt" >&2; touch "$WORK/keep"; return 1; }
    LIVE=$dir
    echo "calibrate $kind" >"$dir/attempts.txt"
    t0=$(now_ms)
    attempt "$dir" 0 "" "" --to "$TARGET"
    CAL_MS=$(( $(now_ms) - t0 ))
    problems=$(violations_of "$dir" "$kind") || true
    teardown_live "$dir"
    LIVE=""
    if [ "$RC" -ne "$(expected_rc "$kind")" ] || [ -n "$problems" ]; then
        echo "a clean rehearsal ($kind) failed (exit $RC): $problems; kept $dir" >&2
        touch "$WORK/keep"
        return 1
    fi
}

declare -A WINDOW=()
line="clean rehearsal:"
for kind in "${kinds[@]}"; do
    calibrate "$kind" || exit 2
    WINDOW[$kind]=$CAL_MS
    line="$line $kind ${WINDOW[$kind]} ms,"
done
echo "${line%,}"

runs=0 kills=0 ctrl_cs=0 late=0 cleanups=0 cleanup_kills=0 nexts=0 violations=0 stalls=0 max_cleanup_ms=0
declare -A by_kind=()
T0=$(date +%s)
for ((i = 1; i <= RUNS; i++)); do
    kind=${kinds[$(( (i - 1) % ${#kinds[@]} ))]}
    window=${WINDOW[$kind]}
    dir=$WORK/run-$i
    if ! sim_up "$dir" "$kind"; then
        echo "run $i ($kind): octoup sim up failed, kept $dir" >&2
        touch "$WORK/keep"
        violations=$((violations + 1))
        continue
    fi
    LIVE=$dir
    runs=$((runs + 1))
    by_kind[$kind]=$(( ${by_kind[$kind]:-0} + 1 ))
    echo "run $i: $kind" >"$dir/attempts.txt"
    problem=""
    stalled=0
    signal=KILL
    if chance "$SIGINT_PCT"; then signal=INT; fi
    delay=$(uniform "$window")
    attempt "$dir" 0 "$signal" "$delay" --to "$TARGET"
    first_ms=$MS
    if [ "$SIGNALLED" -eq 1 ] && [ "$signal" = KILL ]; then
        kills=$((kills + 1))
    elif [ "$SIGNALLED" -eq 1 ]; then
        ctrl_cs=$((ctrl_cs + 1))
        # Ctrl-C: torn down at once, exit 130 with the interrupted report; or, when the
        # interrupt came after the verdict (during the teardown), that verdict's exit.
        status=$(jq -r '.status // empty' "$dir/attempt-0.json" 2>/dev/null || true)
        done_=$(jq -r '.teardown.done // empty' "$dir/attempt-0.json" 2>/dev/null || true)
        if [ "$RC" -eq 130 ]; then
            if [ -s "$dir/attempt-0.json" ] && { [ "$status" != interrupted ] || [ "$done_" != true ]; }; then
                problem="Ctrl-C: exit 130 but the report says status $status, teardown done $done_"
            fi
        elif [ "$RC" -eq "$(expected_rc "$kind")" ] && [ "$done_" = true ]; then
            late=$((late + 1))
        else
            problem="Ctrl-C after ${delay} ms: exit $RC (status ${status:-none}, teardown done ${done_:-none})"
        fi
        if [ "$first_ms" -gt $((delay + CTRL_C_MS)) ]; then
            problem="${problem:+$problem; }Ctrl-C took $((first_ms - delay)) ms to exit"
        fi
    else
        # The rehearsal ended before the signal: it must have ended as a clean one does.
        late=$((late + 1))
        if [ "$RC" -ne "$(expected_rc "$kind")" ]; then
            problem="ended before the signal with exit $RC"
        fi
    fi
    # Clean up: `--cleanup` (itself killed sometimes, then re-run) or the next rehearsal.
    k=0
    if [ -n "$SKIP_CLEANUP" ]; then
        :
    elif chance "$NEXT_PCT"; then
        nexts=$((nexts + 1))
        k=$((k + 1))
        attempt "$dir" "$k" "" "" --to "$TARGET"
        if [ "$RC" -ne "$(expected_rc "$kind")" ]; then
            problem="${problem:+$problem; }the next rehearsal exited $RC"
        fi
    fi
    while [ -z "$SKIP_CLEANUP" ]; do
        k=$((k + 1))
        cleanups=$((cleanups + 1))
        signal=""
        if chance "$KILL_CLEANUP_PCT"; then signal=KILL; fi
        attempt "$dir" "$k" "$signal" "$(uniform "$CLEANUP_WINDOW_MS")" --cleanup
        if [ "$MS" -gt "$max_cleanup_ms" ]; then max_cleanup_ms=$MS; fi
        if [ "$MS" -gt "$STALL_MS" ]; then
            stalls=$((stalls + 1))
            stalled=1
        fi
        if [ "$SIGNALLED" -eq 1 ]; then
            cleanup_kills=$((cleanup_kills + 1))
            if [ "$k" -lt "$MAX_ATTEMPTS" ]; then continue; fi
            problem="${problem:+$problem; }no cleanup finished in $MAX_ATTEMPTS attempts"
        elif [ "$RC" -ne 0 ]; then
            problem="${problem:+$problem; }cleanup exited $RC: $(tail -n 3 "$dir/attempt-$k.err" | tr '\n' ' ')"
        fi
        break
    done
    # A second cleanup finds nothing left.
    if [ -z "$SKIP_CLEANUP" ]; then
        k=$((k + 1))
        attempt "$dir" "$k" "" "" --cleanup
        if [ "$RC" -ne 0 ] || [ "$(jq -r '.cleaned | length' "$dir/attempt-$k.json" 2>/dev/null || echo "?")" != 0 ]; then
            problem="${problem:+$problem; }a second cleanup (exit $RC) still found: $(head -c 300 "$dir/attempt-$k.json" | tr '\n' ' ')"
        fi
    fi
    orphans=$(settle "$dir") || true
    found=$(violations_of "$dir" "$kind") || true
    if [ -n "$found" ]; then problem="${problem:+$problem; }$(echo "$found" | tr '\n' ';')${orphans:+ ($orphans)}"; fi
    if [ -n "$problem" ]; then
        violations=$((violations + 1))
        "$OCTOUP" sim history --dir "$dir/sim" >"$dir/history.txt" 2>&1 || true
        labelled "$dir" >"$dir/labelled.txt" 2>&1 || true
        touch "$WORK/keep"
        echo "run $i ($kind): VIOLATION: $problem; kept $dir" >&2
    fi
    teardown_live "$dir"
    LIVE=""
    keep_or_drop "$dir" "$i ($kind)" "$problem" "$stalled" "a cleanup"
    if (( i % 10 == 0 )); then
        echo "  $i runs: $kills kills, $ctrl_cs Ctrl-C, $cleanups cleanups ($cleanup_kills killed), $violations violations, $stalls stalls ($(( $(date +%s) - T0 )) s)"
    fi
done
wall=$(( $(date +%s) - T0 ))
kinds_line=""
for kind in "${kinds[@]}"; do kinds_line="$kinds_line $kind ${by_kind[$kind]:-0},"; done
kinds_line=${kinds_line# }
echo "seed $SEED: $runs runs (${kinds_line%,}), $kills kills, $ctrl_cs Ctrl-C, $late ended before the signal landed (or during the teardown), $cleanups cleanups ($cleanup_kills killed), $nexts cleaned by the next rehearsal, longest cleanup ${max_cleanup_ms} ms, $violations violations, $stalls stalls, ${wall} s"
if [ -e "$WORK/keep" ] || [ -n "$KEEP" ]; then echo "kept: $WORK"; fi
[ "$violations" -eq 0 ]
