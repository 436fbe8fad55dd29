"""Cloudlet parameters -> validated settings -> ansible inventory and extra vars."""
from __future__ import annotations

import pytest

from fedcloud_lib.cloudlet.settings import programs_for, settings_from_parameters
from fedcloud_lib.errors import ParameterError

pytestmark = pytest.mark.unit

AIO = [{"name": "vm", "address": "localhost", "roles": ["controller", "compute"],
        "compute_names": ["vm", "cmp2"]}]


def test_local_all_in_one():
    s = settings_from_parameters(cloudlet="testing", hosts=AIO)
    assert s.local and s.controller.name == "vm"
    assert s.compute_names == ["vm", "cmp2"]
    assert s.keystone_url == "http://127.0.0.1:5000/v3"
    assert str(s.secrets_file) == "/etc/fedcloud/secrets/testing.yaml"
    inv = s.inventory()
    hv = inv["all"]["hosts"]["vm"]
    assert hv["ansible_connection"] == "local"
    assert hv["ansible_python_interpreter"] == "/usr/bin/python3"
    assert hv["fedcloud_compute_names"] == ["vm", "cmp2"]
    assert set(inv["all"]["children"]) == {"controller", "compute"}
    assert "vm" in inv["all"]["children"]["compute"]["hosts"]


def test_real_hosts_use_ssh_and_the_controller_address():
    s = settings_from_parameters(
        cloudlet="production", service_mode="systemd", compute_driver="libvirt",
        cinder_backend="lvm", provider_veth=False, provider_interface="eno2",
        hosts=[{"name": "ctl", "address": "10.0.0.5", "roles": ["controller"]},
               {"name": "cmp1", "address": "10.0.0.6", "roles": ["compute"], "ssh_user": "admin"}])
    inv = s.inventory()["all"]["hosts"]
    assert inv["cmp1"]["ansible_connection"] == "ssh"
    assert inv["cmp1"]["ansible_user"] == "admin"
    assert inv["cmp1"]["ansible_host"] == "10.0.0.6"
    assert inv["cmp1"]["fedcloud_compute_names"] == ["cmp1"]
    assert s.keystone_url == "http://10.0.0.5:5000/v3"
    assert s.extravars()["fedcloud_controller_address"] == "10.0.0.5"
    assert not s.local


def test_extravars_carry_no_secret():
    s = settings_from_parameters(cloudlet="testing", hosts=AIO)
    ev = s.extravars()
    assert ev["fedcloud_secrets_file"] == "/etc/fedcloud/secrets/testing.yaml"
    assert not any("password" in k or k == "fedcloud_secrets" for k in ev)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ParameterError) as e:
        settings_from_parameters(
            cloudlet="staging", service_mode="upstart", compute_driver="xen",
            cinder_backend="ceph", provider_interface="a-very-long-interface-name",
            hosts=[{"name": "Bad_Name", "roles": ["storage"]}])
    text = "\n".join(e.value.problems)
    for needle in ("cloudlet='staging'", "service_mode='upstart'", "compute_driver='xen'",
                   "cinder_backend='ceph'", "provider_interface", "hosts[0].name",
                   "hosts[0].roles", "exactly one controller"):
        assert needle in text, needle


@pytest.mark.parametrize("hosts, needle", [
    ([], "at least one host"),
    ([{"name": "a", "roles": ["controller"]}], "at least one compute host"),
    ([{"name": "a", "roles": ["controller", "compute"]}, {"name": "b", "roles": ["controller"]}],
     "exactly one controller"),
    ([{"name": "a", "roles": ["controller", "compute"], "compute_names": ["x", "x"]}], "used twice"),
    ([{"name": "a", "roles": ["controller", "compute"], "colour": "red"}], "unknown keys"),
])
def test_inventory_mistakes(hosts, needle):
    with pytest.raises(ParameterError) as e:
        settings_from_parameters(cloudlet="testing", hosts=hosts)
    assert any(needle in p for p in e.value.problems)


def test_systemd_mode_runs_one_compute_per_host():
    with pytest.raises(ParameterError) as e:
        settings_from_parameters(cloudlet="testing", hosts=AIO, service_mode="systemd",
                                 compute_driver="libvirt")
    assert any("one nova-compute per host" in p for p in e.value.problems)


def test_programs_in_start_order():
    progs = programs_for(["controller", "compute"], ["vm", "cmp2"])
    assert progs[:2] == ["mariadb", "rabbitmq"]
    assert progs.index("keystone") < progs.index("nova-api") < progs.index("nova-compute-vm")
    assert progs[-4:] == ["neutron-linuxbridge-agent-vm", "neutron-linuxbridge-agent-cmp2",
                          "nova-compute-vm", "nova-compute-cmp2"]
    assert programs_for(["compute"], ["c1"]) == ["neutron-linuxbridge-agent-c1", "nova-compute-c1"]


def test_plan_rows_name_programs_and_connection():
    s = settings_from_parameters(cloudlet="testing", hosts=AIO)
    (row,) = s.plan_rows()
    assert row["connection"] == "local"
    assert "nova-compute-cmp2" in row["programs"]
