# Shared by scripts/chaos.sh and scripts/chaos-rehearse.sh (sourced, not run): the clock,
# the random draws, and one attempt of a command interrupted by a signal after a delay.

now_ms() { date +%s%3N; }
# A uniform integer in [0, n).
uniform() { echo $(( (RANDOM * 32768 + RANDOM) % $1 )); }
# True with probability $1 %.
chance() { [ $((RANDOM % 100)) -lt "$1" ]; }
ms_to_s() { awk -v d="$1" 'BEGIN { printf "%.3f", d / 1000 }'; }

# `signalled DIR K SIGNAL DELAY CMD...`: runs CMD with its stdout in DIR/attempt-K.json and
# its stderr in DIR/attempt-K.err, sends SIGNAL (KILL, INT; none when empty) after DELAY ms;
# sets RC (its exit status), MS (its wall time) and SIGNALLED (1: the signal reached it while
# it ran: SIGKILL shows in the status, as octoup never exits 137 itself; for any other
# signal the marker DIR/signalled-K, touched just before it was sent, tells).
signalled() {
    local dir=$1 k=$2 signal=$3 delay=$4 pid killer t0
    shift 4
    t0=$(now_ms)
    "$@" >"$dir/attempt-$k.json" 2>"$dir/attempt-$k.err" </dev/null &
    pid=$!
    killer=""
    if [ -n "$signal" ]; then
        # The marker first: the wait below may return before the killer's next command runs.
        (sleep "$(ms_to_s "$delay")" && touch "$dir/signalled-$k" && kill -"$signal" "$pid" 2>/dev/null) &
        killer=$!
    fi
    RC=0
    { wait "$pid"; } 2>/dev/null || RC=$?
    if [ -n "$killer" ]; then
        kill "$killer" 2>/dev/null || true
        wait "$killer" 2>/dev/null || true
    fi
    MS=$(( $(now_ms) - t0 ))
    SIGNALLED=0
    if [ "$signal" = KILL ] && [ "$RC" -eq 137 ]; then SIGNALLED=1; fi
    if [ -n "$signal" ] && [ "$signal" != KILL ] && [ -e "$dir/signalled-$k" ]; then SIGNALLED=1; fi
}

# After run LABEL (its directory DIR, under $WORK): kept, saying why, when it stalled (STALLED
# 1; WHAT names what took too long), and when it broke an invariant (PROBLEM not empty, said
# by the caller); else removed, unless KEEP is set.
keep_or_drop() {
    local dir=$1 label=$2 problem=$3 stalled=$4 what=$5
    if [ "$stalled" -eq 1 ]; then
        touch "$WORK/keep"
        echo "run $label: $what took over ${STALL_MS} ms, kept $dir: $(tail -n +2 "$dir/attempts.txt" | tr '\n' ';')" >&2
    elif [ -z "$problem" ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$dir"
    fi
}
