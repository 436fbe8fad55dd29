"""A real OpenSSH server on loopback for the burst tests: its own host key, a client key
made here, an unprivileged port; started by the test, stopped after it."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalSshd:
    port: int
    client_key: Path
    known_hosts: Path
    user: str
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_sshd(tmp: Path) -> LocalSshd:
    """Start ``sshd -D`` on 127.0.0.1 (as the current user, root here) and wait until it
    accepts connections."""
    if not Path(SSHD).exists():
        raise RuntimeError("openssh-server is not installed (tests/apt-packages.txt)")
    tmp.mkdir(parents=True, exist_ok=True)
    host_key, client_key = tmp / "host_ed25519", tmp / "client_ed25519"
    for k in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
    auth = tmp / "authorized_keys"
    auth.write_text((tmp / "client_ed25519.pub").read_text())
    auth.chmod(0o600)
    port = free_port()
    known = tmp / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {(tmp / 'host_ed25519.pub').read_text().split(' ')[0]} "
                     f"{(tmp / 'host_ed25519.pub').read_text().split(' ')[1]}\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    log = tmp / "sshd.log"
    user = os.environ.get("USER") or "root"
    opts = {"Port": str(port), "ListenAddress": "127.0.0.1", "HostKey": str(host_key),
            "AuthorizedKeysFile": str(auth), "PidFile": str(tmp / "sshd.pid"),
            "PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no",
            "PubkeyAuthentication": "yes", "UsePAM": "no", "StrictModes": "no",
            "PermitRootLogin": "prohibit-password", "MaxStartups": "100:30:200",
            "MaxSessions": "50", "LogLevel": "ERROR", "PrintMotd": "no"}
    cmd = [SSHD, "-D", "-e", "-f", "/dev/null"] + [x for k, v in opts.items() for x in ("-o", f"{k}={v}")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("sshd did not start listening")
    return LocalSshd(port=port, client_key=client_key, known_hosts=known, user="root",
                     proc=proc, log=log)
