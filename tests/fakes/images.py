"""Real small disk images, CHECKSUM files, a throw-away OpenPGP key and a file server on
loopback, for the image-create tests.

* :func:`make_qcow2` / :func:`make_raw`: a few MiB of random data behind a partition-table
  signature, written with ``qemu-img convert`` (Debian's qemu-utils), each call different;
* :func:`write_checksum`: a Fedora-style CHECKSUM file (``SHA256 (name) = hex``);
* :class:`ThrowawayKey`: an ed25519 key in its own ``GNUPGHOME`` under the test's tmp
  directory; clearsigns and detach-signs files, exports its public keyring;
* :class:`FileServer`: stdlib ``http.server`` in a thread serving a directory on
  127.0.0.1 (ephemeral port).
"""
from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MiB = 1 << 20


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def make_raw(path: Path, size_mb: int = 8, data_mb: int = 2) -> Path:
    """A raw disk: an MBR boot signature, then ``data_mb`` MiB of random data."""
    with Path(path).open("wb") as f:
        head = bytearray(os.urandom(512))
        head[510:512] = b"\x55\xaa"
        f.write(head)
        f.write(os.urandom(data_mb * MiB - 512))
        f.truncate(size_mb * MiB)
    return Path(path)


def make_qcow2(path: Path, size_mb: int = 64, data_mb: int = 2) -> Path:
    """A qcow2 image of ``size_mb`` MiB virtual size holding ``data_mb`` MiB random data."""
    raw = Path(str(path) + ".raw")
    make_raw(raw, size_mb, data_mb)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)],
                   check=True, capture_output=True)
    raw.unlink()
    return Path(path)


def write_checksum(path: Path, files: list[Path], *, extra: dict[str, str] | None = None) -> Path:
    """A Fedora-style CHECKSUM file for ``files`` (plus ``extra`` name: sha256 lines)."""
    lines = []
    for f in files:
        lines.append(f"# {f.name}: {f.stat().st_size} bytes")
        lines.append(f"SHA256 ({f.name}) = {sha256(f)}")
    for name, digest in (extra or {}).items():
        lines.append(f"SHA256 ({name}) = {digest}")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


class ThrowawayKey:
    """An OpenPGP signing key that lives in ``home`` (deleted with the test's tmp)."""

    def __init__(self, home: Path, uid: str = "fedcloud test signer <signer@example.test>"):
        self.home = Path(home)
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.uid = uid
        self._gpg("--quick-gen-key", uid, "ed25519", "sign", "1d")
        out = self._gpg("--list-keys", "--with-colons").stdout
        self.fingerprint = next(line.split(":")[9] for line in out.splitlines()
                                if line.startswith("fpr:"))

    def _gpg(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["gpg", "--batch", "--homedir", str(self.home), "--passphrase",
                               "", "--pinentry-mode", "loopback", *args], check=True,
                              capture_output=True, text=True)

    def keyring(self, path: Path, *, armor: bool = False) -> Path:
        """The public key as a keyring file (binary, or armored)."""
        self._gpg("--yes", *(["--armor"] if armor else []), "--output", str(path), "--export")
        return Path(path)

    def clearsign(self, path: Path, out: Path | None = None) -> Path:
        out = out or Path(str(path) + ".asc")
        self._gpg("--yes", "--output", str(out), "--clearsign", str(path))
        return out

    def detach_sign(self, path: Path, out: Path | None = None) -> Path:
        out = out or Path(str(path) + ".sig")
        self._gpg("--yes", "--output", str(out), "--detach-sign", str(path))
        return out

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"],
                       capture_output=True)


class FileServer:
    """Serve ``root`` over HTTP on 127.0.0.1 (ephemeral port), in a thread."""

    def __init__(self, root: Path):
        handler = functools.partial(_Quiet, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, name: str = "") -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a: Any) -> None:
        pass
