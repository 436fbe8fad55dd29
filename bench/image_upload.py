"""Benchmark: image-create's import of a 1 GiB image against a plain streaming copy.

In one run of this script, against the same Glance (``fedcloud-testing``), from the same
local HTTP server (stdlib ``http.server``):

1. **memory** — one real ``fedcloud run image-create --approve`` (download with sha256,
   ``qemu-img info``, upload of the verified file, wait for ``active``, Glance's
   ``os_hash_value`` compared, boot test); the kernel's and the ``fedcloud`` process's
   peak RSS (``VmHWM``) are polled.  Target: kernel < 200 MB.
2. **throughput**, ``--reps`` times, alternating, each in a child process:
   * *baseline* — ``curl URL | glance image-create`` done with the SDK: the HTTP response
     body handed as a file object to ``conn.image.create_image``, until ``active``
     (nothing verified, nothing on disk);
   * *image-create* — the runbook's own plan (request → facts → plan) and handlers
     (:func:`fedcloud_lib.image.apply.apply`) for its ``download`` and ``image`` steps
     only (no kernel start, no boot test): the upload is the ``image`` step (verified
     file → ``active`` → ``os_hash_value`` checked), the whole import adds the download.

Printed: medians, and image-create's throughput over the baseline's for the upload
(target >= 0.9) and for the whole import, which verifies everything before anything
reaches Glance and so downloads and uploads one after the other.  Every image is deleted
afterwards.  The machine is shared: run it when the cloudlet is quiet, and look at the
spread of the repetitions.

    .venv/bin/python bench/image_upload.py [--size-mb 1024] [--reps 3] [--cloud fedcloud-testing]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fedcloud_lib.site.policy import DEFAULT_POLICY_PATH  # noqa: E402
from tests.fakes.images import FileServer, make_raw, sha256  # noqa: E402

MB = 1_000_000


def vmhwm(pid: int) -> int:
    """Peak resident set size of a process so far, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# ------------------------------------------------------------------ child processes

def baseline(url: str, name: str, cloud: str) -> dict:
    """Stream ``url`` straight into Glance, until active (then delete it)."""
    import openstack
    import requests

    conn = openstack.connect(cloud=cloud)
    t0 = time.perf_counter()
    with requests.get(url, stream=True, timeout=(15, 120)) as r:
        r.raise_for_status()
        size = int(r.headers["Content-Length"])
        img = conn.image.create_image(name, data=r.raw, size=size, disk_format="raw",
                                      container_format="bare", allow_duplicates=True)
    img = conn.image.wait_for_status(img, "active", failures=["killed"], wait=3600)
    secs = time.perf_counter() - t0
    conn.image.delete_image(img)
    return {"seconds": secs, "bytes": size, "peak_rss": vmhwm(os.getpid())}


def ours(url: str, digest: str, profile: str, cloud: str) -> dict:
    """image-create's plan and handlers for the download and image steps (then delete)."""
    from fedcloud_lib import image
    from fedcloud_lib.cloud import connect
    from fedcloud_lib.context import utcnow
    from fedcloud_lib.plan import Plan
    from fedcloud_lib.site import policy as site_policy

    policy = site_policy.load()
    req = image.request.prepare(policy, source=url, checksum=digest, profile=profile,
                                version="1")
    conn = connect(cloud)
    facts = image.facts.gather(conn, policy, req, image.facts.resolve_source(req))
    plan = image.plan.make_plan(policy, req, facts, now=utcnow()).plan
    steps = [s for s in plan.steps if s.kind in ("download", "image") and s.action == "create"]
    assert [s.kind for s in steps] == ["download", "image"], plan.rows()
    out = image.apply.apply(conn, policy, Plan(plan.title, tuple(steps)), progress=False,
                            say=lambda _: None)
    conn.image.delete_image(out.image_id)
    secs = {s.kind: s.seconds for s in out.steps}
    return {"download": secs["download"], "upload": secs["image"], "bytes": out.size,
            "peak_rss": vmhwm(os.getpid())}


def child(*args: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ the run

def watch(proc: subprocess.Popen, peaks: dict, stop: threading.Event) -> None:
    """Poll the fedcloud process and its kernel for their peak RSS."""
    root = psutil.Process(proc.pid)
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for p in procs:
            try:
                kind = "kernel" if "ipykernel" in " ".join(p.cmdline()) else \
                    ("fedcloud" if p.pid == root.pid else None)
                if kind:
                    peaks[kind] = max(peaks.get(kind, 0), vmhwm(p.pid))
            except (psutil.Error, OSError):
                continue
        stop.wait(0.2)


def full_run(url: str, digest: str, profile: str, cloud: str, env: dict) -> dict:
    cmd = [sys.executable, "-m", "fedcloud_lib.cli", "run", "image-create", "--no-progress",
           "--approve", "--cloud", cloud, "-p", "profile", profile, "-p", "version", "1",
           "-p", "source", url, "-p", "checksum", digest]
    peaks: dict[str, int] = {}
    stop = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    w = threading.Thread(target=watch, args=(proc, peaks, stop), daemon=True)
    w.start()
    out, err = proc.communicate()
    stop.set()
    w.join()
    if proc.returncode != 0:
        raise RuntimeError(f"fedcloud run failed: {err[-2000:]}")
    rec = json.loads(max(Path(env["FEDCLOUD_OUTPUTS"]).glob("image-create/*/*/record.json"),
                         key=lambda p: p.stat().st_mtime).read_text())
    steps = {s["kind"]: s["seconds"] for s in rec["results"]["image"]["steps"]}
    return {"wall": time.perf_counter() - t0, "steps": steps, "peaks": peaks}


def cleanup(cloud: str, prefix: str, profile: str) -> None:
    import openstack

    conn = openstack.connect(cloud=cloud)
    pid = conn.current_project_id
    for hidden in (False, True):
        for i in conn.image.images(owner=pid, is_hidden=hidden):
            if (i.name or "").startswith(prefix) or \
                    (i.properties or {}).get("fedcloud_profile") == profile:
                conn.image.delete_image(i, ignore_missing=True)
    for s in conn.compute.servers():
        if s.name.startswith(prefix):
            conn.compute.delete_server(s, ignore_missing=True)


def _list(values) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="image size in MiB (default 1024)")
    ap.add_argument("--reps", type=int, default=3, help="throughput repetitions (default 3)")
    ap.add_argument("--cloud", default="fedcloud-testing")
    ap.add_argument("--baseline", nargs=2, metavar=("URL", "NAME"), help=argparse.SUPPRESS)
    ap.add_argument("--ours", nargs=3, metavar=("URL", "SHA256", "PROFILE"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        print(json.dumps(baseline(*args.baseline, args.cloud)))
        return 0
    if args.ours:
        print(json.dumps(ours(*args.ours, args.cloud)))
        return 0

    free = shutil.disk_usage("/").free
    need = 4 * args.size_mb << 20
    if free < need:
        print(f"not enough disk: {free >> 30} GiB free, need {need >> 30} GiB "
              f"(served file, work copy, Glance store)", file=sys.stderr)
        return 2
    prefix = f"bench-{uuid.uuid4().hex[:6]}-"
    profile = f"{prefix}img".rstrip("-")
    with tempfile.TemporaryDirectory(prefix="fedcloud-bench-", dir="/var/tmp") as tmp:
        t = Path(tmp)
        served = t / "served"
        served.mkdir()
        img = make_raw(served / "bench.raw", args.size_mb, args.size_mb)
        digest = sha256(img)
        policy = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
        policy["images"] = {
            "work_dir": str(t / "work"),
            "boot_test": {"timeout_s": 900, "console_grace_s": 2},
            "profiles": {profile: {
                "image_name": f"{prefix}img", "contents": "benchmark image",
                "root_key_groups": ["sysadmin-main"], "formats": ["raw"],
                "update": {"keep": 1, "hidden_days": 0},
                "properties": {"os_distro": "fedora", "min_disk": args.size_mb // 1024 + 1,
                               "min_ram": 0},
                "boot_flavors": ["m1.tiny", "m1.small"]}}}
        (t / "policy.yaml").write_text(yaml.safe_dump(policy))
        env = {**os.environ, "FEDCLOUD_POLICY": str(t / "policy.yaml"),
               "FEDCLOUD_OUTPUTS": str(t / "outputs"), "OS_CLOUD": args.cloud}
        base, mine = [], []
        with FileServer(served) as http:
            url = http.url("bench.raw")
            try:
                full = full_run(url, digest, profile, args.cloud, env)
                cleanup(args.cloud, prefix, profile)
                for i in range(args.reps):
                    base.append(child("--baseline", url, f"{prefix}baseline-{i}", "--cloud",
                                      args.cloud, env=env))
                    mine.append(child("--ours", url, digest, profile, "--cloud", args.cloud,
                                      env=env))
            finally:
                cleanup(args.cloud, prefix, profile)
    size = mine[0]["bytes"]
    b = statistics.median(x["seconds"] for x in base)
    up = statistics.median(x["upload"] for x in mine)
    whole = statistics.median(x["upload"] + x["download"] for x in mine)
    dl = statistics.median(x["download"] for x in mine)
    print(f"image: {size / MB:.0f} MB raw; Glance of {args.cloud} (file store); {args.reps} reps; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"baseline curl|glance (HTTP body -> SDK create_image): median {b:.2f} s "
          f"({_list(x['seconds'] for x in base)}) -> {size / b / MB:.0f} MB/s")
    print(f"image-create upload (verified file -> active, os_hash checked): median {up:.2f} s "
          f"({_list(x['upload'] for x in mine)}) -> {size / up / MB:.0f} MB/s")
    print(f"image-create download + verify (sha256, sha512, qemu-img): median {dl:.2f} s")
    steps = full["steps"]
    print(f"full `fedcloud run image-create`: {full['wall']:.1f} s wall, upload step "
          f"{steps.get('image', 0):.1f} s, boot test {steps.get('boot test', 0):.1f} s")
    print(f"peak RSS: kernel {full['peaks'].get('kernel', 0) / MB:.0f} MB, fedcloud process "
          f"{full['peaks'].get('fedcloud', 0) / MB:.0f} MB (target < 200 MB); children: "
          f"baseline {max(x['peak_rss'] for x in base) / MB:.0f} MB, image-create "
          f"{max(x['peak_rss'] for x in mine) / MB:.0f} MB")
    print(f"ratio upload throughput / baseline = {b / up:.3f}  (target >= 0.9)")
    print(f"ratio whole import (download + verify + upload) / baseline = {b / whole:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
