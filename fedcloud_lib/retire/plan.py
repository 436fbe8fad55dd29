"""instance-retire, plan: who may retire, and what is snapshotted, deleted or kept."""
from __future__ import annotations

from ..errors import PolicyError
from ..plan import Plan, Step
from ..site.accounts import account_for
from ..site.policy import Policy
from .facts import RetireFacts

__all__ = ["make_plan", "snapshot_name"]


def snapshot_name(server_name: str, ticket: str) -> str:
    """The name of a server's final snapshot."""
    return f"{server_name}-final-{ticket}"


def _check_requester(policy: Policy, facts: RetireFacts, requester: str) -> None:
    if requester and facts.requester and requester != facts.requester:
        groups = account_for(policy, requester).groups
        if not set(groups) & set(policy.admin_groups):
            raise PolicyError(
                f"requester: {requester!r} may not retire the instance of ticket "
                f"{facts.ticket}: it belongs to {facts.requester!r}, and {requester!r} is not "
                f"an admin ({', '.join(policy.admin_groups)})")


def make_plan(policy: Policy, facts: RetireFacts, *, snapshot: bool, delete_volume: bool,
              requester: str = "") -> Plan:
    """The retire plan; refuses a requester who is neither the owner nor an admin, and a
    volume deletion the instance's class does not allow."""
    _check_requester(policy, facts, requester)
    klass = policy.classes.get(facts.klass or "")
    if delete_volume and facts.volumes and not (klass and klass.volume_delete_on_retire):
        raise PolicyError(
            f"delete_volume: class {facts.klass or 'unknown'} does not allow deleting the "
            f"/srv volume on retire; allowed for classes: "
            f"{', '.join(k for k, c in policy.classes.items() if c.volume_delete_on_retire)}")
    t = facts.ticket
    steps: list[Step] = []
    snapshots = []
    for s in facts.servers:
        if snapshot and s.status != "ERROR":
            name = snapshot_name(s.name, t)
            snapshots.append(name)
            steps.append(Step("create", "snapshot", name, f"image of {s.name} before deletion",
                              {"server_id": s.id, "ticket": t}))
        steps.append(Step("delete", "server", s.name, f"{s.status} ({s.id})", {"id": s.id}))
    for v in facts.volumes:
        if delete_volume:
            steps.append(Step("delete", "volume", v.name, f"{v.size} GiB ({v.id})", {"id": v.id}))
        else:
            steps.append(Step("keep", "volume", v.name,
                              f"{v.size} GiB ({v.id}); pass delete_volume to delete it",
                              {"id": v.id}))
    for kp, used in facts.keypairs.items():
        steps.append(Step("keep" if used else "delete", "keypair", kp,
                          "used by other servers" if used else "no other server uses it"))
    if (facts.servers or facts.volumes) and facts.account is not None and facts.account.email:
        steps.append(Step("create", "mail", facts.account.email, "tell the requester",
                          {"to": facts.account.email, "cc": list(policy.mail.admins),
                           "ticket": t,
                           "human_name": facts.account.human_name or facts.account.username,
                           "servers": [s.name for s in facts.servers],
                           "volumes": [v.name for v in facts.volumes],
                           "volume_deleted": bool(delete_volume and facts.volumes),
                           "snapshots": snapshots}))
    elif facts.servers or facts.volumes:
        steps.append(Step("keep", "mail", facts.requester or "-",
                          "no mail: the requester has no address in the account system"))
    return Plan.of(f"retire ticket {t}", steps)
