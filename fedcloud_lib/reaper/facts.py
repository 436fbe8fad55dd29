"""lifetime-reaper, facts: every server's deadline, and the orphans, read only.

A server's deadline is its ``fedcloud_expires_at`` metadata; a builder (class
``builder`` in its metadata, or a flavor of the builder class) lives at most the builder
class's ``max_lifetime_h`` (24 h) from its creation *as Nova recorded it*, whatever its
metadata says.  Orphans are what nothing accounts for: volumes attached to nothing and
made by no run, snapshot images of servers that no longer exist, floating IPs held by
nothing, and servers without fedcloud metadata (made outside the runbooks).

The reaper works in a :class:`Scope` (a name prefix and/or metadata to match; by default
everything in the cloud's project), so that an operator — or a test sharing a project —
reaps only what they mean to.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..cloud import GONE, call
from ..errors import ParameterError
from ..instance.facts import META, PREFIX
from ..instance.request import iso
from ..site.accounts import Account, FasjsonClient, UnknownUser, account_for
from ..site.policy import Policy

__all__ = ["NOTICE_KEY", "BUILDER_CLASS", "Scope", "ServerFact", "Orphan", "ReaperFacts",
           "parse_time", "as_of", "server_fact", "gather"]

#: server metadata: when the owner was told about the coming expiry (the notice is sent once)
NOTICE_KEY = PREFIX + "expiry_notice"
BUILDER_CLASS = "builder"
_DEFAULT_BUILDER_H = 24


def parse_time(value: Any) -> dt.datetime | None:
    """A UTC datetime from an ISO 8601 text (``Z`` or an offset; UTC when none), else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).replace(microsecond=0)


def as_of(value: str, default: dt.datetime) -> dt.datetime:
    """The time the reaper plans at: ``value`` (ISO 8601) if given, else ``default``
    (``fedcloud_lib.planning_time()``).  A test, or an operator asking "what if", runs
    the reaper "25 hours later" this way."""
    if not (value or "").strip():
        return default
    t = parse_time(value)
    if t is None:
        raise ParameterError(f"as_of: {value[:40]!r} (length {len(value)}) is not an ISO 8601 "
                             f"time such as 2026-11-27T06:00:00Z", parameter="as_of")
    return t


@dataclass(frozen=True)
class Scope:
    """What the reaper looks at: names starting with ``name_prefix`` and metadata holding
    every pair of ``metadata`` (both empty: everything in the project)."""

    name_prefix: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [k for k, v in dict(self.metadata).items()
               if not isinstance(k, str) or not isinstance(v, (str, int, float))]
        if bad:
            raise ParameterError(f"match_metadata: keys must be text and values text or "
                                 f"numbers; {len(bad)} are not", parameter="match_metadata")
        object.__setattr__(self, "metadata", {k: str(v) for k, v in dict(self.metadata).items()})

    def matches(self, name: str | None, metadata: Mapping[str, Any] | None) -> bool:
        """Whether a resource with this name and metadata is in scope."""
        if self.name_prefix and not (name or "").startswith(self.name_prefix):
            return False
        meta = metadata or {}
        return all(str(meta.get(k)) == v for k, v in self.metadata.items())

    def describe(self) -> str:
        """The scope in words."""
        parts = []
        if self.name_prefix:
            parts.append(f"names starting with {self.name_prefix!r}")
        if self.metadata:
            parts.append("metadata " + ", ".join(f"{k}={v}" for k, v in self.metadata.items()))
        return " and ".join(parts) or "everything"


@dataclass(frozen=True)
class ServerFact:
    """One server and its deadline (None: it never expires)."""

    id: str
    name: str
    status: str
    created_at: dt.datetime | None
    managed: bool                 # carries fedcloud metadata (made by a runbook)
    klass: str | None
    requester: str | None
    ticket: str | None
    flavor: str | None
    builder: bool
    expires_at: str | None        # the metadata as written
    deadline: dt.datetime | None
    deadline_reason: str          # "metadata", "builder 24 h", "never", "bad metadata ..."
    notice_sent: str | None
    volume_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """The server as JSON."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["created_at"] = iso(self.created_at) if self.created_at else None
        d["deadline"] = iso(self.deadline) if self.deadline else None
        return d


@dataclass(frozen=True)
class Orphan:
    """Something nothing accounts for; deleted only when a parameter names its id."""

    kind: str   # volume | image | floating ip | server
    id: str
    name: str
    reason: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The orphan as JSON."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class ReaperFacts:
    """What the reaper plans from."""

    now: dt.datetime
    scope: Scope
    project: str | None
    servers: tuple[ServerFact, ...]
    orphans: tuple[Orphan, ...]
    accounts: Mapping[str, Account | None]   # owners who may need a notice; None: unknown
    builder_hours: int
    builder_class: str


def _builder_flavors(policy: Policy, builder_class: str) -> tuple[str, ...]:
    k = policy.classes.get(builder_class)
    return k.flavors if k is not None else ()


def builder_hours(policy: Policy, builder_class: str = BUILDER_CLASS) -> int:
    """The builders' hard lifetime: the builder class's max_lifetime_h (24 h)."""
    k = policy.classes.get(builder_class)
    return (k.max_lifetime_h if k is not None and k.max_lifetime_h else _DEFAULT_BUILDER_H)


def _flavor_name(server: Any) -> str | None:
    f = getattr(server, "flavor", None)
    if f is None:
        return None
    if isinstance(f, Mapping):
        return f.get("original_name") or f.get("name") or f.get("id")
    return getattr(f, "name", None) or getattr(f, "original_name", None) or getattr(f, "id", None)


def server_fact(server: Any, *, builder_flavors: tuple[str, ...] = (),
                builder_hours: int = _DEFAULT_BUILDER_H,
                builder_class: str = BUILDER_CLASS) -> ServerFact:
    """A server's deadline from its metadata, class and Nova's creation time."""
    meta = server.metadata or {}
    created = parse_time(getattr(server, "created_at", None))
    flavor = _flavor_name(server)
    klass = meta.get(META["class"])
    builder = klass == builder_class or (flavor is not None and flavor in builder_flavors)
    raw = meta.get(META["expires_at"])
    deadline: dt.datetime | None = None
    reason = "never"
    if raw not in (None, "", "never"):
        deadline = parse_time(raw)
        reason = "metadata" if deadline is not None else f"bad metadata {str(raw)[:40]!r}"
    if builder and created is not None:
        hard = created + dt.timedelta(hours=builder_hours)
        if deadline is None or hard < deadline:
            deadline, reason = hard, f"builder: {builder_hours} h from creation"
    return ServerFact(
        id=server.id, name=server.name or "", status=server.status or "", created_at=created,
        managed=any(str(k).startswith(PREFIX) for k in meta), klass=klass,
        requester=meta.get(META["requester"]), ticket=meta.get(META["ticket"]), flavor=flavor,
        builder=builder, expires_at=raw, deadline=deadline, deadline_reason=reason,
        notice_sent=meta.get(NOTICE_KEY), volume_id=meta.get(META["volume"]))


def _is_ours(metadata: Mapping[str, Any] | None) -> bool:
    return any(str(k).startswith(PREFIX) for k in (metadata or {}))


def _orphans(conn: Any, scope: Scope, project_id: str | None, servers: list[Any],
             server_facts: list[ServerFact]) -> list[Orphan]:
    out: list[Orphan] = []
    live_ids = {s.id for s in servers}
    for f in server_facts:
        if not f.managed:
            out.append(Orphan("server", f.id, f.name, "no fedcloud metadata: made outside the "
                              "runbooks", f"{f.status}, flavor {f.flavor or '?'}, created "
                              f"{iso(f.created_at) if f.created_at else '?'}"))
    volumes = call(lambda: list(conn.block_storage.volumes(details=True)), "list volumes")
    for v in volumes:
        if v.status in ("deleting",) or v.attachments or _is_ours(v.metadata):
            continue
        if v.status != "available" or not scope.matches(v.name, v.metadata):
            continue
        out.append(Orphan("volume", v.id, v.name or "", "attached to nothing and made by no run",
                          f"{v.size} GiB, created {v.created_at}"))
    kwargs = {"owner": project_id} if project_id else {}
    images = call(lambda: list(conn.image.images(**kwargs)), "list images")
    for img in images:
        props = dict(getattr(img, "properties", None) or {})
        instance = getattr(img, "instance_uuid", None) or props.get("instance_uuid")
        if not instance or instance in live_ids:
            continue
        if not scope.matches(img.name, props):
            continue
        out.append(Orphan("image", img.id, img.name or "", f"snapshot of server {instance}, "
                          f"which no longer exists", f"{img.status}, {img.size or 0} bytes"))
    ip_filter = {"project_id": project_id} if project_id else {}
    ips = call(lambda: list(conn.network.ips(**ip_filter)), "list floating IPs")
    for ip in ips:
        if ip.port_id:
            continue
        if scope.metadata or (scope.name_prefix
                              and not (ip.description or "").startswith(scope.name_prefix)):
            continue  # floating IPs have no name or metadata: only a description to match
        out.append(Orphan("floating ip", ip.id, ip.floating_ip_address or ip.id,
                          "held by nothing", ip.description or ""))
    return out


def gather(conn: Any, policy: Policy, *, now: dt.datetime, scope: Scope | None = None,
           notice_h: int = 0, builder_class: str = BUILDER_CLASS,
           fasjson: FasjsonClient | None = None) -> ReaperFacts:
    """Read every server in scope with its deadline, the orphans, and the accounts of the
    owners whose servers expire within ``notice_h`` hours (no change)."""
    scope = scope or Scope()
    project_id = conn.current_project_id
    servers = call(lambda: [s for s in conn.compute.servers(details=True)
                            if s.status not in GONE], "list servers")
    flavors, hours = _builder_flavors(policy, builder_class), builder_hours(policy, builder_class)
    facts = [server_fact(s, builder_flavors=flavors, builder_hours=hours,
                         builder_class=builder_class)
             for s in servers if scope.matches(s.name, s.metadata)]
    orphans = _orphans(conn, scope, project_id, servers, facts)
    horizon = now + dt.timedelta(hours=notice_h)
    owners = sorted({f.requester for f in facts
                     if f.requester and f.deadline is not None and now < f.deadline <= horizon
                     and not f.notice_sent and not f.builder})
    accounts: dict[str, Account | None] = {}
    for owner in owners:
        try:
            accounts[owner] = account_for(policy, owner, client=fasjson)
        except UnknownUser:
            accounts[owner] = None
    return ReaperFacts(now=now, scope=scope, project=conn.config.auth.get("project_name"),
                       servers=tuple(facts), orphans=tuple(orphans), accounts=accounts,
                       builder_hours=hours, builder_class=builder_class)
