"""``fedcloud check expiry``: is the lifetime reaper keeping up?  The metric is how many
hours the most overdue server has outlived its deadline (``fedcloud_expires_at``, or a
builder's 24 h): 0 when none has."""
from __future__ import annotations

import datetime as dt
from typing import Any

from nagiosplugin import Metric

from ..context import utcnow
from ..reaper.facts import Scope, gather
from ..site import policy as site_policy
from .nagios import Probe, cloud_for

__all__ = ["ExpiryProbe"]


class ExpiryProbe(Probe):
    """Hours the most overdue server is past its deadline; expired and soon-expiring
    counts as performance data."""

    name = "expiry"
    metric = "overdue_h"
    defaults = (1, 24)

    def __init__(self, cloud: str | None, *, name_prefix: str = "", policy_file: str = "",
                 window_h: int = 24, now: dt.datetime | None = None, conn: Any = None) -> None:
        super().__init__()
        self.cloud, self.prefix, self.policy_file = cloud, name_prefix, policy_file
        self.window_h, self.now, self.conn = window_h, now, conn

    def measure(self) -> list[Metric]:
        pol = site_policy.load(self.policy_file or None)
        conn = self.conn or cloud_for(self.cloud)
        now = self.now or utcnow()
        facts = gather(conn, pol, now=now, scope=Scope(name_prefix=self.prefix), notice_h=0)
        dated = [f for f in facts.servers if f.deadline is not None]
        expired = sorted((f for f in dated if f.deadline <= now), key=lambda f: f.deadline)
        soon = [f for f in dated if now < f.deadline <= now + dt.timedelta(hours=self.window_h)]
        overdue = round((now - expired[0].deadline).total_seconds() / 3600, 1) if expired else 0
        if expired:
            names = ", ".join(f.name for f in expired[:5]) + (" ..." if len(expired) > 5 else "")
            self.text = (f"{len(expired)} server(s) past their deadline, the oldest by "
                         f"{overdue:g} h: {names}")
        else:
            self.text = f"no server past its deadline ({len(dated)} with a deadline)"
        self.text += f"; {len(soon)} expire within {self.window_h} h"
        return [Metric("overdue_h", overdue, min=0, context="overdue_h"),
                Metric("expired", len(expired), min=0, context="info"),
                Metric(f"expiring_{self.window_h}h", len(soon), min=0, context="info")]
