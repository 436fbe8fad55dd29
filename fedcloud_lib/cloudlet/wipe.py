"""Back to "packages installed, nothing configured" (for install-from-nothing tests)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable

import yaml

from .content import CLOUDS_YAML
from .programs import PHASES, match
from .settings import SECRETS_DIR
from .supervisor import PROGRAMS_CONF, parallel, port_open, status, stop, supervisord_running

__all__ = ["wipe", "DATABASES", "WIPE_PATHS"]

DATABASES = ("keystone", "glance", "placement", "nova_api", "nova", "nova_cell0", "neutron", "cinder")
WIPE_PATHS = (
    "/var/lib/fedcloud/done", "/var/lib/fedcloud/runner", str(PROGRAMS_CONF),
    "/etc/keystone/fernet-keys", "/etc/keystone/credential-keys",
    "/var/lib/glance/images", "/var/lib/cinder/fedcloud-fake", "/var/lib/rabbitmq/mnesia",
    "/var/lib/nova/instances",
)


def wipe(cloudlet: str = "testing", out: Callable[[str], None] = print) -> int:
    """Back to 'packages installed, nothing configured' (for install-from-nothing tests):
    stop the services (before the databases: DROP DATABASE waits on their connections),
    drop the OpenStack databases, remove state, keys, images, the programs file, the
    secrets file and fedcloud's clouds.yaml entries.  Packages stay."""
    if supervisord_running():
        known = {p.name for p in status()}
        for _, progs, _ in reversed(PHASES[1:]):
            names = [n for pat in progs for n in sorted(known) if match(pat, n)]
            if names:
                parallel("stop", names)
        if "mariadb" in known and port_open(3306):
            drop = " ".join(f"DROP DATABASE IF EXISTS {d};" for d in DATABASES)
            subprocess.run(["mysql", "-e", drop], check=False, timeout=120)
            out("dropped the OpenStack databases")
        stop(out=out)
    for p in WIPE_PATHS:
        path = Path(p)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    (SECRETS_DIR / f"{cloudlet}.yaml").unlink(missing_ok=True)
    if CLOUDS_YAML.exists():
        data = yaml.safe_load(CLOUDS_YAML.read_text()) or {}
        clouds = {k: v for k, v in (data.get("clouds") or {}).items() if not k.startswith("fedcloud-")}
        if clouds:
            CLOUDS_YAML.write_text(yaml.safe_dump({**data, "clouds": clouds}))
        else:
            CLOUDS_YAML.unlink()
    out("wiped: packages remain; run the cloudlet-install runbook to install again")
    return 0
