"""Which versions of a profile to keep, hide or delete: the update policy, as a pure
function (facts in, decisions out).

* the ``keep`` newest active versions (by version number; the one being imported
  counts) stay visible — a hidden one among them is shown again;
* a superseded version is hidden (``os_hidden``: still bootable by id, gone from the
  list) and stamped with the time; ``hidden_days`` later it is deleted (at once when
  ``hidden_days`` is 0);
* an image a server still uses is never hidden or deleted: it is kept, and the servers
  holding it are named;
* an image that is not private is deleted only when every project's servers could be
  seen (an admin connection); otherwise it stays hidden;
* deactivated images (failed boot tests) are left alone for a person to look at.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..site.policy import UpdatePolicy
from .facts import ImageRecord, ServerRecord

__all__ = ["Decision", "version_key", "select", "OlderThanKept"]

_TOKENS = re.compile(r"\d+|[A-Za-z]+")


def version_key(version: str | None) -> tuple:
    """Natural order of versions: ``41-1.10`` after ``41-1.9``, ``42`` after ``41-1.4``."""
    out = []
    for t in _TOKENS.findall(version or ""):
        out.append((1, int(t), "") if t.isdigit() else (0, 0, t))
    return tuple(out)


def _parse(ts: str | None) -> dt.datetime | None:
    if not ts:
        return None
    try:
        d = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class Decision:
    """What happens to one image of the profile."""

    image: ImageRecord
    action: str          # keep | hide | unhide | delete
    reason: str
    servers: tuple[ServerRecord, ...] = ()

    def to_dict(self) -> dict:
        return {"image": self.image.name, "id": self.image.id or "(new)",
                "version": self.image.version, "status": self.image.status,
                "hidden": self.image.hidden, "action": self.action, "reason": self.reason,
                "servers": ", ".join(f"{s.name} ({s.id})" for s in self.servers) or "-"}


class OlderThanKept(ValueError):
    """The version being imported would be superseded at once."""


def select(images: Sequence[ImageRecord], new: ImageRecord, update: UpdatePolicy, *,
           usage: Mapping[str, Sequence[ServerRecord]], now: dt.datetime,
           all_servers_visible: bool) -> list[Decision]:
    """Decisions for the profile's images (``new`` is the one being imported or reused;
    its decision is always ``keep``).  Raises :class:`OlderThanKept` when ``new`` is not
    among the ``keep`` newest versions."""
    active = [i for i in images if i.status == "active" and i.id != new.id]
    others = [i for i in images if i.status != "active" and i.id != new.id]
    ranked = sorted([new, *active], key=lambda i: (version_key(i.version), i.created_at),
                    reverse=True)
    kept = ranked[:update.keep]
    if new not in kept:
        raise OlderThanKept(
            f"version {new.version} is older than the {update.keep} newest version(s) the "
            f"profile keeps ({', '.join(str(i.version) for i in kept)}); importing it would "
            f"retire it at once")
    out: list[Decision] = []
    newest = ranked[0]
    for i in ranked:
        servers = tuple(usage.get(i.id, ())) if i.id else ()
        if i in kept:
            if i is new:
                out.append(Decision(i, "keep", "the version this run imports", servers))
            elif i.hidden:
                out.append(Decision(i, "unhide", f"among the {update.keep} newest versions "
                                    f"again", servers))
            else:
                out.append(Decision(i, "keep", f"among the {update.keep} newest versions",
                                    servers))
            continue
        superseded = f"superseded by {newest.version}"
        if servers:
            out.append(Decision(i, "keep", f"{superseded}, but in use by {len(servers)} "
                                f"server(s): retired once they are gone", servers))
            continue
        hidden_at = _parse(i.hidden_at) or (_parse(i.updated_at) if i.hidden else None)
        if not i.hidden and update.hidden_days:
            until = now + dt.timedelta(days=update.hidden_days)
            out.append(Decision(i, "hide", f"{superseded}; hidden until "
                                f"{until:%Y-%m-%d}, then deleted"))
            continue
        if i.hidden and hidden_at is not None and \
                now < hidden_at + dt.timedelta(days=update.hidden_days):
            until = hidden_at + dt.timedelta(days=update.hidden_days)
            out.append(Decision(i, "keep", f"{superseded}; hidden since {hidden_at:%Y-%m-%d}, "
                                f"deleted after {until:%Y-%m-%d}"))
            continue
        if i.visibility != "private" and not all_servers_visible:
            out.append(Decision(i, "keep" if i.hidden else "hide",
                                f"{superseded}; {i.visibility} image, and this connection "
                                f"sees only its own project's servers: left hidden for an "
                                f"admin run to delete"))
            continue
        grace = (f"hidden since {hidden_at:%Y-%m-%d}, {update.hidden_days} days over"
                 if i.hidden and hidden_at is not None else "no grace period")
        out.append(Decision(i, "delete", f"{superseded}; {grace}; no server uses it"))
    for i in others:
        out.append(Decision(i, "keep", f"{i.status}: left for a person to look at "
                            f"({i.boot_test or 'no boot test recorded'})",
                            tuple(usage.get(i.id, ()))))
    return out
