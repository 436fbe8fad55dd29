"""Run a runbook headless: validate, lock, execute with papermill, archive.

:func:`validate` checks parameters before anything starts; :func:`run_runbook` executes a
runbook in the project's kernel and always archives the run (success, failure, Ctrl-C,
dead kernel), with secrets scrubbed from every archived file.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import secrets as _secrets
import signal
import socket
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from nbclient.exceptions import DeadKernelError
from papermill.execute import prepare_notebook_metadata
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook
from papermill.translators import translate_parameters
from papermill.utils import chdir

from .. import __version__
from ..archive.abandoned import finalize_abandoned, sweep_abandoned
from ..archive.index import Archive, RunEntry
from ..archive.writer import RunWriter, warm_html_exporter
from ..config import settings
from ..context import APPROVED_PLAN, INPUTS_DIR, operator_name
from ..errors import ArchiveError, ConfigError, LockError, ParameterError, PolicyError, StalePlan
from ..lock import RunLock
from ..params import SECRET_MARKER, parse_override
from ..plan import StopAfterPlan
from ..runbooks import Runbook, get_runbook
from ..scrub import Scrubber, collect_secrets, secret_leaves
from .approve import parameters_for, recorded_plan
from .kernel import (KernelGroup, RunEngine, environ, kernel_manager_class, kernel_output_tail,
                     progress_hook)
from .values import check_cloud, merge_values, validate

__all__ = ["run_runbook", "finalize_abandoned", "RunResult", "EXIT_OK", "EXIT_FAILED",
           "EXIT_REFUSED", "EXIT_LOCKED", "EXIT_INTERRUPTED"]

log = logging.getLogger("fedcloud")

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass
class RunResult:
    run_id: str
    runbook: str
    status: str  # succeeded | planned | refused | failed | stale-plan | interrupted | abandoned
    exit_code: int
    run_dir: Path
    results: dict = field(default_factory=dict)
    error: str | None = None
    entry: RunEntry | None = None

    @property
    def head(self) -> str | None:
        """The archive's chain head this run made, ``SEQ:HASH``: keep it outside the
        archive (the ticket answer, the terminal) and check it later with
        ``fedcloud runs verify --head SEQ:HASH``."""
        return f"{self.entry.seq}:{self.entry.entry_hash}" if self.entry is not None else None


def _refusal(kind: str, runbook: str, message: str, scrubber: Scrubber) -> None:
    """Log a refused run (nothing is archived as a run)."""
    _event_log({"event": "refused", "kind": kind, "runbook": runbook,
                "message": message, "operator": operator_name()}, scrubber)


def _event_log(event: dict, scrubber: Scrubber) -> None:
    try:
        Archive(settings().outputs, head_log=None).log_event(
            event, lambda e: {k: scrubber.data(v) for k, v in e.items()})
    except (OSError, ArchiveError) as e:  # never let logging hide the real outcome
        log.warning("could not write the fedcloud log: %s", e)


# --------------------------------------------------------------------- helpers
def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def new_run_id(started: _dt.datetime) -> str:
    return started.strftime("%Y%m%dT%H%M%S") + "-" + _secrets.token_hex(3)


#: errors a runbook raises to refuse its input (exit 2: fix it and ask again), by name
_REFUSALS = frozenset(c.__name__ for c in (ConfigError, ParameterError, PolicyError))


# --------------------------------------------------------------------- the run
def run_runbook(runbook: str | Runbook, values: Mapping[str, Any] | None = None, *,
                approve: bool = False, approve_plan: str | None = None,
                operator: str | None = None, cloud: str | None = None,
                timeout: float | None = None, progress: bool = False,
                files: list[str | Path] = (), overrides: list[tuple[str, str]] = (),
                kernel: str | None = None, inputs: Mapping[str, Any] | None = None) -> RunResult:
    """Execute a runbook headless and archive it.

    ``values`` (already typed) are applied after ``files`` and before ``overrides`` (text,
    as given to ``-p``).  ``approve_plan`` applies the plan recorded by that dry run
    (:mod:`.approve`).  ``inputs`` are handed to the run as ``inputs/<name>.json`` in its
    folder (:func:`fedcloud_lib.context.run_input`).  Raises ParameterError (exit 2),
    ArchiveError or LockError (exit 3) before any kernel starts; otherwise returns a
    RunResult whatever happened in the notebook.
    """
    cfg = settings()
    early_scrub = Scrubber(collect_secrets(secrets_dir=cfg.secrets_dir))
    name = runbook.name if isinstance(runbook, Runbook) else str(runbook)
    recorded = None
    try:
        rb = runbook if isinstance(runbook, Runbook) else get_runbook(runbook)
        merged = merge_values(rb, files)
        merged.update(values or {})
        specs = {s.name: s for s in rb.parameters}
        for pname, raw in overrides:
            merged[pname] = parse_override(specs.get(pname), raw)
        if approve_plan:
            if "approve" not in specs:
                raise ParameterError(f"approve_plan: runbook {rb.name} makes no plan to approve",
                                     runbook=rb.name)
            recorded = recorded_plan(Archive(cfg.outputs), approve_plan, rb.name)
            merged = parameters_for(recorded, rb.parameters, merged)
            cloud = cloud or recorded.entry.cloud
        elif approve:
            if "approve" not in specs:
                raise ParameterError(f"approve: runbook {rb.name} does not mutate anything and "
                                     f"declares no approve parameter; drop --approve", runbook=rb.name)
            merged["approve"] = True
        if cloud is not None:
            check_cloud(cloud)
            if "cloud" in specs and "cloud" not in merged:
                merged["cloud"] = cloud
        params = validate(rb, merged)
    except (ParameterError, ArchiveError) as e:
        _refusal("parameters", name, str(e), early_scrub)  # secret values are never in e
        raise

    secret_values = [leaf for s in rb.parameters if s.secret
                     for leaf in secret_leaves(params.get(s.name))]
    scrubber = early_scrub.add(*secret_values)
    params_scrubbed = {k: (SECRET_MARKER if specs[k].secret and v not in (None, "", [], {})
                           else v) for k, v in params.items()}
    cloud = cloud or (params.get("cloud") if isinstance(params.get("cloud"), str) else None) \
        or os.environ.get("OS_CLOUD")
    ticket = params.get("ticket")
    ticket = str(ticket) if ticket not in (None, "") else None

    started = _now()
    run_id = new_run_id(started)
    archive = Archive(cfg.outputs)
    try:
        archive.ensure()
        sweep_abandoned(archive, scrubber)
    except ArchiveError as e:
        _refusal("archive", rb.name, str(e), scrubber)
        raise
    lock = RunLock(archive.root / ".locks", rb.name, ticket)
    try:
        lock.acquire(run_id)
    except LockError as e:
        _refusal("lock", rb.name, str(e), scrubber)
        raise

    run_inputs = dict(inputs or {})
    if recorded is not None:
        run_inputs[APPROVED_PLAN] = recorded.plan
    try:
        group = KernelGroup(lock.fd)
        try:
            return _execute(rb, params, params_scrubbed, scrubber, archive, run_id, started,
                            operator=operator_name(operator), cloud=cloud, ticket=ticket,
                            timeout=timeout, progress=progress, kernel=kernel or cfg.kernel,
                            took_over=lock.took_over, inputs=run_inputs, group=group,
                            plan_of=recorded.entry.run_id if recorded is not None else None)
        except ArchiveError as e:
            _refusal("archive", rb.name, str(e), scrubber)
            raise
        finally:
            group.close()
    finally:
        lock.release()


def _execute(rb: Runbook, params: dict, params_scrubbed: dict, scrubber: Scrubber,
             archive: Archive, run_id: str, started: _dt.datetime, *, operator: str,
             cloud: str | None, ticket: str | None, timeout: float | None, progress: bool,
             kernel: str, took_over: dict | None, inputs: Mapping[str, Any],
             group: KernelGroup, plan_of: str | None) -> RunResult:
    warm = threading.Thread(target=warm_html_exporter, daemon=True)
    warm.start()

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
    if plan_of:
        record["plan_of"] = plan_of
    writer = RunWriter(folder, scrubber, record)
    try:
        writer.write_yaml("parameters.yaml", params_scrubbed)
        if inputs:
            os.mkdir(folder / INPUTS_DIR, 0o700)
            for iname, value in inputs.items():
                writer.write_json(f"{INPUTS_DIR}/{iname}.json", value)
        writer.write_record()
        writer.event(event="run", status="started", run_id=run_id, runbook=rb.name)
    except OSError as e:
        raise ArchiveError(f"cannot write the run folder {folder}: {e.strerror or e}; nothing "
                           f"was started", path=str(folder)) from e

    status, exit_code, error = "failed", EXIT_FAILED, None
    terminated = []
    old_term = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum, frame):
            # handled exactly like Ctrl-C (which asyncio turns into a clean cancellation),
            # remembering that it was SIGTERM
            terminated.append(signum)
            signal.default_int_handler(signal.SIGINT, frame)
        old_term = signal.signal(signal.SIGTERM, on_term)
    engine = RunEngine(writer, params_scrubbed, "", on_output=progress_hook(scrubber.text))
    sockets = None
    try:
        nb = load_notebook_node(str(rb.path))  # papermill's loader: normalises cell metadata
        nb = parameterize_notebook(nb, params, report_mode=False, kernel_name=kernel)
        nb = prepare_notebook_metadata(nb, str(rb.path), str(folder / "notebook.ipynb"), False)
        engine.injected = translate_parameters(kernel, "python", params_scrubbed, "Parameters")
        with environ(FEDCLOUD_RUN_ID=run_id, FEDCLOUD_RUNBOOK=rb.name,
                      FEDCLOUD_RUN_DIR=str(folder), FEDCLOUD_OPERATOR=operator,
                      OS_CLOUD=cloud, FEDCLOUD_OUTPUTS=str(archive.root)), \
                chdir(rb.path.parent), \
                tempfile.TemporaryDirectory(prefix="fedcloud-kernel-") as sockets:
            try:
                nb = engine.execute(nb, kernel, progress=progress, timeout=timeout,
                                    start_timeout=120,
                                    kernel_manager_class=kernel_manager_class(sockets, group))
            except DeadKernelError as e:
                tail = kernel_output_tail(sockets)
                error = f"the kernel died during the run ({e})" + \
                    (f"; its last output:\n{tail}" if tail else "")
            except RuntimeError as e:
                if "Kernel didn't respond" not in str(e) and "Kernel died" not in str(e):
                    raise
                tail = kernel_output_tail(sockets)
                error = f"the kernel did not start ({e})" + (f":\n{tail}" if tail else "")
            finally:
                group.kill()  # the kernel and everything it started, before archiving
        if error is None:
            if engine.failure is None:
                status, exit_code = "succeeded", EXIT_OK
            else:
                index, ename, evalue = engine.failure
                error = f"cell {index}: {ename}: {evalue}"
                if ename == StopAfterPlan.__name__:
                    status, exit_code, error = "planned", EXIT_OK, None
                elif ename == StalePlan.__name__:
                    status = "stale-plan"
                elif ename in _REFUSALS:
                    # the runbook itself refused its input against the facts (a parameter
                    # such as an unknown project, a mapping, the policy, a quota): exit 2,
                    # archived as refused
                    status, exit_code = "refused", EXIT_REFUSED
    except KeyboardInterrupt:
        status, exit_code = "interrupted", EXIT_INTERRUPTED
        error = "terminated (SIGTERM)" if terminated else "interrupted (Ctrl-C)"
    except Exception as e:  # noqa: BLE001 - timeouts, archive writes, ...: archive, then report
        error = str(e) if isinstance(e, ArchiveError) else f"{type(e).__name__}: {e}".strip()
    finally:
        group.kill()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return _finalize(archive, writer, status, exit_code, error, started, warm)


def _finalize(archive: Archive, writer: RunWriter, status: str, exit_code: int,
              error: str | None, started: _dt.datetime, warm: threading.Thread | None = None
              ) -> RunResult:
    if warm is not None:
        warm.join(timeout=30)
    entry = writer.finish(archive, status, exit_code, error, started)
    rec = writer.safe_record()
    return RunResult(run_id=rec["run_id"], runbook=rec["runbook"], status=rec["status"],
                     exit_code=rec["exit_code"], run_dir=writer.folder, results=rec["results"],
                     error=rec["error"], entry=entry)
