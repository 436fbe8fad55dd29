"""mass-rebuild-burst, step 5: the report — what was built, what failed to build, how the
builders were used.

Tables (pandas): counts per status (this run, earlier runs of the burst, skipped, not
started), the FTBFS list (package, status, duration, builder, log tail), the builders.
Plots (matplotlib, saved as PNG in the run folder and shown in the notebook): the plan's
expected schedule, the build durations histogram, builder utilisation over time.
:func:`export_csv` writes ``burst-report.csv``: one line per package of the list with
its status over all runs of the burst, archived with the run.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .apply import BurstOutcome
from .plan import BurstPlan
from .results import Previous

__all__ = ["counts_table", "failures_table", "builders_table", "plan_figure",
           "durations_figure", "utilisation_figure", "show", "export_csv", "utilisation"]

_COLORS = {"built": "#2da44e", "ftbfs": "#cf222e", "timeout": "#bf8700",
           "infra-error": "#8250df"}


def counts_table(outcome: BurstOutcome, plan: BurstPlan) -> Any:
    """How many packages ended how: in this run, earlier, skipped, not started."""
    import pandas as pd

    c = outcome.counts()
    rows = [{"status": k, "packages": v} for k, v in c.items()]
    rows += [{"status": "attempted by earlier runs", "packages": plan.done_earlier},
             {"status": "skipped (skip list)", "packages": len(plan.request.skipped)}]
    return pd.DataFrame(rows)


def failures_table(outcome: BurstOutcome, *, lines: int = 8) -> Any:
    """The FTBFS list: every package that did not build in this run, with its log tail."""
    import pandas as pd

    rows = [{"package": r.package, "status": r.status, "duration_s": r.duration_s,
             "builder": r.builder, "attempts": r.attempts,
             "log_tail": "\n".join(r.log_tail.splitlines()[-lines:])}
            for r in sorted(outcome.results, key=lambda r: (r.status, r.package))
            if r.status != "built"]
    return pd.DataFrame(rows, columns=["package", "status", "duration_s", "builder",
                                       "attempts", "log_tail"])


def builders_table(outcome: BurstOutcome) -> Any:
    import pandas as pd

    return pd.DataFrame(list(outcome.builders))


def utilisation(outcome: BurstOutcome, step: float | None = None) -> list[tuple[float, int, int]]:
    """(time, builders alive, builders building) at each change, seconds since the
    provisioning started."""
    events: list[tuple[float, int, int]] = []
    for b in outcome.builders:
        events.append((b["active_rel"], 1, 0))
        if b["retired_rel"] is not None:
            events.append((b["retired_rel"], -1, 0))
    for _, s, e, _ in outcome.intervals:
        events.append((s, 0, 1))
        events.append((e, 0, -1))
    out, alive, busy = [], 0, 0
    for t, da, db in sorted(events, key=lambda x: (x[0], -x[1])):
        alive, busy = alive + da, busy + db
        out.append((t, alive, busy))
    return out


def _unit(seconds: float) -> tuple[float, str]:
    """A readable time unit for a span: (seconds per unit, name)."""
    if seconds >= 2 * 3600:
        return 3600.0, "h"
    if seconds >= 120:
        return 60.0, "min"
    return 1.0, "s"


def plan_figure(bp: BurstPlan, *, max_lanes: int = 60) -> Figure:
    """The expected schedule (one lane per builder, bars per package) and the expected
    build durations."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, hx = fig.subplots(1, 2, width_ratios=[3, 1])
    s = bp.schedule
    u, name = _unit(s.makespan_s)
    lanes = {slot: lane for slot, lane, _, _ in s.slots}
    bars: dict[int, list[tuple[float, float]]] = {}
    for _, slot, start, end in s.assignments:
        lane = lanes.get(slot, 0)
        if lane < max_lanes:
            bars.setdefault(lane, []).append((start / u, (end - start) / u))
    for lane, ranges in bars.items():  # one call per lane: 10,000 packages plot quickly
        ax.broken_barh(ranges, (lane + 0.1, 0.8), facecolors="#0969da", edgecolors="white",
                       linewidth=0.3)
    ax.axvline(s.lower_bound_s / u, color="#57606a", ls="--", lw=1,
               label=f"lower bound {s.lower_bound_s / u:.2f} {name}")
    ax.axvline(s.makespan_s / u, color="#0969da", lw=1,
               label=f"makespan {s.makespan_s / u:.2f} {name} (x{s.ratio:.3f})")
    life = bp.request.builder_lifetime_s
    if life <= max(s.makespan_s, 1e-9) * 1.5:
        ax.axvline(life / u, color="#bf8700", ls=":", lw=1.5,
                   label=f"builder lifetime {life / u:g} {name}")
    if bp.request.deadline is not None:
        dl = (bp.request.deadline - bp.request.planned_at).total_seconds()
        if dl <= max(s.makespan_s, 1e-9) * 1.5:
            ax.axvline(dl / u, color="#cf222e", ls="-.", lw=1.5,
                       label=f"deadline (+{dl / u:.1f} {name})")
    ax.set_xlabel(f"{name} from the first build")
    ax.set_ylabel("builder")
    ax.set_title(f"expected schedule: {len(bp.remaining)} packages on {bp.builders} builders "
                 f"(longest first)" + (f"; the first {max_lanes} shown" if bp.builders > max_lanes
                                       else ""))
    ax.legend(loc="lower right", fontsize=8)
    d = [p.expected_s for p in bp.remaining] or [0]
    du, dname = _unit(max(d))
    hx.hist([x / du for x in d], bins=30, color="#0969da")
    hx.set_xlabel(f"expected build ({dname})")
    hx.set_ylabel("packages")
    hx.set_yscale("log")
    return fig


def durations_figure(outcome: BurstOutcome) -> Figure:
    """Build durations of this run, by status."""
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.subplots()
    by: dict[str, list[float]] = {}
    for r in outcome.results:
        by.setdefault(r.status, []).append(r.duration_s)
    if by:
        ax.hist(list(by.values()), bins=30, stacked=True, label=list(by),
                color=[_COLORS[k] for k in by])
        ax.legend(fontsize=8)
    ax.set_xlabel("build duration (s)")
    ax.set_ylabel("packages")
    ax.set_title(f"build durations ({len(outcome.results)} packages)")
    return fig


def utilisation_figure(outcome: BurstOutcome, *, max_lanes: int = 60) -> Figure:
    """Builder utilisation over time: each builder's life and builds, and how many were
    alive and building."""
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    lane = {b["name"]: i for i, b in enumerate(outcome.builders)}
    for b in outcome.builders:
        i = lane[b["name"]]
        if i < max_lanes and b["retired_rel"] is not None:
            top.plot([b["active_rel"], b["retired_rel"]], [i + 0.5, i + 0.5], color="#d0d7de", lw=6,
                     solid_capstyle="butt")
    bars: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for name, s, e, status in outcome.intervals:
        i = lane.get(name)
        if i is not None and i < max_lanes:
            bars.setdefault((i, status), []).append((s, max(e - s, 1e-3)))
    for (i, status), ranges in bars.items():
        top.broken_barh(ranges, (i + 0.15, 0.7), facecolors=_COLORS[status])
    top.set_ylabel("builder")
    top.set_title("builder utilisation (grey: alive, colour: building, by status)")
    u = utilisation(outcome)
    if u:
        t, alive, busy = zip(*u)
        bottom.step(t, alive, where="post", label="alive", color="#57606a")
        bottom.step(t, busy, where="post", label="building", color="#0969da")
        bottom.legend(fontsize=8)
    bottom.set_xlabel("seconds since the first boot")
    bottom.set_ylabel("builders")
    return fig


def show(fig: Figure, path: Path | str) -> Path:
    """Save ``fig`` as a PNG (in the run folder: archived with the run) and display it."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    path.write_bytes(buf.getvalue())
    try:
        from IPython.display import Image, display

        display(Image(data=buf.getvalue()))
    except ImportError:  # pragma: no cover - outside a kernel
        pass
    return path


def export_csv(outcome: BurstOutcome, plan: BurstPlan, previous: Previous,
               path: Path | str) -> Path:
    """Every package of the list with its status over all runs of the burst: this run's
    result, else an earlier run's, else skipped / not started."""
    path = Path(path)
    now = {r.package: r for r in outcome.results}
    earlier = {r.package: r for r in previous.results}
    skipped = set(plan.request.skipped)
    pending = set(outcome.pending)
    names = [p.name for p in plan.request.packages] + sorted(skipped)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["package", "status", "duration_s", "builder", "run_id", "expected_s"])
        expected = {p.name: p.expected_s for p in plan.request.packages}
        for n in names:
            r = now.get(n) or earlier.get(n)
            if r is not None:
                w.writerow([n, r.status, r.duration_s, r.builder, r.run_id, expected.get(n, "")])
            else:
                status = "skipped" if n in skipped else ("not started" if n in pending else "not built")
                w.writerow([n, status, "", "", "", expected.get(n, "")])
    return path
