"""Verification bookkeeping: a failing check names its service and log; the run fails."""
from __future__ import annotations

import pytest

from fedcloud_lib.cloudlet.verify import Verifier, require_pass
from fedcloud_lib.errors import CheckFailed, RunbookError

pytestmark = pytest.mark.unit


def test_failed_check_names_service_and_log():
    v = Verifier(out=lambda _: None)
    v.check("endpoint image", "image", lambda: (_ for _ in ()).throw(ConnectionError("refused")))
    v.check("endpoint compute", "compute", lambda: "HTTP 200")
    (c,) = v.failed
    assert c.service == "image" and c.log == "/var/log/fedcloud/glance-api.log"
    assert "ConnectionError: refused" in c.detail
    with pytest.raises(RunbookError) as e:
        require_pass(v)
    assert "endpoint image [image]" in str(e.value)
    assert "/var/log/fedcloud/glance-api.log" in str(e.value)
    assert e.value.context["failed"][0]["service"] == "image"


def test_exception_can_point_at_a_compute_host():
    v = Verifier(out=lambda _: None)

    def boom():
        raise CheckFailed("down: nova-compute@cmp2", service="nova-compute", host="cmp2")

    v.check("compute services up", "nova", boom)
    assert v.failed[0].log == "/var/log/fedcloud/nova-compute-cmp2.log"


def test_workload_stops_after_a_failure_but_cleanup_runs():
    v = Verifier(out=lambda _: None)
    v.check("workload: boot", "nova", lambda: 1 / 0)
    v.check("workload: attach a volume", "cinder", lambda: "never")
    v.check("workload: delete everything", "nova", lambda: "cleaned", needs_ok=False)
    assert [c.status for c in v.checks] == ["FAIL", "SKIP", "OK"]
    frame = v.frame()
    assert list(frame.columns) == ["check", "service", "status", "seconds", "detail", "log"]


def test_all_ok_passes():
    v = Verifier(out=lambda _: None)
    v.check("a", "nova", lambda: "fine")
    assert require_pass(v) is v
