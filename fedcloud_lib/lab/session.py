"""Is this an interactive kernel, and what has the operator decided in it.

A JupyterLab kernel runs one notebook; what the operator confirmed there lives in the
kernel's memory (:data:`STATE`), never on disk: the parameter values the form was
confirmed with, the plans confirmed with the button under them (compared on their
decisions when the notebook runs again), and the interactive run being recorded.

Interactive means: inside an IPython kernel and not under the engine.  The engine
(``fedcloud run``) sets ``FEDCLOUD_RUN_ID`` in its kernel; there, forms and buttons stay
silent and the injected parameters and ``approve`` decide.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

__all__ = ["STATE", "LabState", "FormDecision", "Confirmation", "under_engine", "shell",
           "interactive", "notebook_path", "runbook_name"]


def under_engine() -> bool:
    """Whether this code runs in a kernel the engine started (``fedcloud run``)."""
    return bool(os.environ.get("FEDCLOUD_RUN_ID"))


def shell() -> Any | None:
    """The IPython kernel shell this code runs in, or None (a script, a test, the CLI).

    IPython is not imported here: a process that never imported it is not a kernel.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    sh = ipython.get_ipython()
    return sh if sh is not None and getattr(sh, "kernel", None) is not None else None


def interactive() -> bool:
    """In a kernel an operator drives (JupyterLab, nbval), not under the engine."""
    return not under_engine() and shell() is not None


def notebook_path(namespace: dict | None = None) -> Path | None:
    """The notebook file this kernel runs, as the Jupyter server told the kernel
    (``__session__`` / ``JPY_SESSION_NAME``); None when no server started the kernel."""
    name = (namespace or {}).get("__session__") or os.environ.get("JPY_SESSION_NAME")
    if not name:
        return None
    p = Path(name)
    return p if p.suffix == ".ipynb" else None


def runbook_name(namespace: dict | None = None) -> str:
    """The runbook this kernel runs: the notebook's file name, else ``interactive``."""
    p = notebook_path(namespace)
    return p.stem if p is not None else (os.environ.get("FEDCLOUD_RUNBOOK") or "interactive")


@dataclass(frozen=True)
class FormDecision:
    """The values an operator confirmed in the form, and what the parameters cell held
    then (``base``): running the notebook again applies ``values`` as long as the
    parameters cell still gives ``base`` (it was not edited meanwhile)."""

    names: tuple[str, ...]
    base: dict
    values: dict
    operator: str
    at: str


@dataclass(frozen=True)
class Confirmation:
    """A plan the operator confirmed with the button under it."""

    plan: Any  # fedcloud_lib.plan.Plan (not imported: plan imports this package)
    operator: str
    at: str


@dataclass
class LabState:
    """What the operator decided in this kernel."""

    form: FormDecision | None = None
    confirmations: dict[str, Confirmation] = field(default_factory=dict)  # by plan title
    applied: list[Any] = field(default_factory=list)  # plans applied since the last archive
    on_apply: list[Callable[[Any], None]] = field(default_factory=list)  # the archive's hook
    namespace: dict | None = None  # the notebook's globals, as given to form()
    specs: list | None = None  # the parameter declarations the form showed
    runbook: str | None = None  # the runbook the form found them in
    lock: threading.Lock = field(default_factory=threading.Lock)

    def confirm_form(self, decision: FormDecision) -> None:
        """New parameter values: every plan confirmed for the old ones is void."""
        with self.lock:
            self.form = decision
            self.confirmations.clear()

    def edit_form(self) -> None:
        """The operator reopened the form: the confirmed values and plans are void."""
        with self.lock:
            self.form = None
            self.confirmations.clear()

    def confirm_plan(self, confirmation: Confirmation) -> None:
        with self.lock:
            self.confirmations[confirmation.plan.title] = confirmation

    def take_confirmation(self, title: str) -> Confirmation | None:
        """The confirmation of the plan titled ``title``, used up (one apply per click)."""
        with self.lock:
            return self.confirmations.pop(title, None)

    def reset(self) -> None:
        """Forget everything (tests; a new kernel starts like this)."""
        with self.lock:
            self.form, self.namespace, self.specs, self.runbook = None, None, None, None
            self.confirmations.clear()
            self.applied.clear()


STATE = LabState()
