#!/usr/bin/env python3
"""Plan a mass rebuild of 10,000 packages on 10, 50 and 200 builders (LPT list scheduling,
fedcloud_lib.burst.schedule.simulate) and compare the makespan with the lower bound
max(Σd / builders, max d).  Targets: makespan / lower bound ≤ 1.02 and planning < 1 s for
each builder count.

Durations are heavy-tailed and seeded: lognormal (median 4 min, σ 1.3, a Fedora-like mix
of small packages and long ones) plus a few multi-hour giants (3–10 h: the kernel,
LibreOffice, Chromium, ...).

    .venv/bin/python bench/burst_schedule.py [--packages 10000] [--seed 11] [--giants 6]
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fedcloud_lib.burst.schedule import Job, simulate  # noqa: E402


def durations(n: int, seed: int, giants: int) -> list[Job]:
    rnd = random.Random(seed)
    jobs = [Job(f"pkg{i:05d}", round(rnd.lognormvariate(math.log(240), 1.3), 1))
            for i in range(n - giants)]
    jobs += [Job(f"giant{i}", rnd.uniform(3 * 3600, 10 * 3600)) for i in range(giants)]
    return jobs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--giants", type=int, default=6)
    ap.add_argument("--builders", type=int, nargs="*", default=[10, 50, 200])
    a = ap.parse_args()
    jobs = durations(a.packages, a.seed, a.giants)
    total = sum(j.expected_s for j in jobs)
    print(f"{len(jobs)} packages, Σd = {total / 3600:.0f} h, longest {max(j.expected_s for j in jobs) / 3600:.1f} h, "
          f"median {sorted(j.expected_s for j in jobs)[len(jobs) // 2]:.0f} s")
    rows, ok = [], True
    for m in a.builders:
        t0 = time.perf_counter()
        s = simulate(jobs, m)
        secs = time.perf_counter() - t0
        good = s.ratio <= 1.02 and secs < 1.0
        ok &= good
        rows.append({"builders": m, "makespan_h": round(s.makespan_s / 3600, 3),
                     "lower_bound_h": round(s.lower_bound_s / 3600, 3), "ratio": round(s.ratio, 4),
                     "planning_s": round(secs, 3), "target_met": good})
        print(f"{m:4d} builders: makespan {s.makespan_s / 3600:8.2f} h, lower bound "
              f"{s.lower_bound_s / 3600:8.2f} h, ratio {s.ratio:.4f} (≤ 1.02), planned in "
              f"{secs * 1000:.0f} ms (< 1 s){'' if good else '  TARGET MISSED'}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"burst_schedule-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(
        json.dumps({"packages": len(jobs), "seed": a.seed, "rows": rows}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
