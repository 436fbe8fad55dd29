"""capacity-report, the computation: the inventory as tables, and what is flagged.

Everything here is pandas over the inventory's rows (no cloud call), so it stays a small
fraction of the time spent listing 10,000 servers (``bench/capacity_report.py``).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import ParameterError
from ..instance.facts import META
from .facts import Inventory

__all__ = ["Report", "AGE_BINS", "AGE_LABELS", "check_thresholds", "hosts_frame",
           "quota_frame", "servers_frame", "counts_by", "age_frame", "weekly_frame", "build"]

AGE_BINS = [-1, 1, 7, 30, 90, 365, float("inf")]
AGE_LABELS = ["< 1 day", "1-7 days", "7-30 days", "30-90 days", "90-365 days", "> 1 year"]
_HOST_RESOURCES = ("vcpus", "ram_mb", "disk_gb")


@dataclass(frozen=True)
class Report:
    """The report's tables (DataFrames) and the flags raised."""

    taken_at: str
    scope: str
    hosts: Any
    quotas: Any
    by_class: Any
    by_owner: Any
    by_age: Any
    by_project: Any
    weekly: Any
    flags: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    def tables(self) -> dict[str, Any]:
        """Name → DataFrame, the order the report shows them (and the CSV file names)."""
        return {"hosts": self.hosts, "quotas": self.quotas, "by_class": self.by_class,
                "by_owner": self.by_owner, "by_age": self.by_age,
                "by_project": self.by_project, "weekly": self.weekly}

    def summary(self) -> dict[str, Any]:
        """Counts and flags (what the run records beside the tables)."""
        return {"taken_at": self.taken_at, "scope": self.scope,
                "hosts": len(self.hosts), "instances": int(self.by_class["instances"].sum())
                if len(self.by_class) else 0,
                "flags": list(self.flags), "notes": list(self.notes)}


def check_thresholds(warn_pct: float, name: str = "quota_warn_pct") -> float:
    """A percentage threshold, 1..100; ParameterError otherwise."""
    if isinstance(warn_pct, bool) or not isinstance(warn_pct, (int, float)) \
            or not 0 < warn_pct <= 100:
        raise ParameterError(f"{name}: {warn_pct!r} must be a percentage above 0 and at "
                             f"most 100", parameter=name)
    return float(warn_pct)


def _pct(used: pd.Series, total: pd.Series) -> pd.Series:
    total = pd.to_numeric(total, errors="coerce")
    used = pd.to_numeric(used, errors="coerce")
    return (100.0 * used / total.where(total > 0)).round(1)


def hosts_frame(inv: Inventory, warn_pct: float) -> pd.DataFrame:
    """One row per compute host: up/down, vCPU/RAM/disk used and total (and %), flag."""
    cols = ["host", "state", "status", "forced_down", "disabled_reason"]
    for r in _HOST_RESOURCES:
        cols += [f"{r}_used", f"{r}_total", f"{r}_pct"]
    df = pd.DataFrame(list(inv.hosts))
    if df.empty:
        return pd.DataFrame(columns=cols + ["flag"])
    for r in _HOST_RESOURCES:
        df[f"{r}_pct"] = _pct(df[f"{r}_used"], df[f"{r}_total"])
    full = df[[f"{r}_pct" for r in _HOST_RESOURCES]].max(axis=1) >= warn_pct
    down = (df["state"] != "up") | (df["status"] != "enabled")
    df["flag"] = ""
    df.loc[full, "flag"] = "near full"
    df.loc[down, "flag"] = (df.loc[down, "state"] + "/" + df.loc[down, "status"])
    return df[cols + ["flag"]]


def quota_frame(inv: Inventory, warn_pct: float) -> pd.DataFrame:
    """One row per project and resource: used, limit, %, flag when near quota."""
    df = pd.DataFrame(list(inv.quotas), columns=["project", "resource", "used", "limit"])
    df["pct"] = _pct(df["used"], df["limit"])
    df["flag"] = ""
    df.loc[df["pct"] >= warn_pct, "flag"] = "near quota"
    return df


def servers_frame(inv: Inventory) -> pd.DataFrame:
    """Live and deleted servers, one row each: project, class, owner, created, deleted."""
    names = {p["id"]: p["name"] for p in inv.projects}
    klass, owner = META["class"], META["requester"]
    rows = inv.servers + inv.deleted
    meta = [s.get("metadata") or {} for s in rows]
    df = pd.DataFrame({
        "project": [s.get("tenant_id") for s in rows],
        "status": [s.get("status") for s in rows],
        "class": [m.get(klass) or "(none)" for m in meta],
        "owner": [m.get(owner) or "(unknown)" for m in meta],
        "created": pd.to_datetime([s.get("created") for s in rows], utc=True,
                                  format="ISO8601", errors="coerce"),
        "deleted": pd.to_datetime([s.get("OS-SRV-USG:terminated_at") or s.get("updated")
                                   if s.get("status") == "DELETED" else None for s in rows],
                                  utc=True, format="ISO8601", errors="coerce"),
    })
    df["project"] = df["project"].map(names).fillna(df["project"])
    return df


def counts_by(live: pd.DataFrame, column: str) -> pd.DataFrame:
    """Live instances counted by ``column`` (class, owner, project), most first."""
    if live.empty:
        return pd.DataFrame(columns=[column, "instances"])
    out = live.groupby(column).size().rename("instances").reset_index()
    return out.sort_values(["instances", column], ascending=[False, True]).reset_index(drop=True)


def age_frame(live: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    """Live instances by age (days since creation), in fixed buckets."""
    days = (pd.Timestamp(now) - live["created"]).dt.total_seconds() / 86400.0
    cut = pd.cut(days, AGE_BINS, labels=AGE_LABELS)
    counts = cut.value_counts().reindex(AGE_LABELS, fill_value=0)
    return pd.DataFrame({"age": AGE_LABELS, "instances": counts.to_numpy()})


def weekly_frame(df: pd.DataFrame, since: dt.datetime, now: dt.datetime) -> pd.DataFrame:
    """Servers created and deleted per week (weeks starting Monday) in the window."""
    start = pd.Timestamp(since).normalize() - pd.Timedelta(days=pd.Timestamp(since).weekday())
    weeks = pd.date_range(start, pd.Timestamp(now), freq="7D")

    def per_week(times: pd.Series) -> pd.Series:
        t = times.dropna()
        t = t[t >= start]
        idx = ((t - start).dt.days // 7).astype(int)
        return idx.value_counts().reindex(range(len(weeks)), fill_value=0).sort_index()

    return pd.DataFrame({"week": [w.date().isoformat() for w in weeks],
                         "created": per_week(df["created"]).to_numpy(),
                         "deleted": per_week(df["deleted"]).to_numpy()})


def build(inv: Inventory, *, quota_warn_pct: float = 80, host_warn_pct: float = 80) -> Report:
    """The report from the inventory: tables, and flags for projects near quota and
    hosts near full (or down)."""
    check_thresholds(quota_warn_pct, "quota_warn_pct")
    check_thresholds(host_warn_pct, "host_warn_pct")
    hosts = hosts_frame(inv, host_warn_pct)
    quotas = quota_frame(inv, quota_warn_pct)
    servers = servers_frame(inv)
    live = servers[servers["status"] != "DELETED"]
    flags = [f"host {r.host}: {r.flag}" for r in hosts.itertuples() if r.flag]
    flags += [f"project {r.project}: {r.resource} at {r.pct:g} % of quota ({r.used}/{r.limit})"
              for r in quotas.itertuples() if r.flag]
    return Report(
        taken_at=inv.taken_at.isoformat(),
        scope=f"project {inv.project['name']}" if inv.project else "every project",
        hosts=hosts, quotas=quotas, by_class=counts_by(live, "class"),
        by_owner=counts_by(live, "owner"), by_age=age_frame(live, inv.taken_at),
        by_project=counts_by(live, "project"), weekly=weekly_frame(servers, inv.since,
                                                                   inv.taken_at),
        flags=tuple(flags), notes=inv.notes)
