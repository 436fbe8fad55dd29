"""Generated passwords: a root-only file, kept across installs, never weakened."""
from __future__ import annotations

import stat

import pytest
import yaml

from fedcloud_lib.cloudlet.secrets import ensure_secrets, load_secrets, secret_keys
from fedcloud_lib.errors import ConfigError

pytestmark = pytest.mark.unit


def test_first_install_generates_every_key_root_only(tmp_path):
    path = tmp_path / "secrets" / "testing.yaml"
    added = ensure_secrets(path)
    assert sorted(added) == sorted(secret_keys())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = load_secrets(path)
    assert len(set(data.values())) == len(data)  # all different
    assert all(len(v) >= 30 and v.replace("-", "").replace("_", "").isalnum() for v in data.values())


def test_existing_passwords_are_kept_and_missing_ones_added(tmp_path):
    path = tmp_path / "testing.yaml"
    ensure_secrets(path)
    before = load_secrets(path)
    data = dict(before)
    del data["keystone_nova"]
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    assert ensure_secrets(path) == ["keystone_nova"]
    after = load_secrets(path)
    assert {k: v for k, v in after.items() if k != "keystone_nova"} == data
    assert after["keystone_nova"] != before["keystone_nova"]
    assert ensure_secrets(path) == []


def test_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "testing.yaml"
    ensure_secrets(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secrets(path)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="cloudlet-install"):
        load_secrets(tmp_path / "nope.yaml")
