"""Files of a run folder: written privately and atomically, listed in a sha256 manifest."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["MANIFEST", "sha256_file", "compute_manifest", "manifest_text", "parse_manifest",
           "write_private"]

MANIFEST = "MANIFEST.sha256"


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compute_manifest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}


def manifest_text(manifest: dict[str, str]) -> str:
    return "".join(f"{h}  {name}\n" for name, h in sorted(manifest.items()))


def parse_manifest(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        h, _, name = line.partition("  ")
        if name:
            out[name] = h
    return out


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically (write then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
