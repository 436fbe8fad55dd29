"""``fedcloud check capacity``: how full the hosts (vCPU, RAM, disk, from Placement) and
the projects' quotas (instances, cores, RAM, volumes, GB) are, in % — the fullest counts."""
from __future__ import annotations

from typing import Any

from nagiosplugin import Metric

from ..cloud import call
from ..report.facts import hosts, quotas, resolve_project
from .nagios import Probe, cloud_for

__all__ = ["CapacityProbe"]


def _pct(used: Any, total: Any) -> float | None:
    if used is None or not total:
        return None
    return round(100.0 * used / total, 1)


class CapacityProbe(Probe):
    """The fullest host resource and the fullest project quota, in %."""

    name = "capacity"
    metric = "pct"
    upper = 100
    defaults = (80, 95)

    def __init__(self, cloud: str | None, project: str = "", conn: Any = None) -> None:
        super().__init__()
        self.cloud, self.project, self.conn = cloud, project, conn

    def measure(self) -> list[Metric]:
        conn = self.conn or cloud_for(self.cloud)
        host_rows = hosts(conn)
        chosen = resolve_project(conn, self.project, admin=True)
        projects = [chosen] if chosen else call(
            lambda: [{"id": p.id, "name": p.name} for p in conn.identity.projects()],
            "list projects")
        quota_rows = quotas(conn, projects)
        host_pcts = [(f"{h['host']} {r}", _pct(h[f"{r}_used"], h[f"{r}_total"]))
                     for h in host_rows for r in ("vcpus", "ram_mb", "disk_gb")]
        host_pcts = [(w, p) for w, p in host_pcts if p is not None]
        quota_pcts = [(f"{q['project']} {q['resource']}", _pct(q["used"], q["limit"]))
                      for q in quota_rows]
        quota_pcts = [(w, p) for w, p in quota_pcts if p is not None]
        metrics = []
        parts = []
        for label, rows in (("host", host_pcts), ("quota", quota_pcts)):
            if not rows:
                continue
            what, worst = max(rows, key=lambda r: r[1])
            metrics.append(Metric(f"{label}_max", worst, "%", min=0, max=100, context="pct"))
            parts.append(f"fullest {label}: {what} at {worst:g} %")
        for h in host_rows:
            vals = [p for w, p in host_pcts if w.startswith(f"{h['host']} ")]
            if vals:
                metrics.append(Metric(f"host_{h['host']}", max(vals), "%", min=0, max=100,
                                      context="info"))
        if not metrics:
            self.text = "no host or quota to measure"
            return [Metric("host_max", 0, "%", min=0, max=100, context="pct")]
        self.text = "; ".join(parts) + f" ({len(host_rows)} hosts, {len(projects)} projects)"
        return metrics
