"""Interactive runs in the audit archive, written by the kernel the operator drives.

An interactive run lands in the same archive as a headless one — a run folder written
through :class:`~fedcloud_lib.archive.writer.RunWriter` (every byte scrubbed), indexed and
chained by :meth:`~fedcloud_lib.archive.index.Archive.append` — with the operator's name
and status ``interactive`` (``exit_code`` 1 and ``error`` when a cell failed).

* **Applying a plan** opens a run (``record.json`` with status ``running`` and the
  kernel's pid: a kernel killed meanwhile is archived as ``abandoned`` by the next
  ``fedcloud`` command).  It holds the (runbook, ticket) lock headless runs take, so an
  interactive apply and a ``fedcloud run`` of the same ticket never run at once: the
  second is refused (LockError) before anything is changed.  It is finished when the notebook's last code cell has run, when
  a cell fails, when the operator archives it, or when the kernel shuts down.
* **"Archive this run"** (the form's button) or :func:`archive_run` archives what the
  kernel ran since the last archive, whenever the operator wants.

The notebook archived is the kernel's own transcript (:mod:`.transcript`): the cells as
they ran, in order, with what they showed — not the notebook file, which holds whatever
the browser last saved.
"""
from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

import nbformat
import psutil

from .. import __version__
from ..archive.index import Archive, RunEntry
from ..archive.writer import RunWriter, warm_html_exporter
from ..config import settings
from ..context import operator_name, utcnow
from ..errors import ArchiveError, FedcloudError
from ..lock import RunLock
from ..plan import new_planning_time
from ..run.engine import new_run_id
from ..runbooks import Runbook
from ..scrub import MARKER, Scrubber, collect_secrets
from . import progress, session, transcript
from .session import STATE

__all__ = ["archive_run", "install", "InteractiveRun", "STATUS"]

STATUS = "interactive"
_STOPS = ("StopAfterPlan", "FormPending")  # the expected stops: not failures
_lock = threading.RLock()
_installed: list[bool] = []


@dataclass
class InteractiveRun:
    """An interactive run being recorded: its folder, writer and parameters."""

    archive: Archive
    writer: RunWriter
    params_scrubbed: dict
    started: Any
    title: str
    lock: RunLock | None = None  # held while a plan is applied; released when finished

    @property
    def run_id(self) -> str:
        return self.writer.record["run_id"]


_current: list[InteractiveRun] = []  # the open run, if any


def _parameters() -> tuple[dict, dict, list[str]]:
    """(values, values with secrets hidden, secret values) of the notebook's parameters."""
    ns, specs = STATE.namespace or {}, STATE.specs or []
    values = {s.name: ns.get(s.name, s.default) for s in specs}
    secret = {s.name for s in specs if s.secret}
    hidden = {k: (MARKER if k in secret and v not in (None, "") else v) for k, v in values.items()}
    return values, hidden, [str(values[k]) for k in secret if values[k] not in (None, "")]


def _runbook() -> tuple[str, str | None, str]:
    """(runbook name, version, title) of the notebook this kernel runs."""
    path = session.notebook_path(STATE.namespace)
    if path is None or not path.is_file():
        name = STATE.runbook or session.runbook_name(STATE.namespace)
        return name, None, name
    rb = Runbook(path.stem, path)
    try:
        return rb.name, rb.version, rb.title
    except FedcloudError:
        return rb.name, None, rb.name


def _open(reason: str, lock: bool = False) -> InteractiveRun:
    cfg = settings()
    values, hidden, secrets = _parameters()
    scrubber = Scrubber(collect_secrets(secrets, secrets_dir=cfg.secrets_dir))
    name, version, title = _runbook()
    started = utcnow()
    run_id = new_run_id(started)
    archive = Archive(cfg.outputs)
    archive.ensure()
    ticket = values.get("ticket")
    run_lock = None
    if lock:  # refused (LockError) before anything is written or changed
        run_lock = RunLock(archive.root / ".locks", name,
                           str(ticket) if ticket not in (None, "") else None).acquire(run_id)
    folder = archive.run_folder(name, run_id, started)
    cloud = values.get("cloud") if isinstance(values.get("cloud"), str) else None
    record: dict[str, Any] = {
        "run_id": run_id, "runbook": name, "runbook_version": version,
        "fedcloud_version": __version__, "operator": operator_name(),
        "host": socket.gethostname(), "cloud": cloud or os.environ.get("OS_CLOUD") or None,
        "ticket": str(ticket) if ticket not in (None, "") else None,
        "approve": False, "interactive": True, "opened_by": reason,
        "kernel": "JupyterLab (interactive)", "started": started.isoformat(), "ended": None,
        "duration": None, "status": "running", "exit_code": None, "error": None,
        "results": {}, "pid": os.getpid(), "pid_started": psutil.Process().create_time(),
    }
    writer = RunWriter(folder, scrubber, record)
    try:
        writer.write_yaml("parameters.yaml", hidden)
        writer.write_record()
        writer.event(event="run", status="started", run_id=run_id, runbook=name,
                     interactive=True, reason=reason)
    except OSError as e:
        raise ArchiveError(f"cannot write the run folder {folder}: {e.strerror or e}",
                           path=str(folder)) from e
    return InteractiveRun(archive, writer, hidden, started, title, run_lock)


def _notebook(run: InteractiveRun, executions: list[transcript.Execution]):
    intro = (f"Interactive run `{run.run_id}` of `{run.writer.record['runbook']}` by "
             f"**{run.writer.record['operator']}** in JupyterLab. The code cells below are the "
             f"cells this kernel ran, in the order it ran them, with what they showed.")
    return transcript.notebook(executions, title=run.title, intro=intro)


def _checkpoint(run: InteractiveRun) -> None:
    """Write what ran so far (kept if the kernel dies before the run is finished)."""
    run.writer.notebook(_notebook(run, transcript.entries()), run.params_scrubbed, None)


def _finish(run: InteractiveRun, error: str | None = None) -> RunEntry:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()  # a kernel's streams are sent on flush: into the transcript first
        except (OSError, ValueError):
            pass
    executions = transcript.take()
    writer, rec = run.writer, run.writer.record
    try:
        for e in executions:
            writer.event(**e.to_event())
        writer.notebook(_notebook(run, executions), run.params_scrubbed, None)
    except OSError as e:
        writer.problems.append(f"notebook.ipynb: {e.strerror or e}")
    rec.update(approve=bool(STATE.applied), applied=[p.summary() for p in STATE.applied])
    if STATE.applied:
        new_planning_time()  # what ran is done: the next plan counts from then
    STATE.applied.clear()
    # the run's end as every run ends (render, scrub, seal, chain): ArchiveError if it cannot
    try:
        return writer.finish(run.archive, STATUS, 1 if error else 0, error, run.started)
    finally:
        if run.lock is not None:
            run.lock.release()


def archive_run() -> RunEntry:
    """Archive what this JupyterLab kernel ran since the last archive, now, as an
    interactive run (the same archive as ``fedcloud run``; ``fedcloud runs list`` shows it).
    """
    if session.under_engine():
        raise ArchiveError("archive_run: this run is archived by `fedcloud run` itself")
    if session.shell() is None:
        raise ArchiveError("archive_run: only a Jupyter kernel records what it runs")
    install()
    with _lock:
        run = _current.pop() if _current else _open("archive")
        return _finish(run)


def _on_apply(plan: Any) -> None:
    """A plan is about to be applied: open a run for it (finishing an earlier one)."""
    # the HTML rendering's templates compile meanwhile: finishing is quick, also at shutdown
    threading.Thread(target=warm_html_exporter, daemon=True).start()
    with _lock:
        if _current:
            _finish(_current.pop())
        _current.append(_open(f"apply: {plan.title}", lock=True))


def _is_last_cell(cell_id: str | None, source: str) -> bool:
    """Whether the cell that ran is the notebook's last code cell (by JupyterLab's cell id
    when the file has ids, nbformat 4.5; else by its source)."""
    path = session.notebook_path(STATE.namespace)
    if path is None or not path.is_file():
        return False
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - unreadable now (being saved): not the end then
        return False
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code:
        return False
    last = code[-1]
    if last.get("id") and cell_id:
        return last["id"] == cell_id
    return last.source.strip() == source.strip()


def _after_cell(result: Any) -> None:
    """After each cell: finish the open run on a failure or after the notebook's last
    code cell; otherwise keep its notebook up to date."""
    with _lock:
        if not _current:
            return
        run = _current[-1]
        err = result.error_in_exec or result.error_before_exec
        info = result.info
        try:
            if err is not None and type(err).__name__ not in _STOPS:
                _current.pop()
                entry = _finish(run, error=f"{type(err).__name__}: {err}")
            elif _is_last_cell(getattr(info, "cell_id", None), info.raw_cell or ""):
                _current.pop()
                entry = _finish(run)
            else:
                _checkpoint(run)
                return
        except Exception as exc:  # noqa: BLE001 - said loudly; the kernel goes on
            print(f"fedcloud: could not archive the interactive run {run.run_id}: "
                  f"{type(exc).__name__}: {exc} (the next fedcloud command archives it as "
                  f"abandoned)", file=sys.stderr)
            return
    lines = [f"Applied: {a}" for a in run.writer.record.get("applied", [])]
    lines += [f"  {t}" for t in progress.summary()]
    lines.append(f"Archived as interactive run {entry.run_id} ({entry.status}"
                 + (f", error: {entry.error}" if entry.error else "") + f", "
                 f"{entry.duration:.0f} s): fedcloud runs show {entry.run_id}")
    print("\n".join(lines))


def _at_exit() -> None:
    with _lock:
        if _current:
            try:
                _finish(_current.pop(), error="the kernel shut down before the notebook's last "
                                               "cell ran")
            except Exception:  # noqa: BLE001 - the next fedcloud command archives it as abandoned
                pass


def install() -> None:
    """Hook this kernel (once): open a run when a plan is applied, finish it after the
    last cell, on a failure or at shutdown."""
    sh = session.shell()
    if sh is None or _installed:
        return
    transcript.install()
    _installed.append(True)
    STATE.on_apply.append(_on_apply)
    sh.events.register("post_run_cell", _after_cell)
    atexit.register(_at_exit)
