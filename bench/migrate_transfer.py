"""Benchmark: streaming a 1 GiB image from one project's Glance into another's.

`fedcloud_lib.migration.transfer.stream_image` (the migration's transfer: streamed, sha256
computed alongside, verified against both Glances' hashes, stamped) against a plain
streaming pipe with the same endpoints (the download's chunks handed to the upload, no
hashing, no verification), interleaved in the same run, each transfer in a fresh process
of its own so that its peak RSS is its own.  Prints both throughputs, their ratio and the
peak RSS of the migration's transfer.  Targets: ratio >= 0.9, peak RSS < 200 MB.

The 1 GiB source image (pseudo-random bytes) is made in the source project first and
every image is deleted afterwards, whatever happens.  Check the disk first (`df -h /`):
the Glance file store holds the source and one copy at a time.

    .venv/bin/python bench/migrate_transfer.py [--reps 5] [--size-mib 1024]
        [--source fedcloud-production] [--target fedcloud-testing]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHUNK = 1024 * 1024


def _content(size: int):
    import random

    block = random.Random(2026).randbytes(CHUNK)
    sent, n = 0, 0
    while sent < size:
        piece = (block[n % 251:] + block[:n % 251])[: size - sent]
        sent += len(piece)
        n += 1
        yield piece


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def one(kind: str, source: str, target: str, image_id: str, name: str) -> dict:
    """One transfer in this process: ``pipe`` (the baseline) or ``stream`` (ours)."""
    import openstack

    from fedcloud_lib.migration.transfer import stream_image

    s, t = openstack.connect(cloud=source), openstack.connect(cloud=target)
    src = s.image.get_image(image_id)
    dst_id = None
    try:
        c0 = time.process_time()
        if kind == "pipe":
            t0 = time.perf_counter()
            dst = t.image.create_image(name, disk_format="raw", container_format="bare",
                                       allow_duplicates=True)
            dst_id = dst.id
            resp = s.image.get(f"/images/{src.id}/file", stream=True)
            dst.upload(t.image, data=resp.iter_content(chunk_size=CHUNK), size=src.size)
            secs = time.perf_counter() - t0
            status = t.image.get_image(dst.id).status
            resp.close()
            detail = status
        else:
            t0 = time.perf_counter()
            res = stream_image(s, src, t, name=name)
            secs = time.perf_counter() - t0
            dst_id = res.target_image_id
            detail = f"sha256 {res.sha256[:12]}, verified by {res.verified_by}"
        return {"kind": kind, "seconds": secs, "cpu_seconds": time.process_time() - c0,
                "bytes": src.size,
                "mb_per_s": src.size / secs / 1e6, "peak_rss_mb": _peak_mb(), "detail": detail}
    finally:
        if dst_id:
            t.image.delete_image(dst_id, ignore_missing=True)


def _child(kind: str, args: argparse.Namespace, image_id: str, prefix: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", kind, "--image", image_id,
                          "--name", f"{prefix}{kind}-{uuid.uuid4().hex[:6]}",
                          "--source", args.source, "--target", args.target],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--source", default="fedcloud-production")
    ap.add_argument("--target", default="fedcloud-testing")
    ap.add_argument("--one", choices=["pipe", "stream"], help=argparse.SUPPRESS)
    ap.add_argument("--image", help=argparse.SUPPRESS)
    ap.add_argument("--name", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.source, args.target, args.image, args.name)))
        return 0

    import openstack

    s, t = openstack.connect(cloud=args.source), openstack.connect(cloud=args.target)
    prefix = f"bench-migrate-{uuid.uuid4().hex[:6]}-"
    size = args.size_mib * CHUNK
    src = s.image.create_image(f"{prefix}source", disk_format="raw", container_format="bare",
                               allow_duplicates=True)
    try:
        t0 = time.perf_counter()
        src.upload(s.image, data=_content(size), size=size)
        src = s.image.wait_for_status(s.image.get_image(src.id), "active",
                                      failures=["killed"], wait=600)
        print(f"source image {src.size / 2**20:.0f} MiB in {args.source} "
              f"({time.perf_counter() - t0:.1f} s to make)")
        runs: dict[str, list[dict]] = {"pipe": [], "stream": []}
        for rep in range(args.reps):
            order = ("pipe", "stream") if rep % 2 == 0 else ("stream", "pipe")
            for kind in order:
                r = _child(kind, args, src.id, prefix)
                runs[kind].append(r)
                print(f"  rep {rep + 1} {kind:6} {r['seconds']:6.2f} s {r['mb_per_s']:6.1f} MB/s "
                      f"cpu {r['cpu_seconds']:5.2f} s  peak RSS {r['peak_rss_mb']:.0f} MB  "
                      f"{r['detail']}",
                      flush=True)
    finally:
        s.image.delete_image(src.id, ignore_missing=True)
        for img in t.image.images(owner=t.current_project_id):
            if img.name.startswith(prefix):
                t.image.delete_image(img, ignore_missing=True)
    pipe = statistics.median(r["mb_per_s"] for r in runs["pipe"])
    ours = statistics.median(r["mb_per_s"] for r in runs["stream"])
    peak = max(r["peak_rss_mb"] for r in runs["stream"])
    pairs = [b["mb_per_s"] / a["mb_per_s"] for a, b in zip(runs["pipe"], runs["stream"])]
    print(f"plain pipe         median {pipe:.1f} MB/s")
    print(f"stream_image       median {ours:.1f} MB/s (sha256 + verification + stamp)")
    print(f"ratio stream/pipe = {ours / pipe:.3f} (target >= 0.9; per rep: "
          f"{', '.join(f'{p:.2f}' for p in pairs)}; {args.reps} reps each)")
    print(f"peak RSS of stream_image = {peak:.0f} MB (target < 200 MB)")
    cpu_p = statistics.median(r["cpu_seconds"] for r in runs["pipe"])
    cpu_s = statistics.median(r["cpu_seconds"] for r in runs["stream"])
    print(f"CPU of the transferring process: pipe {cpu_p:.2f} s, stream_image {cpu_s:.2f} s "
          f"(medians; the load average was {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
