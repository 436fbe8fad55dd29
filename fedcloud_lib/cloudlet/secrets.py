"""The cloudlet's generated passwords: a root-only YAML file, never printed.

``/etc/fedcloud/secrets/<cloudlet>.yaml`` (0600, directory 0700).  The engine's archive
scrubber replaces every value found there, so nothing generated here can reach an
archived notebook even by accident.
"""
from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path

import yaml

from ..errors import ConfigError

SERVICES = ("glance", "placement", "nova", "neutron", "cinder")
PROJECTS = ("production", "testing")


def secret_keys() -> list[str]:
    """The names of the passwords a cloudlet's secrets file holds."""
    keys = ["keystone_admin", "rabbit_openstack"]
    keys += [f"db_{s}" for s in ("keystone",) + SERVICES]
    keys += [f"keystone_{s}" for s in SERVICES]
    keys += [f"user_{p}" for p in PROJECTS]
    return keys


def _new_password() -> str:
    return _secrets.token_urlsafe(24)  # URL/ini/shell safe: [A-Za-z0-9_-]


def ensure_secrets(path: Path) -> list[str]:
    """Create the file, or add missing keys; existing passwords are kept.

    Returns the names (not values) of the keys that were generated.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    data = load_secrets(path) if path.exists() else {}
    added = [k for k in secret_keys() if not data.get(k)]
    if added or not path.exists():
        for k in added:
            data[k] = _new_password()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# fedcloud cloudlet secrets: generated on first install; root only; never print\n")
            yaml.safe_dump(data, f, default_flow_style=False, sort_keys=True)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return added


def load_secrets(path: Path) -> dict[str, str]:
    """The cloudlet's passwords (ConfigError if the file is missing or readable by others)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"secrets file {path} is missing: run the cloudlet-install runbook first",
                          path=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"secrets file {path} is not valid YAML: fix or remove it", path=str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"secrets file {path} must be a mapping", path=str(path))
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"secrets file {path} is readable by others (mode {mode:o}): chmod 600 it",
                          path=str(path))
    return {str(k): str(v) for k, v in data.items()}
