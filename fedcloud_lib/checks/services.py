"""``fedcloud check services``: Nova services, Neutron agents and Cinder services are up,
and the APIs answer (an unreachable API is CRITICAL: it is a service that is down)."""
from __future__ import annotations

from typing import Any

from nagiosplugin import Metric

from ..cloud import call
from .nagios import CRITICAL, Probe, cloud_for

__all__ = ["ServicesProbe"]


class ServicesProbe(Probe):
    """Counts the services that are down (disabled ones are named, not counted)."""

    name = "services"
    metric = "down"
    defaults = (None, 0)
    api_down_state = CRITICAL

    def __init__(self, cloud: str | None, conn: Any = None) -> None:
        super().__init__()
        self.cloud, self.conn = cloud, conn

    def measure(self) -> list[Metric]:
        conn = self.conn or cloud_for(self.cloud)
        rows = []  # (what, up, enabled)
        for s in call(lambda: list(conn.compute.services()), "list compute services"):
            rows.append((f"{s.binary}@{s.host}", s.state == "up", s.status == "enabled"))
        for a in call(lambda: list(conn.network.agents()), "list network agents"):
            rows.append((f"{a.binary}@{a.host}", bool(a.is_alive), bool(a.is_admin_state_up)))
        for s in call(lambda: list(conn.block_storage.services()), "list volume services"):
            rows.append((f"{s.binary}@{s.host}", s.state == "up", s.status == "enabled"))
        down = sorted(w for w, up, _ in rows if not up)
        disabled = sorted(w for w, up, enabled in rows if up and not enabled)
        up = len(rows) - len(down)
        if not rows:
            self.text = "no services registered"
            down = ["(none registered)"]
        elif down:
            self.text = f"{len(down)} of {len(rows)} services down: {', '.join(down)}"
        else:
            self.text = f"{up} services up"
        if disabled:
            self.text += f"; disabled: {', '.join(disabled)}"
        return [Metric("down", len(down), min=0, context="down"),
                Metric("up", up, min=0, context="info"),
                Metric("disabled", len(disabled), min=0, context="info")]
