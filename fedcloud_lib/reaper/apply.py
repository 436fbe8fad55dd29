"""lifetime-reaper, apply: walk the approved plan, one idempotent handler per step.

Every handler finds by id first: something already gone counts as done, so a killed run
is finished by the next one.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..cloud import server_gone, volume_gone
from ..plan import Handlers, Plan, Step, StepResult, walk
from ..site.policy import Policy
from .notify import send_notice

__all__ = ["HANDLERS", "ReaperOutcome", "apply", "TIMEOUT"]

TIMEOUT = 600
HANDLERS = Handlers()


@dataclass
class _State:
    conn: Any
    policy: Policy
    timeout: int
    deleted: list[dict[str, str]] = field(default_factory=list)
    mailed: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ReaperOutcome:
    """What the reaper did."""

    deleted: tuple[dict[str, str], ...]
    mailed: tuple[dict[str, Any], ...]
    steps: tuple[StepResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The outcome as JSON, with the steps walked."""
        return {"deleted": list(self.deleted), "mailed": list(self.mailed),
                "steps": [s.__dict__ for s in self.steps]}


def _done(st: _State, step: Step, what: str) -> str:
    st.deleted.append({"kind": step.kind, "name": step.name, "id": step.inputs["id"],
                       "result": what})
    return what


@HANDLERS.on("server", "delete")
def _server(st: _State, step: Step) -> str:
    gone = server_gone(st.conn, step.inputs["id"], timeout=st.timeout)
    return _done(st, step, "deleted" if gone else "already gone")


@HANDLERS.on("volume", "delete")
def _volume(st: _State, step: Step) -> str:
    # the volume of a server deleted by an earlier step: volume_gone waits for cinder to
    # detach it first
    gone = volume_gone(st.conn, step.inputs["id"], timeout=st.timeout)
    return _done(st, step, "deleted" if gone else "already gone")


@HANDLERS.on("image", "delete")
def _image(st: _State, step: Step) -> str:
    img = st.conn.image.find_image(step.inputs["id"], ignore_missing=True)
    if img is None:
        return _done(st, step, "already gone")
    st.conn.image.delete_image(img, ignore_missing=True)
    return _done(st, step, "deleted")


@HANDLERS.on("floating ip", "delete")
def _floating_ip(st: _State, step: Step) -> str:
    ip = st.conn.network.find_ip(step.inputs["id"], ignore_missing=True)
    if ip is None:
        return _done(st, step, "already gone")
    st.conn.network.delete_ip(ip, ignore_missing=True)
    return _done(st, step, "released")


HANDLERS.on("mail", "create")(send_notice)


def apply(conn: Any, policy: Policy, plan: Plan, *, timeout: int = TIMEOUT,
          progress: Callable[[str], None] | None = None) -> ReaperOutcome:
    """Carry out exactly ``plan`` (the approved reaper plan); re-running finishes it."""
    st = _State(conn=conn, policy=policy, timeout=timeout)
    steps = walk(plan, HANDLERS, st, progress=progress)
    return ReaperOutcome(deleted=tuple(st.deleted), mailed=tuple(st.mailed), steps=tuple(steps))
