"""lifetime-reaper facts over HTTP: servers in scope, and orphans (a synthetic cloud)."""
from __future__ import annotations

import datetime as dt

import pytest

from fedcloud_lib.cloud import connect
from fedcloud_lib.reaper.facts import Scope, gather
from fedcloud_lib.site import policy as site_policy
from tests.fakes.fasjson import FakeFasjson
from tests.fakes.openstack import PROJECT_ID, FakeOpenStack
from tests.fakes.site import policy_copy

pytestmark = pytest.mark.unit

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@pytest.fixture
def cloud(tmp_path, monkeypatch):
    with FakeOpenStack() as c:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", c.clouds_yaml(tmp_path / "clouds.yaml"))
        yield c


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_gather_finds_deadlines_orphans_and_owner_accounts(cloud, tmp_path):
    live = cloud.server("it-a-live", created=NOW, metadata={
        "fedcloud_class": "qa", "fedcloud_requester": "alice",
        "fedcloud_expires_at": stamp(NOW + dt.timedelta(hours=5))})
    cloud.server("it-a-raw", created=NOW)  # made outside the runbooks
    cloud.server("other-thing", created=NOW)  # out of scope
    cloud.volumes += [
        {"id": "v-orphan", "name": "it-a-stray", "status": "available", "size": 1,
         "attachments": [], "metadata": {}, "created_at": stamp(NOW)},
        {"id": "v-kept", "name": "it-a-srv", "status": "available", "size": 1,
         "attachments": [], "metadata": {"fedcloud_ticket": "7"}, "created_at": stamp(NOW)},
        {"id": "v-used", "name": "it-a-used", "status": "in-use", "size": 1,
         "attachments": [{"server_id": live["id"]}], "metadata": {}, "created_at": stamp(NOW)},
        {"id": "v-out", "name": "elsewhere", "status": "available", "size": 1,
         "attachments": [], "metadata": {}, "created_at": stamp(NOW)}]
    cloud.images += [
        {"id": "img-gone", "name": "it-a-snap", "status": "active", "owner": PROJECT_ID,
         "instance_uuid": "no-such-server", "image_type": "snapshot", "size": 10,
         "visibility": "private"},
        {"id": "img-live", "name": "it-a-snap2", "status": "active", "owner": PROJECT_ID,
         "instance_uuid": live["id"], "image_type": "snapshot", "size": 10,
         "visibility": "private"},
        {"id": "img-base", "name": "it-a-base", "status": "active", "owner": PROJECT_ID,
         "visibility": "private"}]
    cloud.floating_ips += [
        {"id": "ip-free", "floating_ip_address": "192.0.2.10", "port_id": None,
         "description": "it-a-fip", "project_id": PROJECT_ID, "tenant_id": PROJECT_ID},
        {"id": "ip-held", "floating_ip_address": "192.0.2.11", "port_id": "port-1",
         "description": "it-a-fip2", "project_id": PROJECT_ID, "tenant_id": PROJECT_ID}]
    with FakeFasjson() as fas:
        fas.add("alice", emails=["alice@example.test"])
        pol = site_policy.load(policy_copy(tmp_path, fasjson_url=fas.url))
        facts = gather(connect("fake"), pol, now=NOW, scope=Scope(name_prefix="it-a-"),
                       notice_h=48)
    assert {f.name for f in facts.servers} == {"it-a-live", "it-a-raw"}
    assert {(o.kind, o.id) for o in facts.orphans} == {
        ("server", next(s["id"] for s in cloud.servers if s["name"] == "it-a-raw")),
        ("volume", "v-orphan"), ("image", "img-gone"), ("floating ip", "ip-free")}
    assert facts.accounts["alice"].email == "alice@example.test"
    snap = next(o for o in facts.orphans if o.kind == "image")
    assert "no-such-server" in snap.reason


def test_metadata_scope_leaves_floating_ips_out(cloud, tmp_path):
    cloud.floating_ips.append({"id": "ip-free", "floating_ip_address": "192.0.2.10",
                               "port_id": None, "description": "", "project_id": PROJECT_ID,
                               "tenant_id": PROJECT_ID})
    pol = site_policy.load()
    everything = gather(connect("fake"), pol, now=NOW)
    assert [o.kind for o in everything.orphans] == ["floating ip"]
    scoped = gather(connect("fake"), pol, now=NOW, scope=Scope(metadata={"fedcloud_ticket": "1"}))
    assert scoped.orphans == ()
