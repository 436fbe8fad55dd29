"""supervisord programs: status parsing, start order, logs, the not-installed case."""
from __future__ import annotations

import os
import subprocess

import pytest

from fedcloud_lib.cloudlet import programs, supervisor

pytestmark = pytest.mark.unit

STATUS = """cinder-api                       RUNNING   pid 17080, uptime 0:03:00
glance-api                       STOPPED   Nov 24 09:00 AM
nova-compute-cmp2                FATAL     Exited too quickly (process log may have details)
"""


def test_status_parses_supervisorctl(monkeypatch):
    monkeypatch.setattr(supervisor, "supervisord_running", lambda: True)
    monkeypatch.setattr(supervisor, "_ctl", lambda *a, **k: subprocess.CompletedProcess(a, 3, STATUS, ""))
    rows = supervisor.status()
    assert [(r.name, r.state) for r in rows] == [("cinder-api", "RUNNING"), ("glance-api", "STOPPED"),
                                                 ("nova-compute-cmp2", "FATAL")]
    assert rows[2].row()["log"] == "/var/log/fedcloud/nova-compute-cmp2.log"


def test_status_is_empty_without_supervisord(monkeypatch):
    monkeypatch.setattr(supervisor, "supervisord_running", lambda: False)
    assert supervisor.status() == []


def test_start_on_a_bare_machine_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(supervisor, "PROGRAMS_CONF", tmp_path / "absent.conf")
    lines = []
    assert supervisor.start(out=lines.append) == 2
    assert "make cloudlet" in lines[0]


def test_phases_put_databases_first_and_volume_after_its_scheduler():
    order = [p for _, progs, _ in programs.PHASES for p in progs]
    assert order[:2] == ["mariadb", "rabbitmq"]
    assert order.index("keystone") < order.index("glance-api")
    assert order.index("cinder-scheduler") < order.index("cinder-volume")
    assert order[-1] == "nova-compute-*"
    assert programs.match("nova-compute-*", "nova-compute-cmp2")
    assert not programs.match("nova-compute-*", "nova-conductor")


@pytest.mark.parametrize("service, host, program", [
    ("image", None, "glance-api"), ("glance", None, "glance-api"),
    ("nova-compute", "cmp2", "nova-compute-cmp2"),
    ("neutron-linuxbridge-agent", "vm", "neutron-linuxbridge-agent-vm"),
    ("block-storage", None, "cinder-api"), ("identity", None, "keystone"),
])
def test_service_to_program_and_log(service, host, program):
    assert programs.program_for(service, host) == program
    assert programs.log_of(program).startswith(("/var/log/fedcloud/", "/var/log/keystone/"))


CHILD = "import sys, time; x = bytearray(64 << 20); print('ready', flush=True); time.sleep(30)"


def test_process_tree_memory_counts_this_process_and_its_children():
    import subprocess
    import sys

    alone = supervisor._tree_pss_kb(os.getpid())
    assert alone > 1000
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"  # its 64 MiB are touched
        assert supervisor._tree_pss_kb(os.getpid()) >= alone + 60 * 1024
    finally:
        child.kill()
        child.wait()
    assert supervisor._tree_pss_kb(child.pid) == 0  # a process that is gone counts nothing


def test_rpc_queue_names_map_to_programs():
    assert programs.program_for_queue("compute.cmp2") == "nova-compute-cmp2"
    assert programs.program_for_queue("conductor") == "nova-conductor"
