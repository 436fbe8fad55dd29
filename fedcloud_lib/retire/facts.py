"""instance-retire, facts: what the cloud holds for a ticket, and who it belongs to."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..cloud import GONE, call
from ..instance.facts import META, find_ticket_servers, find_ticket_volumes, keypair_name
from ..site.accounts import Account, UnknownUser, account_for
from ..site.policy import Policy

__all__ = ["RetireFacts", "gather"]


@dataclass(frozen=True)
class RetireFacts:
    """The ticket's servers and volumes, whether the requester's keypair is used
    elsewhere, and the requester's account (None when the account system forgot them)."""

    ticket: str
    servers: tuple[Any, ...]
    volumes: tuple[Any, ...]
    keypairs: dict[str, bool] = field(default_factory=dict)  # name -> still used elsewhere
    klass: str | None = None
    requester: str | None = None
    account: Account | None = None


def gather(conn: Any, policy: Policy, ticket: str) -> RetireFacts:
    """Read the ticket's resources (by their ``fedcloud_ticket`` metadata); no change."""
    servers = tuple(call(lambda: find_ticket_servers(conn, ticket), "list servers"))
    volumes = tuple(call(lambda: find_ticket_volumes(conn, ticket), "list volumes"))
    meta = (servers[0].metadata or {}) if servers else {}
    requester = meta.get(META["requester"]) or next(
        ((v.metadata or {}).get(META["requester"]) for v in volumes), None)
    keypairs: dict[str, bool] = {}
    account = None
    if requester:
        kp = keypair_name(requester)
        if call(lambda: conn.compute.find_keypair(kp), "look up the keypair") is not None:
            ours = {s.id for s in servers}
            others = [s for s in call(lambda: list(conn.compute.servers(details=True)),
                                      "list servers")
                      if s.key_name == kp and s.id not in ours and s.status not in GONE]
            keypairs[kp] = bool(others)
        if servers or volumes:
            try:
                account = account_for(policy, requester)
            except UnknownUser:
                account = None
    return RetireFacts(ticket=str(ticket), servers=servers, volumes=volumes, keypairs=keypairs,
                       klass=meta.get(META["class"]), requester=requester, account=account)
