"""scripts/apt-ensure: installs only what is missing, says exactly what when it cannot.

dpkg-query, apt-get and id are fakes on PATH (shell scripts) so the script's own logic
runs for real without touching the machine's packages."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "apt-ensure"


@pytest.fixture
def fakes(tmp_path):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    calls = tmp_path / "apt-calls.log"
    (bin_ / "dpkg-query").write_text(
        '#!/bin/sh\n# dpkg-query -W -f=... PACKAGE\nfor p in $FAKE_INSTALLED; do\n'
        '  [ "$p" = "$3" ] && { printf "install ok installed"; exit 0; }\ndone\n'
        'echo "dpkg-query: no packages found matching $3" >&2\nexit 1\n')
    (bin_ / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_ / "id").write_text('#!/bin/sh\necho "$FAKE_UID"\n')
    for f in bin_.iterdir():
        f.chmod(0o755)
    wanted = tmp_path / "wanted.txt"
    wanted.write_text("# what the tests need\npython3 git   # version control\n\naiosmtpd\n")

    def run(installed: str, uid: int) -> subprocess.CompletedProcess:
        env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}",
               "FAKE_INSTALLED": installed, "FAKE_UID": str(uid)}
        return subprocess.run([str(SCRIPT), str(wanted)], capture_output=True, text=True,
                              env=env, timeout=30)

    return run, calls


def test_all_installed_calls_no_apt(fakes):
    run, calls = fakes
    r = run("python3 git aiosmtpd", uid=0)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    assert not calls.exists()  # not even apt-get update


def test_not_root_says_exactly_what_is_missing(fakes):
    run, calls = fakes
    r = run("python3", uid=1000)
    assert r.returncode == 1
    assert r.stderr.strip() == ("apt-ensure: not root; install them yourself: "
                                "apt-get install aiosmtpd git")
    assert not calls.exists()


def test_root_installs_only_the_missing_ones(fakes):
    run, calls = fakes
    r = run("git", uid=0)
    assert r.returncode == 0 and "apt-ensure: installing aiosmtpd python3" in r.stdout
    assert calls.read_text().splitlines() == [
        "update -qq", "install -y -qq --no-install-recommends aiosmtpd python3"]
