"""CLI: ``python -m simulator [fleet] --url ws://127.0.0.1:9000/ocpp --chargers 10 --protocol mixed``.

Prints one JSON object per line (progress events), then a final ``{"event": "summary", ...}`` line.
Subcommands: ``fleet`` (the default when the first argument is an option) and ``run scenario.yaml``
(a scenario file, with a report and pass/fail thresholds; see :mod:`simulator.run` and docs/simulator.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from simulator.arrivals import ArrivalConfig
from simulator.fleet import Fleet, FleetConfig

SUBCOMMANDS = ("fleet", "run")


def _print(event: dict[str, Any]) -> None:
    print(json.dumps(event, default=str), flush=True)


def _add_fleet_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="ws://127.0.0.1:9000/ocpp",
                   help="CSMS base URL; each charger connects to URL/<charger id>")
    p.add_argument("--chargers", type=int, default=10)
    p.add_argument("--protocol", choices=["1.6", "2.0.1", "mixed"], default="1.6")
    p.add_argument("--id-prefix", default="SIM", help="charger ids are PREFIX-0001, PREFIX-0002, ...")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--speedup", type=float, default=60.0, help="simulated seconds per real second")
    p.add_argument("--duration-s", type=float, default=3600.0, help="simulated run length (s)")
    p.add_argument("--start", default=None, help="simulated start time, ISO 8601 UTC (default: now)")
    p.add_argument("--password", default=None, help="HTTP Basic auth password (user = charger id)")
    p.add_argument("--id-token", default=None, help="use this id token for every session")
    p.add_argument("--max-current-a", type=float, default=32.0)
    p.add_argument("--meter-interval-s", type=int, default=60)
    p.add_argument("--mean-gap-s", type=float, default=3 * 3600, help="mean idle time between sessions")
    p.add_argument("--first-arrival-max-s", type=float, default=1800,
                   help="each charger's first EV arrives within this many simulated seconds")
    p.add_argument("--mean-dwell-s", type=float, default=4 * 3600)
    p.add_argument("--mean-energy-wh", type=float, default=20_000)
    p.add_argument("--idle-chargers", type=int, default=0,
                   help="the last N chargers get no cars: they stay Available (e.g. to book one)")
    p.add_argument("--reject-profiles", action="store_true", help="fault: reject every charging profile")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.add_argument("--summary-json", default=None, help="also write the summary to this file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description="OCPP charger fleet simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_fleet_args(sub.add_parser("fleet", help="run N chargers with random arrivals (default)"))
    from simulator.run import add_run_args

    add_run_args(sub.add_parser("run", help="run a scenario file, write a report, check thresholds"))
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0] not in SUBCOMMANDS and args[0] not in ("-h", "--help")):
        args.insert(0, "fleet")
    return build_parser().parse_args(args)


def fleet_config(ns: argparse.Namespace) -> FleetConfig:
    template: dict[str, Any] = {"max_current_a": ns.max_current_a, "meter_interval_s": ns.meter_interval_s,
                                "reject_profiles": ns.reject_profiles}
    start = datetime.fromisoformat(ns.start.replace("Z", "+00:00")) if ns.start else None
    return FleetConfig(
        url=ns.url, chargers=ns.chargers, protocol=ns.protocol, id_prefix=ns.id_prefix, seed=ns.seed,
        speedup=ns.speedup, duration_s=ns.duration_s, start=start, password=ns.password,
        id_token=ns.id_token, charger_template=template, idle_chargers=ns.idle_chargers,
        arrivals=ArrivalConfig(mean_gap_s=ns.mean_gap_s, mean_dwell_s=ns.mean_dwell_s,
                               mean_energy_wh=ns.mean_energy_wh, first_arrival_max_s=ns.first_arrival_max_s))


async def run_fleet(ns: argparse.Namespace) -> int:
    import ocpp.messages

    ocpp.messages.ASYNC_VALIDATION = False   # 2x throughput; validation still runs (see DEPENDENCIES.md)
    fleet = Fleet(fleet_config(ns), on_event=None if ns.quiet else _print)
    summary = await fleet.run()
    data = summary.to_dict()
    if ns.summary_json:
        with open(ns.summary_json, "w") as fh:
            json.dump(data, fh, indent=2)
    compact = {k: v for k, v in data.items() if k != "sessions"}
    compact["sessions"] = len(summary.sessions)
    compact["sessions_started"] = sum(s.started for s in summary.sessions)
    _print({"event": "summary", **compact})
    return 0 if summary.booted == summary.chargers else 1


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    if ns.command == "fleet":
        try:
            return asyncio.run(run_fleet(ns))
        except KeyboardInterrupt:
            return 130
    if ns.command == "run":
        from simulator.run import run_command, stuck_threads

        status = run_command(ns)
        if stuck := stuck_threads():
            # a worker thread of an in-process CSMS that never returns must not hang CI: report and leave
            print(f"warning: exiting with {len(stuck)} worker thread(s) still running: {stuck}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        return status
    raise SystemExit(f"unknown command {ns.command}")


if __name__ == "__main__":
    sys.exit(main())
