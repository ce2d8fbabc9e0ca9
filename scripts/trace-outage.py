#!/usr/bin/env python3
"""Where an upgrade's outage goes beyond the critical-path bound, per phase, in real ms.

    scripts/trace-outage.py HISTORY.json RUN.log TIME_SCALE

HISTORY.json is `octoup sim history --json`; RUN.log is the run's log in octoup's state
directory (`logs/<run>.log`: each command with its end time and duration, each step's end).
Both carry real timestamps, so one run splits every phase boundary into who spent it:

  reap    the phase's last stand-in event (e.g. the last `service-stopped`) to octoup
          marking the phase's last step done: the stand-in's exit, the checks a step runs
          after its command (octoup), reading the child's output;
  react   that mark to octoup spawning the next phase's first command: journal writes
          and fsyncs, the engine's bookkeeping (octoup alone);
  spread  the next phase's first spawn to its last (octoup's spawns, the OS);
  launch  the critical node's spawn to its stand-in's first event (process start-up and
          the simulator's state lock: what a real node would not share with 31 others);
  work    the critical node's stand-in event to event, beyond the nominal duration (the
          simulator's time keeping under load).

The critical node is the one whose end event comes last. Used by scripts/bench-outage.sh
with TRACE=1; see docs/benchmarks.md, "Outage".
"""

import json
import re
import sys
from datetime import datetime

# Phase: the octoup steps that make it, the command label, the stand-in's start/end events.
PHASES = [
    ("stop", "stop", "stop", "service-stopping", "service-stopped"),
    ("install", "install", "install", "install-started", "install-finished"),
    ("db upgrade", "upgrade-database", "database upgrade", "db-upgrade-started", "db-upgrade-finished"),
    ("start", "start", "start", "service-starting", "service-started"),
]


def ts(text):
    # Python's fromisoformat takes at most microseconds: cut the nanoseconds.
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", text)
    frac = (m.group(2) or ".0")[:7]
    return datetime.fromisoformat(m.group(1) + frac + "+00:00").timestamp()


def read_log(path):
    commands, done = [], {}
    pending = None
    for line in open(path, encoding="utf-8", errors="replace"):
        m = re.match(r"(\S+Z) \$ \[([^\]]*)\]", line)
        if m:
            pending = (ts(m.group(1)), m.group(2))
            continue
        m = re.match(r"\s+(?:exit code \S+|killed|\S+) after ([0-9.]+)s", line)
        if m and pending:
            end, label = pending
            commands.append({"label": label, "end": end, "start": end - float(m.group(1))})
            pending = None
            continue
        m = re.match(r"(\S+Z) step (\S+): (done|skipped|failed)", line)
        if m:
            done[m.group(2)] = ts(m.group(1))
    return commands, done


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    history = json.load(open(sys.argv[1]))
    commands, done = read_log(sys.argv[2])
    scale = float(sys.argv[3])
    events = [(ts(r["at"]), r) for r in history]

    def of(kind):
        return [(t, r.get("node")) for t, r in events if r["kind"] == kind]

    rows = []
    prev = None
    for name, step, label, start_kind, end_kind in PHASES:
        starts, ends = of(start_kind), of(end_kind)
        if not ends:
            continue
        end_t, node = max(ends)
        node_start = min((t for t, n in starts if n == node), default=None)
        spawns = [
            c["start"] for c in commands if c["label"] == label or c["label"].startswith(label + " ")
        ]
        mine = [c["start"] for c in commands if c["label"] in (f"{label} {node}", label)]
        node_spawn = max((s for s in mine if node_start is None or s <= node_start), default=None)
        row = {"phase": name, "node": node}
        if prev is not None:
            prev_end, prev_step = prev
            marks = [t for k, t in done.items() if k.split("@")[0] == prev_step]
            saw = max(marks) if marks else None
            first = min((s for s in spawns if s >= prev_end - 0.5), default=None)
            row["reap"] = (saw - prev_end) if saw else None
            row["react"] = (first - saw) if (first and saw) else None
            later = [s for s in spawns if first and s >= first]
            row["spread"] = (max(later) - first) if later else None
        if node_spawn and node_start:
            row["launch"] = node_start - node_spawn
        if node_start:
            row["work_real"] = end_t - node_start
        rows.append(row)
        prev = (end_t, step)

    def ms(v):
        return "" if v is None else f"{v * 1000:.0f}"

    print(f"real milliseconds (1 simulated second = {scale * 1000:.0f} ms)")
    print("| phase | critical node | reap | react | spread | launch | stand-in event to event |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['phase']} | {r['node']} | {ms(r.get('reap'))} | {ms(r.get('react'))} | "
            f"{ms(r.get('spread'))} | {ms(r.get('launch'))} | {ms(r.get('work_real'))} |"
        )


if __name__ == "__main__":
    main()
