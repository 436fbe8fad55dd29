"""Benchmark: the capacity report's own work against the raw paginated listing of the servers.

A synthetic OpenStack API (``tests/fakes/openstack.py``: Keystone, Nova with
``limit``/``marker`` paging, Placement, Cinder) serves N live servers (default 10,000)
plus deleted ones over loopback HTTP.  Each repetition times, in this one process:

* **raw listing**: the servers (live, and deleted in the window) listed page by page with
  openstacksdk, ``conn.compute.servers(details=True, all_projects=True)`` — what any
  report has to wait for;
* **report reads**: ``report.facts.gather``, every API call the report makes (hosts,
  projects, quotas, and the same servers as Nova's JSON pages: it skips building SDK
  objects, ~1.4 ms each);
* **report work**: ``report.capacity.build`` (tables and flags) plus the CSV files, and
  separately the matplotlib figures rendered to PNG (a fixed cost, whatever N is).

It prints the medians and the ratios; target: report work (tables, flags, CSV, plots)
<= 0.10 of the raw listing.  Also printed: the report end to end against the raw listing,
and the report work against the JSON pages alone (the fake serves a page far faster
than a real Nova does, so that ratio is the harshest view).

    .venv/bin/python bench/capacity_report.py [--servers 10000] [--reps 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fedcloud_lib.cloud import connect  # noqa: E402
from fedcloud_lib.instance.request import iso  # noqa: E402
from fedcloud_lib.report import capacity, facts, output, plots  # noqa: E402
from tests.fakes.openstack import FakeOpenStack  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--servers", type=int, default=10_000)
    ap.add_argument("--deleted", type=int, default=2_000)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--projects", type=int, default=40)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with FakeOpenStack() as cloud, tempfile.TemporaryDirectory() as tmp:
        for i in range(args.hosts):
            cloud.add_host(f"cmp{i:02d}", vcpus=(128, 40 + i), ram_mb=(512000, 100000),
                           disk_gb=(4000, 900))
        cloud.synthetic(args.servers, deleted=args.deleted, projects=args.projects)
        os.environ["OS_CLIENT_CONFIG_FILE"] = cloud.clouds_yaml(Path(tmp) / "clouds.yaml")
        conn = connect("fake")
        conn.authorize()
        since_weeks = 52
        sdk, pages_t, reads, work, plotting = [], [], [], [], []
        for rep in range(args.reps):
            t0 = time.perf_counter()
            inv = facts.gather(conn, weeks=since_weeks)
            t1 = time.perf_counter()
            report = capacity.build(inv)
            t2 = time.perf_counter()
            images = {k: plots.png(f) for k, f in plots.figures(report).items()}
            t3 = time.perf_counter()
            output.write(report, Path(tmp) / f"run{rep}", images)
            t4 = time.perf_counter()
            live = facts.list_servers(conn, all_projects=True)
            gone = facts.list_servers(conn, all_projects=True, deleted_since=inv.since)
            t5 = time.perf_counter()
            n_sdk = len(list(conn.compute.servers(details=True, all_projects=True)))
            n_sdk += len(list(conn.compute.servers(details=True, all_projects=True,
                                                   deleted_only=True,
                                                   changes_since=iso(inv.since))))
            t6 = time.perf_counter()
            assert len(inv.servers) == args.servers and len(live) == args.servers
            assert n_sdk >= len(live) + len(gone), (n_sdk, len(live), len(gone))
            reads.append(t1 - t0)
            work.append((t2 - t1) + (t4 - t3))
            plotting.append(t3 - t2)
            pages_t.append(t5 - t4)
            sdk.append(t6 - t5)
            print(f"rep {rep + 1}: raw listing (SDK) {sdk[-1]:.3f} s for {n_sdk} servers; "
                  f"report reads {reads[-1]:.3f} s (JSON pages alone {pages_t[-1]:.3f} s); "
                  f"tables+flags+csv {work[-1]:.3f} s; plots {plotting[-1]:.3f} s", flush=True)
        L, R, J, W, P = (statistics.median(x) for x in (sdk, reads, pages_t, work, plotting))
        print(f"\nmedians over {args.reps} reps, {args.servers} live + {len(inv.deleted)} "
              f"deleted servers, {args.hosts} hosts, {args.projects + 1} projects:")
        print(f"  raw paginated listing (openstacksdk):  {L:8.3f} s")
        print(f"  report reads (facts.gather):           {R:8.3f} s  (servers as JSON pages: {J:.3f} s)")
        print(f"  report work: tables, flags, CSV:       {W:8.3f} s")
        print(f"  report work: plots (PNG):              {P:8.3f} s")
        print(f"ratio report work / raw listing:         {(W + P) / L:8.3f}  (target <= 0.10; "
              f"without plots {W / L:.3f})")
        print(f"ratio report end to end / raw listing:   {(R + W + P) / L:8.3f}")
        print(f"ratio tables+flags+CSV / JSON pages:     {W / J:8.3f}  (the fake's pages are "
              f"far faster than Nova's)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
