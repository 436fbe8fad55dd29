"""mass-rebuild-burst, step 2: the facts — what the cloud and the archive hold, read only.

The flavor, image and network the builders boot with, the standard security group and
the burst's keypair, the project's compute limits and usage (quota headroom), the burst
builders already in the project (left behind by earlier runs: :mod:`.sweep`), and what
earlier runs of the same burst built (:mod:`.results`).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .. import secgroups
from ..archive.index import Archive
from ..cloud import call
from ..context import current_run
from ..errors import CloudError
from ..site.policy import Policy
from .request import BurstRequest
from .results import Previous, previous_results
from .sweep import Leftover, burst_builders, finished_runs, leftovers

__all__ = ["Facts", "gather", "keypair_name", "key_body"]


def keypair_name(ticket: str) -> str:
    """The Nova keypair holding the public half of the burst's ssh key."""
    return f"burst-{ticket}"


def key_body(key: str | None) -> str:
    """``type base64`` of a public key (the comment does not matter)."""
    return " ".join((key or "").split()[:2])


@dataclass(frozen=True)
class Facts:
    request: BurstRequest
    project: str | None
    flavor: Any
    image: Any
    network: Any | None
    secgroup: secgroups.GroupState
    keypair: Any | None
    limits: Any  # compute limits (absolute): maxTotalInstances, totalInstancesUsed, ...
    builders: tuple[Leftover, ...]  # burst builders in the project, with why they may go
    previous: Previous

    @property
    def to_delete(self) -> tuple[Leftover, ...]:
        return tuple(b for b in self.builders if b.reason)

    @property
    def foreign(self) -> tuple[Leftover, ...]:
        """Builders of live runs this archive does not know (left alone)."""
        return tuple(b for b in self.builders if not b.reason)


def gather(conn: Any, policy: Policy, req: BurstRequest, *, archive: Archive | None = None,
           now: dt.datetime | None = None) -> Facts:
    """Read everything the plan needs from the cloud and the archive (no change)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    archive = archive or Archive()
    flavor = call(lambda: conn.compute.find_flavor(req.flavor), f"look up flavor {req.flavor}")
    if flavor is None:
        raise CloudError(f"flavor {req.flavor!r} is allowed by the policy but does not exist "
                         f"in this cloud", flavor=req.flavor)
    image = call(lambda: conn.image.find_image(req.image), f"look up image {req.image}")
    if image is None:
        raise CloudError(f"image {req.image!r} is allowed by the policy but does not exist "
                         f"in this cloud", image=req.image)
    network = None
    if policy.network.network:
        network = call(lambda: conn.network.find_network(policy.network.network),
                       "look up the network")
        if network is None:
            raise CloudError(f"network {policy.network.network!r} (site policy) does not "
                             f"exist in this cloud")
    sg = secgroups.inspect(conn, policy.network.security_group, policy.network.ingress_tcp)
    keypair = call(lambda: conn.compute.find_keypair(keypair_name(req.ticket)),
                   "look up the burst keypair")
    limits = call(lambda: conn.compute.get_limits().absolute, "read compute limits")
    builders = leftovers(burst_builders(conn), burst=req.burst_id,
                         finished=finished_runs(archive), now=now,
                         current_run=current_run().run_id)
    previous = previous_results(req.ticket, archive, exclude=[current_run().run_id or ""])
    return Facts(request=req, project=conn.config.auth.get("project_name"), flavor=flavor,
                 image=image, network=network, secgroup=sg, keypair=keypair, limits=limits,
                 builders=tuple(builders), previous=previous)
