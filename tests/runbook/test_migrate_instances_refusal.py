"""migrate-instances in a real kernel, without a cloud: a request the runbook refuses
(before any cloud call) ends the run `refused`, exit 2, archived with the reason."""
from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.runbook


def test_a_refused_request_exits_2_and_is_archived_as_refused(tmp_path, monkeypatch):
    out = tmp_path / "outputs"
    clouds = tmp_path / "clouds.yaml"  # two entries; nothing is ever connected to
    clouds.write_text("clouds:\n  one: {auth: {auth_url: 'http://127.0.0.1:9'}}\n"
                      "  two: {auth: {auth_url: 'http://127.0.0.1:9'}}\n")
    env = {"FEDCLOUD_OUTPUTS": str(out), "FEDCLOUD_RUNBOOKS": str(ROOT / "runbooks"),
           "OS_CLIENT_CONFIG_FILE": str(clouds), "TMPDIR": str(tmp_path)}
    r = run_cli("run", "migrate-instances", "-p", "source_cloud", "one", "-p", "target_cloud",
                "one", "-p", "servers", "[web-1]", "-p", "flavor_map", "{m1.small: ''}",
                "--approve", "--no-progress", env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "refused (exit 2)" in r.stderr
    assert "target_cloud: 'one' is the source cloud too" in r.stderr
    assert "flavor_map: 'm1.small': '' — both names must be non-empty" in r.stderr
    assert "Traceback" not in r.stderr
    [folder] = list(out.glob("migrate-instances/*/*"))
    rec = json.loads((folder / "record.json").read_text())
    assert rec["status"] == "refused" and rec["exit_code"] == 2
    assert "ParameterError" in rec["error"]
