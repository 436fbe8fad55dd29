"""capacity-report, plots: matplotlib figures of the report's tables.

Figures are made with :class:`matplotlib.figure.Figure` (no pyplot, no global state) and
shown as PNG images, so the executed notebook — and its archived HTML — carries them as
pictures.
"""
from __future__ import annotations

import io
from matplotlib.figure import Figure

from .capacity import Report

__all__ = ["TOP", "figures", "png", "show"]

#: the quota plot shows this many (project, resource) pairs, fullest first (the CSV has all)
TOP = 15


def _bar(title: str, labels: list[str], values: list[float], xlabel: str,
         limit: float | None = None) -> Figure:
    fig = Figure(figsize=(7, max(1.6, 0.35 * len(labels) + 1)), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(labels or ["(none)"], values or [0], color="#3c6eb4")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if limit is not None:  # a percentage, with its warning line
        ax.axvline(limit, color="#d9534f", linestyle="--", linewidth=1)
        ax.set_xlim(0, max(100.0, *(values or [0])))
    return fig


def _hosts(report: Report, warn: float) -> Figure:
    df = report.hosts
    fig = Figure(figsize=(7, max(2.0, 0.6 * len(df) + 1)), layout="constrained")
    ax = fig.add_subplot()
    height = 0.25
    for i, (col, label) in enumerate((("vcpus_pct", "vCPU"), ("ram_mb_pct", "RAM"),
                                      ("disk_gb_pct", "disk"))):
        ys = [y + (i - 1) * height for y in range(len(df))]
        ax.barh(ys, df[col].fillna(0).tolist() if len(df) else [], height=height, label=label)
    ax.set_yticks(range(len(df)), [f"{h} ({s})" for h, s in zip(df["host"], df["state"])])
    ax.invert_yaxis()
    ax.axvline(warn, color="#d9534f", linestyle="--", linewidth=1)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of schedulable capacity used")
    ax.set_title("hypervisors")
    ax.legend(loc="lower right")
    return fig


def _weekly(report: Report) -> Figure:
    df = report.weekly
    fig = Figure(figsize=(7, 2.8), layout="constrained")
    ax = fig.add_subplot()
    x = range(len(df))
    ax.plot(x, df["created"], marker="o", label="created")
    ax.plot(x, df["deleted"], marker="x", label="deleted")
    step = max(1, len(df) // 8)
    ax.set_xticks(list(x)[::step], list(df["week"])[::step], rotation=30, ha="right")
    ax.set_ylabel("servers")
    ax.set_title("servers created and deleted per week")
    ax.legend()
    return fig


def figures(report: Report, *, quota_warn_pct: float = 80,
            host_warn_pct: float = 80) -> dict[str, Figure]:
    """The report's figures, by name: hosts, quotas, by_class, by_age, weekly."""
    q = report.quotas.dropna(subset=["pct"]).sort_values("pct", ascending=False).head(TOP)
    return {
        "hosts": _hosts(report, host_warn_pct),
        "quotas": _bar(f"quota used: the {TOP} fullest", [f"{p} {r}" for p, r in
                                                  zip(q["project"], q["resource"])],
                       q["pct"].tolist(), "% of quota", quota_warn_pct),
        "by_class": _bar("instances by class", report.by_class["class"].astype(str).tolist(),
                         report.by_class["instances"].tolist(), "instances"),
        "by_age": _bar("instances by age", report.by_age["age"].tolist(),
                       report.by_age["instances"].tolist(), "instances"),
        "weekly": _weekly(report),
    }


def png(fig: Figure) -> bytes:
    """A figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def show(figs: dict[str, Figure]) -> dict[str, bytes]:
    """Show every figure as a PNG image in the notebook; returns the PNGs by name."""
    from IPython.display import Image, display  # the kernel's display (not a library import)

    images = {name: png(fig) for name, fig in figs.items()}
    for data in images.values():
        display(Image(data=data, format="png"))
    return images
