"""instance-retire, apply: walk the approved retire plan, one idempotent handler per step."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..cloud import CLOUD_ERRORS, server_gone, volume_gone
from ..errors import CloudError
from ..instance.facts import META
from ..plan import Handlers, Plan, Step, StepResult, walk
from ..site.policy import Policy
from .notify import send_retired_mail

__all__ = ["HANDLERS", "RetireOutcome", "apply", "TIMEOUT"]

TIMEOUT = 600
HANDLERS = Handlers()


@dataclass
class _State:
    conn: Any
    policy: Policy
    timeout: int
    done: dict[str, list] = field(default_factory=lambda: {
        "snapshots": [], "servers_deleted": [], "volumes_deleted": [], "keypairs_deleted": []})
    mail: dict | None = None


@dataclass(frozen=True)
class RetireOutcome:
    """What the retire did."""

    ticket: str
    snapshots: tuple[dict, ...]
    servers_deleted: tuple[str, ...]
    volumes_deleted: tuple[str, ...]
    volumes_kept: tuple[str, ...]
    keypairs_deleted: tuple[str, ...]
    mail: dict | None
    steps: tuple[StepResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The outcome as JSON, with the steps walked."""
        return {"ticket": self.ticket, "snapshots": list(self.snapshots),
                "servers_deleted": list(self.servers_deleted),
                "volumes_deleted": list(self.volumes_deleted),
                "volumes_kept": list(self.volumes_kept),
                "keypairs_deleted": list(self.keypairs_deleted), "mail": self.mail,
                "steps": [s.__dict__ for s in self.steps]}


@HANDLERS.on("snapshot", "create")
def _snapshot(st: _State, step: Step) -> str:
    img = st.conn.image.find_image(step.name)
    if img is None:
        img = st.conn.compute.create_server_image(
            step.inputs["server_id"], step.name, metadata={META["ticket"]: step.inputs["ticket"]},
            wait=True, timeout=st.timeout)
    st.done["snapshots"].append({"name": step.name, "id": img.id})
    return img.id


@HANDLERS.on("server", "delete")
def _server(st: _State, step: Step) -> str:
    server_gone(st.conn, step.inputs["id"], st.timeout)
    st.done["servers_deleted"].append(step.name)
    return "deleted"


@HANDLERS.on("volume", "delete")
def _volume(st: _State, step: Step) -> str:
    volume_gone(st.conn, step.inputs["id"], st.timeout)
    st.done["volumes_deleted"].append(step.name)
    return "deleted"


@HANDLERS.on("keypair", "delete")
def _keypair(st: _State, step: Step) -> str:
    st.conn.compute.delete_keypair(step.name, ignore_missing=True)
    st.done["keypairs_deleted"].append(step.name)
    return "deleted"


HANDLERS.on("mail", "create")(send_retired_mail)


def apply(conn: Any, policy: Policy, plan: Plan, ticket: str, *, timeout: int = TIMEOUT,
          progress: Callable[[str], None] | None = None) -> RetireOutcome:
    """Carry out exactly ``plan`` (the approved retire plan of ``ticket``); re-running
    finishes it."""
    st = _State(conn=conn, policy=policy, timeout=timeout)
    try:
        steps = walk(plan, HANDLERS, st, progress=progress)
    except CLOUD_ERRORS as exc:  # pragma: no cover - walk maps the handlers' own errors
        raise CloudError(f"{plan.title} failed: {exc}; re-run to finish") from exc
    return RetireOutcome(
        ticket=str(ticket), snapshots=tuple(st.done["snapshots"]),
        servers_deleted=tuple(st.done["servers_deleted"]),
        volumes_deleted=tuple(st.done["volumes_deleted"]),
        volumes_kept=tuple(s.name for s in plan.steps if s.kind == "volume" and s.action == "keep"),
        keypairs_deleted=tuple(st.done["keypairs_deleted"]), mail=st.mail, steps=tuple(steps))
