"""What an image profile means: its cloud-init user-data and its SOP record.

The SOP record is what the archive keeps about every image a run makes: what is in it,
what happens at first boot, whose ssh keys reach root, how it is verified and
boot-tested, and its update policy.
"""
from __future__ import annotations

import base64
import hashlib
from typing import Any

import yaml

from ..site.policy import ImageProfile, Policy

__all__ = ["root_keys", "user_data", "key_fingerprint", "sop_record", "fill"]


def fill(text: str, version: str) -> str:
    """``text`` with ``{version}`` and ``{major}`` (leading number of the version) filled in."""
    major = ""
    for ch in version:
        if not ch.isdigit():
            break
        major += ch
    return text.format(version=version, major=major or version)


def root_keys(policy: Policy, profile: ImageProfile) -> list[tuple[str, str]]:
    """``(group, public key)`` of the admin groups whose keys go to root."""
    by_name = {k.name: k.key for k in policy.root_keys}
    return [(g, by_name[g]) for g in profile.root_key_groups if g in by_name]


def key_fingerprint(key: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line."""
    parts = key.split()
    try:
        blob = base64.b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
    except (IndexError, ValueError):
        return "?"
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def user_data(policy: Policy, profile: ImageProfile) -> str:
    """cloud-init user-data for instances of ``profile``: packages and services installed
    and enabled at first boot, the /srv volume mounted (by label ``srv``), root's keys
    (only the profile's admin groups), root password login off."""
    fb = profile.first_boot
    cfg: dict[str, Any] = {
        "disable_root": True,
        "ssh_pwauth": False,
        "write_files": [{
            "path": "/root/.ssh/authorized_keys", "owner": "root:root", "permissions": "0600",
            "content": "".join(f"{k}\n" for _, k in root_keys(policy, profile)),
        }],
    }
    if fb.packages:
        cfg["packages"] = list(fb.packages)
    runcmd = [["systemctl", "enable", "--now", s] for s in fb.services] + list(fb.runcmd)
    if runcmd:
        cfg["runcmd"] = runcmd
    if fb.srv_volume:
        cfg["mounts"] = [["LABEL=srv", "/srv", "ext4", "defaults,nofail", "0", "2"]]
    head = f"#cloud-config\n# fedcloud image profile {profile.name}\n"
    return head + yaml.safe_dump(cfg, sort_keys=False, width=4096)


def sop_record(policy: Policy, profile: ImageProfile, version: str = "") -> dict[str, Any]:
    """The profile as the archive documents it (contents, first boot, key policy, update
    policy, verification, boot test, Glance properties)."""
    images = policy.images
    props = {k: (fill(v, version) if isinstance(v, str) and version else v)
             for k, v in profile.properties.items()}
    return {
        "profile": profile.name,
        "description": profile.description,
        "image_name": profile.image_name,
        "contents": profile.contents,
        "first_boot": {"packages": list(profile.first_boot.packages),
                       "services": list(profile.first_boot.services),
                       "srv_volume": profile.first_boot.srv_volume,
                       "runcmd": list(profile.first_boot.runcmd)},
        "user_data": user_data(policy, profile),
        "ssh_key_policy": {
            "root": [{"group": g, "fingerprint": key_fingerprint(k),
                      "comment": " ".join(k.split()[2:])}
                     for g, k in root_keys(policy, profile)],
            "default_user": "the requester's keys from the account system "
                            "(instance-for-ticket); none baked into the image",
            "root_password_login": False,
        },
        "update_policy": {"keep": profile.update.keep, "hidden_days": profile.update.hidden_days,
                          "rule": profile.update.describe()},
        "verification": {
            "checksum": "sha256, from the run's checksum parameter or CHECKSUM file",
            "signature": ("required" if profile.require_signature else "checked when given"),
            "keyring": profile.keyring,
            "keyring_path": images.keyrings.get(profile.keyring) if profile.keyring else None,
            "formats": list(profile.formats),
        },
        "boot_test": {"flavors": list(profile.boot_flavors),
                      "login_marker": images.boot_test.login_marker,
                      "timeout_s": images.boot_test.timeout_s},
        "glance_properties": {**props, "min_disk": profile.min_disk_gb,
                              "min_ram": profile.min_ram_mb},
        "visibility": profile.visibility,
        "instance_lifetime_h": profile.instance_lifetime_h,
        "default_source": profile.default_source,
    }
