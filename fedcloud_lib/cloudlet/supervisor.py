"""The local cloudlet's programs under supervisord: facts, start, stop, status, memory.

Programs are defined by the install playbook in /etc/supervisor/conf.d/fedcloud.conf
(autostart=false).  ``start`` brings up supervisord and then the programs in dependency
order (databases and message queue, identity, control services, compute), waiting for
each group's ports; ``stop`` stops them in the reverse order (services before databases:
a DROP DATABASE would hang while services hold connections) and ends supervisord.
"""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tenacity import RetryError, retry, retry_if_result, stop_after_delay, wait_fixed

from ..errors import ConfigError, FedcloudError
from .programs import PHASES, log_of, match, program_for_queue

__all__ = ["SUPERVISOR_CONF", "PROGRAMS_CONF", "ProgramState", "status", "start", "stop",
           "memory_mb", "installed", "supervisord_running", "wait_ports", "require_installed",
           "parallel", "port_open"]

SUPERVISOR_CONF = Path("/etc/supervisor/supervisord.conf")
PROGRAMS_CONF = Path("/etc/supervisor/conf.d/fedcloud.conf")

@dataclass(frozen=True)
class ProgramState:
    """One supervisord program: name, state (RUNNING, STOPPED, FATAL, ...) and supervisor's detail."""
    name: str
    state: str  # RUNNING, STOPPED, FATAL, BACKOFF, STARTING, EXITED, ...
    detail: str

    def row(self) -> dict[str, str]:
        """The program as a table row, with its log."""
        return {"program": self.name, "state": self.state, "detail": self.detail, "log": log_of(self.name)}


def installed() -> bool:
    """Whether the local cloudlet's programs are defined (the install playbook ran)."""
    return PROGRAMS_CONF.exists() and shutil.which("supervisord") is not None


def _ctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["supervisorctl", "-c", str(SUPERVISOR_CONF), *args],
                          capture_output=True, text=True, timeout=timeout)


def supervisord_running() -> bool:
    """Whether supervisord answers."""
    if shutil.which("supervisorctl") is None:
        return False
    r = _ctl("pid", timeout=30)
    return r.returncode == 0 and r.stdout.strip().isdigit()


_STATUS = re.compile(r"^(\S+)\s+([A-Z]+)\s*(.*)$")


def status() -> list[ProgramState]:
    """State of every fedcloud program ([] when supervisord does not run)."""
    if not supervisord_running():
        return []
    r = _ctl("status", timeout=60)
    out = []
    for line in r.stdout.splitlines():
        m = _STATUS.match(line.strip())
        if m:
            out.append(ProgramState(m.group(1), m.group(2), m.group(3).strip()))
    return out


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_ports(ports: list[int], timeout: float = 120, host: str = "127.0.0.1") -> list[int]:
    """Wait until every port accepts connections; returns the ones that never did."""
    @retry(stop=stop_after_delay(timeout), wait=wait_fixed(1),
           retry=retry_if_result(lambda missing: bool(missing)))
    def _check() -> list[int]:
        return [p for p in ports if not port_open(p, host)]

    try:
        return _check()
    except RetryError as exc:
        return exc.last_attempt.result()


def _prepare_runtime(provider_interface: str = "phy0a") -> None:
    """What a reboot takes away: /run/mysqld and the veth provider interface."""
    Path("/run/mysqld").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/mysqld", "mysql", "mysql")
    if subprocess.run(["ip", "link", "show", provider_interface], capture_output=True).returncode != 0:
        peer = provider_interface[:-1] + "b"
        subprocess.run(["ip", "link", "add", provider_interface, "type", "veth", "peer", "name", peer], check=True)
        for dev in (provider_interface, peer):
            subprocess.run(["ip", "link", "set", dev, "up"], check=True)


def start(only: str | None = None, out: Callable[[str], None] = print) -> int:
    """Start supervisord and the programs (all, or one with ``only``); 0 when all run."""
    if not installed():
        out(f"the local cloudlet is not installed ({PROGRAMS_CONF} missing): run `make cloudlet` "
            "or the cloudlet-install runbook")
        return 2
    t0 = time.monotonic()
    _prepare_runtime()
    if not supervisord_running():
        subprocess.run(["supervisord", "-c", str(SUPERVISOR_CONF)], check=True, cwd="/")
        if not _wait_supervisord():
            raise FedcloudError("supervisord did not come up: see /var/log/supervisor/supervisord.log")
        out("supervisord started")
    known = {p.name for p in status()}
    rc = 0
    for title, progs, ports in PHASES:
        names = [n for pat in progs for n in sorted(known) if match(pat, n)]
        if only:
            names = [n for n in names if n == only]
            ports = []
        if not names:
            continue
        lines = parallel("start", names)
        bad = [ln for ln in lines if not re.search(r": started$|already started", ln)]
        if bad:
            rc = 1
            for ln in bad:
                out(f"  {ln}  -> see {log_of(ln.split(':')[0])}")
        missing = wait_ports(ports)
        if missing:
            rc = 1
            out(f"  ports {missing} do not answer after 120 s")
        out(f"[{time.monotonic() - t0:5.1f}s] {title}: {', '.join(names)}")
    if rc == 0 and not only:
        want = sorted({f"compute.{n[len('nova-compute-'):]}" for n in known if n.startswith("nova-compute-")}
                      | {"conductor", "scheduler", "cinder-scheduler", "cinder-volume"})
        missing = wait_rpc_consumers(want)
        if missing:
            rc = 1
            out(f"  no consumer on RabbitMQ queue(s) {', '.join(missing)} after 180 s: "
                f"see {', '.join(log_of(program_for_queue(q)) for q in missing)}")
        else:
            out(f"[{time.monotonic() - t0:5.1f}s] ready: every service listens on its RPC queue")
    out(f"started in {time.monotonic() - t0:.1f}s" if rc == 0 else "some programs did not start")
    return rc


def rpc_consumers() -> dict[str, int]:
    """RabbitMQ queue name -> number of consumers."""
    r = subprocess.run(["rabbitmqctl", "list_queues", "-q", "name", "consumers"],
                       capture_output=True, text=True, timeout=60)
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def wait_rpc_consumers(queues: list[str], timeout: float = 180) -> list[str]:
    """Wait until each RPC queue has a consumer; RPC casts to a queue nobody declared yet
    are dropped (e.g. nova-api's calls to a compute right after a restart time out)."""
    @retry(stop=stop_after_delay(timeout), wait=wait_fixed(2), retry=retry_if_result(bool))
    def _missing() -> list[str]:
        have = rpc_consumers()
        return [q for q in queues if have.get(q, 0) < 1]

    try:
        return _missing()
    except RetryError as exc:
        return exc.last_attempt.result()


def parallel(action: str, names: list[str]) -> list[str]:
    """Run ``supervisorctl <action> NAME`` for all names at once (one start waits
    startsecs; starting a group one by one would add those waits up)."""
    procs = [subprocess.Popen(["supervisorctl", "-c", str(SUPERVISOR_CONF), action, n],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for n in names]
    lines: list[str] = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        lines += [ln for ln in out.splitlines() if ln.strip()]
    return lines


def _wait_gone(user: str, command: str, timeout: float = 60) -> bool:
    """Wait until no process ``command`` of ``user`` is left (e.g. rabbit's beam.smp,
    which finishes its shutdown after supervisord saw the start script exit)."""
    @retry(stop=stop_after_delay(timeout), wait=wait_fixed(0.5), retry=retry_if_result(lambda n: n > 0))
    def _count() -> int:
        r = subprocess.run(["pgrep", "-u", user, "-x", command], capture_output=True)
        return len(r.stdout.split())

    try:
        return _count() == 0
    except RetryError:
        return False


def _wait_supervisord(timeout: float = 30) -> bool:
    @retry(stop=stop_after_delay(timeout), wait=wait_fixed(0.5), retry=retry_if_result(lambda ok: not ok))
    def _up() -> bool:
        return supervisord_running()

    try:
        return _up()
    except RetryError:
        return False


def stop(only: str | None = None, out: Callable[[str], None] = print) -> int:
    """Stop programs in reverse start order (services before databases), then supervisord."""
    if not supervisord_running():
        out("supervisord is not running: nothing to stop")
        return 0
    t0 = time.monotonic()
    known = {p.name for p in status()}
    if only:
        if only not in known:
            out(f"no program {only!r}; programs: {', '.join(sorted(known))}")
            return 2
        r = _ctl("stop", only)
        out(r.stdout.strip())
        return 0 if r.returncode == 0 else 1
    for title, progs, _ in reversed(PHASES):
        names = [n for pat in progs for n in sorted(known) if match(pat, n)]
        if names:
            for ln in parallel("stop", names):
                if not re.search(r": stopped$|not running", ln):
                    out(f"  {ln}")
            out(f"[{time.monotonic() - t0:5.1f}s] stopped {title}")
    if not _wait_gone("rabbitmq", "beam.smp"):
        out("  rabbitmq's beam.smp is still running after 60 s: see /var/log/rabbitmq/")
    elif shutil.which("epmd"):
        # the Erlang port mapper rabbit started outlives it; end it through its own command
        subprocess.run(["epmd", "-kill"], capture_output=True, timeout=30)
    _ctl("shutdown")
    out(f"supervisord shut down ({time.monotonic() - t0:.1f}s)")
    return 0


def memory_mb() -> dict[str, float]:
    """Resident memory (MB) of each running program including its children (PSS when
    available, which does not double-count shared pages; RSS otherwise)."""
    out: dict[str, float] = {}
    for p in status():
        m = re.search(r"pid (\d+)", p.detail)
        if p.state != "RUNNING" or not m:
            continue
        out[p.name] = round(_tree_pss_kb(int(m.group(1))) / 1024, 1)
    return out


def _tree_pss_kb(pid: int) -> int:
    """Memory (KiB) of a process and all its descendants: PSS where the kernel gives it
    (shared pages counted once), RSS otherwise; 0 for a process that is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += getattr(info, "pss", info.rss)
    return total // 1024


def require_installed() -> None:
    """ConfigError unless the local cloudlet is installed."""
    if not installed():
        raise ConfigError(f"the local cloudlet is not installed ({PROGRAMS_CONF} missing): "
                          "run `make cloudlet` or the cloudlet-install runbook")
