"""``fedcloud check services``: Nova services, Neutron agents and Cinder services are up,
and the APIs answer (an unreachable API is CRITICAL: it is a service that is down, named
with the reason, and the services behind the other APIs are still counted)."""
from __future__ import annotations

from typing import Any

from nagiosplugin import Metric

from ..cloud import call
from ..errors import CloudError
from .nagios import CRITICAL, Probe, api_unreachable, cloud_for, readable

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
        apis_down = []  # "compute API (cannot connect to ...)"
        for s in self._listed(apis_down, "compute", lambda: conn.compute.services()):
            rows.append((f"{s.binary}@{s.host}", s.state == "up", s.status == "enabled"))
        for a in self._listed(apis_down, "network", lambda: conn.network.agents()):
            rows.append((f"{a.binary}@{a.host}", bool(a.is_alive), bool(a.is_admin_state_up)))
        for s in self._listed(apis_down, "volume", lambda: conn.block_storage.services()):
            rows.append((f"{s.binary}@{s.host}", s.state == "up", s.status == "enabled"))
        down = sorted(w for w, up, _ in rows if not up)
        disabled = sorted(w for w, up, enabled in rows if up and not enabled)
        up = len(rows) - len(down)
        if apis_down:
            self.text = f"{len(apis_down)} API(s) down: {'; '.join(apis_down)}; " + (
                f"{len(down)} of {len(rows)} other services down: {', '.join(down)}" if down
                else f"the {len(rows)} services behind the other APIs are up")
        elif not rows:
            self.text = "no services registered"
            down = ["(none registered)"]
        elif down:
            self.text = f"{len(down)} of {len(rows)} services down: {', '.join(down)}"
        else:
            self.text = f"{up} services up"
        if disabled:
            self.text += f"; disabled: {', '.join(disabled)}"
        return [Metric("down", len(apis_down) + len(down), min=0, context="down"),
                Metric("up", up, min=0, context="info"),
                Metric("disabled", len(disabled), min=0, context="info")]

    @staticmethod
    def _listed(apis_down: list[str], api: str, fn: Any) -> list[Any]:
        """The listing of one API; an API that is down is noted in ``apis_down`` (with
        why) and lists nothing, any other failure is raised."""
        try:
            return call(lambda: list(fn()), f"list the {api} services")
        except CloudError as exc:
            if not api_unreachable(exc):
                raise
            apis_down.append(f"{api} API ({readable(exc)})")
            return []
