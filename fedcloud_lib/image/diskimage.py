"""Is it a disk image, and one the profile allows?  ``qemu-img info --output=json``
(Debian's qemu-utils) on the verified file.

Refused: what qemu-img cannot read; a format the profile does not list; a qcow2 with a
backing file or an external data file (they would make Glance or Nova read files named by
the image — a known attack); an encrypted image; a virtual size beyond the profile's
``min_disk`` (the smallest disk an instance of it gets).  qemu-img calls any byte string
"raw", so a raw file must also look like a disk: a partition table (MBR or GPT) or a
filesystem at the start.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ConfigError, ParameterError

__all__ = ["DiskImage", "inspect", "check", "looks_like_disk", "GiB"]

GiB = 1 << 30
QEMU_IMG = "qemu-img"
# (offset, magic): what a raw disk or filesystem image starts with
_MAGIC = (
    (510, b"\x55\xaa"),                 # MBR boot signature (also the protective MBR of GPT)
    (512, b"EFI PART"),                 # GPT header, 512-byte sectors
    (4096, b"EFI PART"),                # GPT header, 4 KiB sectors
    (1080, b"\x53\xef"),                # ext2/3/4 superblock magic
    (0, b"XFSB"),                       # XFS
    (0x10040, b"_BHRfS_M"),             # btrfs
    (0x8001, b"CD001"),                 # ISO 9660
)


@dataclass(frozen=True)
class DiskImage:
    """What qemu-img says about a file."""

    format: str
    virtual_size: int
    actual_size: int | None
    backing_file: str | None
    data_file: str | None
    encrypted: bool

    def to_dict(self) -> dict:
        return asdict(self)


def inspect(path: Path) -> DiskImage:
    """``qemu-img info`` of ``path``; :class:`ParameterError` when it is no disk image."""
    try:
        r = subprocess.run([QEMU_IMG, "info", "--output=json", "--", str(path)],
                           capture_output=True, text=True, timeout=120)
    except FileNotFoundError as exc:
        raise ConfigError("qemu-img is not installed (Debian package qemu-utils)") from exc
    if r.returncode != 0:
        raise ParameterError(f"source: not a disk image (qemu-img: "
                             f"{r.stderr.strip()[:200]})", parameter="source")
    try:
        info = json.loads(r.stdout)
    except ValueError as exc:
        raise ParameterError(f"source: qemu-img could not describe the file: {exc}",
                             parameter="source") from exc
    specific = (info.get("format-specific") or {}).get("data") or {}
    return DiskImage(format=info.get("format", "?"),
                     virtual_size=int(info.get("virtual-size", 0)),
                     actual_size=info.get("actual-size"),
                     backing_file=info.get("backing-filename") or info.get("full-backing-filename"),
                     data_file=specific.get("data-file"),
                     encrypted=bool(info.get("encrypted") or specific.get("encrypt")))


def looks_like_disk(path: Path) -> bool:
    """A partition table or a filesystem at the start of ``path``."""
    with path.open("rb") as f:
        for offset, magic in _MAGIC:
            f.seek(offset)
            if f.read(len(magic)) == magic:
                return True
    return False


def check(img: DiskImage, path: Path, *, formats: tuple[str, ...] | list[str],
          min_disk_gb: int, profile: str) -> None:
    """Refuse what the profile cannot take (:class:`ParameterError`, parameter source)."""
    if img.format == "raw" and not looks_like_disk(path):
        raise ParameterError("source: not a disk image: qemu-img sees only raw bytes, with no "
                             "partition table and no filesystem", parameter="source")
    problems = []
    if img.format not in formats:
        problems.append(f"its format is {img.format}; profile {profile} takes "
                        f"{', '.join(formats)}")
    if img.backing_file:
        problems.append(f"it has a backing file ({img.backing_file[:80]!r}); only "
                        f"self-contained images are taken")
    if img.data_file:
        problems.append(f"it has an external data file ({img.data_file[:80]!r})")
    if img.encrypted:
        problems.append("it is encrypted")
    if img.virtual_size <= 0:
        problems.append("its virtual size is 0")
    elif img.virtual_size > min_disk_gb * GiB:
        problems.append(f"its virtual size {img.virtual_size / GiB:.2f} GiB exceeds the "
                        f"profile's min_disk ({min_disk_gb} GiB)")
    if problems:
        raise ParameterError("source: refused: " + "; ".join(problems),
                             problems=[f"source: {p}" for p in problems], parameter="source")
