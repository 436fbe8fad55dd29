"""The site policy's images section: the four profiles, validation, cross-field checks."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fedcloud_lib.errors import ConfigError, ParameterError
from fedcloud_lib.image import profile as iprof
from fedcloud_lib.site import policy as pol

pytestmark = pytest.mark.unit


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(pol.DEFAULT_POLICY_PATH.read_text())


def write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_site_policy_has_the_four_profiles():
    images = pol.load(pol.DEFAULT_POLICY_PATH).images
    assert set(images.profiles) == {"fedora-cloud", "infra-dev", "builder", "qa"}
    dev = images.profiles["infra-dev"]
    assert {"httpd", "mod_wsgi", "git-core"} <= set(dev.first_boot.packages)
    assert dev.first_boot.srv_volume and dev.min_disk_gb >= 5
    builder = images.profiles["builder"]
    assert builder.instance_lifetime_h == 24 and builder.boot_flavors == ("m1.builder",)
    fc = images.profiles["fedora-cloud"]
    assert fc.require_signature and fc.keyring == "fedora" and "fedora" in images.keyrings
    assert fc.properties["os_distro"] == "fedora" and "hw_disk_bus" in fc.properties
    assert "{major}" in fc.default_source and "{version}" in fc.default_checksum
    for p in images.profiles.values():
        assert p.update.keep >= 1 and p.root_key_groups and p.contents


def test_a_policy_without_images_still_loads(tmp_path, raw):
    raw.pop("images")
    assert pol.load(write(tmp_path, raw)).images is None


def test_keyring_paths_are_relative_to_the_policy_file(tmp_path, raw):
    raw["images"]["keyrings"]["fedora"] = "keys/fedora.gpg"
    p = pol.load(write(tmp_path, raw))
    assert p.images.keyrings["fedora"] == str((tmp_path / "keys" / "fedora.gpg").resolve())


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["images"]["profiles"]["qa"].update(keyring="debian"),
     "images.profiles.qa.keyring: 'debian' is not one of images.keyrings"),
    (lambda d: (d["images"]["profiles"]["qa"].pop("keyring"),
                d["images"]["profiles"]["qa"].update(require_signature=True)),
     "images.profiles.qa.require_signature: a signature can only be checked with a keyring"),
    (lambda d: d["images"]["profiles"]["builder"].update(root_key_groups=["releng"]),
     "images.profiles.builder.root_key_groups: releng not in root_keys"),
    (lambda d: d["images"]["profiles"]["qa"].update(default_source="https://x/{release}.qcow2"),
     "images.profiles.qa.default_source: only the placeholders {version} and {major}"),
    (lambda d: d["images"]["profiles"]["qa"]["properties"].update(os_version="{arch}"),
     "images.profiles.qa.properties.os_version: only the placeholders"),
    (lambda d: d["images"]["profiles"]["qa"].pop("default_source"),
     "images.profiles.qa.default_checksum: needs a default_source"),
    (lambda d: d["images"]["profiles"]["qa"]["update"].update(keep=0),
     "images.profiles.qa.update.keep"),
    (lambda d: d["images"]["profiles"]["qa"]["properties"].update(colour="red"),
     "'colour' does not match any of the regexes"),
    (lambda d: d["images"]["profiles"]["qa"]["properties"].update(hw_disk_bus=["virtio"]),
     "images.profiles.qa.properties.hw_disk_bus"),
    (lambda d: d["images"]["profiles"]["qa"]["properties"].pop("min_disk"),
     "'min_disk' is a required property"),
    (lambda d: d["images"]["profiles"]["qa"].update(formats=["vmdk"]),
     "images.profiles.qa.formats.0"),
    (lambda d: d["images"]["profiles"]["qa"].update(default_checksum="md5:abc"),
     "images.profiles.qa.default_checksum"),
    (lambda d: d["images"]["profiles"].update({"Bad Name": d["images"]["profiles"]["qa"]}),
     "images.profiles"),
])
def test_invalid_images_sections_are_refused_with_the_field(tmp_path, raw, mutate, expected):
    mutate(raw)
    with pytest.raises(ConfigError) as e:
        pol.load(write(tmp_path, raw))
    assert expected in str(e.value), str(e.value)
    assert e.value.exit_code == 2


def test_unknown_profile_names_the_allowed_ones():
    images = pol.load(pol.DEFAULT_POLICY_PATH).images
    with pytest.raises(ParameterError) as e:
        images.profile("rawhide-nightly")
    assert "profile: 'rawhide-nightly' is not an image profile" in str(e.value)
    assert "builder, fedora-cloud, infra-dev, qa" in str(e.value)


def test_sop_record_and_user_data_follow_the_profile():
    site = pol.load(pol.DEFAULT_POLICY_PATH)
    dev = site.images.profiles["infra-dev"]
    rec = iprof.sop_record(site, dev, "41-1.4")
    assert rec["glance_properties"]["os_version"] == "41"
    assert rec["glance_properties"]["min_disk"] == dev.min_disk_gb
    assert rec["update_policy"]["keep"] == dev.update.keep
    assert "never an image a server still uses" in rec["update_policy"]["rule"]
    groups = [k["group"] for k in rec["ssh_key_policy"]["root"]]
    assert groups == list(dev.root_key_groups)
    assert all(k["fingerprint"].startswith("SHA256:") for k in rec["ssh_key_policy"]["root"])
    ud = yaml.safe_load(rec["user_data"])
    assert rec["user_data"].startswith("#cloud-config\n")
    assert ud["packages"] == ["httpd", "mod_wsgi", "git-core"]
    assert ["systemctl", "enable", "--now", "httpd"] in ud["runcmd"]
    assert ud["mounts"][0][:2] == ["LABEL=srv", "/srv"]
    keys = ud["write_files"][0]["content"].splitlines()
    assert {k.key for k in site.root_keys if k.name in dev.root_key_groups} == set(keys)
    builder = iprof.user_data(site, site.images.profiles["builder"])
    assert "sysadmin-cloud" not in builder and "mounts" not in builder  # sysadmin-main only


def test_fill_placeholders():
    assert iprof.fill("{major}/x-{version}", "41-1.4") == "41/x-41-1.4"
    assert iprof.fill("{major}", "rawhide") == "rawhide"


def test_example_parameter_files_are_valid():
    from fedcloud_lib.image import request
    from fedcloud_lib.params import load_value_files
    from fedcloud_lib.run.values import validate

    site = pol.load(pol.DEFAULT_POLICY_PATH)
    examples = sorted((pol.DEFAULT_POLICY_PATH.parent / "image-create").glob("*.yaml"))
    assert len(examples) >= 3
    for f in examples:
        values = validate("image-create", load_value_files([f]))
        if not values["source"]:  # the profile's defaults: the whole request checks out
            req = request.prepare(site, **{k: values[k] for k in (
                "source", "checksum", "signature", "profile", "version", "visibility",
                "ticket")})
            assert req.checksum.endswith("-CHECKSUM") and req.signature == "clearsigned"
