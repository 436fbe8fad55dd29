"""Run the cloudlet playbooks with ansible-runner; stream their events as progress lines."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import RunbookError
from .settings import ANSIBLE_DIR, STATE_DIR, CloudletSettings

_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
    "runner_item_on_failed": None,  # the task's own event reports it
}


@dataclass
class TaskResult:
    host: str
    play: str
    task: str
    status: str  # ok | changed | failed | skipped | unreachable
    seconds: float
    message: str = ""


@dataclass
class PlaybookRun:
    playbook: str
    check: bool
    status: str
    rc: int
    seconds: float
    artifacts: str
    tasks: list[TaskResult] = field(default_factory=list)

    @property
    def changed(self) -> list[TaskResult]:
        return [t for t in self.tasks if t.status == "changed"]

    @property
    def failed(self) -> list[TaskResult]:
        return [t for t in self.tasks if t.status in ("failed", "unreachable")]

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for t in self.tasks:
            counts[t.status] = counts.get(t.status, 0) + 1
        return {"playbook": self.playbook, "check_mode": self.check, "status": self.status,
                "rc": self.rc, "seconds": round(self.seconds, 1), "tasks": counts,
                "changed": len(self.changed), "failed": len(self.failed),
                "artifacts": self.artifacts}

    def rows(self, only_changed: bool = False) -> list[dict[str, Any]]:
        ts = self.changed + self.failed if only_changed else self.tasks
        return [{"host": t.host, "task": t.task, "status": t.status, "seconds": round(t.seconds, 1),
                 **({"message": t.message} if t.message else {})} for t in ts]


def _short(msg: Any, limit: int = 300) -> str:
    s = str(msg or "").strip().replace("\n", " ")
    return s if len(s) <= limit else s[: limit - 3] + "..."


class _EventSink:
    """ansible-runner event handler: keeps task results and prints one line per result."""

    def __init__(self, out: Callable[[str], None], verbose: bool) -> None:
        self.t0 = time.monotonic()
        self.out = out
        self.verbose = verbose
        self.tasks: list[TaskResult] = []

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        if kind == "playbook_on_play_start":
            self.out(f"[{time.monotonic() - self.t0:6.1f}s] PLAY {data.get('play', '')}")
        if kind == "runner_item_on_failed":
            res = data.get("res", {}) or {}
            self.out(f"[{time.monotonic() - self.t0:6.1f}s]    failed {data.get('host', '')}: "
                     f"{data.get('task', '')} (item) -- {_short(res.get('msg') or res.get('stderr'))}")
            return True
        status = _RESULT_EVENTS.get(kind)
        if status is None:
            return True
        res = data.get("res", {}) or {}
        if status == "ok" and res.get("changed"):
            status = "changed"
        elif status == "ok" and "censored" in res and "changed:" in (event.get("stdout") or ""):
            status = "changed"  # no_log results hide `changed`; the display line does not
        msg = ""
        if status in ("failed", "unreachable"):
            msg = _short(res.get("msg") or res.get("stderr") or res.get("stdout") or "")
        tr = TaskResult(host=data.get("host", ""), play=data.get("play", ""),
                        task=data.get("task", ""), status=status,
                        seconds=float(data.get("duration") or 0.0), message=msg)
        self.tasks.append(tr)
        if status != "skipped" or self.verbose:
            line = f"[{time.monotonic() - self.t0:6.1f}s] {status:>9} {tr.host}: {tr.task}"
            if msg:
                line += f" -- {msg}"
            self.out(line)
        return True


def run_playbook(
    settings: CloudletSettings,
    playbook: str = "site.yml",
    *,
    check: bool = False,
    tags: str | None = None,
    skip_tags: str | None = None,
    verbose: bool = False,
    out: Callable[[str], None] | None = None,
) -> PlaybookRun:
    """Run ``ansible/<playbook>`` against the settings' inventory.

    The run's artifact tree (events, stdout, status) is kept under
    ``/var/lib/fedcloud/runner/<cloudlet>/artifacts``.  Secrets never enter ansible's
    command line or extra vars: the playbook reads them from the root-only secrets file.
    """
    import ansible_runner

    out = out or (lambda s: print(s, flush=True))
    pdd = STATE_DIR / "runner" / settings.cloudlet
    pdd.mkdir(parents=True, exist_ok=True)
    sink = _EventSink(out, verbose)
    # ansible-runner keeps a given cmdline in env/cmdline and reuses it on later runs
    # that give none: a check-mode plan would silently turn the next apply into --check
    stale = pdd / "env" / "cmdline"
    if stale.exists():
        stale.unlink()
    cmdline = []
    if check:
        cmdline.append("--check")
    # ansible-playbook of this Python environment (a kernel's PATH may not hold the venv)
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    t0 = time.monotonic()
    r = ansible_runner.run(
        private_data_dir=str(pdd),
        project_dir=str(ANSIBLE_DIR),
        playbook=str(ANSIBLE_DIR / playbook),
        inventory=settings.inventory(),
        extravars=settings.extravars(),
        tags=tags,
        skip_tags=skip_tags,
        cmdline=" ".join(cmdline) or None,
        envvars={"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
                 "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "0",
                 "ANSIBLE_LIBRARY": str(ANSIBLE_DIR / "library"),
                 "ANSIBLE_ROLES_PATH": str(ANSIBLE_DIR / "roles")},
        event_handler=sink,
        quiet=True,
        rotate_artifacts=10,
    )
    if stale.exists():
        stale.unlink()
    command = list(getattr(r.config, "command", None) or [])
    if command and ("--check" in command) != check:
        raise RunbookError(f"ansible ran with {' '.join(command)!r} but check={check}: "
                           f"remove {pdd}/env and run again", command=command)
    run = PlaybookRun(playbook=playbook, check=check, status=r.status, rc=int(r.rc or 0),
                      seconds=time.monotonic() - t0, artifacts=str(Path(r.config.artifact_dir)),
                      tasks=sink.tasks)
    return run


def require_success(run: PlaybookRun) -> PlaybookRun:
    """Raise a RunbookError naming the failed tasks (and where the full log is)."""
    if run.status != "successful" or run.rc != 0:
        failed = "; ".join(f"{t.host}: {t.task}: {t.message}" for t in run.failed) or "see the log"
        raise RunbookError(
            f"ansible {run.playbook} {'(check mode) ' if run.check else ''}ended {run.status} "
            f"(rc {run.rc}): {failed}. Full output: {run.artifacts}/stdout",
            artifacts=run.artifacts, failed=[t.task for t in run.failed])
    return run
