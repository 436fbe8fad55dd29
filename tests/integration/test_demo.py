"""`make demo`'s SOP part (scripts/demo.py) on the real cloudlet: a local ticket becomes an
instance (accounts from files, mail to the demo's own SMTP sink), is refused once closed,
is retired; the archive verifies; nothing is left running or standing."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import psutil
import pytest
import yaml

from tests.integration.instance_fixtures import ROOT, conn  # noqa: F401

pytestmark = pytest.mark.integration


def test_demo_end_to_end(conn, tmp_path):  # noqa: F811
    env = {**os.environ, "FEDCLOUD_OUTPUTS": str(tmp_path / "outputs"),
           "FEDCLOUD_DEMO_DIR": str(tmp_path / "demo"), "PYTHONPATH": str(ROOT)}
    env.pop("FEDCLOUD_POLICY", None)
    env.pop("FEDCLOUD_RUNBOOKS", None)
    r = subprocess.run([sys.executable, "scripts/demo.py"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    tickets = list((tmp_path / "demo").iterdir())
    try:
        assert r.returncode == 0, out[-4000:]
        [work] = tickets
        ticket = yaml.safe_load((work / "ticket.yaml").read_text())
        answers = ticket["comments"]
        assert ticket["status"] == "Closed" and len(answers) == 4
        assert "**planned**" in answers[0] and "--approve-plan" in answers[0]
        assert "**succeeded**" in answers[1] and "| demo-web |" in answers[1]
        assert "not open" in answers[2] and "**succeeded**" in answers[3]
        mails = (work / "mail.txt").read_text()
        assert "Subject: [fedcloud] ticket" in mails and "instance demo-web is ready" in mails
        assert "To: demo@fedcloud.example" in mails and "instance retired" in mails
        assert "archive " in out and "verified, chain intact" in out
        assert re.search(r"\[4/7\] create server demo-web: done in", out)  # streamed steps
        pid = int(re.search(r"SMTP sink stopped \(pid (\d+)\)", out).group(1))
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    finally:
        for s in conn.compute.servers(details=True):  # a failed demo's leftovers
            if (s.metadata or {}).get("fedcloud_ticket") in [t.name for t in tickets]:
                conn.compute.delete_server(s)
    left = [s.name for s in conn.compute.servers(details=True)
            if (s.metadata or {}).get("fedcloud_ticket") == work.name]
    assert left == []
