"""Keep secrets out of everything that is archived, logged or posted.

A :class:`Scrubber` knows a set of literal secret values and a few shapes of secrets
(private key blocks, auth tokens); :meth:`Scrubber.text` and :meth:`Scrubber.data` replace
them with :data:`MARKER`.  :func:`collect_secrets` gathers the literal values of a run:
parameters declared secret, every password / token / application-credential secret in
``clouds.yaml``, every value of the site's secret files, and the values of environment
variables whose names contain PASSWORD, TOKEN or SECRET.
"""
from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MARKER", "Scrubber", "collect_secrets"]

MARKER = "***"
# Literal values shorter than this are only scrubbed when declared secret explicitly:
# a 2-character environment value would otherwise mangle every archived file.
MIN_AMBIENT_LEN = 4
_SECRET_ENV = re.compile(r"PASSWORD|TOKEN|SECRET", re.I)
_SECRET_KEYS = re.compile(r"password|secret|token|passphrase|private_key", re.I)
_SHAPES = [
    # PEM/OpenSSH private key blocks (RSA, EC, OPENSSH, ENCRYPTED, ...)
    re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S),
    # X-Auth-Token / X-Subject-Token / X-Service-Token headers in any quoting
    re.compile(r"(?i)(x-(?:auth|subject|service)-token[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"),
    # keystone fernet tokens, wherever they appear
    re.compile(r"gAAAAA[A-Za-z0-9_\-]{40,}={0,2}"),
]


def _variants(secret: str) -> set[str]:
    """The forms a secret takes once written as JSON, HTML or a Python repr."""
    out = {secret}
    out.add(json.dumps(secret)[1:-1])
    out.add(html.escape(secret))
    out.add(html.escape(secret, quote=False))
    out.add(repr(secret)[1:-1])
    return {v for v in out if v}


class Scrubber:
    def __init__(self, secrets: Iterable[str] = (), marker: str = MARKER):
        self.marker = marker
        vals = {str(s) for s in secrets if s is not None and str(s) != "" and str(s) != marker}
        forms: set[str] = set()
        for v in vals:
            forms |= _variants(v)
        # longest first, so a secret containing another is replaced whole
        self._literals = sorted(forms, key=len, reverse=True)
        self._literal_re = (re.compile("|".join(re.escape(x) for x in self._literals))
                            if self._literals else None)

    def add(self, *secrets: str) -> "Scrubber":
        return Scrubber([*self._literals, *secrets], self.marker)

    def text(self, s: str) -> str:
        if not s:
            return s
        if self._literal_re is not None:
            s = self._literal_re.sub(self.marker, s)
        s = _SHAPES[0].sub(f"-----BEGIN PRIVATE KEY-----{self.marker}-----END PRIVATE KEY-----", s)
        s = _SHAPES[1].sub(lambda m: m.group(1) + self.marker, s)
        s = _SHAPES[2].sub(self.marker, s)
        return s

    def data(self, obj: Any) -> Any:
        """A copy of a JSON-like structure with every string scrubbed (keys too)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return type(obj)((self.text(k) if isinstance(k, str) else k, self.data(v))
                             for k, v in obj.items())
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.data(v) for v in obj)
        return obj


def _walk_secret_values(obj: Any, under_secret_key: bool = False) -> Iterable[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_secret_values(v, under_secret_key or bool(_SECRET_KEYS.search(str(k))))
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_secret_values(v, under_secret_key)
    elif under_secret_key and obj is not None and not isinstance(obj, bool):
        yield str(obj)


def _clouds_yaml_secrets() -> list[str]:
    """Every password/secret/token value of every clouds.yaml and secure.yaml entry."""
    paths = []
    if os.environ.get("OS_CLIENT_CONFIG_FILE"):
        paths.append(Path(os.environ["OS_CLIENT_CONFIG_FILE"]))
    for d in (Path.cwd(), Path.home() / ".config/openstack", Path("/etc/openstack")):
        paths += [d / "clouds.yaml", d / "secure.yaml"]
    out: list[str] = []
    for p in paths:
        try:
            data = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError):
            continue
        out += list(_walk_secret_values(data))
    return out


def _secret_files(directory: Path) -> list[str]:
    out: list[str] = []
    try:
        files = sorted(directory.glob("*.y*ml"))
    except OSError:
        return out
    for p in files:
        try:
            data = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError):
            continue
        # every leaf value of a secrets file is a secret
        out += list(_walk_secret_values(data, under_secret_key=True))
    return out


def collect_secrets(declared: Iterable[str] = (), secrets_dir: Path | None = None,
                    environ: dict | None = None) -> list[str]:
    """Literal secret values for a run (see the module docstring)."""
    env = os.environ if environ is None else environ
    ambient = [v for k, v in env.items() if _SECRET_ENV.search(k)]
    ambient += _clouds_yaml_secrets()
    if secrets_dir is not None:
        ambient += _secret_files(secrets_dir)
    ambient = [a for a in ambient if len(a) >= MIN_AMBIENT_LEN]
    return [str(d) for d in declared if d not in (None, "")] + ambient
