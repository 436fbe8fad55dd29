"""Who, what and when runs: the run context the engine hands to a runbook's kernel.

The engine sets ``FEDCLOUD_RUN_ID``, ``FEDCLOUD_RUNBOOK``, ``FEDCLOUD_RUN_DIR``,
``FEDCLOUD_OPERATOR`` and ``OS_CLOUD`` in the kernel's environment; :func:`current_run`
reads them back.  Outside the engine (JupyterLab, a test) the operator is the local user
and there is no run id.

What the ``fedcloud`` process already knows and hands to the run (the recorded plan an
``--approve-plan`` run applies, the account a ticket run already read) is written by the
engine as ``inputs/<name>.json`` in the run folder, archived with the run;
:func:`run_input` reads it.
"""
from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CurrentRun", "current_run", "operator_name", "run_input", "utcnow", "INPUTS_DIR",
           "APPROVED_PLAN"]

INPUTS_DIR = "inputs"
APPROVED_PLAN = "approved-plan"


@dataclass(frozen=True)
class CurrentRun:
    """The run a piece of code executes in."""

    run_id: str | None
    runbook: str | None
    operator: str
    cloud: str | None
    run_dir: Path | None

    @property
    def approved_plan(self) -> Path | None:
        """The recorded plan this run applies (``--approve-plan``), if it applies one."""
        p = self.input_path(APPROVED_PLAN)
        return p if p is not None and p.is_file() else None

    def input_path(self, name: str) -> Path | None:
        """Where the engine put the run input ``name`` (None outside a run)."""
        return self.run_dir / INPUTS_DIR / f"{name}.json" if self.run_dir else None

    @property
    def label(self) -> str:
        """The run id, or ``interactive`` outside the engine (for metadata stamps)."""
        return self.run_id or "interactive"


def operator_name(explicit: str | None = None) -> str:
    """Who runs this: ``explicit``, else ``$FEDCLOUD_OPERATOR``, ``$SUDO_USER``, ``$USER``,
    ``$LOGNAME``, else the login name of the process's user."""
    if explicit:
        return explicit
    for var in ("FEDCLOUD_OPERATOR", "SUDO_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - a uid without a passwd entry
        return f"uid{os.getuid()}"


def current_run() -> CurrentRun:
    """Who and what this run is (from the environment the engine gives the kernel)."""
    env = os.environ.get
    return CurrentRun(run_id=env("FEDCLOUD_RUN_ID") or None, runbook=env("FEDCLOUD_RUNBOOK") or None,
                      operator=operator_name(), cloud=env("OS_CLOUD") or None,
                      run_dir=Path(env("FEDCLOUD_RUN_DIR")) if env("FEDCLOUD_RUN_DIR") else None)


def run_input(name: str) -> object | None:
    """What the engine handed this run under ``name`` (parsed JSON), or None."""
    p = current_run().input_path(name)
    if p is None or not p.is_file():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def utcnow() -> dt.datetime:
    """Now, in UTC, to the second (the resolution every stamp of the project uses)."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
