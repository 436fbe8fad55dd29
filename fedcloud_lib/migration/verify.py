"""migrate-instances: verify a migrated server against what the plan expected.

Checks, each ``passed``, ``failed`` or ``skipped`` (said so, never counted as passed):

* the server is ACTIVE, with the planned flavor;
* its boot disk is the transferred image (sha256 recorded) or the mapped image;
* its metadata equals the source's (the migration's own stamps aside);
* every source volume has its copy, of the same size, attached to it;
* an ssh server answers on tcp port 22 of its address (its banner is read) — where the
  target is reachable from here.  When it
  is not (no route, nothing listening: a test cloud whose networks lead nowhere), the check
  is ``skipped`` with the reason, unless ``require_ssh`` makes it a failure.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from . import tags
from .facts import flavor_name

__all__ = ["Check", "Verification", "tcp_check", "server_addresses", "verify_server"]


@dataclass(frozen=True)
class Check:
    """One verification check."""

    name: str
    status: str  # passed | failed | skipped
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        """The check as JSON."""
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Verification:
    """Every check of one migrated server."""

    server: str
    target_id: str | None
    checks: tuple[Check, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No check failed (skipped ones are not failures, and not passes either)."""
        return not self.failed

    @property
    def failed(self) -> tuple[Check, ...]:
        """The checks that failed."""
        return tuple(c for c in self.checks if c.status == "failed")

    def summary(self) -> str:
        """One line: each check and its status."""
        return "; ".join(f"{c.name} {c.status}" + (f" ({c.detail})" if c.status != "passed"
                                                    else "") for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """The verification as JSON."""
        return {"server": self.server, "target_id": self.target_id, "ok": self.ok,
                "checks": [c.to_dict() for c in self.checks]}


def tcp_check(address: str, port: int = 22, timeout: float = 3.0) -> tuple[bool, str]:
    """Whether an ssh server answers on ``address:port``: the connection is accepted and
    the server identifies itself (``SSH-...``), as sshd does first thing.  A bare accepted
    connection is not enough (a proxy or firewall may accept anything)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            banner = sock.recv(256)
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return False, f"{address}:{port} {reason}"
    if not banner.startswith(b"SSH-"):
        return False, f"{address}:{port} accepted the connection but sent no ssh banner"
    line = banner.split(b"\n", 1)[0].strip().decode("ascii", "replace")[:60]
    return True, f"{address}:{port} answers: {line}"


def server_addresses(server: Any) -> list[str]:
    """A server's addresses, floating ones first, then fixed IPv4, then the rest."""
    floating, fixed, other = [], [], []
    for addrs in (server.addresses or {}).values():
        for a in addrs:
            addr = a.get("addr")
            if not addr:
                continue
            if a.get("OS-EXT-IPS:type") == "floating":
                floating.append(addr)
            elif a.get("version", 4) == 4:
                fixed.append(addr)
            else:
                other.append(addr)
    return floating + fixed + other


def _image_id(server: Any) -> str | None:
    img = server.image
    return img.get("id") if isinstance(img, dict) else getattr(img, "id", None)


def verify_server(target: Any, expected: dict[str, Any], *, boot_image: Any | None = None,
                  tcp_timeout: float = 3.0) -> Verification:
    """Check the target server migrated from ``expected["source_id"]`` (the inputs of the
    plan's verification step); reads only.  ``boot_image`` is the transferred boot image
    (None when the server boots from a mapped image)."""
    sid = expected["source_id"]
    found = [s for s in tags.target_servers(target, sid) if s.status != "ERROR"]
    if not found:
        return Verification(expected["name"], None,
                            (Check("exists", "failed", "no server migrated from "
                                                       f"{sid} in the target"),))
    server = target.compute.get_server(found[0].id)
    checks = [Check("active", "passed" if server.status == "ACTIVE" else "failed",
                    f"status {server.status}")]
    want_flavor = expected.get("flavor")
    have_flavor = flavor_name(server)
    if want_flavor:
        checks.append(Check("flavor", "passed" if have_flavor == want_flavor else "failed",
                            f"{have_flavor}" + ("" if have_flavor == want_flavor
                                                else f", expected {want_flavor}")))
    if boot_image is not None:
        sha = tags.props(boot_image).get(tags.SHA256)
        ok = _image_id(server) == boot_image.id and bool(sha)
        checks.append(Check("boot disk", "passed" if ok else "failed",
                            f"image {boot_image.id}, sha256 {str(sha)[:12]}" if ok else
                            f"server image {_image_id(server)}, transferred {boot_image.id}"))
    meta = {k: v for k, v in (server.metadata or {}).items() if k not in tags.STAMPS}
    want = dict(expected.get("metadata") or {})
    if meta == want:
        checks.append(Check("metadata", "passed", f"{len(want)} items equal"))
    else:
        diff = sorted(k for k in set(meta) | set(want) if meta.get(k) != want.get(k))
        checks.append(Check("metadata", "failed", "differs: " + ", ".join(diff[:10])))
    vols = expected.get("volumes") or []
    if vols:
        copies = tags.target_volumes(target, [v["volume_id"] for v in vols])
        bad = []
        for v in vols:
            c = copies.get(v["volume_id"])
            if c is None:
                bad.append(f"{v['name'] or v['volume_id']}: no copy")
                continue
            c = target.block_storage.get_volume(c.id)
            attached = server.id in {a.get("server_id") for a in c.attachments or []}
            if c.size != v["size_gb"] or not attached:
                bad.append(f"{v['name'] or v['volume_id']}: {c.size} GiB (source "
                           f"{v['size_gb']}), {'attached' if attached else 'not attached'}")
        checks.append(Check("volumes", "failed" if bad else "passed",
                            "; ".join(bad) if bad else
                            f"{len(vols)} attached, sizes equal"))
    addrs = server_addresses(server)
    if not addrs:
        ok, why = False, "the server has no address"
    else:
        ok, why = tcp_check(addrs[0], 22, tcp_timeout)
    if ok:
        checks.append(Check("ssh", "passed", why))
    elif expected.get("require_ssh"):
        checks.append(Check("ssh", "failed", f"not reachable: {why}; require_ssh is set"))
    else:
        checks.append(Check("ssh", "skipped", f"not reachable (skipped): {why}"))
    return Verification(expected["name"], server.id, tuple(checks))
