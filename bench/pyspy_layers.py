"""Where the CSMS's CPU goes, by layer, from a py-spy raw profile (the tables in docs/performance.md).

    .venv/bin/python bench/load.py --chargers 500 --speedup 10 --duration-s 30 --no-bare --no-smart \\
        --pid-file /tmp/csms.pid &
    sleep 15; .venv/bin/py-spy record --pid $(cat /tmp/csms.pid) -f raw -r 100 -d 25 -o /tmp/prof.txt
    .venv/bin/python bench/pyspy_layers.py /tmp/prof.txt

py-spy (without --gil) samples every thread that the OS reports running. Two kinds of samples are
idle time it cannot tell apart and are dropped here: aiosqlite's worker thread waiting on its queue
(`SimpleQueue.get`, C code under `_connection_worker_thread` line 59 in aiosqlite 0.22) and the event
loop's epoll wait, plus idle thread-pool workers. SQLAlchemy's greenlets appear as their own stacks
(rooted at Session.execute & co.): they are counted under the database layer, without their caller.

Each busy sample goes to the first layer (in the order below) that one of its frames matches, so the
database layer includes the database work a handler or billing started. Then the top frames by own
time, for the detail.
"""

from __future__ import annotations

import argparse
import collections
import re

IDLE_LEAVES = ("aiosqlite/core.py:59)", "EpollSelector.select (selectors.py", "threading.py:3", "threading.py:6",
               "_worker (concurrent/futures/thread.py:8")
LAYERS = [
    ("planner thread (Pyomo, HiGHS, csms/scheduling)", r"pyomo|highs|csms/scheduling|solver_thread|_WorkItem"),
    ("smart charging service (snapshots, profile delivery)", r"csms/services/smart"),
    ("billing", r"csms/services/billing|csms/billing"),
    ("database: SQLite itself (aiosqlite's thread)", r"_connection_worker_thread"),
    ("database: SQLAlchemy, greenlets, aiosqlite hand-off", r"sqlalchemy|aiosqlite|greenlet|asyncpg|group_commit|"
                                                           r"repositories|sqlite_onehop"),
    ("OCPP schema validation", r"jsonschema|referencing|fastjsonschema|csms/ocpp/schemas.py"),
    ("OCPP dispatch, handlers, mapping, sends", r"csms/ocpp|site-packages/ocpp/"),
    ("websockets and json", r"websockets|json/"),
    ("logging", r"logging/"),
    ("metrics", r"prometheus|csms/api/metrics.py"),
    ("asyncio loop (self-pipe, tasks, transports)", r"asyncio"),
]


def _short(frame: str) -> str:
    m = re.match(r"(.*) \((.*?):(\d+)\)$", frame)
    if not m:
        return frame
    path = m.group(2).split("site-packages/")[-1]
    path = re.sub(r".*/(csms|bench)/", r"\1/", path)
    return f"{m.group(1)} ({path})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("raw", help="py-spy record -f raw output")
    p.add_argument("--top", type=int, default=15, help="frames by own time to list")
    a = p.parse_args()
    layers: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    with open(a.raw) as f:
        for line in f:
            line = line.rstrip()
            if not line:
                continue
            stack, n_s = line.rsplit(" ", 1)
            n = int(n_s)
            frames = stack.split(";")
            if any(i in frames[-1] for i in IDLE_LEAVES):
                idle += n
                continue
            busy += n
            own[_short(frames[-1])] += n
            for name, pat in LAYERS:
                if any(re.search(pat, fr) for fr in frames):
                    layers[name] += n
                    break
            else:
                layers["other"] += n
    if not busy:
        raise SystemExit("no busy samples")
    print(f"busy samples {busy} (idle dropped: {idle})")
    print("| layer | share of busy samples |\n|---|---:|")
    for name, n in layers.most_common():
        print(f"| {name} | {100 * n / busy:.1f} % |")
    print(f"\ntop {a.top} frames by own time:")
    for name, n in own.most_common(a.top):
        print(f"{100 * n / busy:5.1f} %  {name}")


if __name__ == "__main__":
    main()
