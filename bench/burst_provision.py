#!/usr/bin/env python3
"""Provision 40 builders (m1.builder) to ACTIVE on the local cloudlet three ways, in one
run, in a project of its own (quotas set for it, deleted afterwards):

1. the burst path: fedcloud_lib.burst.provision.Provisioner as the runbook uses it
   (method auto: the first wave measures one multi-create against a pool of single
   creates and keeps the faster; at most boot_ceiling boots at once, adaptive, from the
   site policy's burst section);
2. a serial create-and-wait loop (one server at a time, the SDK's wait after each);
3. one nova multi-create call of the same size (min_count = max_count = N), then the
   same wait as the burst path (BootWatch: one list call per interval for all servers).

Time = from the first create request until every server is ACTIVE.  Targets: burst at
least 2x faster than the serial loop, and at most 1.1x one multi-create call.  Reference
(bench/boot20.py, 20 servers): 20 concurrent calls 57.9 s, one multi-create 31.1 s.

    .venv/bin/python bench/burst_provision.py [--count 40] [--order burst,multi,serial]
        [--boot-ceiling N]   (start the burst's ceiling at N instead of the policy's)
        [--method auto|multi|pool]   (force the burst path's method; default: its probe)
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openstack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fedcloud_lib.burst.connections import ThreadConnections  # noqa: E402
from fedcloud_lib.burst.provision import BootThrottle, BuilderSpec, Provisioner  # noqa: E402
from fedcloud_lib.burst.sweep import delete_servers  # noqa: E402
from fedcloud_lib.burst.watch import BootWatch  # noqa: E402
from fedcloud_lib.site import policy as site_policy  # noqa: E402

WAIT = 1200
FLAVOR = "m1.builder"


def project(admin, count: int):
    name = f"bench-burst-{uuid.uuid4().hex[:6]}"
    idc = admin.identity
    proj = idc.create_project(name=name, domain_id="default", description="bench/burst_provision.py")
    pw = secrets.token_urlsafe(18)
    user = idc.create_user(name=name, password=pw, domain_id="default", default_project_id=proj.id)
    idc.assign_project_role_to_user(proj, user, idc.find_role("member"))
    admin.set_compute_quotas(proj.id, instances=count + 5, cores=2 * (count + 5),
                             ram=5120 * (count + 5))
    admin.set_network_quotas(proj.id, port=2 * count + 20)
    auth = admin.config.config["auth"]
    cfg = dict(auth_url=auth["auth_url"], username=name, password=pw, project_name=name,
               user_domain_name="Default", project_domain_name="Default",
               region_name=admin.config.region_name, identity_api_version="3")
    return proj, user, lambda: openstack.connect(**cfg)


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v) - idle, sum(v)


def ids(conn):
    return (conn.image.find_image("fedora-cloud-test").id, conn.compute.find_flavor(FLAVOR).id,
            conn.network.find_network("provider").id)


def burst(make, n: int, policy, start: int | None = None, method: str = "auto") -> tuple[float, dict]:
    conns = ThreadConnections(make)
    img, flv, net = ids(conns.get())
    bp = policy.burst
    spec = BuilderSpec(prefix=f"b{uuid.uuid4().hex[:4]}", flavor_id=flv, image_id=img,
                       network_id=net, keypair=None, security_group=None,
                       metadata={"fedcloud_role": "burst-builder", "fedcloud_burst": "bench"},
                       lifetime_s=3600, boot_timeout_s=WAIT)
    ready = threading.Event()
    got = []
    prov = Provisioner(conns, spec, target=n, throttle=BootThrottle(
        start or bp.boot_ceiling, bp.min_boot_ceiling, bp.max_boot_ceiling), method=method,
        max_failures=bp.max_boot_failures, run_id=f"bench-{uuid.uuid4().hex[:6]}", operator="bench")

    def on_ready(b):
        got.append(b)
        if len(got) >= n:
            ready.set()

    t0 = time.monotonic()
    prov.attach(on_ready)
    prov.start()
    while not ready.wait(1.0):
        c = prov.counts()
        if c["alive"] + c["booting"] == 0 and c["target"] <= len(got):
            break
    secs = time.monotonic() - t0
    stats = prov.stats()
    stats["active"] = len(got)
    problems = prov.teardown(wait=WAIT)
    stats["teardown_problems"] = problems
    conns.close()
    return secs, stats


def serial(make, n: int, prefix: str) -> float:
    conn = make()
    img, flv, net = ids(conn)
    t0 = time.monotonic()
    for i in range(n):
        s = conn.compute.create_server(name=f"{prefix}s{i:02d}", image_id=img, flavor_id=flv,
                                       networks=[{"uuid": net}])
        conn.compute.wait_for_server(s, wait=WAIT, interval=1)
    return time.monotonic() - t0


def multi(make, n: int, prefix: str) -> float:
    conn = make()
    img, flv, net = ids(conn)
    conns = ThreadConnections(make)
    t0 = time.monotonic()
    conn.compute.create_server(name=f"{prefix}m", image_id=img, flavor_id=flv,
                               networks=[{"uuid": net}], min_count=n, max_count=n)
    servers = list(conn.compute.servers(name=f"^{prefix}m"))
    if len(servers) != n:
        raise SystemExit(f"multi-create made {len(servers)} servers, not {n}")
    # the same waits as the burst path: one list call per interval (BootWatch) for all
    watch = BootWatch(conns.get, f"{prefix}m", interval=2.0)
    with ThreadPoolExecutor(n) as ex:
        list(ex.map(lambda s: watch.wait(s, WAIT), servers))
    secs = time.monotonic() - t0
    watch.close()
    conns.close()
    return secs


def clean(make) -> float:
    conn = make()
    t0 = time.monotonic()
    conns = ThreadConnections(make)
    problems = delete_servers(conns, [s.id for s in conn.compute.servers()], wait=WAIT)
    conns.close()
    if problems:
        print("cleanup problems:", problems, flush=True)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--order", default="burst,multi,serial")
    ap.add_argument("--boot-ceiling", type=int, default=None)
    ap.add_argument("--method", choices=("auto", "multi", "pool"), default="auto",
                    help="the burst path's method (auto: the runbook's probe decides)")
    a = ap.parse_args()
    policy = site_policy.load()
    admin = openstack.connect(cloud="fedcloud-admin")
    proj, user, make = project(admin, a.count)
    prefix = f"bench-{uuid.uuid4().hex[:4]}-"
    result: dict = {"count": a.count, "flavor": FLAVOR, "order": a.order,
                    "boot_ceiling": a.boot_ceiling or policy.burst.boot_ceiling,
                    "policy_burst": policy.burst.__dict__}
    try:
        with open("/proc/loadavg") as f:
            result["loadavg_before"] = f.read().split()[:3]
        for what in a.order.split(","):
            cpu0 = cpu_times()
            if what == "burst":
                secs, stats = burst(make, a.count, policy, a.boot_ceiling, a.method)
                result.update(burst_s=round(secs, 1), burst_stats=stats)
                print(f"burst path: {stats['active']} builders ACTIVE in {secs:.1f} s (chosen method "
                      f"{stats['chosen']}; probe {json.dumps(stats['probe'])}; ceiling history "
                      f"{stats['ceiling_history']}; failures {stats['failures']})", flush=True)
            elif what == "multi":
                secs = multi(make, a.count, prefix)
                result["multi_s"] = round(secs, 1)
                print(f"one multi-create call of {a.count}: all ACTIVE in {secs:.1f} s", flush=True)
            elif what == "serial":
                secs = serial(make, a.count, prefix)
                result["serial_s"] = round(secs, 1)
                print(f"serial create-and-wait loop of {a.count}: all ACTIVE in {secs:.1f} s", flush=True)
            cpu1 = cpu_times()
            # how busy the machine's cores were while this way booted: near 100 % means the
            # cloudlet's control plane, not the client's concurrency, is what limits it
            busy = (cpu1[0] - cpu0[0]) / max(cpu1[1] - cpu0[1], 1)
            result[f"cpu_busy_{what}"] = round(busy, 2)
            print(f"  cpu busy while {what} booted: {busy:.0%} of {os.cpu_count()} cores", flush=True)
            result[f"cleanup_after_{what}_s"] = round(clean(make), 1)
        with open("/proc/loadavg") as f:
            result["loadavg_after"] = f.read().split()[:3]
    finally:
        clean(make)
        for p in admin.network.ports(project_id=proj.id):
            admin.network.delete_port(p, ignore_missing=True)
        for g in admin.network.security_groups(project_id=proj.id):
            admin.network.delete_security_group(g, ignore_missing=True)
        admin.identity.delete_user(user, ignore_missing=True)
        admin.identity.delete_project(proj, ignore_missing=True)
    ok = True
    if "serial_s" in result and "burst_s" in result:
        r = result["serial_s"] / result["burst_s"]
        result["serial_over_burst"] = round(r, 2)
        ok &= r >= 2
        print(f"serial / burst = {r:.2f} (target >= 2){'' if r >= 2 else '  TARGET MISSED'}")
    if "multi_s" in result and "burst_s" in result:
        r = result["burst_s"] / result["multi_s"]
        result["burst_over_multi"] = round(r, 2)
        ok &= r <= 1.1
        print(f"burst / one multi-create = {r:.2f} (target <= 1.1){'' if r <= 1.1 else '  TARGET MISSED'}")
    if "multi_s" in result and "serial_s" in result:
        # nova's own fastest path against the serial loop: what no client-side method can
        # beat by much, so the ceiling of "serial / burst" on this cloud
        r = result["serial_s"] / result["multi_s"]
        result["serial_over_multi"] = round(r, 2)
        print(f"serial / one multi-create = {r:.2f} (the cloud's own bound for serial / burst)")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"burst_provision-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(
        json.dumps(result, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
