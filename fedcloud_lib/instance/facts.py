"""instance-for-ticket, step 2: the facts — what the cloud holds for a ticket, read only.

Everything a ticket's instance consists of carries the ticket in its metadata
(``fedcloud_ticket``), so it is found again by a later run: that is what makes applying
twice the same as applying once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import secgroups
from ..boot import ingredients
from ..cloud import GONE, call
from ..errors import CloudError, PolicyError
from ..site.accounts import Account
from ..site.policy import Policy
from .request import InstanceRequest

__all__ = ["PREFIX", "META", "keypair_name", "server_address", "find_ticket_servers",
           "find_ticket_volumes", "Facts", "gather"]

PREFIX = "fedcloud_"
#: metadata keys fedcloud stamps on what it makes
META = {k: PREFIX + k for k in ("ticket", "requester", "operator", "purpose", "class",
                                "created_at", "expires_at", "run_id", "volume", "mailed",
                                "server_name")}


def keypair_name(requester: str) -> str:
    """The Nova keypair holding ``requester``'s key from the account system."""
    return f"fas-{requester}"


def server_address(server: Any) -> str | None:
    """The address to log in with: a floating IP if the server has one, else its first
    fixed IPv4 address."""
    floating, fixed = None, None
    for addrs in (server.addresses or {}).values():
        for a in addrs:
            if a.get("OS-EXT-IPS:type") == "floating":
                floating = floating or a.get("addr")
            elif a.get("version", 4) == 4:
                fixed = fixed or a.get("addr")
    return floating or fixed


def find_ticket_servers(conn: Any, ticket: str) -> list[Any]:
    """The ticket's servers that are not deleted (ERROR ones included)."""
    return [s for s in conn.compute.servers(details=True)
            if (s.metadata or {}).get(META["ticket"]) == str(ticket) and s.status not in GONE]


def find_ticket_volumes(conn: Any, ticket: str) -> list[Any]:
    """The ticket's volumes that are not being deleted."""
    return [v for v in conn.block_storage.volumes(details=True)
            if (v.metadata or {}).get(META["ticket"]) == str(ticket)
            and v.status not in ("deleting",)]


@dataclass(frozen=True)
class Facts:
    """What the cloud holds that the plan for one request depends on."""

    request: InstanceRequest
    account: Account
    project: str | None
    flavor: Any
    image: Any
    network: Any | None
    external_networks: tuple[Any, ...]
    server: Any | None               # the ticket's live server (not ERROR)
    error_servers: tuple[Any, ...]   # the ticket's servers in ERROR, to replace
    volume: Any | None
    bad_volumes: tuple[Any, ...]     # the ticket's volumes in error states, to replace
    keypair: Any | None
    secgroup: secgroups.GroupState
    floating_ip: Any | None
    compute_limits: Any
    volume_limits: Any


def gather(conn: Any, policy: Policy, req: InstanceRequest, account: Account) -> Facts:
    """Read everything the plan needs from the cloud (no change)."""
    flavor, image, network = ingredients(conn, policy, req.flavor, req.image)
    external = call(lambda: tuple(conn.network.networks(is_router_external=True)),
                    "list external networks")
    servers = call(lambda: find_ticket_servers(conn, req.ticket), "list servers")
    live = [s for s in servers if s.status != "ERROR"]
    if len(live) > 1:
        raise CloudError(f"ticket {req.ticket} already has {len(live)} servers "
                         f"({', '.join(s.name for s in live)}); fix by hand")
    server = live[0] if live else None
    if server is not None and server.name != req.name:
        raise PolicyError(f"name: ticket {req.ticket} already has server {server.name!r}; "
                          f"re-run with that name or retire it first")
    clash = call(lambda: [s for s in conn.compute.servers(details=True, name=f"^{req.name}$")
                          if s.name == req.name and s.status not in GONE
                          and (s.metadata or {}).get(META["ticket"]) != req.ticket],
                 "list servers")
    if clash:
        raise PolicyError(f"name: {req.name!r} is already used by another server in this "
                          f"project (ticket {(clash[0].metadata or {}).get(META['ticket'], '?')})")
    volumes = call(lambda: find_ticket_volumes(conn, req.ticket), "list volumes")
    good = [v for v in volumes if not v.status.startswith("error")]
    volume = None
    if server is not None:
        attached = {a.get("id") or a.get("volume_id") for a in server.attached_volumes or []}
        volume = next((v for v in good if v.id in attached), None)
    volume = volume or next((v for v in good if v.status == "available"), None) or \
        (good[0] if good else None)
    keypair = call(lambda: conn.compute.find_keypair(keypair_name(req.requester)),
                   "look up the keypair")
    sg = secgroups.inspect(conn, policy.network.security_group, policy.network.ingress_tcp)
    fip = None
    if server is not None and external:
        ports = call(lambda: list(conn.network.ports(device_id=server.id)), "list ports")
        for port in ports:
            ips = call(lambda: list(conn.network.ips(port_id=port.id)), "list floating IPs")
            fip = fip or (ips[0] if ips else None)
    return Facts(
        request=req, account=account, project=conn.config.auth.get("project_name"),
        flavor=flavor, image=image, network=network, external_networks=external,
        server=server, error_servers=tuple(s for s in servers if s.status == "ERROR"),
        volume=volume, bad_volumes=tuple(v for v in volumes if v.status.startswith("error")),
        keypair=keypair, secgroup=sg, floating_ip=fip,
        compute_limits=call(lambda: conn.compute.get_limits().absolute, "read compute limits"),
        volume_limits=(call(lambda: conn.block_storage.get_limits().absolute,
                            "read volume limits") if req.volume_gb else None),
    )
