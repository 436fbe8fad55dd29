#!/usr/bin/env python3
"""Boot N servers (default 20) on the local cloudlet two ways and compare:

1. concurrently: N threads, each with its own connection, one create_server each;
2. one multi-create call: a single create_server with min_count = max_count = N.

Each server gets a port on the provider network (m1.tiny, fedora-cloud-test) in the
project of --cloud (default fedcloud-testing).  Time = from the first request until every
server is ACTIVE (SDK waits).  Everything is deleted afterwards (also on failure).

    .venv/bin/python bench/boot20.py [--count 20] [--cloud fedcloud-testing]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openstack

WAIT = 900


def ids(conn):
    img = conn.image.find_image("fedora-cloud-test")
    flv = conn.compute.find_flavor("m1.tiny")
    net = conn.network.find_network("provider")
    if not (img and flv and net):
        sys.exit("fedora-cloud-test, m1.tiny or provider missing: run the cloudlet-install runbook")
    return img.id, flv.id, net.id


def concurrent(cloud: str, n: int, prefix: str) -> tuple[float, list]:
    img, flv, net = ids(openstack.connect(cloud=cloud))

    def boot(i: int):
        c = openstack.connect(cloud=cloud)
        s = c.compute.create_server(name=f"{prefix}c{i:02d}", image_id=img, flavor_id=flv,
                                    networks=[{"uuid": net}])
        return c.compute.wait_for_server(s, status="ACTIVE", failures=["ERROR"], wait=WAIT, interval=1)

    t0 = time.monotonic()
    with ThreadPoolExecutor(n) as ex:
        servers = list(ex.map(boot, range(n)))
    return time.monotonic() - t0, servers


def multi_create(cloud: str, n: int, prefix: str) -> tuple[float, list]:
    conn = openstack.connect(cloud=cloud)
    img, flv, net = ids(conn)
    t0 = time.monotonic()
    conn.compute.create_server(name=f"{prefix}m", image_id=img, flavor_id=flv,
                               networks=[{"uuid": net}], min_count=n, max_count=n)
    servers = [s for s in conn.compute.servers(name=f"^{prefix}m")]
    if len(servers) != n:
        raise SystemExit(f"multi-create made {len(servers)} servers, not {n}")
    servers = [conn.compute.wait_for_server(s, status="ACTIVE", failures=["ERROR"], wait=WAIT, interval=1)
               for s in servers]
    return time.monotonic() - t0, servers


def cleanup(cloud: str, prefix: str) -> float:
    conn = openstack.connect(cloud=cloud)
    t0 = time.monotonic()
    servers = [s for s in conn.compute.servers(name=f"^{prefix}")]
    for s in servers:
        conn.compute.delete_server(s, ignore_missing=True)
    for s in servers:
        conn.compute.wait_for_delete(s, wait=WAIT, interval=1)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--cloud", default="fedcloud-testing")
    a = ap.parse_args()
    prefix = f"bench-{uuid.uuid4().hex[:6]}-"
    result = {"count": a.count, "cloud": a.cloud}
    try:
        t, servers = concurrent(a.cloud, a.count, prefix)
        hosts = sorted({openstack.connect(cloud="fedcloud-admin").compute.get_server(s.id).compute_host
                        for s in servers})
        result.update(concurrent_s=round(t, 1), concurrent_hosts=hosts)
        print(f"{a.count} servers, {a.count} concurrent create calls: all ACTIVE in {t:.1f} s "
              f"(hosts {', '.join(hosts)})", flush=True)
        result["delete_concurrent_batch_s"] = round(cleanup(a.cloud, prefix), 1)
        t, servers = multi_create(a.cloud, a.count, prefix)
        result["multi_create_s"] = round(t, 1)
        print(f"{a.count} servers, one multi-create call (min_count=max_count={a.count}): "
              f"all ACTIVE in {t:.1f} s", flush=True)
    finally:
        result["delete_s"] = round(cleanup(a.cloud, prefix), 1)
    ratio = result["concurrent_s"] / result["multi_create_s"]
    result["ratio"] = round(ratio, 2)
    print(f"ratio concurrent / multi-create: {ratio:.2f}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"boot20-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
