"""``fedcloud burst sweep``: delete builders that bursts left behind (after a SIGKILL that
took the run's watchdog too, or a lost machine).  Wired by ``fedcloud_lib.cli.PLUGINS``."""
from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

__all__ = ["register", "cmd_sweep"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``burst`` (``sweep``) to an argparse subparsers object."""
    burst = subparsers.add_parser("burst", help="mass-rebuild-burst chores (leftover builders)")
    sub = burst.add_subparsers(dest="burst_command", metavar="COMMAND", required=True)
    sweep = sub.add_parser(
        "sweep", help="list burst builders and delete those left behind",
        description="Lists the burst builders of the cloud's project and why each may go: "
                    "its run is over (archive), it expired, or it belongs to --ticket. "
                    "Deletes them only with --yes.")
    sweep.add_argument("--cloud", help="clouds.yaml entry (default: $OS_CLOUD)")
    sweep.add_argument("--ticket", help="also delete every builder of this burst (its runs "
                       "must be over: the engine's lock keeps one run per burst)")
    sweep.add_argument("--yes", action="store_true", help="delete (otherwise only list)")
    sweep.add_argument("--json", action="store_true", help="print JSON")
    sweep.set_defaults(func=cmd_sweep)
    return burst


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..cloud import connect
    from .connections import ThreadConnections, factory_for
    from .sweep import burst_builders, delete_servers, finished_runs, leftovers

    conn = connect(args.cloud, authorize=True)
    now = dt.datetime.now(dt.timezone.utc)
    found = leftovers(burst_builders(conn), burst=args.ticket, finished=finished_runs(), now=now)
    go = [b for b in found if b.reason]
    problems: list[str] = []
    if args.yes and go:
        problems = delete_servers(ThreadConnections(factory_for(conn)), [b.id for b in go])
    rows = [{**b.to_dict(), "action": ("deleted" if args.yes else "would delete") if b.reason
             else "kept (a live run of another burst)"} for b in found]
    if args.json:
        print(json.dumps({"builders": rows, "problems": problems}, indent=1))
    else:
        for r in rows:
            print(f"{r['action']:<36} {r['name']:<40} {r['status']:<8} burst {r['burst'] or '-'} "
                  f"run {r['run_id'] or '-'}: {r['reason'] or 'not expired, run unknown here'}")
        if not rows:
            print("no burst builder in this project")
        elif go and not args.yes:
            print(f"{len(go)} builder(s) would be deleted; add --yes to delete them")
        for p in problems:
            print(f"problem: {p}")
    return 1 if problems else 0
