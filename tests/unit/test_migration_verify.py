"""migrate-instances: verifying a copy; the ssh check against real sockets on loopback."""
from __future__ import annotations

import socket
import threading
from types import SimpleNamespace as NS

import pytest

from fedcloud_lib.migration import tags
from fedcloud_lib.migration.verify import tcp_check, verify_server

pytestmark = pytest.mark.unit
SID = "s1"


class _Listener:
    """A TCP server on 127.0.0.1 that sends ``greeting`` (or nothing) to each client."""

    def __init__(self, greeting: bytes | None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                if self.greeting:
                    conn.sendall(self.greeting)
                self.stop.wait(1.0)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(3)
        self.sock.close()


@pytest.fixture
def sshd():
    srv = _Listener(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    yield srv
    srv.close()


@pytest.fixture
def not_ssh():
    srv = _Listener(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # accepts anything, like a proxy
    yield srv
    srv.close()


def test_tcp_check_reads_an_ssh_banner(sshd):
    ok, why = tcp_check("127.0.0.1", sshd.port, timeout=2)
    assert ok and why == f"127.0.0.1:{sshd.port} answers: SSH-2.0-OpenSSH_9.2p1 Debian-2"


def test_an_accepted_connection_without_a_banner_is_not_ssh(not_ssh):
    ok, why = tcp_check("127.0.0.1", not_ssh.port, timeout=2)
    assert not ok and why.endswith("accepted the connection but sent no ssh banner")


def test_a_server_that_says_nothing_times_out():
    srv = _Listener(None)
    try:
        ok, why = tcp_check("127.0.0.1", srv.port, timeout=0.3)
    finally:
        srv.close()
    assert not ok and why.endswith("timed out")


def test_a_closed_port_is_not_reachable():
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ok, why = tcp_check("127.0.0.1", port, timeout=1)
    assert not ok and "refused" in why


class FakeTarget:
    def __init__(self, server, volumes):
        self._server, self._volumes = server, {v.id: v for v in volumes}
        self.compute = NS(servers=lambda details=True: [self._server],
                          get_server=lambda i: self._server)
        self.block_storage = NS(volumes=lambda details=True: list(self._volumes.values()),
                                get_volume=lambda i: self._volumes[i])


def copy(address="127.0.0.1", status="ACTIVE", metadata=None, flavor="m1.tiny", image="tb",
         stamped=True):
    meta = {"fedcloud_class": "dev"} if metadata is None else dict(metadata)
    if stamped:
        meta.update({tags.MIGRATED_FROM: f"src/{SID}", tags.MIGRATION: "mig-1",
                     tags.VERIFIED: "earlier"})
    return NS(id="t1", name="web-1", status=status, metadata=meta,
              flavor={"original_name": flavor}, image={"id": image},
              addresses={"provider": [{"addr": address, "version": 4,
                                       "OS-EXT-IPS:type": "fixed"}]})


def vol(size=2, attached=True):
    return NS(id="tv1", size=size, status="in-use",
              metadata={tags.MIGRATED_FROM: "src/v1"},
              attachments=[{"server_id": "t1"}] if attached else [])


EXPECTED = {"source_id": SID, "name": "web-1", "metadata": {"fedcloud_class": "dev"},
            "flavor": "m1.tiny", "volumes": [{"volume_id": "v1", "name": "srv", "size_gb": 2}],
            "require_ssh": False}
BOOT = NS(id="tb", properties={tags.SHA256: "ab" * 32})


def statuses(v):
    return {c.name: c.status for c in v.checks}


def _closed_port() -> int:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _aim_ssh_check_at(monkeypatch, port: int) -> None:
    """The copy's address is 127.0.0.1; send its port 22 check to ``port`` instead."""
    import fedcloud_lib.migration.verify as verify_mod
    orig = verify_mod.tcp_check
    monkeypatch.setattr(verify_mod, "tcp_check", lambda a, p, t: orig(a, port, t))


def test_a_good_copy_passes_and_an_unreachable_ssh_is_skipped_not_passed(monkeypatch):
    _aim_ssh_check_at(monkeypatch, _closed_port())
    v = verify_server(FakeTarget(copy(), [vol()]), EXPECTED, boot_image=BOOT)
    assert statuses(v) == {"active": "passed", "flavor": "passed", "boot disk": "passed",
                           "metadata": "passed", "volumes": "passed", "ssh": "skipped"}
    assert v.ok and v.target_id == "t1"
    ssh = next(c for c in v.checks if c.name == "ssh")
    assert ssh.detail.startswith("not reachable (skipped): 127.0.0.1:")
    assert "ssh skipped (not reachable (skipped)" in v.summary()


def test_require_ssh_turns_the_unreachable_check_into_a_failure(monkeypatch):
    _aim_ssh_check_at(monkeypatch, _closed_port())
    v = verify_server(FakeTarget(copy(), [vol()]), {**EXPECTED, "require_ssh": True},
                      boot_image=BOOT)
    assert not v.ok and [c.name for c in v.failed] == ["ssh"]
    assert "require_ssh is set" in v.failed[0].detail


def test_a_reachable_sshd_passes(sshd, monkeypatch):
    _aim_ssh_check_at(monkeypatch, sshd.port)
    v = verify_server(FakeTarget(copy(), [vol()]), {**EXPECTED, "require_ssh": True},
                      boot_image=BOOT)
    assert statuses(v)["ssh"] == "passed" and v.ok


@pytest.mark.parametrize("server, volumes, failed", [
    (copy(status="SHUTOFF"), [vol()], ["active"]),
    (copy(metadata={"fedcloud_class": "qa"}), [vol()], ["metadata"]),
    (copy(flavor="m1.small"), [vol()], ["flavor"]),
    (copy(image="other"), [vol()], ["boot disk"]),
    (copy(), [vol(size=1)], ["volumes"]),
    (copy(), [vol(attached=False)], ["volumes"]),
    (copy(), [], ["volumes"]),
])
def test_each_difference_fails_its_check(server, volumes, failed, monkeypatch):
    import fedcloud_lib.migration.verify as verify_mod
    monkeypatch.setattr(verify_mod, "tcp_check", lambda a, p, t: (False, "unreachable"))
    v = verify_server(FakeTarget(server, volumes), EXPECTED, boot_image=BOOT)
    assert [c.name for c in v.failed] == failed and not v.ok


def test_no_copy_at_all():
    empty = FakeTarget(copy(stamped=False), [])
    v = verify_server(empty, EXPECTED)
    assert not v.ok and v.failed[0].name == "exists" and v.target_id is None
