"""Benchmark: image-create's import of a 1 GiB image against a plain streaming copy.

In one run of this script, against the same Glance (``fedcloud-testing``), from the same
local HTTP server:

* **baseline** — ``curl URL | glance image-create`` done with the SDK: the HTTP response
  body handed as a file object to ``conn.image.create_image`` (nothing verified, nothing
  on disk), until ``active``; in a child process, whose peak RSS is read too;
* **image-create** — ``fedcloud run image-create --approve`` (download to disk with
  sha256, ``qemu-img info``, upload of the verified file, wait for ``active``, compare
  Glance's ``os_hash_value``, boot test).  Its upload time is the plan's ``image`` step;
  the kernel's and the ``fedcloud`` process's peak RSS (``VmHWM``) are polled.

The baseline runs before and after image-create; the ratios printed are image-create's
throughput over the baseline's (mean of both runs): for the upload (target >= 0.9), and
for the whole import (download + verify + upload), which pays for verifying before
anything reaches Glance.  Target for memory: kernel peak RSS < 200 MB.
Every image is deleted afterwards.

    .venv/bin/python bench/image_upload.py [--size-mb 1024] [--cloud fedcloud-testing]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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


def baseline(url: str, name: str, cloud: str) -> dict:
    """In this (child) process: stream ``url`` straight into Glance, until active."""
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


def run_baseline(url: str, name: str, cloud: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--baseline", url, name, "--cloud", cloud],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="image size in MiB (default 1024)")
    ap.add_argument("--cloud", default="fedcloud-testing")
    ap.add_argument("--baseline", nargs=2, metavar=("URL", "NAME"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        print(json.dumps(baseline(*args.baseline, args.cloud)))
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
            "boot_test": {"timeout_s": 600, "console_grace_s": 2},
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
        with FileServer(served) as http:
            url = http.url("bench.raw")
            try:
                b1 = run_baseline(url, f"{prefix}baseline-1", args.cloud)
                cmd = [sys.executable, "-m", "fedcloud_lib.cli", "run", "image-create",
                       "--no-progress", "--approve", "--cloud", args.cloud, "-p", "profile",
                       profile, "-p", "version", "1", "-p", "source", url, "-p", "checksum",
                       digest]
                peaks: dict[str, int] = {}
                stop = threading.Event()
                t0 = time.perf_counter()
                proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                w = threading.Thread(target=watch, args=(proc, peaks, stop), daemon=True)
                w.start()
                out, err = proc.communicate()
                wall = time.perf_counter() - t0
                stop.set()
                w.join()
                if proc.returncode != 0:
                    print(out, err, file=sys.stderr)
                    return 1
                b2 = run_baseline(url, f"{prefix}baseline-2", args.cloud)
                rec = json.loads(next((t / "outputs").glob("image-create/*/*/record.json"))
                                 .read_text())
            finally:
                cleanup(args.cloud, prefix, profile)
    steps = {s["kind"]: s["seconds"] for s in rec["results"]["image"]["steps"]}
    size = rec["results"]["image"]["size"]
    base_s = (b1["seconds"] + b2["seconds"]) / 2
    up_s, dl_s = steps["image"], steps["download"]
    print(f"image: {size / MB:.0f} MB raw, Glance {args.cloud} (file store)")
    base_rss = max(b1["peak_rss"], b2["peak_rss"])
    print(f"baseline (HTTP body -> SDK create_image): {b1['seconds']:.2f} s, "
          f"{b2['seconds']:.2f} s -> {size / base_s / MB:.0f} MB/s; peak RSS "
          f"{base_rss / MB:.0f} MB")
    print(f"image-create upload (verified file -> active, os_hash checked): {up_s:.2f} s "
          f"-> {size / up_s / MB:.0f} MB/s")
    print(f"image-create download+verify (sha256, sha512, qemu-img): {dl_s:.2f} s")
    print(f"image-create whole run incl. kernel start, plan and boot test: {wall:.1f} s "
          f"(boot test {steps.get('boot test', 0):.1f} s)")
    print(f"peak RSS: kernel {peaks.get('kernel', 0) / MB:.0f} MB, fedcloud process "
          f"{peaks.get('fedcloud', 0) / MB:.0f} MB  (target < 200 MB)")
    print(f"ratio upload throughput / baseline = {base_s / up_s:.3f}  (target >= 0.9)")
    print(f"ratio whole import (download+verify+upload) / baseline = "
          f"{base_s / (up_s + dl_s):.3f}  (verifying before upload is sequential by design)")
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
