"""Planning for instance-for-ticket and instance-retire (pure: facts in, plan out)."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace as NS

import pytest
import yaml

from fedcloud_lib import secgroups
from fedcloud_lib.errors import PolicyError
from fedcloud_lib.instance import apply as instance_apply
from fedcloud_lib.instance import facts as instance_facts
from fedcloud_lib.instance import plan as instance_plan
from fedcloud_lib.instance.request import check_request
from fedcloud_lib.retire import facts as retire_facts
from fedcloud_lib.retire import plan as retire_plan
from fedcloud_lib.site import policy as pol
from fedcloud_lib.site.accounts import Account

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop"


@pytest.fixture(scope="module")
def site():
    return pol.load(pol.DEFAULT_POLICY_PATH)


def facts(site, *, volume_gb=0, server=None, volume=None, keypair=None, sg_state=None,
          error_servers=(), external=(), used=(0, 0, 0), vol_used=(0, 0), project="testing",
          klass="dev", flavor_vcpus=1, flavor_ram=2048):
    req = check_request(site, ticket="4242", requester="alice", purpose="tests",
                            instance_class=klass, name="web-1", volume_gb=volume_gb, now=NOW)
    acct = Account("alice", ("alice@example.test",), (KEY,), ("packager",))
    limits = NS(instances=10, instances_used=used[0], total_cores=20, total_cores_used=used[1],
                total_ram=51200, total_ram_used=used[2])
    vlimits = NS(max_total_volumes=10, total_volumes_used=vol_used[0],
                 max_total_volume_gigabytes=1000, total_gigabytes_used=vol_used[1])
    sg = sg_state or secgroups.GroupState("fedcloud-standard", None,
                                          sorted(secgroups.standard_rules()))
    return instance_facts.Facts(
        request=req, account=acct, project=project,
        flavor=NS(id="f1", vcpus=flavor_vcpus, ram=flavor_ram), image=NS(id="i1"),
        network=NS(id="n1"), external_networks=tuple(external), server=server,
        error_servers=tuple(error_servers), volume=volume, bad_volumes=(), keypair=keypair,
        secgroup=sg, floating_ip=None, compute_limits=limits,
        volume_limits=vlimits if volume_gb else None)


def make_plan(site, f):
    return instance_plan.make_plan(site, f)


def rows(plan):
    return {(a.kind, a.action) for a in plan.plan.steps}


def step(plan, kind, action=None):
    return next(s for s in plan.plan.steps if s.kind == kind and action in (None, s.action))


def test_fresh_request_creates_everything(site):
    plan = make_plan(site, facts(site, volume_gb=10))
    assert {("keypair", "create"), ("security group", "create"), ("volume", "create"),
            ("server", "create"), ("metadata", "create"), ("mail", "create"),
            ("floating ip", "keep")} == rows(plan)
    # the plan carries what the handlers need; who and when are stamped at apply time
    server = step(plan, "server")
    assert server.inputs["metadata"] == {
        "fedcloud_ticket": "4242", "fedcloud_requester": "alice", "fedcloud_purpose": "tests",
        "fedcloud_class": "dev", "fedcloud_expires_at": "never"}
    assert server.inputs["flavor_id"] == "f1" and server.inputs["image_id"] == "i1"
    assert server.inputs["ssh_keys"] == [KEY] and server.inputs["network_id"] == "n1"
    assert step(plan, "keypair").inputs == {"public_key": KEY}
    assert step(plan, "volume").inputs["size_gb"] == 10
    assert step(plan, "mail").inputs["to"] == "alice@example.test"
    df = plan.table()
    assert list(df.columns) == ["action", "kind", "name", "detail"] and len(df) == 7
    assert plan.plan.changes


def test_rerun_reuses_and_only_finishes_what_is_missing(site):
    server = NS(id="s1", name="web-1", status="ACTIVE", metadata={
        "fedcloud_ticket": "4242", "fedcloud_created_at": "2026-11-20T00:00:00Z",
        "fedcloud_expires_at": "never", "fedcloud_mailed": "2026-11-20T00:05:00Z"},
        security_groups=[{"name": "fedcloud-standard"}], attached_volumes=[])
    volume = NS(id="v1", name="web-1-srv", size=10, status="available")
    sg = secgroups.GroupState("fedcloud-standard", NS(id="g1"))
    kp = NS(public_key=KEY + " other-comment", fingerprint="aa:bb")
    plan = make_plan(site, facts(site, volume_gb=10, server=server, volume=volume,
                                 keypair=kp, sg_state=sg, used=(1, 1, 2048)))
    got = {(a.kind, a.name, a.action) for a in plan.plan.steps}
    assert ("server", "web-1", "reuse") in got and ("keypair", "fas-alice", "reuse") in got
    assert ("volume", "web-1-srv", "update") in got  # unattached volume: attach, not create
    assert ("mail", "alice@example.test", "keep") in got
    assert not any(a.action == "create" for a in plan.plan.steps)
    # only missing metadata keys are added (the original creation time is not touched)
    meta = step(plan, "metadata")
    assert meta.action == "update" and "fedcloud_requester=alice" in meta.detail
    assert "fedcloud_created_at" not in meta.inputs["set"]
    # no new server, no new volume: nothing counts against the quota
    assert all(q["requested"] == 0 for q in plan.quota)


def test_error_server_is_replaced(site):
    broken = NS(id="s0", name="web-1", status="ERROR")
    plan = make_plan(site, facts(site, error_servers=[broken], used=(10, 1, 2048)))
    assert ("server", "delete") in rows(plan) and ("server", "create") in rows(plan)
    inst = next(q for q in plan.quota if q["resource"] == "instances")
    assert inst["used"] == 9  # the ERROR server's slot is freed by the replacement


def test_key_change_and_drift_are_planned_as_updates(site):
    extra = secgroups.Rule("ingress", "IPv4", "tcp", 5432, 5432, "0.0.0.0/0")
    sg = secgroups.GroupState("fedcloud-standard", NS(id="g1"), [], [("r9", extra)])
    kp = NS(public_key="ssh-rsa BBBB old", fingerprint="cc")
    plan = make_plan(site, facts(site, keypair=kp, sg_state=sg))
    sg_row = step(plan, "security group")
    assert sg_row.action == "update"
    assert "remove extra rules: ingress IPv4 tcp 5432 from 0.0.0.0/0" in sg_row.detail
    assert sg_row.inputs["remove"] == ["ingress IPv4 tcp 5432 from 0.0.0.0/0"]
    kp_row = step(plan, "keypair")
    assert kp_row.action == "update" and "key in the account system changed" in kp_row.detail


def test_external_network_adds_a_floating_ip(site):
    plan = make_plan(site, facts(site, external=[NS(id="e1", name="public")]))
    assert ("floating ip", "create") in rows(plan)
    assert step(plan, "floating ip").inputs == {"network_id": "e1"}


@pytest.mark.parametrize("kw, expected", [
    (dict(used=(10, 0, 0)), "instances: 10 used + 1 requested > limit 10"),
    (dict(used=(0, 20, 0)), "cores: 20 used + 1 requested > limit 20"),
    (dict(used=(0, 0, 50000)), "ram_mb: 50000 used + 2048 requested > limit 51200"),
    (dict(volume_gb=100, vol_used=(0, 950)), "volume_gb: 950 used + 100 requested > limit 1000"),
    # the policy's ceiling for the project is lower than the cloud's quota
    (dict(project="default", used=(0, 19, 0), flavor_vcpus=2),
     "cores: 19 used + 2 requested > limit 20"),
])
def test_over_quota_is_refused_with_the_numbers(site, kw, expected):
    with pytest.raises(PolicyError) as e:
        make_plan(site, facts(site, **kw))
    assert expected in str(e.value)


def test_quota_takes_the_lower_of_cloud_and_policy(site):
    f = facts(site, project="production")
    f.compute_limits.instances = 100  # cloud allows 100, policy ceiling for production is 60
    plan = make_plan(site, f)
    assert next(q for q in plan.quota if q["resource"] == "instances")["limit"] == 60
    f.compute_limits.instances = -1  # unlimited in the cloud
    plan = make_plan(site, f)
    assert next(q for q in plan.quota if q["resource"] == "instances")["limit"] == 60


def test_user_data_keys_and_srv_volume(site):
    root_keys = [k.key for k in site.root_keys]
    text = instance_apply.user_data([KEY, "ssh-rsa CCCC second"], root_keys,
                                    "0123456789abcdef0123456789")
    assert text.startswith("#cloud-config\n")
    cfg = yaml.safe_load(text)
    assert cfg["ssh_authorized_keys"] == [KEY, "ssh-rsa CCCC second"]
    root = cfg["write_files"][0]
    assert root["path"] == "/root/.ssh/authorized_keys"
    assert root["content"].splitlines() == [k.key for k in site.root_keys]
    assert KEY not in root["content"]
    assert cfg["fs_setup"] == [{"device": "/dev/disk/by-id/virtio-0123456789abcdef0123",
                                "filesystem": "ext4", "label": "srv", "overwrite": False}]
    assert cfg["mounts"][0][:2] == ["LABEL=srv", "/srv"]
    assert "fs_setup" not in yaml.safe_load(instance_apply.user_data([KEY], root_keys, None))


def test_standard_rules_and_normalisation():
    want = secgroups.standard_rules()
    assert len(want) == 8  # 3 ports x 2 families + 2 default egress
    default_egress = {"direction": "egress", "ethertype": "IPv6", "protocol": None,
                      "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None,
                      "remote_group_id": None}
    assert secgroups.rule_of(default_egress) in want
    ssh_any = {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
               "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": None,
               "remote_group_id": None}
    assert secgroups.rule_of(ssh_any) in want
    from_group = {**ssh_any, "remote_group_id": "g2"}
    assert secgroups.rule_of(from_group) not in want
    icmp = {**ssh_any, "protocol": "icmp", "port_range_min": None, "port_range_max": None}
    assert secgroups.rule_of(icmp) not in want


def test_retire_plan(site):
    server = NS(id="s1", name="web-1", status="ACTIVE", metadata={})
    volume = NS(id="v1", name="web-1-srv", size=10)
    acct = Account("alice", ("alice@example.test",), (KEY,), ("packager",))
    f = retire_facts.RetireFacts("4242", (server,), (volume,), {"fas-alice": False}, "dev",
                                 "alice", acct)
    plan = retire_plan.make_plan(site, f, snapshot=True, delete_volume=False)
    got = [(a.kind, a.action) for a in plan.steps]
    assert got == [("snapshot", "create"), ("server", "delete"), ("volume", "keep"),
                   ("keypair", "delete"), ("mail", "create")]
    assert plan.steps[0].inputs == {"server_id": "s1", "ticket": "4242"}
    assert plan.steps[-1].inputs["snapshots"] == ["web-1-final-4242"]
    f = retire_facts.RetireFacts("4242", (server,), (volume,), {"fas-alice": True}, "dev",
                                 "alice", acct)
    plan = retire_plan.make_plan(site, f, snapshot=False, delete_volume=True)
    assert [(a.kind, a.action) for a in plan.steps] == [
        ("server", "delete"), ("volume", "delete"), ("keypair", "keep"), ("mail", "create")]
    f = retire_facts.RetireFacts("4242", (server,), (volume,), {}, "builder", "alice", acct)
    with pytest.raises(PolicyError, match="class builder does not allow deleting"):
        retire_plan.make_plan(site, f, snapshot=False, delete_volume=True)
    empty = retire_facts.RetireFacts("4243", (), (), {}, None, None)
    assert retire_plan.make_plan(site, empty, snapshot=True, delete_volume=True).steps == ()
    unknown = retire_facts.RetireFacts("4244", (server,), (), {}, "dev", "gone", None)
    assert [(a.kind, a.action) for a in retire_plan.make_plan(
        site, unknown, snapshot=False, delete_volume=False).steps] == [
        ("server", "delete"), ("mail", "keep")]


def test_rules_read_from_sdk_objects_use_ether_type():
    from openstack.network.v2.security_group_rule import SecurityGroupRule

    sdk = SecurityGroupRule(direction="ingress", ethertype="IPv6", protocol="tcp",
                            port_range_min=443, port_range_max=443, remote_ip_prefix=None)
    assert secgroups.rule_of(sdk) == secgroups.Rule("ingress", "IPv6", "tcp", 443, 443, "::/0")
    args = secgroups.Rule("ingress", "IPv6", "tcp", 443, 443, "::/0").create_args()
    assert SecurityGroupRule(**args).ether_type == "IPv6"


def test_unreachable_api_is_a_cloud_error(site):
    from keystoneauth1.exceptions import ConnectFailure

    from fedcloud_lib.errors import CloudError

    def down(*a, **kw):
        raise ConnectFailure("Unable to establish connection to http://127.0.0.1:8774")

    conn = NS(compute=NS(find_flavor=down))
    f = facts(site)
    with pytest.raises(CloudError, match="cannot look up flavor m1.small: Unable to establish"):
        instance_facts.gather(conn, site, f.request, f.account)
