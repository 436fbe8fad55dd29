"""The boot test: boot a server from the new image, wait for ACTIVE and — where the cloud
gives a console log — for the login marker in it, then delete the server.

Whether a cloud gives a console log is read from the log itself: a real guest prints a
kernel banner, systemd or cloud-init lines within seconds; a console that shows none of
that for ``console_grace_s`` (Nova's fake driver answers a fixed three-line text, some
drivers answer nothing or an error) counts as "no console log", and the test then rests
on ACTIVE alone and says so.  A guest that boots but never shows the marker within
``timeout_s`` fails the test.  Waiting is the SDK's (``wait_for_server``) and tenacity's
(console polling), never a loop of ours.
"""
from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import tenacity
from openstack import exceptions as os_exc

from .. import progress
from ..cloud import CLOUD_ERRORS, GONE, server_gone
from ..context import current_run

__all__ = ["BootResult", "BOOT_OUTPUT", "console_state", "run", "leftover_servers"]

#: lines only a guest that really boots prints
BOOT_OUTPUT = re.compile(r"Linux version \d|\bBooting\b|systemd\[1\]|cloud-init|\bkernel:",
                         re.IGNORECASE)
POLL_S = 5
BOOT_TEST_OF = "fedcloud_boot_test_of"


@dataclass(frozen=True)
class BootResult:
    """What the boot test saw."""

    passed: bool
    server_id: str | None
    flavor: str
    seconds: float
    console: str        # login | none | no-login
    reason: str

    def summary(self) -> str:
        return self.reason

    def to_dict(self) -> dict:
        return asdict(self)


def console_state(output: str | None, *, marker: str, elapsed: float, grace: float) -> str:
    """``login`` (marker seen), ``booting`` (boot output, no marker yet), ``none`` (no
    console log from this cloud: nothing boot-like within the grace time), ``wait``."""
    text = output or ""
    if marker and marker in text:
        return "login"
    if BOOT_OUTPUT.search(text):
        return "booting"
    if output is None or elapsed >= grace:
        return "none"
    return "wait"


def _console(conn: Any, server: Any) -> str | None:
    try:
        out = conn.compute.get_server_console_output(server, length=200)
    except (os_exc.NotFoundException, os_exc.ConflictException, os_exc.HttpException):
        return None  # no console log API on this cloud / driver
    return (out or {}).get("output") or ""


def _watch_console(conn: Any, server: Any, *, marker: str, timeout: float,
                   grace: float) -> tuple[str, str]:
    t0 = time.monotonic()

    def look() -> tuple[str, str]:
        text = _console(conn, server)
        return console_state(text, marker=marker, elapsed=time.monotonic() - t0,
                             grace=grace), text or ""

    retry = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout), wait=tenacity.wait_fixed(POLL_S),
        retry=tenacity.retry_if_result(lambda r: r[0] in ("wait", "booting")),
        retry_error_callback=lambda rs: rs.outcome.result(), reraise=True)
    return retry(look)


def leftover_servers(conn: Any, image_id: str) -> list[Any]:
    """Boot-test servers of ``image_id`` an earlier (killed) run left behind."""
    return [s for s in conn.compute.servers(details=True)
            if (s.metadata or {}).get(BOOT_TEST_OF) == image_id and s.status not in GONE]


def run(conn: Any, image_id: str, inputs: dict[str, Any], *, name: str,
        say: Callable[[str], None] = progress.say) -> BootResult:
    """Boot ``image_id`` as ``inputs`` say (flavor, network, user data, marker, timeouts),
    watch it, delete the server whatever happened.  Cloud errors of the test itself
    (ERROR state, timeout, refused boot) are a failed test, not an exception."""
    timeout = int(inputs["timeout_s"])
    for old in leftover_servers(conn, image_id):
        say(f"removing boot-test server {old.name} ({old.id}) left by an earlier run")
        server_gone(conn, old.id, timeout)
    t0 = time.monotonic()
    server = None
    attrs: dict[str, Any] = dict(
        name=name, image_id=image_id, flavor_id=inputs["flavor_id"],
        metadata={BOOT_TEST_OF: image_id, "fedcloud_run_id": current_run().label},
        user_data=base64.b64encode(inputs["user_data"].encode()).decode())
    attrs["networks"] = [{"uuid": inputs["network_id"]}] if inputs.get("network_id") else "auto"
    try:
        try:
            server = conn.compute.create_server(**attrs)
            server = conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"],
                                                  wait=timeout)
        except CLOUD_ERRORS as exc:
            fault = ""
            if server is not None:
                try:
                    fault = (conn.compute.get_server(server.id).fault or {}).get("message", "")
                except CLOUD_ERRORS:
                    pass
            reason = f"the server did not become ACTIVE: {fault or exc}"
            return BootResult(False, server.id if server else None, inputs["flavor"],
                              round(time.monotonic() - t0, 1), "none", reason[:300])
        state, text = _watch_console(conn, server, marker=inputs["login_marker"],
                                     timeout=max(timeout - (time.monotonic() - t0), POLL_S),
                                     grace=float(inputs["console_grace_s"]))
        secs = round(time.monotonic() - t0, 1)
        if state == "login":
            return BootResult(True, server.id, inputs["flavor"], secs, "login",
                              f"ACTIVE on {inputs['flavor']} and login marker "
                              f"{inputs['login_marker']!r} in the console log after {secs} s")
        if state in ("none", "wait"):
            return BootResult(True, server.id, inputs["flavor"], secs, "none",
                              f"ACTIVE on {inputs['flavor']} after {secs} s; this cloud gives "
                              f"no console log (no boot output within "
                              f"{inputs['console_grace_s']} s), so login was not checked")
        last = " | ".join(text.strip().splitlines()[-3:])[:200]
        return BootResult(False, server.id, inputs["flavor"], secs, "no-login",
                          f"booted (console shows boot output) but no login marker "
                          f"{inputs['login_marker']!r} within {timeout} s; last lines: {last}")
    finally:
        if server is not None:
            server_gone(conn, server.id, timeout)
