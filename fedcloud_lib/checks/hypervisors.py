"""``fedcloud check hypervisors``: every compute host's nova-compute is up and enabled
(a stopped, forced-down or disabled one is counted as unavailable: CRITICAL)."""
from __future__ import annotations

from typing import Any

from nagiosplugin import Metric

from ..cloud import call
from .nagios import Probe, cloud_for

__all__ = ["HypervisorsProbe"]


class HypervisorsProbe(Probe):
    """Counts the hypervisors that cannot take servers."""

    name = "hypervisors"
    metric = "unavailable"
    defaults = (None, 0)

    def __init__(self, cloud: str | None, conn: Any = None) -> None:
        super().__init__()
        self.cloud, self.conn = cloud, conn

    def measure(self) -> list[Metric]:
        conn = self.conn or cloud_for(self.cloud)
        services = call(lambda: [s for s in conn.compute.services() if s.binary == "nova-compute"],
                        "list compute services")
        hypervisors = call(lambda: list(conn.compute.hypervisors(details=True)),
                           "list hypervisors")
        known = {s.host for s in services}
        bad = []
        for s in sorted(services, key=lambda s: s.host):
            why = []
            if s.is_forced_down:
                why.append("forced down")
            elif s.state != "up":
                why.append("nova-compute down")
            if s.status != "enabled":
                why.append("disabled" + (f" ({s.disabled_reason})" if s.disabled_reason else ""))
            if why:
                bad.append(f"{s.host} {' and '.join(why)}")
        for h in hypervisors:  # a hypervisor whose service record is gone
            host = (h.service_details or {}).get("host") or h.name
            if host not in known:
                bad.append(f"{host} has no nova-compute service")
        total = len(services)
        if total == 0:
            self.text = "no hypervisor registered"
            bad = ["(none registered)"]
        elif bad:
            self.text = f"{len(bad)} of {total} hypervisors unavailable: {', '.join(bad)}"
        else:
            self.text = f"{total} hypervisors up and enabled: " + \
                ", ".join(sorted(s.host for s in services))
        ok = [s for s in services
              if s.state == "up" and s.status == "enabled" and not s.is_forced_down]
        return [Metric("unavailable", len(bad), min=0, context="unavailable"),
                Metric("available", len(ok), min=0, context="info")]
