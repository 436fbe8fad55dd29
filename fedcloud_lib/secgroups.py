"""The standard security group: exactly ingress tcp 22, 80, 443 (IPv4 and IPv6) plus
the default egress, nothing else.

:func:`inspect` reads the group of the connection's project and compares its rules with
:func:`standard_rules`; :func:`ensure` creates the group if missing, adds missing rules
and deletes every extra rule (drift repair).  It never adds a rule outside the standard.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as os_exc

from .errors import CloudError

__all__ = ["Rule", "GroupState", "standard_rules", "rule_of", "inspect", "ensure"]

_ANY = {"IPv4": "0.0.0.0/0", "IPv6": "::/0"}


@dataclass(frozen=True, order=True)
class Rule:
    """One security group rule, normalised (IPv4/IPv6 "anywhere" spelt out, protocol names lower-case)."""
    direction: str
    ethertype: str
    protocol: str | None = None
    port_min: int | None = None
    port_max: int | None = None
    remote: str | None = None  # CIDR, or "group:<id>"

    def describe(self) -> str:
        """The rule in words, e.g. ``ingress IPv4 tcp 22 from 0.0.0.0/0``."""
        proto = self.protocol or "any"
        ports = ("" if self.port_min is None else
                 f" {self.port_min}" + ("" if self.port_max in (None, self.port_min)
                                        else f"-{self.port_max}"))
        return f"{self.direction} {self.ethertype} {proto}{ports} from {self.remote}"

    def create_args(self) -> dict[str, Any]:
        """Keyword arguments for ``network.create_security_group_rule``."""
        args: dict[str, Any] = {"direction": self.direction, "ether_type": self.ethertype}
        if self.protocol:
            args["protocol"] = self.protocol
        if self.port_min is not None:
            args["port_range_min"] = self.port_min
            args["port_range_max"] = self.port_max
        if self.remote and not self.remote.startswith("group:") and self.direction == "ingress":
            args["remote_ip_prefix"] = self.remote
        return args


def standard_rules(ports: Iterable[int] = (22, 80, 443)) -> frozenset[Rule]:
    """The rules of the standard group: ingress tcp ``ports`` from anywhere (IPv4 and IPv6) plus the default egress."""
    rules = {Rule("egress", e, remote=_ANY[e]) for e in ("IPv4", "IPv6")}
    for port in ports:
        for e in ("IPv4", "IPv6"):
            rules.add(Rule("ingress", e, "tcp", port, port, _ANY[e]))
    return frozenset(rules)


def rule_of(r: Any) -> Rule:
    """Normalise an SDK security group rule (or a dict) to a :class:`Rule`."""
    if isinstance(r, dict):
        get = r.get
        eth = r.get("ethertype") or r.get("ether_type") or "IPv4"
    else:  # openstacksdk names the field ether_type
        def get(k: str) -> Any:
            return getattr(r, k, None)
        eth = getattr(r, "ether_type", None) or "IPv4"
    proto = get("protocol")
    proto = None if proto in (None, "any", "") else str(proto).lower()
    if proto == "6":
        proto = "tcp"
    remote = get("remote_ip_prefix")
    if get("remote_group_id"):
        remote = f"group:{get('remote_group_id')}"
    elif not remote:
        remote = _ANY.get(eth, remote)
    return Rule(get("direction"), eth, proto, get("port_range_min"), get("port_range_max"),
                remote)


@dataclass
class GroupState:
    """A project's group as found: the group (None if absent), missing rules, extra rules (with their ids)."""
    name: str
    group: Any | None
    missing: list[Rule] = field(default_factory=list)
    extra: list[tuple[str, Rule]] = field(default_factory=list)  # (rule id, rule)

    @property
    def exists(self) -> bool:
        """Whether the group exists."""
        return self.group is not None

    @property
    def action(self) -> str:
        """What making it standard takes: create, repair or reuse."""
        if not self.exists:
            return "create"
        return "repair" if (self.missing or self.extra) else "reuse"

    def detail(self) -> str:
        """What differs from the standard, in words (for the plan)."""
        if not self.exists:
            return "ingress tcp 22, 80, 443 (IPv4 and IPv6) + default egress"
        parts = []
        if self.extra:
            parts.append("remove extra rules: " + "; ".join(r.describe() for _, r in self.extra))
        if self.missing:
            parts.append("add missing rules: " + "; ".join(r.describe() for r in self.missing))
        return " | ".join(parts) or "rules are exactly the standard"


def _find(conn: Any, name: str) -> Any | None:
    project_id = conn.current_project_id
    groups = [g for g in conn.network.security_groups(name=name, project_id=project_id)
              if g.name == name]
    if len(groups) > 1:
        raise CloudError(f"project has {len(groups)} security groups named {name!r}; "
                         f"delete the duplicates by hand", name=name)
    return groups[0] if groups else None


def inspect(conn: Any, name: str, ports: Iterable[int] = (22, 80, 443)) -> GroupState:
    """The state of group ``name`` in the connection's project compared with the standard rules (reads only)."""
    want = standard_rules(ports)
    try:
        group = _find(conn, name)
        if group is None:
            return GroupState(name, None, sorted(want))
        have: dict[str, Rule] = {r.id: rule_of(r) for r in
                                 conn.network.security_group_rules(security_group_id=group.id)}
    except (os_exc.SDKException, ksa_exc.ClientException) as exc:
        raise CloudError(f"cannot read security group {name!r}: {exc}", name=name) from exc
    have_set = set(have.values())
    extra = sorted(((rid, r) for rid, r in have.items() if r not in want), key=lambda x: x[1])
    return GroupState(name, group, sorted(want - have_set), extra)


def ensure(conn: Any, name: str, ports: Iterable[int] = (22, 80, 443),
           description: str = "fedcloud standard: tcp 22, 80, 443 only") -> GroupState:
    """Make the group exactly standard; return the state as found before the repair."""
    ports = tuple(ports)
    before = inspect(conn, name, ports)
    try:
        group = before.group
        if group is None:
            group = conn.network.create_security_group(name=name, description=description)
            # a concurrent run (another ticket) may have created it too: keep the oldest
            same = sorted((g for g in conn.network.security_groups(
                name=name, project_id=conn.current_project_id) if g.name == name),
                key=lambda g: (g.created_at or "", g.id))
            if len(same) > 1 and same[0].id != group.id:
                conn.network.delete_security_group(group, ignore_missing=True)
                group = same[0]
        for rid, _ in before.extra:
            conn.network.delete_security_group_rule(rid, ignore_missing=True)
        # re-read: a new group comes with neutron's default egress rules
        now = inspect(conn, name, ports)
        for rule in now.missing:
            try:
                conn.network.create_security_group_rule(security_group_id=group.id,
                                                        **rule.create_args())
            except os_exc.ConflictException:
                pass  # created meanwhile by a concurrent run: same rule, fine
        for rid, _ in now.extra:
            conn.network.delete_security_group_rule(rid, ignore_missing=True)
    except (os_exc.SDKException, ksa_exc.ClientException) as exc:
        raise CloudError(f"cannot make security group {name!r} standard: {exc}",
                         name=name) from exc
    return before
