"""clouds.yaml: three fedcloud entries merged into the file, root only; standard names."""
from __future__ import annotations

import stat

import pytest
import yaml

from fedcloud_lib.cloudlet import content
from fedcloud_lib.cloudlet import settings as settings_mod
from fedcloud_lib.cloudlet.secrets import ensure_secrets, load_secrets
from fedcloud_lib.cloudlet.settings import settings_from_parameters

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setattr(settings_mod, "SECRETS_DIR", tmp_path / "secrets")
    s = settings_from_parameters(cloudlet="testing", hosts=[
        {"name": "vm", "address": "localhost", "roles": ["controller", "compute"]}])
    ensure_secrets(s.secrets_file)
    return s


def test_clouds_yaml_entries_and_mode(settings, tmp_path):
    path = tmp_path / "openstack" / "clouds.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"clouds": {"other": {"auth": {"auth_url": "http://x"}}}}))
    assert content.write_clouds_yaml(settings, path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    clouds = yaml.safe_load(path.read_text())["clouds"]
    assert set(clouds) == {"other", "fedcloud-admin", "fedcloud-production", "fedcloud-testing"}
    sec = load_secrets(settings.secrets_file)
    assert clouds["fedcloud-admin"]["auth"]["username"] == "admin"
    assert clouds["fedcloud-admin"]["auth"]["password"] == sec["keystone_admin"]
    t = clouds["fedcloud-testing"]["auth"]
    assert (t["username"], t["project_name"], t["password"]) == ("fedcloud-testing", "testing", sec["user_testing"])
    assert t["auth_url"] == "http://127.0.0.1:5000/v3"
    # a second write changes nothing
    assert content.write_clouds_yaml(settings, path) is False


def test_standard_names_other_runbooks_rely_on():
    assert content.FLAVORS == {"m1.tiny": (1, 512, 1), "m1.small": (1, 2048, 20),
                               "m1.medium": (2, 4096, 40), "m1.builder": (2, 5120, 50)}
    assert (content.TEST_IMAGE, content.PROVIDER_NETWORK, content.PROVIDER_SUBNET) == (
        "fedora-cloud-test", "provider", "provider-v4")
    assert content.PROVIDER_CIDR == "198.51.100.0/24"  # RFC 5737: never routed
    assert set(content.PROJECTS) == {"production", "testing"}


def test_test_image_is_small_and_stable(tmp_path, monkeypatch):
    monkeypatch.setattr(content, "STATE_DIR", tmp_path)
    p = content.test_image_file()
    assert p.stat().st_size == content.TEST_IMAGE_BYTES <= 512 * 1024
    first = p.read_bytes()
    p.unlink()
    assert content.test_image_file().read_bytes() == first
