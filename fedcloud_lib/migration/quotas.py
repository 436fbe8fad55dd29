"""migrate-instances: the source project's quotas and policy metadata, for the target.

With ``copy_quotas`` the plan raises the target project's quotas (compute, volume,
network) to the source project's where the source's are higher — never lowering one, so
that what the target already runs keeps fitting — and copies the source project's
fedcloud policy tags (Keystone project tags starting with ``fedcloud``) that the target
lacks.  Reading and writing quotas of another project needs an admin connection
(clouds.yaml ``fedcloud-admin``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..cloud import call

__all__ = ["KEYS", "POLICY_TAG_PREFIX", "QuotaFacts", "read_quotas", "quota_changes",
           "tag_changes", "apply_quotas", "apply_tags", "raised"]

#: the quotas copied, per service (openstacksdk attribute names)
KEYS = {
    "compute": ("instances", "cores", "ram", "key_pairs", "metadata_items", "server_groups",
                "server_group_members"),
    "volume": ("volumes", "gigabytes", "snapshots", "backups", "backup_gigabytes"),
    "network": ("networks", "subnets", "ports", "routers", "floating_ips", "security_groups",
                "security_group_rules"),
}
POLICY_TAG_PREFIX = "fedcloud"


@dataclass(frozen=True)
class QuotaFacts:
    """Both projects' quotas (``{service: {key: value}}``, -1 for unlimited) and tags."""

    source_project_id: str
    target_project_id: str
    source: dict[str, dict[str, int]]
    target: dict[str, dict[str, int]]
    source_tags: tuple[str, ...] = ()
    target_tags: tuple[str, ...] = ()


def _values(obj: Any, keys: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for k in keys:
        v = getattr(obj, k, None)
        if isinstance(v, int):
            out[k] = v
    return out


def read_quotas(admin: Any, source_project_id: str, target_project_id: str) -> QuotaFacts:
    """Both projects' quotas and tags (admin API; read only)."""
    def read(pid: str) -> dict[str, dict[str, int]]:
        return {
            "compute": _values(call(lambda: admin.compute.get_quota_set(pid),
                                    f"read the compute quotas of project {pid}"),
                               KEYS["compute"]),
            "volume": _values(call(lambda: admin.block_storage.get_quota_set(pid),
                                   f"read the volume quotas of project {pid}"),
                              KEYS["volume"]),
            "network": _values(call(lambda: admin.network.get_quota(pid),
                                    f"read the network quotas of project {pid}"),
                               KEYS["network"]),
        }

    def tags_of(pid: str) -> tuple[str, ...]:
        p = call(lambda: admin.identity.get_project(pid), f"read project {pid}")
        return tuple(p.tags or ())

    return QuotaFacts(source_project_id=source_project_id, target_project_id=target_project_id,
                      source=read(source_project_id), target=read(target_project_id),
                      source_tags=tags_of(source_project_id),
                      target_tags=tags_of(target_project_id))


def raised(current: int, wanted: int) -> int:
    """``current`` raised to ``wanted`` (-1 is unlimited, above every number)."""
    if current == -1 or wanted == -1:
        return -1
    return max(current, wanted)


def quota_changes(q: QuotaFacts) -> dict[str, dict[str, int]]:
    """The target quotas to set: each one the source has higher (never lowering)."""
    out: dict[str, dict[str, int]] = {}
    for service, values in q.source.items():
        have = q.target.get(service, {})
        for k, v in values.items():
            if k in have and raised(have[k], v) != have[k]:
                out.setdefault(service, {})[k] = raised(have[k], v)
    return out


def tag_changes(q: QuotaFacts) -> list[str]:
    """The target project's tags after copying the source's fedcloud policy tags
    (empty when there is nothing to add)."""
    missing = [t for t in q.source_tags
               if t.startswith(POLICY_TAG_PREFIX) and t not in q.target_tags]
    return list(q.target_tags) + missing if missing else []


def apply_quotas(admin: Any, project_id: str, changes: dict[str, dict[str, int]]) -> str:
    """Set the quotas of ``project_id`` (idempotent: setting a value twice is the same)."""
    if changes.get("compute"):
        admin.compute.update_quota_set(project_id, **changes["compute"])
    if changes.get("volume"):
        admin.block_storage.update_quota_set(project_id, **changes["volume"])
    if changes.get("network"):
        admin.network.update_quota(project_id, **changes["network"])
    return ", ".join(f"{s}.{k}={v}" for s, vals in changes.items() for k, v in vals.items())


def apply_tags(admin: Any, project_id: str, tags: list[str]) -> str:
    """Give ``project_id`` at least ``tags`` (tags added meanwhile are kept)."""
    have = list(admin.identity.get_project(project_id).tags or ())
    want = have + [t for t in tags if t not in have]
    if want != have:
        admin.identity.update_project(project_id, tags=want)
    return ", ".join(want)
