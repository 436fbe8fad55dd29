"""Provisioning the burst: many builders, quickly, without drowning the cloud.

:class:`Provisioner` keeps ``target`` builders alive.  At most ``throttle.value`` boot at
once (:class:`BootThrottle`: it starts at the policy's ``boot_ceiling``, grows while boots
succeed, is halved when one fails — the throttling Copr did by hand, cutting spawns from
12 to 6 — and stays between ``min_boot_ceiling`` and ``max_boot_ceiling``).  Two ways to boot:

* ``multi``: one nova multi-create call (``min_count=1``, ``max_count=k``: nova makes as
  many as the quota allows), then the SDK's wait on each server; refilled in batches of
  at least half the ceiling;
* ``pool``: ``k`` single create calls from a bounded pool of threads, each followed by
  its wait.

With ``auto`` the first wave is split between both, and whichever brought its servers to
ACTIVE faster (per server; the pool must be 10 % faster, since a multi-create's cost per
server falls with its size) is used from then on; the measurements are kept
(:meth:`Provisioner.stats`).  A builder that fails to boot (ERROR, or not ACTIVE within
``boot_timeout_s``) is deleted and replaced, until ``max_failures`` failures; after that the
burst goes on with fewer builders.  A create refused for quota is not retried.

Every builder carries in its metadata the burst, the ticket, the run id, who made it, when,
and its expiry (at most its lifetime after creation).  :meth:`Provisioner.teardown` deletes
every server the run made, found by id and by the run's metadata.
"""
from __future__ import annotations

import datetime as dt
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from openstack import exceptions as os_exc

from ..cloud import CLOUD_ERRORS
from ..context import utcnow
from .connections import ThreadConnections
from .request import iso
from .sweep import META, delete_servers, run_builders
from .watch import BootWatch

#: the pool must beat multi-create by this factor in the first wave to be chosen.  The
#: first wave is small (half the starting ceiling each) and favours single creates: on the
#: local cloudlet the pool probed 10-14 % faster per server, yet 40 builders took 62 s by
#: pool against 52 s by multi-create (bench/burst_provision.py --method pool|multi)
PROBE_MARGIN = 1.5

__all__ = ["BuilderSpec", "Builder", "BootRecord", "BootThrottle", "Provisioner", "address_of",
           "is_quota_error"]


@dataclass(frozen=True)
class BuilderSpec:
    """What every builder of the run is made with (from the plan's step)."""

    prefix: str
    flavor_id: str
    image_id: str
    network_id: str | None
    keypair: str | None
    security_group: str | None
    metadata: dict[str, str]
    lifetime_s: float
    boot_timeout_s: float = 600

    def attrs(self) -> dict[str, Any]:
        a: dict[str, Any] = {"flavor_id": self.flavor_id, "image_id": self.image_id}
        if self.network_id:
            a["networks"] = [{"uuid": self.network_id}]
        if self.keypair:
            a["key_name"] = self.keypair
        if self.security_group:
            a["security_groups"] = [{"name": self.security_group}]
        return a


@dataclass
class Builder:
    """A builder that reached ACTIVE (mutable: the run notes what it did with it)."""

    id: str
    name: str
    address: str | None
    method: str
    created_at: dt.datetime
    expires_at: dt.datetime
    boot_s: float
    created_rel: float  # seconds since the provisioner started
    active_rel: float
    expires_rel: float
    retired_rel: float | None = None
    builds: int = 0
    busy_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "method": self.method,
                "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
                "boot_s": round(self.boot_s, 1), "builds": self.builds,
                "busy_s": round(self.busy_s, 1), "active_rel": round(self.active_rel, 1),
                "retired_rel": None if self.retired_rel is None else round(self.retired_rel, 1)}


@dataclass(frozen=True)
class BootRecord:
    """One boot attempt."""

    method: str
    batch: int
    name: str
    server_id: str
    outcome: str  # active | error | timeout | quota | refused
    seconds: float
    ceiling: int
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class BootThrottle:
    """The ceiling on concurrent boots, adapted like TCP's congestion window.

    Slow start: while no boot has failed, each good boot raises the ceiling by one (it
    doubles per wave), up to ``hi``.  A failure halves it (not below ``lo``) and ends the
    slow start; after that it grows by one per window of good boots in a row."""

    def __init__(self, start: int, lo: int, hi: int):
        self.lo, self.hi = max(1, lo), max(1, hi)
        self.value = min(max(start, self.lo), self.hi)
        self.slow_start = True
        self._good = 0
        self.history: list[tuple[float, int]] = [(0.0, self.value)]

    def success(self, at: float = 0.0) -> None:
        self._good += 1
        if self.slow_start or self._good >= self.value:
            self._good = 0
            if self.value < self.hi:
                self.value += 1
                self.history.append((at, self.value))

    def failure(self, at: float = 0.0) -> None:
        self._good = 0
        self.slow_start = False
        new = max(self.lo, self.value // 2)
        if new != self.value:
            self.value = new
            self.history.append((at, self.value))


def is_quota_error(exc: BaseException) -> bool:
    """Nova refusing a create for quota (403/413 "Quota exceeded")."""
    code = getattr(exc, "status_code", None)
    return code in (403, 413) and "quota" in str(exc).lower()


def address_of(server: Any) -> str | None:
    """The server's first IPv4 address (any network), else its first address."""
    addrs = [a for net in (server.addresses or {}).values() for a in net]
    v4 = [a["addr"] for a in addrs if a.get("version") == 4]
    return (v4 or [a["addr"] for a in addrs] or [None])[0]


class Provisioner:
    """Keeps ``target`` builders alive, booting at most ``throttle.value`` at once.

    ``on_ready(builder)`` is called (from a worker thread) for each builder that reached
    ACTIVE; until :meth:`attach` gives one, ready builders wait in a list.
    """

    def __init__(self, conns: ThreadConnections, spec: BuilderSpec, *, target: int,
                 throttle: BootThrottle, method: str = "auto", max_failures: int = 5,
                 run_id: str, operator: str, clock: Callable[[], float] = time.monotonic,
                 wait_interval: float = 2.0):
        if method not in ("auto", "multi", "pool"):
            raise ValueError(f"method must be auto, multi or pool, got {method!r}")
        self.conns, self.spec, self.throttle = conns, spec, throttle
        self.method, self.max_failures = method, max_failures
        self.run_id, self.operator = run_id, operator
        self.clock = clock
        self.t0 = clock()
        self.target = target
        self.booting = 0
        self.alive: dict[str, Builder] = {}
        self.retired: list[Builder] = []
        self.failures = 0
        self.dropped = 0
        self.created: set[str] = set()
        self.records: list[BootRecord] = []
        self.chosen: str | None = None if method == "auto" else method
        self._probe: dict[str, dict[str, Any]] = {}
        self._batch = 0
        self._seq = 0
        self._creating = 0
        self._stop = False
        self._cond = threading.Condition()
        self._on_ready: Callable[[Builder], None] | None = None
        self._ready: list[Builder] = []
        self._pool = ThreadPoolExecutor(max_workers=2 * throttle.hi + 4,
                                        thread_name_prefix="burst-boot")
        self._deletes: list[Any] = []
        # one list call per interval for every booting builder, not one GET each
        self._watch = BootWatch(conns.get, spec.prefix, interval=wait_interval, clock=clock)
        self._thread = threading.Thread(target=self._loop, name="burst-provision", daemon=True)

    # ------------------------------------------------------------------ public
    def start(self) -> "Provisioner":
        self._thread.start()
        return self

    def attach(self, on_ready: Callable[[Builder], None]) -> None:
        """Hand ready builders to ``on_ready`` (those that came before it too)."""
        with self._cond:
            self._on_ready = on_ready
            waiting, self._ready = self._ready, []
        for b in waiting:
            on_ready(b)

    def now(self) -> float:
        """Seconds since the provisioner started."""
        return self.clock() - self.t0

    @property
    def exhausted(self) -> bool:
        """No builder alive or booting, and none will be made any more."""
        with self._cond:
            return not self.alive and not self.booting and self.target <= 0

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {"alive": len(self.alive), "booting": self.booting, "target": self.target,
                    "failures": self.failures, "dropped": self.dropped,
                    "ceiling": self.throttle.value}

    def add(self, n: int = 1) -> bool:
        """Ask for ``n`` more builders (when every builder was released but work came
        back); False when the failure budget is spent."""
        with self._cond:
            if self._stop or self.failures > self.max_failures:
                return False
            self.target += n
            self._cond.notify_all()
            return True

    def release(self, builder: Builder, *, replace: bool) -> None:
        """Delete ``builder`` (drained, expiring or broken); ``replace``: boot another."""
        with self._cond:
            if self.alive.pop(builder.id, None) is None:
                return
            builder.retired_rel = self.now()
            self.retired.append(builder)
            if not replace:
                self.target = max(0, self.target - 1)
            self._cond.notify_all()
        self._deletes.append(self._pool.submit(
            delete_servers, self.conns, [builder.id], wait=self.spec.boot_timeout_s, workers=1))

    def stop(self) -> None:
        """Boot nothing more."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def teardown(self, *, wait: float = 600) -> list[str]:
        """Stop, let create calls in flight return, delete every server this run made
        (by id, and by the run id in the metadata) and wait until they are gone.
        Returns the problems (empty when everything is gone)."""
        self.stop()
        deadline = self.clock() + 120
        with self._cond:
            while self._creating and self.clock() < deadline:
                self._cond.wait(timeout=1.0)
            ids = set(self.created)
            now = self.now()
            for b in self.alive.values():
                b.retired_rel = now
                self.retired.append(b)
            self.alive.clear()
        problems: list[str] = []
        try:
            ids |= {s.id for s in run_builders(self.conns.get(), self.run_id)}
        except Exception as exc:  # noqa: BLE001 - delete what we know even if listing fails
            problems.append(f"cannot list the run's builders: {exc}")
        problems += delete_servers(self.conns, sorted(ids), wait=wait, workers=8)
        for f in self._deletes:
            try:
                f.result(timeout=wait)
            except Exception as exc:  # noqa: BLE001
                problems.append(str(exc))
        self._watch.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        return problems

    def stats(self) -> dict[str, Any]:
        """What provisioning measured: per method, the boots, and the ceiling over time."""
        by: dict[str, dict[str, Any]] = {}
        for r in self.records:
            d = by.setdefault(r.method, {"boots": 0, "active": 0, "failed": 0, "seconds": []})
            d["boots"] += 1
            if r.outcome == "active":
                d["active"] += 1
                d["seconds"].append(r.seconds)
            else:
                d["failed"] += 1
        for d in by.values():
            s = d.pop("seconds")
            d["median_s"] = round(statistics.median(s), 1) if s else None
            d["max_s"] = round(max(s), 1) if s else None
        return {"method": self.method, "chosen": self.chosen, "per_method": by,
                "probe": {k: {"servers": v["n"], "seconds": round(v["score"], 1)
                              if v.get("score") is not None else None}
                          for k, v in self._probe.items()},
                "failures": self.failures, "dropped": self.dropped,
                "status_polls": self._watch.polls,
                "ceiling_history": [[round(t, 1), v] for t, v in self.throttle.history]}

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        with self._cond:
            while not self._stop:
                need = self.target - len(self.alive) - self.booting
                room = self.throttle.value - self.booting
                k = min(need, room)
                # multi-create pays off in big calls: refill once half the window is free
                # (or all that is still needed fits), not one server at a time
                batch = 1 if self.chosen == "pool" else max(1, min(need, self.throttle.value // 2))
                if k > 0 and (k >= batch or not self._probe):
                    self._launch(k)
                self._cond.wait(timeout=2.0)

    def _launch(self, k: int) -> None:  # under the lock
        self.booting += k
        method = self.chosen
        if method is None and not self._probe and k >= 2:
            m = (k + 1) // 2
            self._probe = {"multi": {"n": m, "t": [], "done": 0}, "pool": {"n": k - m, "t": [], "done": 0}}
            self._batch += 1
            self._submit_multi(m, self._batch, probe=True)
            for _ in range(k - m):
                self._submit_single(probe=True)
            return
        if (method or "multi") == "multi":
            self._batch += 1
            self._submit_multi(k, self._batch, probe=False)
        else:
            for _ in range(k):
                self._submit_single(probe=False)

    def _metadata(self) -> dict[str, str]:
        now = utcnow()
        return {**self.spec.metadata, META["run_id"]: self.run_id,
                META["operator"]: self.operator[:255], META["created_at"]: iso(now),
                META["expires_at"]: iso(now + dt.timedelta(seconds=self.spec.lifetime_s))}

    def _submit_multi(self, k: int, batch: int, probe: bool) -> None:
        self._creating += 1
        self._pool.submit(self._multi, k, batch, probe)

    def _submit_single(self, probe: bool) -> None:
        self._seq += 1
        self._creating += 1
        self._pool.submit(self._single, self._seq, probe)

    def _created(self, ids: list[str]) -> None:
        with self._cond:
            self.created.update(ids)
            self._creating -= 1
            self._cond.notify_all()

    def _multi(self, k: int, batch: int, probe: bool) -> None:
        name = f"{self.spec.prefix}-m{batch}"
        t0 = self.clock()
        try:
            conn = self.conns.get()
            conn.compute.create_server(name=name, min_count=1, max_count=k,
                                       metadata=self._metadata(), **self.spec.attrs())
            servers = list(conn.compute.servers(name=f"^{name}(-[0-9]+)?$"))
        except CLOUD_ERRORS as exc:
            self._created([])
            self._failed(k, "multi", batch, name, "", t0, exc, probe)
            return
        self._created([s.id for s in servers])
        if len(servers) < k:  # nova made what the quota allowed
            self._failed(k - len(servers), "multi", batch, name, "", t0,
                         os_exc.HttpException(message=f"quota: {len(servers)} of {k} made",
                                              http_status=403), probe)
        for s in servers:
            self._pool.submit(self._wait, s, t0, "multi", batch, probe)

    def _single(self, seq: int, probe: bool) -> None:
        name = f"{self.spec.prefix}-{seq}"
        t0 = self.clock()
        try:
            server = self.conns.get().compute.create_server(name=name, metadata=self._metadata(),
                                                            **self.spec.attrs())
        except CLOUD_ERRORS as exc:
            self._created([])
            self._failed(1, "pool", 0, name, "", t0, exc, probe)
            return
        self._created([server.id])
        self._wait(server, t0, "pool", 0, probe)

    def _wait(self, server: Any, t0: float, method: str, batch: int, probe: bool) -> None:
        try:
            server = self._watch.wait(server, self.spec.boot_timeout_s)
        except CLOUD_ERRORS as exc:
            self._failed(1, method, batch, getattr(server, "name", ""), server.id, t0, exc, probe)
            if not self._stop:
                self._deletes.append(self._pool.submit(
                    delete_servers, self.conns, [server.id], wait=self.spec.boot_timeout_s,
                    workers=1))
            return
        secs = self.clock() - t0
        meta = server.metadata or {}
        created = _parse(meta.get(META["created_at"])) or utcnow()
        expires = _parse(meta.get(META["expires_at"])) or created + dt.timedelta(
            seconds=self.spec.lifetime_s)
        created_rel = t0 - self.t0
        b = Builder(id=server.id, name=server.name, address=address_of(server), method=method,
                    created_at=created, expires_at=expires, boot_s=secs, created_rel=created_rel,
                    active_rel=self.now(),
                    expires_rel=created_rel + (expires - created).total_seconds())
        with self._cond:
            self.booting -= 1
            self.records.append(BootRecord(method, batch, server.name, server.id, "active",
                                           secs, self.throttle.value))
            self.throttle.success(self.now())
            self._probe_note(method, secs, probe)
            if self._stop:
                self._cond.notify_all()
                return
            self.alive[b.id] = b
            handler = self._on_ready
            if handler is None:
                self._ready.append(b)
            self._cond.notify_all()
        if handler is not None:
            handler(b)

    def _failed(self, n: int, method: str, batch: int, name: str, sid: str, t0: float,
                exc: BaseException, probe: bool) -> None:
        secs = self.clock() - t0
        quota = is_quota_error(exc)
        if quota:
            outcome = "quota"
        elif isinstance(exc, os_exc.ResourceTimeout):
            outcome = "timeout"
        elif isinstance(exc, os_exc.ResourceFailure):
            outcome = "error"
        else:
            outcome = "refused"
        with self._cond:
            self.booting -= n
            for _ in range(n):
                self.records.append(BootRecord(method, batch, name, sid, outcome, secs,
                                               self.throttle.value, str(exc)[:300]))
                self._probe_note(method, float(self.spec.boot_timeout_s), probe)
            if quota:
                self.target = max(0, self.target - n)
                self.dropped += n
            else:
                self.failures += n
                self.throttle.failure(self.now())
                if self.failures > self.max_failures:
                    self.target = max(0, self.target - n)
                    self.dropped += n
            self._cond.notify_all()

    def _probe_note(self, method: str, secs: float, probe: bool) -> None:  # under the lock
        if not probe or method not in self._probe:
            return
        p = self._probe[method]
        p["t"].append(secs)
        p["done"] += 1
        if all(v["done"] >= v["n"] for v in self._probe.values()) and self.chosen is None:
            for v in self._probe.values():
                v["score"] = max(v["t"]) / max(1, v["n"]) if v["t"] else float("inf")
            # seconds per server to bring the whole half to ACTIVE; a multi-create's cost
            # per server falls with its size (one API call, one scheduling pass), so the
            # pool must be clearly faster on the small first wave to be chosen
            multi, pool = self._probe["multi"]["score"], self._probe["pool"]["score"]
            self.chosen = "pool" if pool * PROBE_MARGIN < multi else "multi"


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
