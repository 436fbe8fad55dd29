"""Where things are: the runbooks, the archive, the kernel, the site's secret files.

Settings come from the environment first, then from a settings file
(``FEDCLOUD_SETTINGS``, else ``/etc/fedcloud/settings.yaml`` if present), then defaults:

=====================  ========================  ===========================================
setting                environment variable      default
=====================  ========================  ===========================================
outputs                ``FEDCLOUD_OUTPUTS``      ``<checkout>/outputs``
runbooks               ``FEDCLOUD_RUNBOOKS``     ``<checkout>/runbooks``
kernel                 ``FEDCLOUD_KERNEL``       ``fedcloud`` (``python3`` if not registered)
secrets_dir            ``FEDCLOUD_SECRETS_DIR``  ``/etc/fedcloud/secrets``
head_log               ``FEDCLOUD_HEAD_LOG``     none: an append-only file (e.g. on the log
                                                 host) where every run adds the archive's
                                                 new chain head; ``runs verify`` checks it
=====================  ========================  ===========================================
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import ConfigError

__all__ = ["Settings", "settings", "CHECKOUT"]

CHECKOUT = Path(__file__).resolve().parent.parent
_DEFAULT_SETTINGS_FILE = Path("/etc/fedcloud/settings.yaml")
_KEYS = {"outputs", "runbooks", "kernel", "secrets_dir", "head_log"}


@dataclass(frozen=True)
class Settings:
    """Where things are (see the module docstring for each setting and its variable)."""
    outputs: Path
    runbooks: Path
    kernel_setting: str | None
    secrets_dir: Path
    head_log: Path | None = None

    @property
    def kernel(self) -> str:
        """The kernel runs use (looked up only when asked: `runs list` needs none)."""
        return self.kernel_setting or _default_kernel()


def _file_settings() -> dict:
    path = os.environ.get("FEDCLOUD_SETTINGS")
    p = Path(path) if path else _DEFAULT_SETTINGS_FILE
    if not p.exists():
        if path:
            raise ConfigError(f"FEDCLOUD_SETTINGS names {p}, which does not exist", path=str(p))
        return {}
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"settings file {p} is not valid YAML: {e}", path=str(p)) from e
    if not isinstance(data, dict):
        raise ConfigError(f"settings file {p} must be a mapping of setting: value", path=str(p))
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(
            f"settings file {p}: unknown setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(_KEYS))}", path=str(p))
    return data


def _default_kernel() -> str:
    from jupyter_client.kernelspec import find_kernel_specs

    return "fedcloud" if "fedcloud" in find_kernel_specs() else "python3"


def settings() -> Settings:
    """The settings in force now (read afresh on each call: they are cheap)."""
    f = _file_settings()
    env = os.environ.get
    kernel = env("FEDCLOUD_KERNEL") or f.get("kernel") or None
    head_log = env("FEDCLOUD_HEAD_LOG") or f.get("head_log")
    return Settings(
        outputs=Path(env("FEDCLOUD_OUTPUTS") or f.get("outputs") or CHECKOUT / "outputs").expanduser(),
        runbooks=Path(env("FEDCLOUD_RUNBOOKS") or f.get("runbooks") or CHECKOUT / "runbooks").expanduser(),
        kernel_setting=kernel,
        secrets_dir=Path(env("FEDCLOUD_SECRETS_DIR") or f.get("secrets_dir") or "/etc/fedcloud/secrets"),
        head_log=Path(head_log).expanduser() if head_log else None,
    )
