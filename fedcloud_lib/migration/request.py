"""migrate-instances, step 1: the request — parameters checked before any cloud call.

:func:`prepare` is what the runbook calls: the two clouds (entries of clouds.yaml,
different), exactly one way of selecting servers (names or ids, a metadata filter, a ticket,
or the whole project), the name mappings, and the options.  It derives the migration id
that every resource the migration makes is stamped with (the same parameters give the
same id, so a re-run finds what an earlier run made).  A bad request stops here with a
:class:`~fedcloud_lib.errors.ParameterError` naming every problem.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ParameterError

__all__ = ["Selection", "MigrationRequest", "prepare", "migration_id", "BOOT_DISK"]

BOOT_DISK = ("copy", "image")
_ID = re.compile(r"mig-[a-z0-9][a-z0-9-]{0,39}")
_MAX_SHOWN = 40


def _shown(value: Any) -> str:
    """A hostile value, shown short: a prefix and its length."""
    text = str(value)
    if len(text) <= _MAX_SHOWN:
        return repr(text)
    return f"{text[:_MAX_SHOWN]!r}... ({len(text)} chars)"


@dataclass(frozen=True)
class Selection:
    """Which servers of the source project move: names or ids, a metadata filter, a
    ticket, or the whole project (exactly one of these ways)."""

    servers: tuple[str, ...] = ()
    match: Mapping[str, str] = field(default_factory=dict)
    ticket: str = ""
    whole_project: bool = False

    def matches(self, server: Any) -> bool:
        """Whether ``server`` (an SDK server) is selected (names/ids are matched by facts)."""
        meta = getattr(server, "metadata", None) or {}
        if self.whole_project:
            return True
        if self.ticket:
            return meta.get("fedcloud_ticket") == self.ticket
        if self.match:
            return all(meta.get(k) == v for k, v in self.match.items())
        return server.id in self.servers or server.name in self.servers

    def describe(self) -> str:
        """The selection in words (for the plan's title)."""
        if self.whole_project:
            return "every server of the project"
        if self.ticket:
            return f"the servers of ticket {self.ticket}"
        if self.match:
            return "servers with " + ", ".join(f"{k}={v}" for k, v in sorted(self.match.items()))
        return "servers " + ", ".join(self.servers)

    def to_dict(self) -> dict[str, Any]:
        """The selection as JSON."""
        return {"servers": list(self.servers), "match": dict(self.match), "ticket": self.ticket,
                "whole_project": self.whole_project}


@dataclass(frozen=True)
class MigrationRequest:
    """A checked migration request (no cloud facts yet)."""

    source_cloud: str
    target_cloud: str
    selection: Selection
    flavor_map: Mapping[str, str]
    image_map: Mapping[str, str]
    network_map: Mapping[str, str]
    boot_disk: str = "copy"
    stop_source: bool = True
    delete_source: bool = False
    keep_boot_image: bool = True
    copy_quotas: bool = False
    admin_cloud: str = ""
    require_ssh: bool = False
    estimate_mbs: float = 100.0
    timeout: int = 900
    migration_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The request as JSON (what the run records; the migration id among it)."""
        return {"migration_id": self.migration_id, "source_cloud": self.source_cloud,
                "target_cloud": self.target_cloud, "selection": self.selection.to_dict(),
                "flavor_map": dict(self.flavor_map), "image_map": dict(self.image_map),
                "network_map": dict(self.network_map), "boot_disk": self.boot_disk,
                "stop_source": self.stop_source, "delete_source": self.delete_source,
                "keep_boot_image": self.keep_boot_image, "copy_quotas": self.copy_quotas,
                "admin_cloud": self.admin_cloud if self.copy_quotas else "",
                "require_ssh": self.require_ssh, "estimate_mbs": self.estimate_mbs,
                "timeout": self.timeout}


def migration_id(source_cloud: str, target_cloud: str, selection: Selection) -> str:
    """The id a migration's resources are stamped with: the same clouds and selection give
    the same id, so re-running the same request finds its own work."""
    key = json.dumps({"source": source_cloud, "target": target_cloud,
                      "selection": {**selection.to_dict(),
                                    "servers": sorted(selection.servers)}},
                     sort_keys=True, separators=(",", ":"))
    return "mig-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def _known_clouds() -> list[str] | None:
    import openstack.config

    try:
        return sorted(openstack.config.OpenStackConfig().get_cloud_names())
    except Exception:  # noqa: BLE001 - clouds.yaml unreadable: connect() will say why
        return None


def _check_map(name: str, value: Any, problems: list[str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        problems.append(f"{name}: expected a mapping of source name to target name, got "
                        f"{type(value).__name__}")
        return {}
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str) or not k.strip() or not v.strip():
            problems.append(f"{name}: {_shown(k)}: {_shown(v)} — both names must be non-empty "
                            f"text")
            continue
        if len(k) > 255 or len(v) > 255:
            problems.append(f"{name}: {_shown(k)}: names are at most 255 characters")
            continue
        out[k] = v
    return out


def prepare(*, source_cloud: str, target_cloud: str, servers: list[str] | None = None,
            match: Mapping[str, str] | None = None, ticket: str = "",
            whole_project: bool = False, flavor_map: Mapping[str, str] | None = None,
            image_map: Mapping[str, str] | None = None,
            network_map: Mapping[str, str] | None = None, boot_disk: str = "copy",
            stop_source: bool = True, delete_source: bool = False,
            keep_boot_image: bool = True, copy_quotas: bool = False, admin_cloud: str = "",
            require_ssh: bool = False, estimate_mbs: float = 100.0, timeout: int = 900,
            migration: str = "", known_clouds: list[str] | None = None) -> MigrationRequest:
    """Check a migration request; no cloud call.  Raises :class:`ParameterError` listing
    every problem (each naming the parameter, the value and what is allowed).

    ``known_clouds`` (the clouds.yaml entry names) is read from clouds.yaml when not given.
    """
    problems: list[str] = []
    names = known_clouds if known_clouds is not None else _known_clouds()
    for pname, value in (("source_cloud", source_cloud), ("target_cloud", target_cloud)) + \
            ((("admin_cloud", admin_cloud),) if copy_quotas else ()):
        if not value:
            problems.append(f"{pname}: a clouds.yaml entry is required")
        elif names is not None and value not in names:
            problems.append(f"{pname}: {_shown(value)} is not an entry of clouds.yaml; known: "
                            f"{', '.join(names) or '(none)'}")
    if source_cloud and source_cloud == target_cloud:
        problems.append(f"target_cloud: {_shown(target_cloud)} is the source cloud too; a "
                        f"migration moves servers to another cloud or project")
    servers = [str(s) for s in servers or []]
    bad = [s for s in servers if not s.strip() or len(s) > 255]
    if bad:
        problems.append(f"servers: {_shown(bad[0])} is not a server name or id")
    if len(set(servers)) != len(servers):
        problems.append("servers: a server is named twice")
    match_ = _check_map("match", match or {}, problems)
    ticket = str(ticket or "").strip()
    if ticket and not ticket.isdigit():
        problems.append(f"ticket: {_shown(ticket)} is not a ticket number")
    ways = [w for w, on in (("servers", servers), ("match", match_), ("ticket", ticket),
                            ("whole_project", whole_project)) if on]
    if not ways:
        problems.append("servers, match, ticket, whole_project: say which servers to migrate "
                        "(names or ids, a metadata filter, a ticket, or whole_project=true)")
    elif len(ways) > 1:
        problems.append(f"{', '.join(ways)}: choose one way of selecting servers, not "
                        f"{len(ways)}")
    maps = {n: _check_map(n, v or {}, problems) for n, v in
            (("flavor_map", flavor_map), ("image_map", image_map), ("network_map", network_map))}
    if boot_disk not in BOOT_DISK:
        problems.append(f"boot_disk: {_shown(boot_disk)} is not one of {', '.join(BOOT_DISK)}")
    if delete_source and not stop_source:
        problems.append("delete_source: deleting the source needs stop_source=true (the copy "
                        "must be of a stopped server, or data written after it is lost)")
    if not (isinstance(estimate_mbs, (int, float)) and estimate_mbs > 0):
        problems.append(f"estimate_mbs: {_shown(estimate_mbs)} must be a positive number")
    if not (isinstance(timeout, int) and 30 <= timeout <= 86400):
        problems.append(f"timeout: {_shown(timeout)} must be 30..86400 seconds")
    if migration and not _ID.fullmatch(migration):
        problems.append(f"migration_id: {_shown(migration)} does not match /{_ID.pattern}/")
    if problems:
        raise ParameterError("the migration request is not valid:\n  " + "\n  ".join(problems),
                             problems=problems)
    selection = Selection(servers=tuple(servers), match=match_, ticket=ticket,
                          whole_project=bool(whole_project))
    return MigrationRequest(
        source_cloud=source_cloud, target_cloud=target_cloud, selection=selection,
        flavor_map=maps["flavor_map"], image_map=maps["image_map"],
        network_map=maps["network_map"], boot_disk=boot_disk, stop_source=bool(stop_source),
        delete_source=bool(delete_source), keep_boot_image=bool(keep_boot_image),
        copy_quotas=bool(copy_quotas), admin_cloud=admin_cloud if copy_quotas else "",
        require_ssh=bool(require_ssh), estimate_mbs=float(estimate_mbs), timeout=int(timeout),
        migration_id=migration or migration_id(source_cloud, target_cloud, selection))
