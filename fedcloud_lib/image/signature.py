"""OpenPGP signatures, checked with ``gpgv`` (Debian's gpgv) against a keyring of the
site policy (``images.keyrings``).

``gpgv`` trusts every key of the keyring it is given and nothing else: no web of trust,
no ``~/.gnupg`` (it runs with a throw-away home directory).  Two forms are checked, the
forms Fedora publishes: a clearsigned text (the ``CHECKSUM`` file) — :func:`verify`
returns the signed text, so that only what the key signed is read — and a detached
signature (``.asc``/``.sig``) over a file.  A bad signature names the key that made it;
a signature by a key the keyring lacks names that key and the keyring.
"""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import CheckFailed, ConfigError, ParameterError

__all__ = ["SignatureCheck", "verify", "binary_keyring"]

GPGV = "gpgv"
GPG = "gpg"
_ARMORED_KEY = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"


@dataclass(frozen=True)
class SignatureCheck:
    """A good signature: what was signed, by which key, checked with which keyring."""

    signed: str          # what the signature covers ("CHECKSUM file ...", "image ...")
    keyring: str         # the policy's name of the keyring
    key_id: str
    fingerprint: str
    signer: str          # the key's user id

    def to_dict(self) -> dict:
        return asdict(self)


def binary_keyring(path: Path, workdir: Path) -> Path:
    """``path`` as a keyring gpgv reads (it does not read armored keys): armored public
    keys are de-armored into ``workdir``."""
    try:
        head = path.read_bytes()[:4096]
    except OSError as exc:
        raise ConfigError(f"keyring {path} cannot be read: {exc.strerror}", path=str(path)) \
            from exc
    if _ARMORED_KEY not in head:
        return path
    out = workdir / "keyring.gpg"
    r = subprocess.run([GPG, "--batch", "--homedir", str(workdir), "--dearmor", "--output",
                        str(out), str(path)], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise ConfigError(f"keyring {path} is not an OpenPGP key file: {r.stderr.strip()[:200]}",
                          path=str(path))
    return out


def _status(stdout: str) -> list[list[str]]:
    return [line[len("[GNUPG:] "):].split(" ") for line in stdout.splitlines()
            if line.startswith("[GNUPG:] ")]


def verify(signature: Path, *, keyring_name: str, keyring_path: str | Path,
           data: Path | None = None, what: str, parameter: str = "signature"
           ) -> tuple[SignatureCheck, str | None]:
    """Check ``signature`` (clearsigned when ``data`` is None, else detached over
    ``data``) with the keyring; return the check and, for a clearsigned text, the text
    the key signed.

    Raises :class:`CheckFailed` for a bad signature (naming the key) or a key the keyring
    lacks, :class:`ParameterError` when ``signature`` is no OpenPGP signature,
    :class:`ConfigError` when the keyring is missing.
    """
    kr = Path(keyring_path)
    if not kr.is_file():
        raise ConfigError(f"images.keyrings.{keyring_name}: {kr} does not exist; put the "
                          f"signing keys there (Fedora's: https://fedoraproject.org/fedora.gpg)",
                          path=str(kr))
    with tempfile.TemporaryDirectory(prefix="fedcloud-gpgv-") as tmp:
        home = Path(tmp)
        ring = binary_keyring(kr, home)
        out = home / "signed.txt"
        cmd = [GPGV, "--homedir", str(home), "--status-fd", "1", "--keyring", str(ring)]
        if data is None:
            cmd += ["--output", str(out), str(signature)]
        else:
            cmd += [str(signature), str(data)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except FileNotFoundError as exc:
            raise ConfigError("gpgv is not installed (Debian package gpgv)") from exc
        status = _status(r.stdout)
        words = {s[0]: s[1:] for s in status if s}
        if r.returncode == 0 and "GOODSIG" in words and "VALIDSIG" in words:
            good, valid = words["GOODSIG"], words["VALIDSIG"]
            check = SignatureCheck(signed=what, keyring=keyring_name, key_id=good[0],
                                   fingerprint=valid[0], signer=" ".join(good[1:]))
            text = out.read_text(encoding="utf-8", errors="replace") if data is None else None
            return check, text
    if "BADSIG" in words:
        b = words["BADSIG"]
        raise CheckFailed(f"{parameter}: BAD signature on {what}: made with key {b[0]} "
                          f"({' '.join(b[1:])}), but the signed content differs — the file "
                          f"was altered or the signature belongs to another file",
                          service="gpgv", key=b[0])
    if "NO_PUBKEY" in words or "ERRSIG" in words:
        key = (words.get("NO_PUBKEY") or words.get("ERRSIG") or ["?"])[0]
        fpr = words["ERRSIG"][6] if len(words.get("ERRSIG", [])) > 6 else key
        raise CheckFailed(f"{parameter}: {what} is signed by key {fpr}, which is not in "
                          f"keyring {keyring_name} ({kr}); refusing it", service="gpgv", key=key)
    if "NODATA" in words or "UNEXPECTED" in words:
        raise ParameterError(f"{parameter}: no OpenPGP signature found in "
                             f"{'the file' if data is None else 'the signature file'} for "
                             f"{what}", parameter=parameter)
    lines = (r.stderr or r.stdout).strip().splitlines()
    raise CheckFailed(f"{parameter}: the signature on {what} could not be verified: "
                      f"{lines[-1] if lines else 'gpgv failed'}", service="gpgv")
