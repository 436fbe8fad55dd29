"""Run the cloudlet playbooks with ansible-runner; stream their events as progress lines.

ansible-runner keeps its artifact tree under ``/var/lib/fedcloud/runner/<cloudlet>/``
(rotated: the last 10).  The audit record must not point there: when the playbook runs
inside a ``fedcloud run``, its events (one line per task result: host, task,
changed/failed, duration) and its whole stdout are also written, scrubbed, as they come,
into the run folder (``ansible/NN-<playbook>[-check]/events.jsonl`` and ``stdout.txt``),
where the run's manifest and the archive's chain cover them.  Each task result is also
reported as a progress line (:func:`fedcloud_lib.progress.say`), which a headless run
prints on the terminal as it happens.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import progress
from ..context import current_run
from ..errors import RunbookError
from ..scrub import Scrubber, collect_secrets
from .settings import ANSIBLE_DIR, STATE_DIR, CloudletSettings

RECORD_DIR = "ansible"

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
    record: str | None = None  # its copy in the run folder, e.g. ansible/02-site

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
                "artifacts": self.artifacts, "record": self.record}

    def rows(self, only_changed: bool = False) -> list[dict[str, Any]]:
        ts = self.changed + self.failed if only_changed else self.tasks
        return [{"host": t.host, "task": t.task, "status": t.status, "seconds": round(t.seconds, 1),
                 **({"message": t.message} if t.message else {})} for t in ts]


def _short(msg: Any, limit: int = 300) -> str:
    s = str(msg or "").strip().replace("\n", " ")
    return s if len(s) <= limit else s[: limit - 3] + "..."


class RunRecord:
    """The playbook's events and stdout in the run folder, scrubbed, appended as they
    come (a run killed halfway keeps what happened until then)."""

    def __init__(self, folder: Path, scrubber: Scrubber) -> None:
        folder.parent.mkdir(exist_ok=True, mode=0o700)
        folder.mkdir(exist_ok=True, mode=0o700)
        self.folder, self.scrubber = folder, scrubber

    @classmethod
    def in_run(cls, playbook: str, check: bool, secrets_dir: Path | None) -> "RunRecord | None":
        """The record folder for this playbook run in the current run's folder (None
        outside a ``fedcloud run``)."""
        run_dir = current_run().run_dir
        if run_dir is None or not run_dir.is_dir():
            return None
        base = run_dir / RECORD_DIR
        n = len([p for p in base.iterdir() if p.is_dir()]) + 1 if base.is_dir() else 1
        name = f"{n:02d}-{Path(playbook).stem}{'-check' if check else ''}"
        return cls(base / name, Scrubber(collect_secrets(secrets_dir=secrets_dir)))

    def _append(self, name: str, text: str) -> None:
        fd = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(self.scrubber.text(text))

    def event(self, record: dict[str, Any]) -> None:
        self._append("events.jsonl", json.dumps(self.scrubber.data(record), sort_keys=True,
                                                default=str) + "\n")

    def stdout(self, text: str) -> None:
        if text:
            self._append("stdout.txt", text if text.endswith("\n") else text + "\n")


class _EventSink:
    """ansible-runner event handler: keeps task results, reports one line per result,
    and writes events and stdout into the run's record (when there is one)."""

    def __init__(self, out: Callable[[str], None], verbose: bool,
                 record: RunRecord | None = None) -> None:
        self.t0 = time.monotonic()
        self.out = out
        self.verbose = verbose
        self.record = record
        self.tasks: list[TaskResult] = []

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        if self.record is not None:
            self.record.stdout(event.get("stdout") or "")
            if kind == "playbook_on_play_start":
                self.record.event({"event": "play", "play": data.get("play", ""),
                                   "at": round(time.monotonic() - self.t0, 1)})
        self._handle(kind, data, event)
        return True

    def _handle(self, kind: str, data: dict[str, Any], event: dict[str, Any]) -> None:
        if kind == "playbook_on_play_start":
            self.out(f"[{time.monotonic() - self.t0:6.1f}s] PLAY {data.get('play', '')}")
        if kind == "runner_item_on_failed":
            res = data.get("res", {}) or {}
            self.out(f"[{time.monotonic() - self.t0:6.1f}s]    failed {data.get('host', '')}: "
                     f"{data.get('task', '')} (item) -- {_short(res.get('msg') or res.get('stderr'))}")
            return
        status = _RESULT_EVENTS.get(kind)
        if status is None:
            return
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
        if self.record is not None:
            self.record.event({"event": "task", "host": tr.host, "play": tr.play,
                               "task": tr.task, "status": status,
                               "changed": status == "changed",
                               "failed": status in ("failed", "unreachable"),
                               "duration": round(tr.seconds, 3), "message": msg,
                               "at": round(time.monotonic() - self.t0, 1)})
        if status != "skipped" or self.verbose:
            line = f"[{time.monotonic() - self.t0:6.1f}s] {status:>9} {tr.host}: {tr.task}"
            if msg:
                line += f" -- {msg}"
            self.out(line)


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

    ansible-runner's artifact tree is kept under ``/var/lib/fedcloud/runner/<cloudlet>/``
    (the last 10); inside a ``fedcloud run`` the events and stdout also go into the run
    folder (:class:`RunRecord`).  Each task result is reported through ``out`` (default:
    :func:`fedcloud_lib.progress.say`).  Secrets never enter ansible's command line or
    extra vars: the playbook reads them from the root-only secrets file.
    """
    import ansible_runner

    out = out or progress.say
    pdd = STATE_DIR / "runner" / settings.cloudlet
    pdd.mkdir(parents=True, exist_ok=True)
    record = RunRecord.in_run(playbook, check, settings.secrets_file.parent)
    sink = _EventSink(out, verbose, record)
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
                      tasks=sink.tasks,
                      record=f"{RECORD_DIR}/{record.folder.name}" if record else None)
    if record is not None:
        record.event({"event": "end", "playbook": playbook, "check": check,
                      "status": run.status, "rc": run.rc, "seconds": round(run.seconds, 1),
                      "tasks": len(run.tasks), "changed": len(run.changed),
                      "failed": len(run.failed)})
    return run


def require_success(run: PlaybookRun) -> PlaybookRun:
    """Raise a RunbookError naming the failed tasks (and where the full log is)."""
    if run.status != "successful" or run.rc != 0:
        failed = "; ".join(f"{t.host}: {t.task}: {t.message}" for t in run.failed) or "see the log"
        raise RunbookError(
            f"ansible {run.playbook} {'(check mode) ' if run.check else ''}ended {run.status} "
            f"(rc {run.rc}): {failed}. Full output: "
            + (f"{run.record}/stdout.txt in the run folder" if run.record
               else f"{run.artifacts}/stdout"),
            artifacts=run.artifacts, failed=[t.task for t in run.failed])
    return run
