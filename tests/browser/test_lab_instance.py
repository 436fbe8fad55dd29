"""instance-for-ticket in JupyterLab, in headless Chromium, on the real cloudlet.

`fedcloud lab` → open the runbook → Run All stops at the parameter form → an invalid
instance name shows its problem inline → corrected → "Use these values" → Run All stops
at the plan (a table; a screenshot of it is kept) → Confirm → Run All applies exactly
that plan → the instance exists on the cloudlet, the requester got mail, and the run is
in the archive with status `interactive` and the operator's name → Ctrl-C stops the lab
and its kernel.
"""
from __future__ import annotations

import json
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.browser.conftest import ARTIFACTS, ROOT, fedcloud
from tests.integration.instance_fixtures import CLOUD, cloud_env, conn  # noqa: F401

pytestmark = pytest.mark.browser

OPERATOR = "browser-test"
LONG = 600_000  # ms: the machine is shared and loaded; boots take what they take


class LabProcess:
    """`fedcloud lab` in a child process; its output lines in a queue."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fedcloud_lib.cli", "lab", "--dir", str(root),
             "--operator", OPERATOR], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
            # started as a background job of a shell is (SIGINT ignored): Ctrl-C must
            # still stop it (CI found it deaf to SIGINT that way)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 180) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"`fedcloud lab` never printed /{pattern}/:\n"
                                     + "".join(self.seen))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            m = re.search(pattern, line)
            if m:
                return m

    def interrupt(self, timeout: float = 150) -> int:
        """Ctrl-C; the exit code, once every line it printed is in ``seen``.  `fedcloud
        lab` gives JupyterLab 30 s to shut its kernels down, then kills what is left: the
        whole stop is bounded well under ``timeout``."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.reader.join(10)
            while not self.lines.empty():
                self.seen.append(self.lines.get())
            raise AssertionError(f"`fedcloud lab` still ran {timeout:.0f} s after Ctrl-C; it "
                                 "printed:\n" + "".join(self.seen)) from None
        print(f"`fedcloud lab` stopped {time.monotonic() - t0:.1f} s after Ctrl-C")
        self.reader.join(10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


def run_all(page) -> None:
    """Run ▸ Run All Cells, through the menu as an operator does."""
    page.click("div.lm-MenuBar-itemLabel:text-is('Run')")
    page.click("li.lm-Menu-item[data-command='runmenu:run-all']")


def field(page, name: str):
    return page.locator(f".fedcloud-field-{name} .fedcloud-input").locator("input, textarea")


@pytest.fixture
def lab(cloud_env, runbook_copy, lab_settings):
    import os

    env = {**os.environ, **lab_settings, "FEDCLOUD_OPERATOR": OPERATOR}
    env.pop("FEDCLOUD_RUNBOOKS", None)
    proc = LabProcess(runbook_copy, env)
    try:
        url = proc.wait_for(r"(http://127\.0\.0\.1:\d+/lab\?token=\S+)").group(1)
        yield proc, url
    finally:
        if proc.proc.poll() is None:
            proc.proc.send_signal(signal.SIGINT)
            try:
                proc.proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.proc.kill()


def test_instance_for_ticket_in_jupyterlab(cloud_env, lab, chromium, tmp_path):
    from playwright.sync_api import expect

    env, c = cloud_env, cloud_env.conn
    proc, url = lab
    tid, requester = env.new_ticket(), env.new_requester()
    name = f"it-{random.randint(10000, 99999)}"
    base, token = url.split("/lab?token=")

    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    try:
        page.goto(f"{base}/lab/tree/instance-for-ticket.ipynb?reset&token={token}")
        page.wait_for_selector("text=fedcloud (Python 3) | Idle", timeout=180_000)

        # 1. Run All stops at the form; nothing below it runs
        run_all(page)
        page.wait_for_selector(".fedcloud-form", timeout=180_000)
        expect(page.locator("text=Waiting for the form")).to_be_visible(timeout=60_000)
        expect(page.locator(".fedcloud-confirm")).to_have_count(0)

        # 2. an invalid name is refused inline, by the parameters' own validation
        field(page, "ticket").fill(tid)
        field(page, "requester").fill(requester)
        field(page, "purpose").fill("browser test")
        field(page, "flavor").fill("m1.tiny")
        name_error = page.locator(".fedcloud-field-name .fedcloud-error")
        field(page, "name").fill("Bad_Name!")
        expect(name_error).to_contain_text("does not match", timeout=60_000)
        expect(page.locator(".fedcloud-field-ticket .fedcloud-error")).to_have_text("")
        field(page, "name").fill(name)
        expect(name_error).to_have_text("", timeout=60_000)
        page.click(".fedcloud-form-continue")
        expect(page.locator(".fedcloud-form-status")).to_contain_text("Values set",
                                                                      timeout=60_000)

        # 3. Run All again: the plan, and a confirm button showing what will change
        run_all(page)
        confirm = page.locator(".fedcloud-confirm")
        expect(confirm).to_be_visible(timeout=LONG)
        plan_table = page.locator("table.fedcloud-plan").last
        server_row = plan_table.locator("tr.fedcloud-create").filter(
            has=page.locator("td", has_text=re.compile(r"^server$"))).filter(has_text=name)
        expect(server_row).to_have_count(1)
        expect(page.locator(".fedcloud-gate-changes")).to_contain_text(f"server {name}")
        expect(confirm).to_contain_text("to create")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"plan-table-{tid}.png"
        plan_table.scroll_into_view_if_needed()
        plan_table.screenshot(path=str(shot))
        page.screenshot(path=str(tmp_path / "plan-page.png"), full_page=True)
        print(f"\nscreenshot of the plan table: {shot}")
        assert shot.stat().st_size > 1000
        assert env.servers(tid) == []  # nothing made before the click

        # 4. confirm, Run All: exactly that plan is applied, and the run is archived
        confirm.click()
        expect(page.locator(".fedcloud-gate-status")).to_contain_text("Confirmed",
                                                                      timeout=60_000)
        assert env.servers(tid) == []  # still nothing: confirming does not apply
        run_all(page)
        archived = page.locator("text=/Archived as interactive run/")
        expect(archived).to_be_visible(timeout=LONG)
        run_id = re.search(r"interactive run (\S+)", archived.inner_text()).group(1)
        # the walk's progress lines (fedcloud_lib.progress, a terminal line headless)
        expect(page.locator(f"text=/create server {name}: done in/")).to_have_count(1)
        expect(page.locator(f"text=/Applied: instance {name} for ticket {tid}/")).to_have_count(1)
        page.screenshot(path=str(tmp_path / "applied-page.png"), full_page=True)
    finally:
        page.close()

    [server] = env.servers(tid)
    assert server.name == name and server.status == "ACTIVE"
    assert server.metadata["fedcloud_operator"] == OPERATOR
    assert server.metadata["fedcloud_requester"] == requester
    assert [m for m in env.smtp.messages if f"{requester}@example.test" in m["rcpt"]]

    out = fedcloud("runs", "list", "--json", "--runbook", "instance-for-ticket")
    assert out.returncode == 0, out.stderr
    [row] = [r for r in json.loads(out.stdout) if r["run_id"] == run_id]
    assert row["status"] == "interactive" and row["operator"] == OPERATOR
    assert row["ticket"] == tid
    shown = fedcloud("runs", "show", run_id)
    assert shown.returncode == 0 and "confirmation" in shown.stdout, shown.stdout + shown.stderr
    assert fedcloud("runs", "verify").returncode == 0

    # Ctrl-C stops JupyterLab and its kernel
    family = psutil.Process(proc.proc.pid).children(recursive=True)
    assert any("ipykernel" in " ".join(p.cmdline()) for p in family)  # the notebook's kernel
    assert proc.interrupt() == 0
    assert "JupyterLab stopped" in "".join(proc.seen)
    gone, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
