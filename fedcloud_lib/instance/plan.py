"""instance-for-ticket, step 3: the plan — every resource to create, reuse or repair.

The decision is made here, once.  Each :class:`~fedcloud_lib.plan.Step` carries in its
``inputs`` what its handler (:mod:`.apply`) needs, so the approved plan is exactly what
runs.  Volatile stamps (operator, run id, creation time) are not part of the plan: the
handlers add them when they make things.  An over-quota request is refused here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..boot import keypair_step, secgroup_step
from ..errors import PolicyError
from ..plan import Plan, Step
from ..site.policy import Policy
from .facts import META, Facts, keypair_name
from .request import InstanceRequest, iso

__all__ = ["InstancePlan", "make_plan", "static_metadata", "QUOTA_COLUMNS"]

QUOTA_COLUMNS = ["resource", "used", "requested", "limit", "headroom_after"]


@dataclass(frozen=True)
class InstancePlan:
    """The plan of one request, with the project's quota headroom after it."""

    request: InstanceRequest
    plan: Plan
    quota: tuple[dict[str, Any], ...]

    def table(self) -> Any:
        """The plan's steps as a DataFrame."""
        return self.plan.to_frame()

    def quota_table(self) -> Any:
        """The quota headroom as a DataFrame (resource, used, requested, limit, headroom_after)."""
        import pandas as pd

        return pd.DataFrame(list(self.quota), columns=QUOTA_COLUMNS)

    @property
    def changes(self) -> bool:
        """Whether applying the plan changes anything."""
        return bool(self.plan.changes)


def static_metadata(req: InstanceRequest) -> dict[str, str]:
    """The server metadata the plan decides (the stamps of who and when are added later)."""
    return {
        META["ticket"]: req.ticket, META["requester"]: req.requester,
        META["purpose"]: (req.purpose or "")[:255], META["class"]: req.klass.name,
        META["expires_at"]: iso(req.expires_at),
    }


def _limit(cloud_max: int | None, ceiling: int | None) -> int | None:
    values = [v for v in (cloud_max, ceiling) if v is not None and v >= 0]
    return min(values) if values else None


def _quota(policy: Policy, f: Facts) -> list[dict[str, Any]]:
    req = f.request
    ceiling = policy.quota_for(f.project)
    cl, vl = f.compute_limits, f.volume_limits
    new_server = f.server is None
    freed = len(f.error_servers)
    rows = [
        ("instances", cl.instances_used - freed, 1 if new_server else 0,
         _limit(cl.instances, ceiling and ceiling.instances)),
        ("cores", cl.total_cores_used, f.flavor.vcpus if new_server else 0,
         _limit(cl.total_cores, ceiling and ceiling.cores)),
        ("ram_mb", cl.total_ram_used, f.flavor.ram if new_server else 0,
         _limit(cl.total_ram, ceiling and ceiling.ram_mb)),
    ]
    if req.volume_gb and vl is not None:
        new_vol = f.volume is None
        rows += [
            ("volumes", vl.total_volumes_used, 1 if new_vol else 0,
             _limit(vl.max_total_volumes, ceiling and ceiling.volumes)),
            ("volume_gb", vl.total_gigabytes_used, req.volume_gb if new_vol else 0,
             _limit(vl.max_total_volume_gigabytes, ceiling and ceiling.volume_gb)),
        ]
    return [{"resource": r, "used": u, "requested": n, "limit": lim,
             "headroom_after": None if lim is None else lim - u - n} for r, u, n, lim in rows]


def _steps(policy: Policy, f: Facts) -> list[Step]:
    req, account, net = f.request, f.account, policy.network
    steps: list[Step] = []
    kp = keypair_name(req.requester)
    steps.append(keypair_step(kp, account.sshpubkeys[0], f.keypair,
                              f"{req.requester}'s first ssh key in the account system"))
    steps.append(secgroup_step(f.secgroup, net.ingress_tcp))
    for s in f.error_servers:
        steps.append(Step("delete", "server", s.name,
                          f"left in ERROR by an earlier run ({s.id}); replaced", {"id": s.id}))
    for v in f.bad_volumes:
        steps.append(Step("delete", "volume", v.name, f"in {v.status} ({v.id})", {"id": v.id}))
    if req.volume_gb:
        if f.volume is None:
            steps.append(Step("create", "volume", req.volume_name,
                              f"{req.volume_gb} GiB, formatted and mounted on /srv",
                              {"size_gb": req.volume_gb, "server_name": req.name,
                               "ticket": req.ticket, "requester": req.requester}))
        else:
            steps.append(Step("reuse", "volume", f.volume.name,
                              f"{f.volume.size} GiB, {f.volume.status} ({f.volume.id}); "
                              f"existing filesystem kept", {"id": f.volume.id}))
    metadata = static_metadata(req)
    if f.server is None:
        steps.append(Step("create", "server", req.name,
                          f"{req.flavor}, {req.image}, group {net.security_group}",
                          {"flavor": req.flavor, "image": req.image,
                           "flavor_id": f.flavor.id, "image_id": f.image.id,
                           "network_id": f.network.id if f.network is not None else None,
                           "keypair": kp, "security_group": net.security_group,
                           "metadata": metadata, "ssh_keys": list(account.sshpubkeys),
                           "root_keys": [k.key for k in policy.root_keys]}))
    else:
        steps.append(Step("reuse", "server", req.name, f"{f.server.status} ({f.server.id})",
                          {"id": f.server.id, "flavor": req.flavor, "image": req.image}))
        groups = {g.get("name") for g in f.server.security_groups or []}
        if net.security_group not in groups:
            steps.append(Step("update", "server", req.name,
                              f"add security group {net.security_group}",
                              {"id": f.server.id, "add_security_group": net.security_group}))
    if req.volume_gb and f.server is not None:
        attached = {a.get("id") or a.get("volume_id") for a in f.server.attached_volumes or []}
        if f.volume is None or f.volume.id not in attached:
            steps.append(Step("update", "volume", req.volume_name, f"attach to {req.name}",
                              {"attach_to": req.name, "ticket": req.ticket}))
    if not f.external_networks:
        steps.append(Step("keep", "floating ip", "-", "none: the cloud has no external network"))
    elif f.floating_ip is not None:
        steps.append(Step("reuse", "floating ip", f.floating_ip.floating_ip_address, "",
                          {"id": f.floating_ip.id}))
    else:
        ext = f.external_networks[0]
        steps.append(Step("create", "floating ip", "-", f"on {ext.name}",
                          {"network_id": ext.id}))
    if f.server is None:
        steps.append(Step("create", "metadata", req.name,
                          ", ".join(f"{k}={v}" for k, v in metadata.items()),
                          {"set": metadata}))
    else:
        have = f.server.metadata or {}
        missing = {k: v for k, v in metadata.items() if k not in have}
        if missing:
            steps.append(Step("update", "metadata", req.name,
                              ", ".join(f"{k}={v}" for k, v in missing.items()),
                              {"set": missing}))
        else:
            steps.append(Step("reuse", "metadata", req.name,
                              f"expires {have.get(META['expires_at'], '?')}"))
    mailed = f.server is not None and (f.server.metadata or {}).get(META["mailed"])
    if mailed:
        steps.append(Step("keep", "mail", account.email or "-", f"sent {mailed}"))
    else:
        steps.append(Step("create", "mail", account.email or "-",
                          f"to {req.requester}, cc {', '.join(policy.mail.admins) or 'nobody'}",
                          {"to": account.email, "cc": list(policy.mail.admins),
                           "ticket": req.ticket, "requester": req.requester,
                           "instance_class": req.klass.name, "flavor": req.flavor,
                           "image": req.image, "volume_gb": req.volume_gb,
                           "human_name": account.human_name or req.requester}))
    return steps


def make_plan(policy: Policy, facts: Facts) -> InstancePlan:
    """The plan: every resource to create, reuse or repair; refuses an over-quota request."""
    req = facts.request
    quota = _quota(policy, facts)
    over = [q for q in quota if q["requested"] and q["limit"] is not None
            and q["headroom_after"] < 0]
    if over:
        lines = [f"{q['resource']}: {q['used']} used + {q['requested']} requested > limit "
                 f"{q['limit']}" for q in over]
        raise PolicyError(f"over quota in project {facts.project}:\n  " + "\n  ".join(lines),
                          problems=lines, quota=quota)
    plan = Plan.of(f"instance {req.name} for ticket {req.ticket}", _steps(policy, facts))
    return InstancePlan(request=req, plan=plan, quota=tuple(quota))
