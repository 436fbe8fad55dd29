"""Plans: what a mutating runbook will create, change, reuse or delete, shown as a table.

Facts → plan → apply.  A runbook computes a :class:`Plan`, shows it (a table in the
notebook and in the archive), records it, and calls :func:`require_approval`: without
approval the run stops there (a dry run, archived with status ``planned``, exit 0).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Action", "Plan", "StopAfterPlan", "require_approval"]

ACTIONS = ("create", "update", "delete", "reuse", "keep")


@dataclass(frozen=True)
class Action:
    """One line of a plan."""

    action: str  # create | update | delete | reuse | keep
    kind: str  # server, volume, security group, service, ...
    name: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {self.action!r}")

    @property
    def changes(self) -> bool:
        return self.action in ("create", "update", "delete")


@dataclass(frozen=True)
class Plan:
    title: str
    actions: tuple[Action, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, title: str, actions: Iterable[Action]) -> "Plan":
        return cls(title, tuple(actions))

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.changes)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{"action": a.action, "kind": a.kind, "name": a.name,
                              "detail": a.detail} for a in self.actions],
                            columns=["action", "kind", "name", "detail"])

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for a in self.actions:
            counts[a.action] = counts.get(a.action, 0) + 1
        return f"{self.title}: " + (", ".join(f"{n} to {k}" for k, n in counts.items())
                                    or "nothing to do")

    def _repr_html_(self) -> str:
        return f"<p><b>{self.summary()}</b></p>" + self.to_frame().to_html(index=False)

    def __str__(self) -> str:
        return self.summary() + "\n" + self.to_frame().to_string(index=False)


class StopAfterPlan(Exception):
    """Raised to end a run after its plan when it is not approved (a dry run).

    The engine archives such a run as ``planned`` and exits 0; in JupyterLab it stops
    "Run All" with a one-line message instead of a traceback.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"Dry run: {self}"]


def require_approval(plan: Plan, approve: bool) -> Plan:
    """Stop the run after the plan unless it is approved (or there is nothing to change)."""
    if approve or not plan.changes:
        return plan
    raise StopAfterPlan(f"stopped after the plan ({plan.summary()}). "
                        f"Nothing was changed; run again with approve=True (--approve) to apply.")
