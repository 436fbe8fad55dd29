"""mass-rebuild-burst, step 4: apply — walk the approved plan's steps.

The handlers: delete leftover builders; the burst's keypair; the standard security group;
``create builders`` starts the watchdog (:mod:`.watchdog`) and the provisioner
(:mod:`.provision`), which keeps booting in the background; ``create builds`` hands each
package, longest expected first, to the next free builder (:class:`.schedule.WorkQueue`),
runs its command there through the executor (:mod:`.executor`) and writes its result as it
comes (:mod:`.results`); ``delete builders`` tears the burst down.  :func:`apply` tears it
down in its ``finally`` too, whatever happened (Ctrl-C, SIGTERM, a failure), and then tells
the watchdog it may go; a killed kernel leaves that to the watchdog.

Per package: built (exit 0), ftbfs (any other exit status), timeout (no result within the
per-build timeout; the build is hung up) or infra-error (the builder could not run it:
retried on another builder up to ``infra_retries`` times).  A builder is drained — it takes
no new package — when a build started now could outlive it, and is then replaced while
packages are waiting; one that fails two builds in a row for infrastructure reasons is
replaced too.  No package starts after the deadline.
"""
from __future__ import annotations

import datetime as dt
import shlex
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openstack import exceptions as os_exc

from .. import secgroups
from ..archive.results import record
from ..cloud import CLOUD_ERRORS, server_gone
from ..context import current_run, utcnow
from ..errors import CloudError, RunbookError
from ..plan import Handlers, Plan, Step, StepResult, walk
from ..site.policy import Policy
from . import watchdog as wd
from .connections import ThreadConnections, factory_for
from .executor import Executor, SshExecutor
from .provision import BootThrottle, Builder, BuilderSpec, Provisioner
from .request import SshSettings, iso
from .results import BuildResult, ResultsFile, run_dir
from .schedule import Job, WorkItem, WorkQueue

__all__ = ["HANDLERS", "ApplyState", "BurstOutcome", "apply", "compose_command"]

HANDLERS = Handlers()
ExecutorFactory = Callable[[SshSettings], Executor]


def compose_command(template: str, *, package: str, builder: str, workdir: str,
                    ticket: str) -> str:
    """The shell command for one package: its own working directory, then the template
    with {package}, {builder} and {workdir} filled in (each shell-quoted)."""
    w = f"{workdir.rstrip('/')}/{ticket}/{package}"
    cmd = template.format(package=shlex.quote(package), builder=shlex.quote(builder),
                          workdir=shlex.quote(w))
    return f"mkdir -p {shlex.quote(w)} && cd {shlex.quote(w)} && {cmd}"


@dataclass
class ApplyState:
    """What the walk has made so far (for the steps after, and the teardown)."""

    conn: Any
    policy: Policy
    folder: Path
    executor_factory: ExecutorFactory
    progress: Callable[[str], None]
    conns: ThreadConnections | None = None
    provisioner: Provisioner | None = None
    watchdog: wd.Watchdog | None = None
    results: ResultsFile | None = None
    pending: list[str] = field(default_factory=list)
    intervals: list[tuple[str, float, float, str]] = field(default_factory=list)
    teardown_problems: list[str] = field(default_factory=list)
    torn_down: bool = False
    interrupted: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def teardown(self) -> list[str]:
        """Delete every builder of the run (idempotent); then release the watchdog."""
        if self.torn_down:
            return self.teardown_problems
        self.torn_down = True
        self.stop.set()
        problems: list[str] = []
        if self.provisioner is not None:
            self.progress("teardown: deleting every builder of this run ...")
            t0 = time.monotonic()
            problems = self.provisioner.teardown()
            self.progress(f"teardown: done in {time.monotonic() - t0:.1f} s"
                          + (f"; problems: {'; '.join(problems[:3])}" if problems else ""))
        if self.watchdog is not None and not problems:
            self.watchdog.done()
        self.teardown_problems = problems
        if self.conns is not None:
            self.conns.close()
        return problems


@dataclass(frozen=True)
class BurstOutcome:
    """What a burst run did."""

    run_id: str | None
    results: tuple[BuildResult, ...]
    pending: tuple[str, ...]  # not started (deadline, no builder left, interrupted)
    builders: tuple[dict[str, Any], ...]
    provisioning: dict[str, Any]
    intervals: tuple[tuple[str, float, float, str], ...]  # (builder, start, end, status)
    csv_path: str
    run_dir: str
    teardown_problems: tuple[str, ...]
    steps: tuple[StepResult, ...] = ()

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("built", "ftbfs", "timeout", "infra-error")}
        for r in self.results:
            out[r.status] += 1
        out["pending"] = len(self.pending)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "counts": self.counts(), "pending": list(self.pending),
                "builders": list(self.builders), "provisioning": self.provisioning,
                "csv": self.csv_path, "teardown_problems": list(self.teardown_problems),
                "steps": [s.__dict__ for s in self.steps]}


# --------------------------------------------------------------------------- handlers

@HANDLERS.on("server", "delete")
def _delete_leftover(st: ApplyState, step: Step) -> str:
    server_gone(st.conn, step.inputs["id"])
    return f"{step.inputs['id']} gone"


@HANDLERS.on("keypair", "create", "update")
def _keypair(st: ApplyState, step: Step) -> str:
    key = step.inputs["public_key"]
    kp = st.conn.compute.find_keypair(step.name)
    if kp is not None and " ".join(kp.public_key.split()[:2]) != " ".join(key.split()[:2]):
        st.conn.compute.delete_keypair(kp, ignore_missing=True)
        kp = None
    if kp is None:
        try:
            kp = st.conn.compute.create_keypair(name=step.name, public_key=key)
        except os_exc.ConflictException:
            kp = st.conn.compute.find_keypair(step.name)
    return kp.fingerprint


@HANDLERS.on("security group", "create", "update")
def _security_group(st: ApplyState, step: Step) -> str:
    secgroups.ensure(st.conn, step.name, step.inputs["ports"])
    return "exactly the standard rules"


def _conns(st: ApplyState) -> ThreadConnections:
    if st.conns is None:
        st.conns = ThreadConnections(factory_for(st.conn))
    return st.conns


@HANDLERS.on("builders", "create")
def _builders(st: ApplyState, step: Step) -> str:
    i = step.inputs
    run = current_run()
    run_id = run.run_id or f"interactive-{utcnow().strftime('%Y%m%dT%H%M%S')}"
    if st.watchdog is None:
        st.watchdog = wd.spawn(run_id, getattr(st.conn.config, "name", None))
    short = run_id.rsplit("-", 1)[-1][:6]
    spec = BuilderSpec(prefix=f"fcb-{i['ticket']}-{short}"[:50], flavor_id=i["flavor_id"],
                       image_id=i["image_id"], network_id=i["network_id"], keypair=i["keypair"],
                       security_group=i["security_group"], metadata=dict(i["metadata"]),
                       lifetime_s=float(i["lifetime_s"]), boot_timeout_s=float(i["boot_timeout_s"]))
    throttle = BootThrottle(i["boot_ceiling"], i["min_boot_ceiling"],
                            max(i["boot_ceiling"], st.policy.burst.max_boot_ceiling))
    st.provisioner = Provisioner(_conns(st), spec, target=int(i["count"]), throttle=throttle,
                                 method=i["boot_method"], max_failures=int(i["max_boot_failures"]),
                                 run_id=run_id, operator=run.operator).start()
    return f"booting {i['count']} builders in the background (watchdog pid {st.watchdog.pid})"


@HANDLERS.on("builders", "delete")
def _teardown(st: ApplyState, step: Step) -> str:
    problems = st.teardown()
    if problems:
        raise CloudError(f"teardown left problems: {'; '.join(problems[:5])}; "
                         f"`fedcloud burst sweep --ticket {step.inputs.get('ticket', '?')}` "
                         f"deletes what is left", problems=problems)
    return "every builder of this run is gone"


@HANDLERS.on("builds", "create")
def _builds(st: ApplyState, step: Step) -> str:
    if st.provisioner is None:
        raise RunbookError("the plan builds packages without creating builders first")
    return BuildRun(st, step.inputs).run()


# --------------------------------------------------------------------------- the builds

class BuildRun:
    """The builds of one run: builder threads take packages from one LPT queue."""

    def __init__(self, st: ApplyState, inputs: dict[str, Any]):
        self.st = st
        self.prov: Provisioner = st.provisioner  # type: ignore[assignment]
        self.inputs = inputs
        self.ticket = inputs["ticket"]
        self.command = inputs["command"]
        self.timeout_s = float(inputs["timeout_s"])
        self.workdir = inputs["workdir"]
        self.retries = int(inputs["infra_retries"])
        self.deadline = (dt.datetime.fromisoformat(inputs["deadline"].replace("Z", "+00:00"))
                         if inputs.get("deadline") else None)
        self.queue = WorkQueue([Job(n, s) for n, s in inputs["packages"]])
        self.total = len(inputs["packages"])
        ssh = inputs["ssh"]
        self.executor = st.executor_factory(SshSettings(
            user=ssh["user"], key_file=ssh["key_file"], public_key="", port=int(ssh["port"]),
            address_map=tuple((k, v) for k, v in ssh["address_map"].items()),
            known_hosts=ssh.get("known_hosts") or "",
            connect_timeout_s=float(ssh.get("connect_timeout_s", 30))))
        self.changed = threading.Event()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.run_id = current_run().run_id or ""

    # ------------------------------------------------------------------ main thread
    def run(self) -> str:
        st = self.st
        if st.results is None:
            st.results = ResultsFile(st.folder)
        self.prov.attach(self._ready)
        last_say = 0.0
        reason = ""
        try:
            while not self.queue.finished:
                if self.deadline is not None and utcnow() >= self.deadline:
                    left = self.queue.drop_all()
                    st.pending += [i.name for i in left]
                    reason = f"the deadline {iso(self.deadline)} passed"
                    if self.queue.in_flight == 0:
                        break
                c = self.prov.counts()
                if len(self.queue) and c["alive"] == 0 and c["booting"] == 0:
                    if c["target"] <= 0 and not self.prov.add(1):
                        left = self.queue.drop_all()
                        st.pending += [i.name for i in left]
                        reason = "no builder could be booted any more"
                        if self.queue.in_flight == 0:
                            break
                self.changed.wait(timeout=1.0)
                self.changed.clear()
                if time.monotonic() - last_say > 15:
                    last_say = time.monotonic()
                    st.progress(self._status())
        except KeyboardInterrupt:
            st.interrupted = True
            st.pending += [i.name for i in self.queue.drop_all()]
            raise
        finally:
            st.stop.set()
            self.queue.close()
            self.executor.close()
            for t in self.threads:
                t.join(timeout=30)
        st.progress(self._status())
        if reason and st.pending:
            st.progress(f"{len(st.pending)} package(s) not started: {reason}")
        if reason == "no builder could be booted any more" and st.pending:
            raise CloudError(f"{len(st.pending)} package(s) not built: no builder could be "
                             f"booted any more (boot failures: {self.prov.failures}); re-run the "
                             f"burst to continue where it stopped")
        counts = self._counts()
        return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing built"

    def _counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("built", "ftbfs", "timeout", "infra-error")}
        for r in self.st.results.rows if self.st.results else ():
            out[r.status] += 1
        return out

    def _status(self) -> str:
        c = self._counts()
        p = self.prov.counts()
        done = sum(c.values())
        return (f"{done}/{self.total} done ({', '.join(f'{k} {v}' for k, v in c.items())}); "
                f"{self.queue.in_flight} building on {p['alive']} builder(s), {p['booting']} "
                f"booting (ceiling {p['ceiling']}), {len(self.queue)} waiting")

    # ------------------------------------------------------------------ builder threads
    def _ready(self, b: Builder) -> None:
        t = threading.Thread(target=self._work, args=(b,), name=f"burst-{b.name}", daemon=True)
        with self.lock:
            self.threads.append(t)
        t.start()

    def _fits(self, item: WorkItem) -> bool:
        return self.deadline is None or utcnow() < self.deadline

    def _work(self, b: Builder) -> None:
        st, q = self.st, self.queue
        infra_in_a_row = 0
        try:
            while not st.stop.is_set():
                if self.prov.now() + self.timeout_s > b.expires_rel:
                    # drained: a build started now could outlive it (a builder that never
                    # had the time for one build is not replaced: its successor would not)
                    self._retire(b, replace=len(q) > 0 and b.builds > 0)
                    return
                item = q.take(b.name, wait=0, fits=self._fits)
                if item is None:
                    self._retire(b, replace=False)
                    return
                start_rel, started = self.prov.now(), utcnow()
                res = self.executor.run(b, compose_command(
                    self.command, package=item.name, builder=b.name, workdir=self.workdir,
                    ticket=self.ticket), timeout_s=self.timeout_s)
                end_rel = self.prov.now()
                b.busy_s += res.seconds
                b.builds += 1
                if st.stop.is_set() and not res.timed_out and res.exit_status is None:
                    return  # interrupted under the build: no status, the next run builds it
                if res.infrastructure_error:
                    infra_in_a_row += 1
                    st.intervals.append((b.name, start_rel, end_rel, "infra-error"))
                    if item.attempts <= self.retries:
                        q.put_back(item, avoid=b.name)
                    else:
                        self._final(item, b, res, "infra-error", started)
                    if infra_in_a_row >= 2:
                        self._retire(b, replace=len(q) > 0)
                        return
                    continue
                infra_in_a_row = 0
                status = "timeout" if res.timed_out else ("built" if res.exit_status == 0 else "ftbfs")
                st.intervals.append((b.name, start_rel, end_rel, status))
                self._final(item, b, res, status, started)
        finally:
            self.changed.set()

    def _final(self, item: WorkItem, b: Builder, res: Any, status: str,
               started: dt.datetime) -> None:
        self.st.results.add(BuildResult(
            package=item.name, status=status, duration_s=round(res.seconds, 3), builder=b.name,
            attempts=item.attempts, started=iso(started), ended=iso(utcnow()),
            exit_status=res.exit_status, expected_s=item.expected_s, run_id=self.run_id,
            log_tail=res.output if status != "built" else res.output[-500:]))
        self.queue.done(item)
        self.changed.set()

    def _retire(self, b: Builder, *, replace: bool) -> None:
        self.executor.forget(b)
        self.prov.release(b, replace=replace and not self.st.stop.is_set())
        self.changed.set()


# --------------------------------------------------------------------------- apply

def _default_executor(ssh: SshSettings) -> Executor:
    return SshExecutor(ssh)


def apply(conn: Any, policy: Policy, plan: Plan, *, executor_factory: ExecutorFactory | None = None,
          progress: Callable[[str], None] | None = None) -> BurstOutcome:
    """Carry out exactly ``plan`` (the approved one).  Every builder the run made is
    deleted before this returns or raises, whatever happened; SIGTERM is handled like
    Ctrl-C while it runs, and neither interrupts the teardown."""
    say = progress or (lambda msg: print(msg, flush=True))
    st = ApplyState(conn=conn, policy=policy, folder=run_dir(),
                    executor_factory=executor_factory or _default_executor, progress=say)
    old_term = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt("SIGTERM")
        old_term = signal.signal(signal.SIGTERM, on_term)
    steps: list[StepResult] = []
    try:
        steps = walk(plan, HANDLERS, st, progress=say)
    except CLOUD_ERRORS as exc:
        raise CloudError(f"applying {plan.title} failed: {exc}; re-run to continue (packages "
                         f"already built are skipped)") from exc
    finally:
        old_int = None
        if old_term is not None:  # a second Ctrl-C or SIGTERM must not cut the teardown short
            old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            st.teardown()
        finally:
            if old_int is not None:
                signal.signal(signal.SIGINT, old_int)
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
            if st.results is not None:
                st.results.close()
                record("builds", [{k: v for k, v in r.to_dict().items() if k != "log_tail"}
                                  for r in st.results.rows])
    prov = st.provisioner
    builders = ()
    if prov is not None:
        builders = tuple(b.to_dict() for b in sorted(prov.retired, key=lambda b: b.active_rel))
    return BurstOutcome(
        run_id=current_run().run_id, results=tuple(st.results.rows if st.results else ()),
        pending=tuple(st.pending), builders=builders,
        provisioning=prov.stats() if prov is not None else {},
        intervals=tuple(st.intervals),
        csv_path=str(st.results.path) if st.results else "", run_dir=str(st.folder),
        teardown_problems=tuple(st.teardown_problems), steps=tuple(steps))
