"""The confirm button under a plan in JupyterLab.

:func:`fedcloud_lib.plan.require_approval`, outside the engine, shows the plan (a table,
creations, updates and deletions highlighted) and under it what will change and a
"Confirm" button (:func:`show`), and stops "Run All" (``StopAfterPlan``).  The click
records, in the kernel, that the operator confirmed *this* plan; when the notebook runs
again, the plan made again from the facts is applied only if its decisions are the
confirmed ones (else ``StalePlan``).  A confirmation is used once.
"""
from __future__ import annotations

import html
from typing import Any

from ..context import operator_name, utcnow
from .session import STATE, Confirmation

__all__ = ["PlanGate", "show", "applying", "change_counts"]

_COLOURS = {"create": "#e6ffed", "update": "#fff8c5", "delete": "#ffebe9"}


def change_counts(plan: Any) -> str:
    """``2 to create, 1 to delete``: what the plan changes, in words."""
    counts: dict[str, int] = {}
    for s in plan.changes:
        counts[s.action] = counts.get(s.action, 0) + 1
    return ", ".join(f"{n} to {a}" for a, n in counts.items()) or "nothing to change"


class PlanGate:
    """What will change, a Confirm button, and a status line."""

    def __init__(self, plan: Any):
        import ipywidgets as w

        self.plan = plan
        items = "".join(
            f'<li style="background:{_COLOURS.get(s.action, "")}"><b>{html.escape(s.action)}</b> '
            f"{html.escape(s.kind)} <code>{html.escape(s.name)}</code>"
            + (f" — {html.escape(s.detail)}" if s.detail else "") + "</li>"
            for s in plan.changes)
        self.changes = w.HTML(f"<p><b>Confirming applies {len(plan.changes)} change(s) "
                              f"to the cloud:</b></p><ul>{items}</ul>")
        self.changes.add_class("fedcloud-gate-changes")
        self.button = w.Button(description=f"Confirm: {change_counts(plan)}",
                               button_style="danger", icon="check",
                               layout=w.Layout(width="auto"),
                               tooltip="apply exactly this plan when the notebook runs again")
        self.button.add_class("fedcloud-confirm")
        self.status = w.HTML("Nothing has been changed. Read the plan, then confirm it.")
        self.status.add_class("fedcloud-gate-status")
        self.button.on_click(lambda _b: self.confirm())
        self.widget = w.VBox([self.changes, self.button, self.status])
        self.widget.add_class("fedcloud-gate")

    def confirm(self) -> Confirmation:
        """Record that the operator confirmed this plan (in this kernel)."""
        c = Confirmation(self.plan, operator_name(), utcnow().isoformat())
        STATE.confirm_plan(c)
        self.button.disabled = True
        self.button.description = f"Confirmed by {c.operator}"
        self.status.value = ("<b>Confirmed.</b> Run the notebook again (<b>Run ▸ Run All "
                             "Cells</b>): the plan is made again from the cloud's facts and "
                             "applied only if it is exactly this one.")
        return c


def show(plan: Any) -> PlanGate:
    """Show the confirm button for ``plan`` under it (in a kernel)."""
    from IPython.display import display

    gate = PlanGate(plan)
    display(gate.widget)
    return gate


def applying(plan: Any) -> None:
    """The kernel is about to apply ``plan``: open its interactive run (which may refuse:
    another run of the ticket holds the lock), then remember it for the run's record."""
    for callback in list(STATE.on_apply):
        callback(plan)
    STATE.applied.append(plan)
