"""BootWatch: one list call per interval ends every builder's wait as the SDK's
wait_for_server would (ACTIVE, ERROR, deleted, late, cloud not answering)."""
from __future__ import annotations

import threading
from types import SimpleNamespace as NS

import pytest
from openstack import exceptions as os_exc

from fedcloud_lib.burst.watch import GONE_AFTER, MAX_LIST_ERRORS, BootWatch


class FakeCompute:
    """Servers whose status the test sets; counts the list calls and their filters."""

    def __init__(self):
        self.status: dict[str, str] = {}
        self.calls: list[dict] = []
        self.fail = False
        self.lock = threading.Lock()

    def servers(self, **query):
        with self.lock:
            self.calls.append(query)
            if self.fail:
                raise os_exc.HttpException(message="503 nova-api is down", http_status=503)
            return [NS(id=i, status=st, fault={"message": "No valid host"} if st == "ERROR" else None,
                       name=f"fcb-1-{i}") for i, st in self.status.items()]


def _watch(compute, **kw):
    return BootWatch(lambda: NS(compute=compute), "fcb-1", interval=0.01, **kw)


def _wait_all(watch, ids, timeout=5.0):
    out: dict[str, object] = {}

    def one(i):
        try:
            out[i] = watch.wait(NS(id=i), timeout)
        except Exception as exc:  # noqa: BLE001 - the test looks at which
            out[i] = exc
    threads = [threading.Thread(target=one, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    return threads, out


def test_one_list_call_serves_every_waiter():
    compute = FakeCompute()
    ids = [f"s{n}" for n in range(30)]
    compute.status = dict.fromkeys(ids, "BUILD")
    watch = _watch(compute)
    threads, out = _wait_all(watch, ids)
    while len(compute.calls) < 5:
        threading.Event().wait(0.01)
    for i in ids:
        compute.status[i] = "ACTIVE"
    for t in threads:
        t.join(5)
    assert all(out[i].status == "ACTIVE" and out[i].id == i for i in ids)
    # one call per interval for thirty waiters, filtered on the run's name prefix
    assert all(c == {"details": True, "name": "^fcb-1-"} for c in compute.calls)
    assert watch.polls == len(compute.calls) < 200
    watch.close()


def test_error_deleted_and_late_servers_fail_like_the_sdk():
    compute = FakeCompute()
    compute.status = {"ok": "ACTIVE", "bad": "ERROR", "gone": "BUILD", "slow": "BUILD"}
    now = [0.0]
    watch = _watch(compute, clock=lambda: now[0])
    threads, out = _wait_all(watch, ["ok", "bad", "gone"], timeout=100)
    t_slow, out_slow = _wait_all(watch, ["slow"], timeout=10)
    del compute.status["gone"]
    for t in threads:
        t.join(5)
    assert out["ok"].status == "ACTIVE"
    assert isinstance(out["bad"], os_exc.ResourceFailure) and "No valid host" in str(out["bad"])
    assert isinstance(out["gone"], os_exc.ResourceFailure) and "deleted" in str(out["gone"])
    assert len(compute.calls) >= GONE_AFTER
    assert "slow" not in out_slow  # still BUILD, not yet late
    now[0] = 11.0
    t_slow[0].join(5)
    assert isinstance(out_slow["slow"], os_exc.ResourceTimeout)
    assert "last status BUILD" in str(out_slow["slow"])
    watch.close()


def test_a_cloud_that_stops_answering_fails_the_waits_with_its_error():
    compute = FakeCompute()
    compute.status = {"a": "BUILD"}
    compute.fail = True
    watch = _watch(compute)
    threads, out = _wait_all(watch, ["a"])
    threads[0].join(5)
    assert isinstance(out["a"], os_exc.ResourceFailure) and "503 nova-api is down" in str(out["a"])
    assert len(compute.calls) == MAX_LIST_ERRORS
    watch.close()


def test_close_ends_the_waits_and_refuses_new_ones():
    compute = FakeCompute()
    compute.status = {"a": "BUILD"}
    watch = _watch(compute)
    threads, out = _wait_all(watch, ["a"])
    while not compute.calls:
        threading.Event().wait(0.01)
    watch.close()
    threads[0].join(5)
    assert isinstance(out["a"], os_exc.ResourceFailure) and "stopped watching" in str(out["a"])
    with pytest.raises(os_exc.ResourceFailure):
        watch.wait(NS(id="b"), 1)
