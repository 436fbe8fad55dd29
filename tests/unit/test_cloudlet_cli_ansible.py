"""`fedcloud cloudlet` sub-commands and the playbook's own consistency."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fedcloud_lib.cloudlet import cli
from fedcloud_lib.cloudlet.settings import ANSIBLE_DIR

pytestmark = pytest.mark.unit


def test_register_adds_start_stop_status():
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    for action in ("start", "stop", "status"):
        args = parser.parse_args(["cloudlet", action, "--service", "glance-api"])
        assert callable(args.func) and args.service == "glance-api"
    assert parser.parse_args(["cloudlet", "status", "--memory"]).memory is True


def test_wipe_needs_yes(capsys):
    assert cli.main(["cloudlet", "wipe"]) == 2
    assert "--yes" in capsys.readouterr().out


def test_playbook_syntax():
    inv = {"all": {"hosts": {"vm": {"ansible_connection": "local"}},
                   "children": {"controller": {"hosts": {"vm": None}}, "compute": {"hosts": {"vm": None}}}}}
    r = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check",
                        "-i", "vm,", str(ANSIBLE_DIR / "site.yml")],
                       capture_output=True, text=True, cwd=ANSIBLE_DIR,
                       env={"PATH": "/usr/bin:/bin", "ANSIBLE_LIBRARY": str(ANSIBLE_DIR / "library")})
    assert r.returncode == 0, r.stdout + r.stderr
    assert inv  # the syntax check does not need the real inventory


def _render(template: str, **extra) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(
        str(ANSIBLE_DIR / "roles" / "config" / "templates")), undefined=jinja2.StrictUndefined)
    secrets = {k: f"pw-{k}" for k in ("keystone_glance", "keystone_placement", "keystone_nova",
                                       "keystone_neutron", "keystone_cinder", "db_glance", "db_placement",
                                       "db_nova", "db_neutron", "db_cinder")}
    v = dict(fedcloud_secrets=secrets, fedcloud_keystone_url="http://127.0.0.1:5000",
             fedcloud_region="RegionOne", fedcloud_controller_address="127.0.0.1",
             fedcloud_bind_address="127.0.0.1", fedcloud_rabbit_url="rabbit://openstack:x@127.0.0.1:5672/",
             fedcloud_roles=["controller", "compute"], fedcloud_physnet="physnet1",
             fedcloud_provider_interface="phy0a", fedcloud_compute_driver="fake",
             fedcloud_cinder_backend="fake", fedcloud_cinder_lvm_vg="vg", fedcloud_glance_datadir="/g/",
             fedcloud_log_dir="/var/log/fedcloud", fedcloud_controller_name="vm")
    v.update(extra)
    return env.get_template(template).render(**v)


def test_nova_sends_service_tokens_and_neutron_requires_the_service_role():
    nova = _render("nova.conf.j2")
    assert "send_service_user_token = true" in nova
    assert "service_token_roles_required = true" in _render("neutron.conf.j2")
    assert "[experimental]\n# Zed marks linuxbridge experimental" in _render("neutron.conf.j2")
    assert "password = pw-keystone_nova" in nova


def test_drivers_follow_the_parameters():
    assert "compute_driver = fedcloud_fake.FakeDriver" in _render("nova-compute.conf.j2")
    assert "libvirt.LibvirtDriver" in _render("nova-compute.conf.j2", fedcloud_compute_driver="libvirt")
    assert "fedcloud_fake.FakeVolumeDriver" in _render("cinder.conf.j2")
    lvm = _render("cinder.conf.j2", fedcloud_cinder_backend="lvm")
    assert "LVMVolumeDriver" in lvm and "volume_group = vg" in lvm
    assert "physnet1:phy0a" in _render("linuxbridge_agent.ini.j2")


def test_service_users_get_the_service_role():
    gv = yaml.safe_load((ANSIBLE_DIR / "group_vars" / "all.yml").read_text())
    users = gv["fedcloud_service_users"]
    assert {u["name"] for u in users} == {"glance", "placement", "nova", "neutron", "cinder"}
    assert all("service" in u["roles"] for u in users)
