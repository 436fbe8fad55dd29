"""The run lock, with two real processes."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fedcloud_lib.errors import LockError
from fedcloud_lib.lock import RunLock

pytestmark = pytest.mark.unit

HOLDER = """
import sys, time
from fedcloud_lib.lock import RunLock
lock = RunLock(sys.argv[1], "instance-for-ticket", "1234").acquire("holder-run")
print("held", flush=True)
time.sleep(120)
"""


def start_holder(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_second_process_is_refused_naming_the_holder(tmp_path):
    holder = start_holder(tmp_path)
    try:
        with pytest.raises(LockError) as e:
            RunLock(tmp_path, "instance-for-ticket", "1234").acquire("second-run")
        msg = str(e.value)
        assert "holder-run" in msg and str(holder.pid) in msg and "ticket 1234" in msg
        assert e.value.exit_code == 3
        # another ticket, or another runbook, is not blocked
        RunLock(tmp_path, "instance-for-ticket", "9999").acquire("other").release()
        RunLock(tmp_path, "instance-retire", "1234").acquire("other").release()
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    holder = start_holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    lock = RunLock(tmp_path, "instance-for-ticket", "1234").acquire("next-run")
    try:
        assert lock.took_over["run_id"] == "holder-run"
        assert json.loads(lock.path.read_text())["run_id"] == "next-run"
    finally:
        lock.release()
    # a clean release leaves nothing to take over
    again = RunLock(tmp_path, "instance-for-ticket", "1234").acquire("third")
    assert again.took_over is None
    again.release()


def test_lock_is_not_inherited_by_child_processes(tmp_path):
    lock = RunLock(tmp_path, "rb", None).acquire("parent")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock.release()
        time.sleep(0.1)
        RunLock(tmp_path, "rb", None).acquire("after").release()
    finally:
        child.kill()
        child.wait()


def test_distinct_tickets_never_share_a_lock_and_long_tickets_work(tmp_path):
    a = RunLock(tmp_path, "rb", "a/b").acquire("one")
    try:
        RunLock(tmp_path, "rb", "a_b").acquire("two").release()
        long = RunLock(tmp_path, "rb", "T" * 300).acquire("three")
        assert len(long.path.name) < 120
        long.release()
    finally:
        a.release()
    assert "a_b" in a.path.name  # still readable by a human
