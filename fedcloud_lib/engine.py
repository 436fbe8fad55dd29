"""Run a runbook headless: validate, lock, execute with papermill, archive.

:func:`validate` checks parameters before anything starts; :func:`run_runbook` executes a
runbook in the project's kernel and always archives the run (success, failure, Ctrl-C,
dead kernel), with secrets scrubbed from every archived file.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
import os
import secrets as _secrets
import signal
import socket
import tempfile
import threading
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

from . import __version__
from .archive import Archive, RunEntry, write_private
from .config import settings
from .errors import LockError, ParameterError
from .lock import RunLock
from .params import SECRET_MARKER, parse_override, validate_values
from .results import collect_results
from .runbooks import Runbook, get_runbook
from .scrub import Scrubber, collect_secrets

__all__ = ["validate", "run_runbook", "RunResult", "EXIT_OK", "EXIT_FAILED", "EXIT_REFUSED",
           "EXIT_LOCKED", "EXIT_INTERRUPTED", "STOP_AFTER_PLAN"]

log = logging.getLogger("fedcloud")

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# A runbook that stops after its plan (no approval) raises this exception; the run is
# archived with status "planned" and exits 0 (see fedcloud_lib.plan).
STOP_AFTER_PLAN = "StopAfterPlan"


@dataclass
class RunResult:
    run_id: str
    runbook: str
    status: str  # succeeded | planned | failed | interrupted | abandoned
    exit_code: int
    run_dir: Path
    results: dict = field(default_factory=dict)
    error: str | None = None
    entry: RunEntry | None = None


# --------------------------------------------------------------------- validation
def validate(runbook: str | Runbook, values: Mapping[str, Any]) -> dict:
    """Validated, type-coerced parameters of a runbook (defaults filled in).

    Raises ParameterError (every problem listed) before anything is started.
    """
    rb = runbook if isinstance(runbook, Runbook) else get_runbook(runbook)
    return validate_values(rb.parameters, dict(values), runbook=rb.name)


def merge_values(runbook: Runbook, files: list[str | Path] = (),
                 overrides: list[tuple[str, str]] = ()) -> dict:
    """Values from ``-f`` files (in order), then ``-p NAME VALUE`` overrides (text)."""
    from .params import load_value_files

    values = load_value_files(list(files))
    specs = {s.name: s for s in runbook.parameters}
    for name, raw in overrides:
        values[name] = parse_override(specs.get(name), raw)
    return values


def _refusal(kind: str, runbook: str, message: str, scrubber: Scrubber) -> None:
    """Log a refused run (nothing is archived as a run)."""
    _event_log({"event": "refused", "kind": kind, "runbook": runbook,
                "message": message, "operator": _operator(None)}, scrubber)


def _event_log(event: dict, scrubber: Scrubber) -> None:
    try:
        arch = Archive()
        arch.ensure()
        event = {"time": _now().isoformat(), **event}
        line = json.dumps(scrubber.data(event), sort_keys=True) + "\n"
        fd = os.open(arch.root / "fedcloud.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(line)
    except OSError as e:  # never let logging hide the real outcome
        log.warning("could not write the fedcloud log: %s", e)


# --------------------------------------------------------------------- helpers
def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _operator(operator: str | None) -> str:
    if operator:
        return operator
    for var in ("FEDCLOUD_OPERATOR", "SUDO_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):  # pragma: no cover
        return f"uid{os.getuid()}"


def new_run_id(started: _dt.datetime) -> str:
    return started.strftime("%Y%m%dT%H%M%S") + "-" + _secrets.token_hex(3)


def check_cloud(name: str) -> None:
    """Refuse an unknown clouds.yaml entry before anything starts."""
    import openstack.config
    from openstack import exceptions as osexc

    try:
        openstack.config.OpenStackConfig().get_one(cloud=name)
    except (osexc.ConfigException, KeyError) as e:
        try:
            names = ", ".join(sorted(openstack.config.OpenStackConfig().get_cloud_names()))
        except Exception:  # noqa: BLE001 - best effort for the message only
            names = "(none found)"
        raise ParameterError(f"cloud: {name!r} is not a cloud in clouds.yaml; known: {names}",
                             cloud=name) from e


@contextmanager
def _environ(**values: str | None):
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_EXPORTER: list = []  # the warmed-up HTML exporter, shared by the runs of this process


def _html_exporter():
    if not _EXPORTER:
        from nbconvert import HTMLExporter

        _EXPORTER.append(HTMLExporter(template_name="lab"))
    return _EXPORTER[0]


def _warm_nbconvert() -> None:
    """Import nbconvert and compile its templates while the kernel runs (slow, ~0.7 s)."""
    try:
        _html_exporter().from_notebook_node(nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_markdown_cell("warm-up"), nbformat.v4.new_code_cell("1")]))
    except Exception:  # noqa: BLE001 - rendering reports its own errors later
        pass


# --------------------------------------------------------------------- the run folder
class RunWriter:
    """Writes one run's archive folder; every byte goes through the scrubber."""

    def __init__(self, folder: Path, scrubber: Scrubber, record: dict):
        self.folder, self.scrubber, self.record = folder, scrubber, record
        self._events_lock = threading.Lock()
        self.last_nb = None

    def write_text(self, name: str, text: str) -> None:
        write_private(self.folder / name, self.scrubber.text(text))

    def write_record(self, record: dict | None = None) -> None:
        rec = self.scrubber.data(record if record is not None else self.record)
        self.write_text("record.json", json.dumps(rec, indent=2, sort_keys=True) + "\n")

    def event(self, **ev: Any) -> None:
        ev = {"time": _now().isoformat(), **ev}
        line = json.dumps(self.scrubber.data(ev), sort_keys=True) + "\n"
        with self._events_lock:
            fd = os.open(self.folder / "events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(line)

    def notebook(self, nb, params_scrubbed: dict, injected_source: str | None) -> None:
        nb = copy.deepcopy(nb)
        _coalesce_streams(nb)
        for cell in nb.cells:
            if "injected-parameters" in cell.metadata.get("tags", []) and injected_source is not None:
                cell.source = injected_source
        if "papermill" in nb.metadata:
            nb.metadata.papermill["parameters"] = params_scrubbed
        nb.metadata["fedcloud"] = {"run_id": self.record["run_id"],
                                   "runbook": self.record["runbook"],
                                   "results": collect_results(nb)}
        nb = nbformat.from_dict(self.scrubber.data(nb))
        self.write_text("notebook.ipynb", nbformat.writes(nb))
        self.last_nb = nb

    def html(self) -> str | None:
        if self.last_nb is None:
            return "no notebook to render"
        try:
            body, _ = _html_exporter().from_notebook_node(self.last_nb)
        except Exception as e:  # noqa: BLE001 - a rendering failure must not lose the run
            body = (f"<html><body><h1>{self.record['run_id']}</h1><p>HTML rendering failed: "
                    f"{type(e).__name__}: {e}</p></body></html>")
            self.write_text("notebook.html", body)
            return f"HTML rendering failed: {e}"
        self.write_text("notebook.html", body)
        return None


def _kernel_manager_class(socket_dir: str):
    """Kernel managers that talk to the kernel over unix sockets in ``socket_dir`` (0700).

    The kernel receives every parameter value, secrets included: IPC sockets in a private
    directory keep that traffic off loopback TCP, where any local user could connect.
    The caller owns the directory and removes it, whatever way the run ends.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode, default

    class PrivateIPCKernelManager(AsyncKernelManager):
        transport = Unicode("ipc")

        @default("ip")
        def _private_ip(self) -> str:
            return os.path.join(socket_dir, "kernel")

    return PrivateIPCKernelManager


def _coalesce_streams(nb) -> None:
    """Join consecutive stream outputs, so a secret printed in pieces is scrubbed whole."""
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        merged = []
        for out in cell.get("outputs", []):
            if (merged and out.get("output_type") == "stream" and
                    merged[-1].get("output_type") == "stream" and
                    merged[-1].get("name") == out.get("name")):
                merged[-1]["text"] = merged[-1]["text"] + out["text"]
            else:
                merged.append(out)
        cell["outputs"] = merged


def _make_engine(writer: RunWriter, params_scrubbed: dict, injected_source: str):
    from papermill.engines import NBClientEngine, NotebookExecutionManager

    class Manager(NotebookExecutionManager):
        def save(self, **kwargs):
            writer.notebook(self.nb, params_scrubbed, injected_source)
            self.last_save_time = self.now()

        def cell_complete(self, cell, cell_index=None, **kwargs):
            super().cell_complete(cell, cell_index, **kwargs)
            pm = cell.metadata.get("papermill", {})
            writer.event(event="cell", index=cell_index, id=cell.get("id"),
                         cell_type=cell.get("cell_type"), start=pm.get("start_time"),
                         end=pm.get("end_time"), duration=pm.get("duration"),
                         status=pm.get("status"))

    class Engine(NBClientEngine):
        @classmethod
        def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True,
                             log_output=False, autosave_cell_every=30, **kwargs):
            nb_man = Manager(nb, output_path=None, progress_bar=progress_bar,
                             log_output=log_output, autosave_cell_every=autosave_cell_every)
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

    return Engine


def _first_error(nb) -> tuple[str | None, str | None]:
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return out.get("ename"), f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
    return None, None


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


# --------------------------------------------------------------------- the run
def run_runbook(runbook: str | Runbook, values: Mapping[str, Any] | None = None, *,
                approve: bool = False, operator: str | None = None, cloud: str | None = None,
                timeout: float | None = None, progress: bool = False,
                files: list[str | Path] = (), overrides: list[tuple[str, str]] = (),
                kernel: str | None = None) -> RunResult:
    """Execute a runbook headless and archive it.

    ``values`` (already typed) are applied after ``files`` and before ``overrides`` (text,
    as given to ``-p``).  Raises ParameterError (exit 2) or LockError (exit 3) before any
    kernel starts; otherwise returns a RunResult whatever happened in the notebook.
    """
    cfg = settings()
    early_scrub = Scrubber(collect_secrets(secrets_dir=cfg.secrets_dir))
    name = runbook.name if isinstance(runbook, Runbook) else str(runbook)
    try:
        rb = runbook if isinstance(runbook, Runbook) else get_runbook(runbook)
        merged = merge_values(rb, files)
        merged.update(values or {})
        specs = {s.name: s for s in rb.parameters}
        for pname, raw in overrides:
            merged[pname] = parse_override(specs.get(pname), raw)
        if approve:
            if "approve" not in specs:
                raise ParameterError(f"approve: runbook {rb.name} does not mutate anything and "
                                     f"declares no approve parameter; drop --approve", runbook=rb.name)
            merged["approve"] = True
        if cloud is not None:
            check_cloud(cloud)
            if "cloud" in specs and "cloud" not in merged:
                merged["cloud"] = cloud
        params = validate(rb, merged)
    except ParameterError as e:
        _refusal("parameters", name, str(e), early_scrub)  # secret values are never in e
        raise

    secret_values = [str(params[s.name]) for s in rb.parameters if s.secret and params.get(s.name)]
    scrubber = early_scrub.add(*secret_values)
    params_scrubbed = {k: (SECRET_MARKER if specs[k].secret and v not in (None, "") else v)
                       for k, v in params.items()}
    cloud = cloud or (params.get("cloud") if isinstance(params.get("cloud"), str) else None) \
        or os.environ.get("OS_CLOUD")
    ticket = params.get("ticket")
    ticket = str(ticket) if ticket not in (None, "") else None

    started = _now()
    run_id = new_run_id(started)
    archive = Archive(cfg.outputs)
    archive.ensure()
    archive.sweep(lambda folder, rec: _finalize_abandoned(archive, folder, rec, scrubber))
    lock = RunLock(archive.root / ".locks", rb.name, ticket)
    try:
        lock.acquire(run_id)
    except LockError as e:
        _refusal("lock", rb.name, str(e), scrubber)
        raise

    try:
        return _execute(rb, params, params_scrubbed, scrubber, archive, run_id, started,
                        operator=_operator(operator), cloud=cloud, ticket=ticket,
                        timeout=timeout, progress=progress, kernel=kernel or cfg.kernel,
                        took_over=lock.took_over)
    finally:
        lock.release()


def _execute(rb: Runbook, params: dict, params_scrubbed: dict, scrubber: Scrubber,
             archive: Archive, run_id: str, started: _dt.datetime, *, operator: str,
             cloud: str | None, ticket: str | None, timeout: float | None, progress: bool,
             kernel: str, took_over: dict | None) -> RunResult:
    from papermill.execute import prepare_notebook_metadata
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    from papermill.translators import translate_parameters
    from papermill.utils import chdir

    warm = threading.Thread(target=_warm_nbconvert, daemon=True)
    warm.start()
    import psutil

    folder = archive.run_folder(rb.name, run_id, started)
    record: dict[str, Any] = {
        "run_id": run_id, "runbook": rb.name, "runbook_version": rb.version,
        "fedcloud_version": __version__, "operator": operator, "host": socket.gethostname(),
        "cloud": cloud, "ticket": ticket, "approve": bool(params.get("approve", False)),
        "kernel": kernel, "started": started.isoformat(), "ended": None, "duration": None,
        "status": "running", "exit_code": None, "error": None, "results": {},
        "pid": os.getpid(), "pid_started": psutil.Process().create_time(),
    }
    if took_over:
        record["took_over_lock_from"] = took_over.get("run_id")
    writer = RunWriter(folder, scrubber, record)
    writer.write_text("parameters.yaml", yaml.safe_dump(params_scrubbed, sort_keys=False))
    writer.write_record()
    writer.event(event="run", status="started", run_id=run_id, runbook=rb.name)

    status, exit_code, error = "failed", EXIT_FAILED, None
    old_term = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum, frame):
            raise _Terminated()
        old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        nb = load_notebook_node(str(rb.path))  # papermill's loader: normalises cell metadata
        nb = parameterize_notebook(nb, params, report_mode=False, kernel_name=kernel)
        nb = prepare_notebook_metadata(nb, str(rb.path), str(folder / "notebook.ipynb"), False)
        injected = translate_parameters(kernel, "python", params_scrubbed, "Parameters")
        engine = _make_engine(writer, params_scrubbed, injected)
        with _environ(FEDCLOUD_RUN_ID=run_id, FEDCLOUD_RUNBOOK=rb.name,
                      FEDCLOUD_RUN_DIR=str(folder), FEDCLOUD_OPERATOR=operator,
                      OS_CLOUD=cloud, FEDCLOUD_OUTPUTS=str(archive.root)), \
                chdir(rb.path.parent), \
                tempfile.TemporaryDirectory(prefix="fedcloud-kernel-") as sockets:
            nb = engine.execute_notebook(nb, kernel, progress_bar=progress,
                                         execution_timeout=timeout, start_timeout=120,
                                         kernel_manager_class=_kernel_manager_class(sockets))
        ename, error = _first_error(nb)
        if ename is None:
            status, exit_code = "succeeded", EXIT_OK
        elif ename == STOP_AFTER_PLAN:
            status, exit_code, error = "planned", EXIT_OK, None
    except KeyboardInterrupt as e:
        status, exit_code = "interrupted", EXIT_INTERRUPTED
        error = "terminated (SIGTERM)" if isinstance(e, _Terminated) else "interrupted (Ctrl-C)"
    except Exception as e:  # noqa: BLE001 - dead kernel, timeouts, ...: archive, then report
        error = f"{type(e).__name__}: {e}".strip()
        if type(e).__name__ == "DeadKernelError":
            error = f"the kernel died during the run ({e})"
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return _finalize(archive, writer, status, exit_code, error, started, warm)


def _finalize(archive: Archive, writer: RunWriter, status: str, exit_code: int,
              error: str | None, started: _dt.datetime, warm: threading.Thread | None = None
              ) -> RunResult:
    rec = writer.record
    ended = _now()
    results = {}
    if writer.last_nb is not None:
        results = writer.last_nb.metadata.get("fedcloud", {}).get("results", {})
    if warm is not None:
        warm.join(timeout=30)
    html_problem = writer.html()
    if html_problem:
        log.warning("%s: %s", rec["run_id"], html_problem)
    rec.update(status=status, exit_code=exit_code, error=writer.scrubber.text(error or "") or None,
               ended=ended.isoformat(), duration=round((ended - started).total_seconds(), 3),
               results=results)
    writer.event(event="run", status=status, exit_code=exit_code, error=rec["error"])
    entry = archive.append(writer.folder, rec, writer.write_record)
    return RunResult(run_id=rec["run_id"], runbook=rec["runbook"], status=status,
                     exit_code=exit_code, run_dir=writer.folder, results=results,
                     error=rec["error"], entry=entry)


def _finalize_abandoned(archive: Archive, folder: Path, rec: dict, scrubber: Scrubber) -> None:
    """Archive a run whose fedcloud process died without finishing it."""
    writer = RunWriter(folder, scrubber, rec)
    nb_path = folder / "notebook.ipynb"
    if nb_path.exists():
        try:
            writer.last_nb = nbformat.read(nb_path, as_version=4)
        except Exception:  # noqa: BLE001 - keep what is there
            writer.last_nb = None
    started = _dt.datetime.fromisoformat(rec["started"])
    _finalize(archive, writer, "abandoned", EXIT_FAILED,
              "the fedcloud process ended without finishing this run (killed or crashed); "
              "the notebook holds what it did until then", started)
