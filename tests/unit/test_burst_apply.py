"""mass-rebuild-burst, the builds: statuses, retries elsewhere, drained builders, the
deadline, the results CSV as it comes.  The provisioner and the executor are stand-ins
here (no cloud, no ssh); the integration tests run the real ones."""
from __future__ import annotations

import csv
import datetime as dt
import threading
import time
from pathlib import Path

import pytest

from fedcloud_lib.burst import apply as bapply
from fedcloud_lib.burst.executor import ExecResult
from fedcloud_lib.burst.provision import Builder
from fedcloud_lib.burst.results import CSV_NAME, read_csv
from fedcloud_lib.site import policy as pol

pytestmark = pytest.mark.unit
T0 = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)


class FakeProvisioner:
    """Hands out builders named b1, b2, ...; a released builder may be replaced."""

    def __init__(self, n: int, lifetime: float = 1e9):
        self.n, self.lifetime = n, lifetime
        self.t0 = time.monotonic()
        self.alive: dict[str, Builder] = {}
        self.released: list[tuple[str, bool]] = []
        self.seq = 0
        self.failures = 0
        self.target = n
        self.lock = threading.Lock()
        self.on_ready = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _new(self) -> Builder:
        with self.lock:
            self.seq += 1
            b = Builder(id=f"id{self.seq}", name=f"b{self.seq}", address="192.0.2.1",
                        method="pool", created_at=T0, expires_at=T0, boot_s=0.0,
                        created_rel=self.now(), active_rel=self.now(),
                        expires_rel=self.now() + self.lifetime)
            self.alive[b.id] = b
        return b

    def attach(self, on_ready) -> None:
        self.on_ready = on_ready
        for _ in range(self.n):
            on_ready(self._new())

    def counts(self) -> dict:
        with self.lock:
            return {"alive": len(self.alive), "booting": 0, "target": self.target,
                    "ceiling": 1, "failures": 0, "dropped": 0}

    def add(self, n: int = 1) -> bool:
        return False

    def release(self, b: Builder, *, replace: bool) -> None:
        with self.lock:
            self.alive.pop(b.id, None)
            self.released.append((b.name, replace))
            if not replace:
                self.target -= 1
        if replace:
            threading.Thread(target=lambda: self.on_ready(self._new())).start()


class FakeExecutor:
    """Outcome per package: 'ok', 'fail', 'hang', 'infra' (always), 'infra-once'."""

    def __init__(self, outcomes: dict[str, str], seconds: float = 0.01):
        self.outcomes, self.seconds = outcomes, seconds
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def run(self, builder, command, *, timeout_s):
        pkg = command.split("/")[-1].split(" ")[0]
        with self.lock:
            tries = sum(1 for _, p in self.calls if p == pkg)
            self.calls.append((builder.name, pkg))
        time.sleep(self.seconds)
        o = self.outcomes[pkg]
        if o == "ok" or (o == "infra-once" and tries > 0):
            return ExecResult(0, f"built {pkg} on {builder.name}", self.seconds)
        if o == "fail":
            return ExecResult(1, f"error: {pkg} FTBFS", self.seconds)
        if o == "hang":
            return ExecResult(None, "still going", timeout_s, timed_out=True, error="timeout")
        return ExecResult(None, "", self.seconds, error=f"lost {builder.name}")

    def forget(self, builder) -> None:
        pass

    def close(self) -> None:
        pass


def state(tmp_path, prov, executor) -> bapply.ApplyState:
    st = bapply.ApplyState(conn=None, policy=pol.load(pol.DEFAULT_POLICY_PATH), folder=tmp_path,
                           executor_factory=lambda ssh: executor, progress=lambda m: None)
    st.provisioner = prov
    return st


def inputs(packages: dict[str, float], **kw) -> dict:
    d = {"ticket": "mr1", "packages": sorted(([n, s] for n, s in packages.items()),
                                             key=lambda x: -x[1]),
         "command": "build {package}", "timeout_s": 60.0, "deadline": "",
         "workdir": "/var/tmp/burst", "infra_retries": 2,
         "ssh": {"user": "root", "key_file": "/k", "port": 22, "address_map": {},
                 "known_hosts": ""}}
    d.update(kw)
    return d


def statuses(tmp_path) -> dict[str, str]:
    return {r.package: r.status for r in read_csv(tmp_path / CSV_NAME)}


def test_every_package_gets_exactly_one_final_status(tmp_path):
    outcomes = {"ok1": "ok", "ok2": "ok", "bad": "fail", "slow": "hang", "net": "infra-once",
                "dead": "infra"}
    prov, ex = FakeProvisioner(3), FakeExecutor(outcomes)
    st = state(tmp_path, prov, ex)
    summary = bapply.BuildRun(st, inputs({k: 10.0 for k in outcomes})).run()
    with open(tmp_path / CSV_NAME) as f:
        names = [r["package"] for r in csv.DictReader(f)]
    assert sorted(names) == sorted(outcomes)
    assert statuses(tmp_path) == {"ok1": "built", "ok2": "built", "bad": "ftbfs",
                                  "slow": "timeout", "net": "built", "dead": "infra-error"}
    assert "2 built" not in summary and "3 built" in summary
    by = {r.package: r for r in read_csv(tmp_path / CSV_NAME)}
    assert by["net"].attempts == 2 and by["dead"].attempts == 3
    tried = [b for b, p in ex.calls if p == "net"]
    assert len(set(tried)) == 2  # the infrastructure error was retried on another builder
    assert by["bad"].log_tail == "error: bad FTBFS"
    assert len([p for _, p in ex.calls if p == "bad"]) == 1  # an FTBFS is not retried


def test_the_command_is_composed_and_quoted():
    cmd = bapply.compose_command("mock --resultdir {workdir}/r {package}.src.rpm # on {builder}",
                                 package="gcc-c++", builder="fcb-1", workdir="/var/tmp/b/",
                                 ticket="mr1")
    assert cmd == ("mkdir -p /var/tmp/b/mr1/gcc-c++ && cd /var/tmp/b/mr1/gcc-c++ && "
                   "mock --resultdir /var/tmp/b/mr1/gcc-c++/r gcc-c++.src.rpm # on fcb-1")
    evil = bapply.compose_command("build {package}", package="a;rm -rf /", builder="b",
                                  workdir="/w", ticket="t")
    assert evil.endswith("build 'a;rm -rf /'")


def test_a_builder_near_its_end_is_drained_and_replaced(tmp_path):
    # lifetime 0.5 s with a 0.2 s timeout: a builder builds for ~0.3 s, then is replaced
    pk = {f"p{i:02d}": 1.0 for i in range(30)}
    prov, ex = FakeProvisioner(1, lifetime=0.5), FakeExecutor(dict.fromkeys(pk, "ok"), 0.05)
    bapply.BuildRun(state(tmp_path, prov, ex), inputs(pk, timeout_s=0.2)).run()
    assert set(statuses(tmp_path).values()) == {"built"} and len(statuses(tmp_path)) == 30
    assert len({b for b, _ in ex.calls}) >= 3
    assert any(replace for _, replace in prov.released)


def test_a_builder_failing_twice_in_a_row_is_replaced(tmp_path):
    pk = {"a": 3.0, "b": 2.0, "c": 1.0}
    prov = FakeProvisioner(1)
    ex = FakeExecutor({"a": "infra-once", "b": "infra-once", "c": "ok"})
    bapply.BuildRun(state(tmp_path, prov, ex), inputs(pk)).run()
    assert statuses(tmp_path) == {"a": "built", "b": "built", "c": "built"}
    assert prov.released[0] == ("b1", True)


def test_no_build_starts_after_the_deadline(tmp_path):
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    prov, ex = FakeProvisioner(2), FakeExecutor({"a": "ok", "b": "ok"})
    st = state(tmp_path, prov, ex)
    bapply.BuildRun(st, inputs({"a": 1.0, "b": 1.0}, deadline=past)).run()
    assert ex.calls == [] and sorted(st.pending) == ["a", "b"]
    assert read_csv(tmp_path / CSV_NAME) == []


def test_teardown_runs_once_and_releases_the_watchdog(tmp_path):
    calls = []

    class P:
        def teardown(self):
            calls.append("teardown")
            return []

    class W:
        def done(self):
            calls.append("done")

    st = state(tmp_path, P(), None)
    st.watchdog = W()
    assert st.teardown() == [] and st.teardown() == []
    assert calls == ["teardown", "done"]


def test_a_failed_teardown_keeps_the_watchdog_armed(tmp_path):
    calls = []

    class P:
        def teardown(self):
            return ["server x: 503"]

    class W:
        def done(self):
            calls.append("done")

    st = state(tmp_path, P(), None)
    st.watchdog = W()
    assert st.teardown() == ["server x: 503"] and calls == []
