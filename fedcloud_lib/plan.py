"""Plans, and the walker that carries them out: the approved plan is the program.

Facts → plan → apply.  A runbook reads the facts, makes a :class:`Plan` (typed
:class:`Step` s: ``action``, ``kind``, ``name``, ``detail`` for people, ``inputs`` for the
handler), and calls :func:`require_approval`, which records the plan in the run and
stops a run that is not approved (a dry run, archived ``planned``, exit 0).  Applying is
:func:`walk`: one small idempotent handler per ``(kind, action)`` (find-or-create, so a run
killed halfway is finished by the next one), called for exactly the plan's steps.  The
decision is made once, in the plan.

A recorded plan can be approved later (``fedcloud run --approve-plan RUN_ID``): the
engine hands the archived plan to the run, the runbook makes its plan again from today's
facts, and :func:`require_approval` applies the recorded one only if both agree step for
step (action, kind, name, inputs); otherwise it raises :class:`StalePlan` with both plans
side by side and nothing is changed.
"""
from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import progress as progress_mod
from .archive.results import record
from .cloud import CLOUD_ERRORS
from .context import current_run, utcnow
from .errors import CloudError, FedcloudError, RunbookError, StalePlan
from .lab import gate, session

__all__ = ["ACTIONS", "Step", "Plan", "StepResult", "Handlers", "StopAfterPlan",
           "require_approval", "load_plan", "planning_time", "new_planning_time", "walk"]

ACTIONS = ("create", "update", "delete", "reuse", "keep")
CHANGES = ("create", "update", "delete")
_ROW_STYLE = {"create": "background:#e6ffed", "update": "background:#fff8c5",
              "delete": "background:#ffebe9"}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Step:
    """One line of a plan.

    ``detail`` is for the reader; ``inputs`` (JSON-able) is everything the step's handler
    needs and is what two plans are compared on, with ``action``, ``kind`` and ``name``.
    Keep volatile things (run id, the time of applying) out of ``inputs``.
    """

    action: str  # create | update | delete | reuse | keep
    kind: str  # server, volume, security group, service, ...
    name: str
    detail: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {self.action!r}")
        try:
            object.__setattr__(self, "inputs",
                               json.loads(json.dumps(dict(self.inputs), sort_keys=True)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"step {self.kind} {self.name}: inputs must be JSON-able: {exc}") \
                from exc

    @property
    def changes(self) -> bool:
        """Whether the step changes the cloud (create, update or delete)."""
        return self.action in CHANGES

    @property
    def decision(self) -> tuple[str, str, str, str]:
        """What two plans are compared on (not the human ``detail``)."""
        return (self.action, self.kind, self.name, _canonical(self.inputs))

    def label(self) -> str:
        """``action kind name``, how messages name the step."""
        return f"{self.action} {self.kind} {self.name}"

    def to_dict(self) -> dict[str, Any]:
        """The step as JSON (what the archive records)."""
        return {"action": self.action, "kind": self.kind, "name": self.name,
                "detail": self.detail, "inputs": dict(self.inputs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Step":
        """A step from its recorded JSON."""
        return cls(action=d["action"], kind=d["kind"], name=d["name"],
                   detail=d.get("detail", ""), inputs=d.get("inputs") or {})


@dataclass(frozen=True)
class Plan:
    """A titled list of steps, with when (and by which run) the facts were read."""

    title: str
    steps: tuple[Step, ...] = ()
    planned_at: str = ""
    run_id: str | None = None

    @classmethod
    def of(cls, title: str, steps: Iterable[Step]) -> "Plan":
        """A plan made in this run, stamped with its :func:`planning_time`."""
        return cls(title, tuple(steps), planned_at=planning_time().isoformat(),
                   run_id=current_run().run_id)

    @property
    def changes(self) -> tuple[Step, ...]:
        """The steps that change something."""
        return tuple(s for s in self.steps if s.changes)

    def decisions(self) -> list[tuple[str, str, str, str]]:
        """What the plan is compared on, step by step (not the human ``detail``)."""
        return [s.decision for s in self.steps]

    def differences(self, other: "Plan") -> list[str]:
        """Readable differences between this plan and ``other`` (empty when they agree)."""
        out = []
        mine, theirs = self.steps, other.steps
        for i in range(max(len(mine), len(theirs))):
            a = mine[i] if i < len(mine) else None
            b = theirs[i] if i < len(theirs) else None
            if a is not None and b is not None and a.decision == b.decision:
                continue
            if a is None:
                out.append(f"step {i + 1}: now also {b.label()}")
            elif b is None:
                out.append(f"step {i + 1}: {a.label()} is no longer planned")
            elif a.label() != b.label():
                out.append(f"step {i + 1}: {a.label()} became {b.label()}")
            else:
                keys = sorted(k for k in set(a.inputs) | set(b.inputs)
                              if a.inputs.get(k) != b.inputs.get(k))
                out.append(f"step {i + 1}: {a.label()}: {', '.join(keys)} changed")
        return out

    def to_frame(self):
        """The plan as a DataFrame (action, kind, name, detail)."""
        import pandas as pd

        return pd.DataFrame([{"action": s.action, "kind": s.kind, "name": s.name,
                              "detail": s.detail} for s in self.steps],
                            columns=["action", "kind", "name", "detail"])

    def rows(self) -> list[dict[str, str]]:
        """The plan as a list of rows (action, kind, name, detail) for tables and tickets."""
        return [{"action": s.action, "kind": s.kind, "name": s.name, "detail": s.detail}
                for s in self.steps]

    def summary(self) -> str:
        """One line: the title and how many steps of each action."""
        counts: dict[str, int] = {}
        for s in self.steps:
            counts[s.action] = counts.get(s.action, 0) + 1
        return f"{self.title}: " + (", ".join(f"{n} to {k}" for k, n in counts.items())
                                    or "nothing to do")

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON (title, planned_at, run_id, steps with their inputs)."""
        return {"title": self.title, "planned_at": self.planned_at, "run_id": self.run_id,
                "steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Plan":
        """A plan from its recorded JSON; RunbookError if it is not one."""
        try:
            return cls(title=d["title"], steps=tuple(Step.from_dict(s) for s in d["steps"]),
                       planned_at=d.get("planned_at", ""), run_id=d.get("run_id"))
        except (KeyError, TypeError, ValueError) as exc:
            raise RunbookError(f"not a recorded plan: {exc}") from exc

    def html_table(self) -> str:
        """The plan as an HTML table; creations, updates and deletions highlighted."""
        head = "".join(f"<th>{c}</th>" for c in ("action", "kind", "name", "detail"))
        body = []
        for s in self.steps:
            style = _ROW_STYLE.get(s.action, "")
            cells = "".join(f"<td>{html.escape(str(v))}</td>"
                            for v in (s.action, s.kind, s.name, s.detail))
            body.append(f'<tr class="fedcloud-{s.action}" style="{style}">{cells}</tr>')
        return (f'<table class="fedcloud-plan"><thead><tr>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table>")

    def _repr_html_(self) -> str:
        return f"<p><b>{html.escape(self.summary())}</b></p>" + self.html_table()

    def __str__(self) -> str:
        return self.summary() + "\n" + self.to_frame().to_string(index=False)


class StopAfterPlan(Exception):
    """Raised to end a run after its plan when it is not approved (a dry run).

    The engine archives such a run as ``planned`` and exits 0; in JupyterLab it stops
    "Run All" with a one-line message instead of a traceback.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"Dry run: {self}"]


def load_plan(path: str | Path) -> Plan:
    """A plan recorded as JSON (the file an ``--approve-plan`` run is given)."""
    try:
        return Plan.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as exc:
        raise RunbookError(f"cannot read the approved plan {path}: {exc}") from exc


def _stale(approved: Plan, current: Plan) -> StalePlan:
    diffs = approved.differences(current)
    err = StalePlan(
        f"the plan approved from run {approved.run_id or '?'} (made {approved.planned_at}) no "
        f"longer matches the facts: " + "; ".join(diffs[:5])
        + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
        + ". Nothing was changed; make a new plan (a dry run) and approve that one.",
        problems=diffs, approved=approved.to_dict(), current=current.to_dict())
    return err


def _show_side_by_side(approved: Plan, current: Plan) -> None:
    try:
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover - outside a kernel
        return
    display(HTML('<div style="display:flex;gap:2em"><div><b>approved plan</b>'
                 f"{approved.html_table()}</div><div><b>plan from today's facts</b>"
                 f"{current.html_table()}</div></div>"))


def require_approval(plan: Plan, approve: bool) -> Plan:
    """Record ``plan`` in the run and return the plan to apply.

    * a run applying a recorded plan (``--approve-plan``): the recorded plan, if ``plan``
      (made again from today's facts) agrees with it step for step; else :class:`StalePlan`;
    * ``approve`` true, or nothing to change: ``plan``;
    * otherwise: :class:`StopAfterPlan` (a dry run).

    Interactively (a JupyterLab kernel, not the engine) ``approve`` is not enough: a plan
    that changes something is applied only after the operator pressed "Confirm" under it
    (:func:`_interactive_approval`).
    """
    approved_file = current_run().approved_plan
    if approved_file is not None:
        approved = load_plan(approved_file)
        record("plan", plan)
        record("approved_plan_of", approved.run_id)
        if approved.decisions() != plan.decisions():
            record("stale_plan", {"approved": approved.rows(), "current": plan.rows()})
            _show_side_by_side(approved, plan)
            raise _stale(approved, plan)
        return approved
    record("plan", plan)
    if session.interactive():
        return _interactive_approval(plan)
    if approve or not plan.changes:
        return plan
    raise StopAfterPlan(f"stopped after the plan ({plan.summary()}). "
                        f"Nothing was changed; run again with approve=True (--approve) to apply, "
                        f"or approve this plan as it is with --approve-plan "
                        f"{current_run().run_id or 'RUN_ID'}.")


def _interactive_approval(plan: Plan) -> Plan:
    """JupyterLab: the plan the operator confirmed with the button under it, if ``plan``
    (made again from the facts) agrees with it step for step; else :class:`StalePlan`.
    Without a confirmation: show the button and stop (:class:`StopAfterPlan`), so that
    "Run All" runs nothing below.  A confirmation is used once."""
    if not plan.changes:
        gate.applying(plan)
        return plan
    confirmed = session.STATE.take_confirmation(plan.title)
    if confirmed is None:
        gate.show(plan)
        raise StopAfterPlan(f"waiting for confirmation of the plan ({plan.summary()}): press "
                            f"Confirm under it, then run the notebook again. Nothing was changed.")
    approved = confirmed.plan
    if approved.decisions() != plan.decisions():
        diffs = approved.differences(plan)
        record("stale_plan", {"approved": approved.rows(), "current": plan.rows()})
        _show_side_by_side(approved, plan)
        raise StalePlan(
            f"the plan {confirmed.operator} confirmed at {confirmed.at} no longer matches the "
            f"facts: " + "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5
                                                 else "")
            + ". Nothing was changed; run the notebook again to see the new plan and confirm it.",
            problems=diffs, approved=approved.to_dict(), current=plan.to_dict())
    record("confirmation", {"plan": approved.title, "operator": confirmed.operator,
                            "confirmed_at": confirmed.at, "changes": gate.change_counts(approved)})
    gate.applying(approved)
    return approved


# --------------------------------------------------------------------------- the walker
Handler = Callable[[Any, Step], Any]


class Handlers:
    """The handlers of one SOP: ``handlers.on("server", "create")`` decorates a function
    ``fn(ctx, step)`` that carries out that kind of step idempotently."""

    def __init__(self) -> None:
        self._table: dict[tuple[str, str], Handler] = {}

    def on(self, kind: str, *actions: str) -> Callable[[Handler], Handler]:
        """Decorate ``fn(ctx, step)`` as the handler of ``kind`` for ``actions``."""
        for a in actions:
            if a not in ACTIONS:
                raise ValueError(f"unknown action {a!r}")

        def register(fn: Handler) -> Handler:
            """Register ``fn`` for each action."""
            for a in actions:
                self._table[(kind, a)] = fn
            return fn

        return register

    def get(self, kind: str, action: str) -> Handler | None:
        """The handler of ``(kind, action)``, or None."""
        return self._table.get((kind, action))

    def missing(self, plan: Plan) -> list[str]:
        """Changing steps no handler carries out."""
        return [s.label() for s in plan.steps if s.changes and self.get(s.kind, s.action) is None]


@dataclass(frozen=True)
class StepResult:
    """What one step of a walk did."""

    index: int
    action: str
    kind: str
    name: str
    status: str  # done | skipped
    seconds: float
    result: str = ""


def walk(plan: Plan, handlers: Handlers, ctx: Any, *,
         progress: Callable[[str], None] | None = None) -> list[StepResult]:
    """Carry out exactly ``plan``'s steps, in order, with ``handlers``.

    A changing step (create, update, delete) calls its handler; a ``reuse`` or ``keep``
    step calls one only if the SOP registered one (to load what later steps need).  A plan
    with a changing step no handler knows is refused before anything is done.  A cloud
    failure stops the walk with a :class:`CloudError` naming the step; re-running finishes
    the job (handlers find what the earlier run made).
    """
    say = progress or progress_mod.say  # a terminal line in a headless run, as it happens
    missing = handlers.missing(plan)
    if missing:
        raise RunbookError(f"the plan has steps this runbook cannot carry out: "
                           f"{', '.join(missing)}; nothing was changed", problems=missing)
    out: list[StepResult] = []
    n = len(plan.steps)
    for i, step in enumerate(plan.steps, 1):
        handler = handlers.get(step.kind, step.action)
        if handler is None:
            out.append(StepResult(i, step.action, step.kind, step.name, "skipped", 0.0))
            continue
        t0 = time.monotonic()
        if step.changes:
            say(f"[{i}/{n}] {step.label()} ...")
        try:
            result = handler(ctx, step)
        except CLOUD_ERRORS as exc:
            raise CloudError(f"step {i}/{n} ({step.label()}) failed: {exc}; re-run to finish "
                             f"(what was done is found again, nothing is made twice)",
                             step=step.to_dict()) from exc
        except FedcloudError as exc:
            exc.add_note(f"while carrying out step {i}/{n}: {step.label()}")
            raise
        secs = time.monotonic() - t0
        text = "" if result is None else str(result)
        out.append(StepResult(i, step.action, step.kind, step.name, "done", round(secs, 2),
                              text[:200]))
        if step.changes:
            say(f"[{i}/{n}] {step.label()}: done in {secs:.1f} s" + (f" ({text[:120]})" if text else ""))
    return out


_PLANNING_TIMES: dict[str, datetime] = {}  # run id (or "interactive") -> its planning time


def planning_time() -> datetime:
    """When the plan of this run counts from, the same every time it is asked in a run.

    A run applying a recorded plan gets the time that plan was made (so lifetimes and
    expiry dates come out the same); otherwise the first call fixes "now" for the run, and
    :meth:`Plan.of` stamps the plan with it, so that approving the plan later reproduces
    it exactly.  An interactive session starts a new planning time with
    :func:`new_planning_time` (a new form submission).
    """
    run = current_run()
    approved_file = run.approved_plan
    if approved_file is not None:
        made = load_plan(approved_file).planned_at
        if made:
            return datetime.fromisoformat(made)
    key = run.run_id or "interactive"
    if key not in _PLANNING_TIMES:
        _PLANNING_TIMES[key] = utcnow()
    return _PLANNING_TIMES[key]


def new_planning_time() -> datetime:
    """Forget this session's planning time: the next plan counts from now."""
    _PLANNING_TIMES.pop(current_run().run_id or "interactive", None)
    return planning_time()
