"""image-create in a real kernel, for what needs no cloud: bad input is exit 2 whether the
engine refuses it before the kernel starts (nothing archived) or the runbook finds it
(archived, status failed, exit 2 all the same)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.fakes.images import make_qcow2, sha256

pytestmark = pytest.mark.runbook


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict:
    monkeypatch.delenv("FEDCLOUD_RUNBOOKS", raising=False)
    monkeypatch.delenv("FEDCLOUD_POLICY", raising=False)
    return {"FEDCLOUD_OUTPUTS": str(tmp_path / "outputs"),
            "FEDCLOUD_RUNBOOKS": str(ROOT / "runbooks"), "TMPDIR": str(tmp_path)}


def runs(env: dict) -> list[dict]:
    return [json.loads(p.read_text())
            for p in Path(env["FEDCLOUD_OUTPUTS"]).glob("image-create/*/*/record.json")]


def test_a_profile_the_policy_lacks_is_exit_2_from_the_kernel(tmp_path, env):
    img = make_qcow2(tmp_path / "disk.qcow2", 16, 1)
    r = run_cli("run", "image-create", "-p", "profile", "nightly", "-p", "version", "1",
                "-p", "source", str(img), "-p", "checksum", sha256(img), "--no-progress",
                env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "profile: 'nightly' is not an image profile of the site policy" in r.stderr
    assert "builder, fedora-cloud, infra-dev, qa" in r.stderr
    [rec] = runs(env)
    assert rec["status"] == "refused" and rec["exit_code"] == 2
    assert "ParameterError" in rec["error"]


def test_a_malformed_checksum_is_refused_before_any_kernel(tmp_path, env):
    r = run_cli("run", "image-create", "-p", "profile", "qa", "-p", "version", "1",
                "-p", "checksum", "d41d8cd98f00b204e9800998ecf8427e", "--no-progress", env=env)
    assert r.returncode == 2 and "checksum" in r.stderr, r.stderr
    assert runs(env) == []
