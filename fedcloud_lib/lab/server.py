"""The JupyterLab server ``fedcloud lab`` starts, and what it does on save.

:func:`command` is the JupyterLab command line: bound to 127.0.0.1, token auth (the token
goes in ``JUPYTER_TOKEN``, never on a command line other users can read), the runbook
directory as its root, the ``fedcloud`` kernel, no calls out (news, update checks).
:class:`Lab` runs it as a child process in a session of its own, waits until it answers
and stops it (with its kernels) on :meth:`Lab.stop`.

Saving a notebook through it drops outputs, execution counts and widget state
(:func:`strip_outputs`, the contents manager's ``pre_save_hook``): the runbooks stay
committed as they must be (without outputs), and nothing the kernel showed — which may
include what the operator typed — lands in the runbook directory.  The record of what
ran is the archive (:mod:`.archive`).
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from ..errors import ConfigError

__all__ = ["Lab", "command", "strip_outputs", "free_port"]

STRIP_HOOK = "fedcloud_lib.lab.server.strip_outputs"


def strip_outputs(model: dict, **_kwargs: Any) -> None:
    """``pre_save_hook``: save notebooks without outputs, execution counts or widget state."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    nb = model["content"]
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    (nb.get("metadata") or {}).pop("widgets", None)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(root: Path, port: int, *, kernel: str = "fedcloud", strip: bool = True) -> list[str]:
    """The JupyterLab command line serving ``root`` on 127.0.0.1:``port``."""
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--ServerApp.root_dir={root}", f"--MultiKernelManager.default_kernel_name={kernel}",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--ServerApp.log_level=WARN"]
    if strip:
        cmd.append(f"--FileContentsManager.pre_save_hook={STRIP_HOOK}")
    if os.geteuid() == 0:  # the machines that run the cloudlet work as root
        cmd.append("--allow-root")
    return cmd


class _NotYet(Exception):
    pass


@dataclass
class Lab:
    """A JupyterLab server on 127.0.0.1 serving the runbooks, as a child process."""

    root: Path
    port: int = 0
    operator: str | None = None
    strip: bool = True
    env: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Where the operator opens JupyterLab (the token logs the browser in)."""
        return f"{self.base}/lab?token={self.token}"

    def start(self, timeout: float = 180, log: Any = None) -> "Lab":
        """Start the server and wait until it answers (ConfigError if it does not)."""
        if not self.root.is_dir():
            raise ConfigError(f"lab: {self.root} is not a directory (the runbooks to serve)",
                              path=str(self.root))
        self.port = self.port or free_port()
        env = {**os.environ, **self.env, "JUPYTER_TOKEN": self.token}
        for var in ("FEDCLOUD_RUN_ID", "FEDCLOUD_RUN_DIR", "FEDCLOUD_RUNBOOK", "JPY_SESSION_NAME"):
            env.pop(var, None)  # a kernel of the lab is interactive, never part of a run
        if self.operator:
            env["FEDCLOUD_OPERATOR"] = self.operator
        self.process = subprocess.Popen(command(self.root, self.port, strip=self.strip),
                                        env=env, cwd=self.root, start_new_session=True,
                                        stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        @retry(retry=retry_if_exception_type(_NotYet), stop=stop_after_delay(timeout),
               wait=wait_fixed(0.5), reraise=True)
        def ready() -> None:
            if self.process.poll() is not None:
                raise ConfigError(f"lab: JupyterLab ended at start (exit {self.process.returncode}; "
                                  f"its messages say why) on port {self.port}")
            try:
                r = requests.get(f"{self.base}/api/status",
                                 headers={"Authorization": f"token {self.token}"}, timeout=5)
            except requests.RequestException as exc:
                raise _NotYet() from exc
            if r.status_code != 200:
                raise _NotYet()

        try:
            ready()
        except _NotYet:
            raise ConfigError(f"lab: JupyterLab did not answer on {self.base} within "
                              f"{timeout:.0f} s") from None

    def stop(self, timeout: float = 30) -> int | None:
        """Stop the server (SIGTERM: it shuts its kernels down; ``timeout`` seconds for
        that), then kill anything of it left."""
        proc = self.process
        if proc is None:
            return None
        try:
            family = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            family = []
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for p in family:  # kernels the server did not get to shut down
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(family, timeout=10)
        return proc.returncode
