"""Shared test fixtures: an isolated archive and the fixture runbooks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_RUNBOOKS = ROOT / "tests" / "fixtures" / "runbooks"
FEDCLOUD = [sys.executable, "-m", "fedcloud_lib.cli"]


@pytest.fixture
def outputs(tmp_path, monkeypatch) -> Path:
    """An empty archive of our own, and the fixture runbooks instead of the real ones."""
    out = tmp_path / "outputs"
    monkeypatch.setenv("FEDCLOUD_OUTPUTS", str(out))
    monkeypatch.setenv("FEDCLOUD_RUNBOOKS", str(FIXTURE_RUNBOOKS))
    monkeypatch.setenv("FEDCLOUD_SECRETS_DIR", str(tmp_path / "no-secrets"))
    # child processes keep their temporary files (kernel sockets) with the test's files
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(tmp))
    return out


def run_cli(*args: str, env: dict | None = None, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    """Run the real `fedcloud` command in a child process."""
    return subprocess.run([*FEDCLOUD, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=ROOT, **kw)


def start_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*FEDCLOUD, *args, "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            cwd=ROOT)
