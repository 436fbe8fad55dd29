"""Files of a run folder: written privately and atomically, listed in a sha256 manifest.

The archive never follows a symbolic link: files are opened with ``O_NOFOLLOW``, folders
are walked without following links, and anything in a run folder that is not a regular
file or a folder (a link, a fifo, a socket) is listed in a manifest computed for checking
as ``not a regular file`` so that verification reports it.
"""
from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ..errors import ArchiveError

__all__ = ["MANIFEST", "sha256_file", "compute_manifest", "manifest_text", "parse_manifest",
           "write_private", "walk_entries", "private_dir", "append_line", "NOT_REGULAR"]

MANIFEST = "MANIFEST.sha256"
NOT_REGULAR = "not-a-regular-file"


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def walk_entries(folder: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(relative name, path, lstat) of every entry below ``folder`` but folders, sorted;
    links are reported, never followed."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        names = list(filenames)
        for d in list(dirnames):
            if (base / d).is_symlink():  # os.walk lists a link to a folder as a folder
                dirnames.remove(d)
                names.append(d)
        for name in names:
            p = base / name
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            out.append((str(p.relative_to(folder)), p, st))
    yield from sorted(out, key=lambda t: t[0])


def compute_manifest(folder: Path) -> dict[str, str]:
    out = {}
    for rel, p, st in walk_entries(folder):
        if rel == MANIFEST:
            continue
        if stat.S_ISREG(st.st_mode):
            out[rel] = sha256_file(p)
        else:
            kind = "symlink" if stat.S_ISLNK(st.st_mode) else "special file"
            out[rel] = f"{NOT_REGULAR}({kind})"
    return out


def manifest_text(manifest: dict[str, str]) -> str:
    return "".join(f"{h}  {name}\n" for name, h in sorted(manifest.items()))


def parse_manifest(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        h, _, name = line.partition("  ")
        if name:
            out[name] = h
    return out


def write_private(path: Path, text: str | bytes) -> None:
    """Write a file readable by its owner only, atomically (write then rename); never
    through a link, and never leaving a half-written temporary file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def append_line(path: Path, line: str) -> None:
    """Append one line to a private file, never through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(line if line.endswith("\n") else line + "\n")


def private_dir(path: Path, create: bool = True) -> Path:
    """Make sure ``path`` is a real folder (not a link) owned by us and private (0700).

    A folder of ours that others can read or write is tightened to 0700; a link, or a
    folder someone else owns, is refused: the archive never follows links and keeps its
    files private.
    """
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise ArchiveError(f"cannot create archive folder {path}: {e.strerror or e}",
                               path=str(path)) from e
    try:
        st = os.lstat(path)
    except OSError as e:
        raise ArchiveError(f"archive folder {path}: {e.strerror or e}", path=str(path)) from e
    if stat.S_ISLNK(st.st_mode):
        raise ArchiveError(f"archive folder {path} is a symbolic link; the archive never "
                           f"follows links (point FEDCLOUD_OUTPUTS at the real folder)",
                           path=str(path))
    if not stat.S_ISDIR(st.st_mode):
        raise ArchiveError(f"{path} is in the archive's place but is not a folder", path=str(path))
    if st.st_uid != os.geteuid():
        raise ArchiveError(f"archive folder {path} belongs to uid {st.st_uid}, not to this "
                           f"user (uid {os.geteuid()}); refusing to write an audit record "
                           f"another user can change", path=str(path))
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path
