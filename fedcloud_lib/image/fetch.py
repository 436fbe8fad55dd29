"""Getting an image's bytes: streamed to a work file, hashed on the way, its progress
reported through :mod:`fedcloud_lib.progress`.

Nothing is held in memory: the body is read in 1 MiB chunks, each written to the work
file and fed to the hashes (sha256, plus Glance's own algorithm so that Glance's
``os_hash_value`` can be compared after the upload).  A local path is not copied: it is
hashed where it is.  A download larger than the profile allows is cut off.

Work files are named ``fedcloud-image-<sha256 prefix>.<pid>.part``; a run killed before
it removed its file leaves it behind, and the next download removes files whose process
is gone (:func:`sweep_partials`).
"""
from __future__ import annotations

import hashlib
import os
import re
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from .. import progress
from ..errors import ParameterError, ServiceError

__all__ = ["CHUNK", "MiB", "is_url", "source_name", "fetch_small", "probe", "Download",
           "download", "hash_file", "sweep_partials", "Meter", "metered"]

MiB = CHUNK = 1 << 20
TIMEOUT = (15, 120)  # connect, read (seconds)
_PART = re.compile(r"fedcloud-image-[0-9a-f]{16}\.(\d+)\.part")


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def source_name(location: str) -> str:
    """The file name of a URL or path (what a CHECKSUM file lists)."""
    if is_url(location):
        path = urllib.parse.urlsplit(location).path
        return urllib.parse.unquote(path.rsplit("/", 1)[-1])
    return Path(location).name


def _short(location: str, n: int = 120) -> str:
    return location if len(location) <= n else f"{location[:n]}... ({len(location)} chars)"


class Meter:
    """Bytes reported through :mod:`fedcloud_lib.progress` as a task counted in MiB, at
    most one line every :data:`EVERY_S` seconds (a 1 GiB transfer is a few lines, not a
    thousand outputs)."""

    EVERY_S = 2.0

    def __init__(self, task: progress.Task | None):
        self.task, self.bytes, self._mib = task, 0, 0
        self._t0 = self._last = time.monotonic()

    def update(self, n: int) -> None:
        self.bytes += n
        now = time.monotonic()
        if self.task is not None and now - self._last >= self.EVERY_S:
            self._report(now, self.bytes // MiB)

    def finish(self) -> None:
        if self.task is not None:
            self._report(time.monotonic(), -(-self.bytes // MiB))

    def _report(self, now: float, mib: int) -> None:
        if mib <= self._mib:
            return
        rate = self.bytes / max(now - self._t0, 1e-6) / 1e6
        self.task.advance(mib - self._mib, text=f"{self.bytes / MiB:.0f} MiB, {rate:.0f} MB/s")
        self._mib, self._last = mib, now


@contextmanager
def metered(total: int | None, desc: str, *, show: bool = True) -> Iterator[Meter]:
    """A byte :class:`Meter` inside a :func:`fedcloud_lib.progress.task` (or a silent one)."""
    if not show:
        yield Meter(None)
        return
    with progress.task(-(-total // MiB) if total else None, desc) as t:
        m = Meter(t)
        yield m
        m.finish()


def _get(url: str, parameter: str, what: str) -> requests.Response:
    try:
        r = requests.get(url, stream=True, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise ParameterError(f"{parameter}: {what} {_short(url)} is unreachable: "
                             f"{type(exc).__name__}: {str(exc)[:200]}",
                             parameter=parameter) from exc
    if r.status_code >= 400:
        r.close()
        raise ParameterError(f"{parameter}: {what} {_short(url)} answered HTTP "
                             f"{r.status_code} {r.reason}", parameter=parameter)
    return r


def fetch_small(location: str, dest: Path, *, parameter: str, what: str,
                limit: int = 1 << 20) -> Path:
    """Copy a small file (CHECKSUM, signature) from a URL or path to ``dest``; refuse one
    larger than ``limit``."""
    if is_url(location):
        with _get(location, parameter, what) as r:
            data = bytearray()
            for chunk in r.iter_content(64 * 1024):
                data += chunk
                if len(data) > limit:
                    raise ParameterError(f"{parameter}: {what} {_short(location)} is larger "
                                         f"than {limit // 1024} KiB; not a {what}",
                                         parameter=parameter)
    else:
        p = Path(location)
        if not p.is_file():
            raise ParameterError(f"{parameter}: {what} {_short(location)} is not a file",
                                 parameter=parameter)
        if p.stat().st_size > limit:
            raise ParameterError(f"{parameter}: {what} {_short(location)} is larger than "
                                 f"{limit // 1024} KiB; not a {what}", parameter=parameter)
        data = p.read_bytes()
    dest.write_bytes(bytes(data))
    return dest


def probe(location: str, *, parameter: str = "source", what: str = "the image") -> int | None:
    """Is ``location`` there?  Its size in bytes when known (no body is read)."""
    if not is_url(location):
        p = Path(location)
        if not p.is_file():
            raise ParameterError(f"{parameter}: {what} {_short(location)} is not a file",
                                 parameter=parameter)
        return p.stat().st_size
    try:
        r = requests.head(location, allow_redirects=True, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise ParameterError(f"{parameter}: {what} {_short(location)} is unreachable: "
                             f"{type(exc).__name__}: {str(exc)[:200]}",
                             parameter=parameter) from exc
    if r.status_code in (405, 501):  # no HEAD here: ask for the body, read none of it
        with _get(location, parameter, what) as g:
            r = g
    if r.status_code >= 400:
        raise ParameterError(f"{parameter}: {what} {_short(location)} answered HTTP "
                             f"{r.status_code} {r.reason}", parameter=parameter)
    size = r.headers.get("Content-Length")
    return int(size) if size and size.isdigit() else None


@dataclass(frozen=True)
class Download:
    """The verified-to-be bytes on local disk, with their digests."""

    path: Path
    size: int
    digests: dict[str, str] = field(default_factory=dict)  # algorithm -> hex
    owned: bool = True     # a work file (removed afterwards), not the operator's own file
    seconds: float = 0.0

    @property
    def sha256(self) -> str:
        return self.digests["sha256"]

    def remove(self) -> None:
        if self.owned:
            self.path.unlink(missing_ok=True)


def _hashers(algos: Iterable[str]) -> dict[str, "hashlib._Hash"]:
    return {a: hashlib.new(a) for a in dict.fromkeys(["sha256", *algos])}


def sweep_partials(work_dir: Path) -> list[Path]:
    """Remove work files of downloads whose process is gone; return them."""
    gone = []
    for p in Path(work_dir).glob("fedcloud-image-*.part"):
        m = _PART.fullmatch(p.name)
        if m and not psutil.pid_exists(int(m[1])):
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def hash_file(path: Path, algos: Iterable[str] = (), *, show: bool = True,
              desc: str = "hash") -> dict[str, str]:
    """Digests of a file, read in chunks (constant memory)."""
    hashers = _hashers(algos)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = path.stat().st_size
    with metered(size, desc, show=show) as meter, path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            for h in hashers.values():
                h.update(view[:n])
            meter.update(n)
    return {a: h.hexdigest() for a, h in hashers.items()}


def download(location: str, work_dir: str | Path, *, sha256: str, algos: Iterable[str] = (),
             max_bytes: int, show: bool = True) -> Download:
    """Stream ``location`` into a work file (or hash a local path in place).

    Raises :class:`ParameterError` for an unreachable URL, a missing file or a body
    larger than ``max_bytes``; :class:`ServiceError` when a download breaks off.  The
    digests are returned, not compared: comparing is the caller's check.
    """
    t0 = time.monotonic()
    name = source_name(location)
    if not is_url(location):
        p = Path(location)
        if not p.is_file():
            raise ParameterError(f"source: {_short(location)} is not a file", parameter="source")
        size = p.stat().st_size
        if size > max_bytes:
            raise ParameterError(f"source: {_short(location)} is {size} bytes, more than the "
                                 f"profile's min_disk allows ({max_bytes})", parameter="source")
        digests = hash_file(p, algos, show=show, desc=f"verify {name}")
        return Download(p, size, digests, owned=False, seconds=time.monotonic() - t0)

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    sweep_partials(work)
    path = work / f"fedcloud-image-{sha256[:16]}.{os.getpid()}.part"
    hashers = _hashers(algos)
    size = 0
    ok = False
    with _get(location, "source", "the image") as r:
        total = r.headers.get("Content-Length")
        total_n = int(total) if total and total.isdigit() else None
        if total_n is not None and total_n > max_bytes:
            raise ParameterError(f"source: {_short(location)} is {total_n} bytes, more than "
                                 f"the profile's min_disk allows ({max_bytes})",
                                 parameter="source")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            with metered(total_n, f"download {name}", show=show) as meter, \
                    os.fdopen(fd, "wb", buffering=0) as out:
                for chunk in r.iter_content(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ParameterError(
                            f"source: {_short(location)} goes on beyond {max_bytes} bytes, "
                            f"more than the profile's min_disk allows; download cut off",
                            parameter="source")
                    out.write(chunk)
                    for h in hashers.values():
                        h.update(chunk)
                    meter.update(len(chunk))
            if total_n is not None and size != total_n:
                raise ServiceError(f"source: the download of {_short(location)} broke off "
                                   f"after {size} of {total_n} bytes; try again")
            ok = True
        except requests.RequestException as exc:
            raise ServiceError(f"source: the download of {_short(location)} broke off after "
                               f"{size} bytes ({type(exc).__name__}); try again") from exc
        finally:
            if not ok:
                path.unlink(missing_ok=True)
    return Download(path, size, {a: h.hexdigest() for a, h in hashers.items()}, owned=True,
                    seconds=time.monotonic() - t0)
