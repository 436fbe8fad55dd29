"""A copy of the site policy pointing at the local fake services."""
from __future__ import annotations

from pathlib import Path

import yaml

from fedcloud_lib.site.policy import DEFAULT_POLICY_PATH

ALICE_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1Y2lkLWFsaWNlLWtleS1mb3ItZmVkY2xvdWQtdGVz "
             "alice@laptop")
ADMIN_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHN5c2FkbWluLWtleS1mb3ItZmVkY2xvdWQtdGVzdA "
             "root@admin")


def policy_copy(tmp_path: Path, *, fasjson_url: str, smtp_port: int = 25,
                pagure_url: str = "http://127.0.0.1:9", network: str | None = "provider",
                **changes) -> Path:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    data["accounts"].update(fasjson_url=fasjson_url, auth="none")
    data["mail"].update(host="127.0.0.1", port=smtp_port, admins=["cloud-admins@example.test"],
                        **{"from": "fedcloud@example.test"})
    data["tickets"] = {"pagure_url": pagure_url, "repo": "fedora-infrastructure",
                       "token_env": "PAGURE_API_TOKEN"}
    data["network"]["network"] = network
    for dotted, value in changes.items():
        node = data
        *path, last = dotted.split("__")
        for p in path:
            node = node[p]
        node[last] = value
    out = tmp_path / "policy.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def standard_users(fas) -> None:
    """alice (packager, key), bob (no key), carol (no allowed group), root-admin (admin)."""
    fas.add("alice", sshpubkeys=[ALICE_KEY], groups=["packager", "qa"], human_name="Alice Liddell")
    fas.add("bob", sshpubkeys=[], groups=["packager"])
    fas.add("carol", sshpubkeys=[ALICE_KEY.replace("alice", "carol")], groups=["designers"])
    fas.add("sysop", sshpubkeys=[ADMIN_KEY], groups=["sysadmin-cloud"])
