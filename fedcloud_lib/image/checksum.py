"""Checksums: a bare sha256, or Fedora-style ``CHECKSUM`` files.

Fedora publishes, next to each image, a ``CHECKSUM`` file that is usually clearsigned::

    -----BEGIN PGP SIGNED MESSAGE-----
    Hash: SHA256

    # Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2: 536150016 bytes
    SHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = 6205ae0c...
    -----BEGIN PGP SIGNATURE-----
    ...

:func:`parse` reads the BSD form (``SHA256 (name) = hex``) and the GNU coreutils form
(``hex  name`` / ``hex *name``); lines of other algorithms and comments are skipped.  When
the signature is checked, only the signed text (what ``gpgv --output`` gives) is parsed.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import ParameterError

__all__ = ["SHA256", "is_sha256", "is_clearsigned", "clearsigned_body", "parse", "lookup"]

SHA256 = re.compile(r"[0-9a-f]{64}")
_BSD = re.compile(r"SHA256 \((?P<name>.+)\) = (?P<hex>[0-9A-Fa-f]{64})")
_GNU = re.compile(r"(?P<hex>[0-9A-Fa-f]{64}) [ *](?P<name>.+)")
_OTHER_BSD = re.compile(r"(?!SHA256 )[A-Z0-9-]+ \(.+\) = [0-9A-Fa-f]+")
_OTHER_GNU = re.compile(r"[0-9A-Fa-f]{32,128} [ *].+")
_BEGIN = "-----BEGIN PGP SIGNED MESSAGE-----"
_SIG = "-----BEGIN PGP SIGNATURE-----"


def is_sha256(text: str) -> bool:
    """A sha256 written as 64 hexadecimal digits (either case)."""
    return bool(SHA256.fullmatch((text or "").strip().lower()))


def is_clearsigned(text: str) -> bool:
    return text.lstrip().startswith(_BEGIN)


def clearsigned_body(text: str) -> str:
    """The text of a clearsigned message, without checking its signature (armor headers
    dropped, dash-escaping undone)."""
    lines = text.lstrip().splitlines()
    i = 1
    while i < len(lines) and lines[i].strip():  # armor headers (Hash: ...) up to a blank line
        i += 1
    body = []
    for line in lines[i + 1:]:
        if line.startswith(_SIG):
            break
        body.append(line[2:] if line.startswith("- ") else line)
    return "\n".join(body) + "\n"


def parse(text: str, *, where: str = "the CHECKSUM file") -> dict[str, str]:
    """``{file name: sha256}`` from a CHECKSUM text (clearsigned or not).

    Raises :class:`ParameterError` (parameter ``checksum``) when the text holds no sha256
    line at all, a malformed line, or two different sha256 for one name.
    """
    if is_clearsigned(text):
        text = clearsigned_body(text)
    out: dict[str, str] = {}
    bad: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _BSD.fullmatch(line) or _GNU.fullmatch(line)
        if m is None:
            if not (_OTHER_BSD.fullmatch(line) or _OTHER_GNU.fullmatch(line)):
                bad.append(f"line {n}: {line[:60]!r}")
            continue
        name, digest = m["name"].strip(), m["hex"].lower()
        if name in out and out[name] != digest:
            raise ParameterError(f"checksum: {where} gives two different sha256 for {name!r}",
                                 parameter="checksum")
        out[name] = digest
    if bad:
        raise ParameterError(f"checksum: {where} is not a CHECKSUM file (sha256sum or "
                             f"'SHA256 (name) = hex' lines): " + "; ".join(bad[:3])
                             + (f"; and {len(bad) - 3} more" if len(bad) > 3 else ""),
                             parameter="checksum")
    if not out:
        raise ParameterError(f"checksum: {where} holds no sha256 line", parameter="checksum")
    return out


def lookup(entries: Mapping[str, str], name: str, *, where: str = "the CHECKSUM file") -> str:
    """The sha256 of ``name`` (the source's file name); :class:`ParameterError` naming the
    files the CHECKSUM file does list when ``name`` is not among them."""
    digest = entries.get(name) or entries.get(name.lstrip("./"))
    if digest is None:
        listed = sorted(entries)
        raise ParameterError(
            f"checksum: {where} has no sha256 for {name!r}; it lists "
            f"{', '.join(repr(n) for n in listed[:5])}"
            + (f" and {len(listed) - 5} more" if len(listed) > 5 else ""),
            parameter="checksum", value=name[:80])
    return digest
