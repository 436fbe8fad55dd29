"""Fixtures for the integration tier: the real local cloudlet through clouds.yaml.

* ``admin_cloud`` / ``testing_cloud`` / ``production_cloud``: session connections to the
  ``fedcloud-admin`` / ``fedcloud-testing`` / ``fedcloud-production`` entries.
* ``name_prefix``: a unique ``it-<hex>-`` prefix; everything named with it (servers,
  volumes, images, networks, security groups, keypairs) in the testing project is deleted
  after the test, whatever happened.
* ``fresh_project``: a new project with its own member user and connection, deleted
  (with all it holds) after the test.

Without a usable cloud the tests skip with the reason; with ``CI`` set they fail.
"""
from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

ADMIN = "fedcloud-admin"


def cloud_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the local cloudlet is required in CI and is not usable: {reason}. "
                    "Install it with `make cloudlet` (or start it: `fedcloud cloudlet start`).")
    pytest.skip(f"no cloudlet: {reason} (install: make cloudlet)")


def _connect(cloud: str):
    try:
        import openstack

        c = openstack.connect(cloud=cloud)
        c.authorize()
        return c
    except Exception as exc:  # noqa: BLE001 - any failure means: no usable cloud
        cloud_unavailable(f"clouds.yaml entry {cloud!r}: {type(exc).__name__}: {str(exc)[:200]}")


@pytest.fixture(scope="session")
def admin_cloud():
    c = _connect(ADMIN)
    yield c
    c.close()


@pytest.fixture(scope="session")
def testing_cloud():
    c = _connect("fedcloud-testing")
    yield c
    c.close()


@pytest.fixture(scope="session")
def production_cloud():
    c = _connect("fedcloud-production")
    yield c
    c.close()


def purge(conn, admin, prefix: str | None = None) -> list[str]:
    """Delete what the connection's project holds (only names starting with ``prefix``
    when given), waiting with the SDK; returns what was deleted."""
    pid = conn.current_project_id

    def mine(name: str | None) -> bool:
        return prefix is None or (name or "").startswith(prefix)

    gone: list[str] = []
    servers = [s for s in admin.compute.servers(all_projects=True, project_id=pid) if mine(s.name)]
    for s in servers:
        admin.compute.delete_server(s, ignore_missing=True)
        gone.append(f"server {s.name}")
    for s in servers:
        admin.compute.wait_for_delete(s, wait=180)
    for snap in conn.block_storage.snapshots():
        if mine(snap.name):
            conn.block_storage.delete_snapshot(snap, ignore_missing=True)
            conn.block_storage.wait_for_delete(snap, wait=120)
            gone.append(f"volume snapshot {snap.name}")
    for v in conn.block_storage.volumes():
        if mine(v.name):
            if v.status in ("in-use", "attaching", "detaching"):
                admin.block_storage.reset_volume_status(v, status="available", attach_status="detached",
                                                       migration_status=None)
            conn.block_storage.delete_volume(v, ignore_missing=True)
            conn.block_storage.wait_for_delete(v, wait=120)
            gone.append(f"volume {v.name}")
    for i in conn.image.images(owner=pid):
        if mine(i.name):
            conn.image.delete_image(i, ignore_missing=True)
            gone.append(f"image {i.name}")
    for g in conn.compute.server_groups():
        if mine(g.name):
            conn.compute.delete_server_group(g, ignore_missing=True)
    for k in conn.compute.keypairs():
        if mine(k.name):
            conn.compute.delete_keypair(k, ignore_missing=True)
            gone.append(f"keypair {k.name}")
    for r in conn.network.routers(project_id=pid):
        if mine(r.name):
            for p in conn.network.ports(device_id=r.id):
                if p.device_owner == "network:router_interface":
                    conn.network.remove_interface_from_router(r, port_id=p.id)
            conn.network.delete_router(r, ignore_missing=True)
    for p in conn.network.ports(project_id=pid):
        if mine(p.name) and p.device_owner in ("", None):
            conn.network.delete_port(p, ignore_missing=True)
    for n in conn.network.networks(project_id=pid):
        if mine(n.name) and n.name != "provider":
            conn.network.delete_network(n, ignore_missing=True)
            gone.append(f"network {n.name}")
    for g in conn.network.security_groups(project_id=pid):
        if mine(g.name) and g.name != "default":
            conn.network.delete_security_group(g, ignore_missing=True)
            gone.append(f"security group {g.name}")
    return gone


@pytest.fixture
def name_prefix(admin_cloud, testing_cloud):
    """A unique prefix; what the test creates under it in 'testing' is deleted afterwards."""
    prefix = f"it-{uuid.uuid4().hex[:8]}-"
    yield prefix
    purge(testing_cloud, admin_cloud, prefix)


@dataclass
class FreshProject:
    name: str
    project: Any
    user: Any
    conn: Any
    cloud_config: dict  # what a clouds.yaml entry for it would hold (password included)


@pytest.fixture
def fresh_project(admin_cloud):
    """A project of its own (member user, default quotas), deleted with its contents."""
    import openstack

    name = f"it-{uuid.uuid4().hex[:8]}"
    idc = admin_cloud.identity
    proj = idc.create_project(name=name, domain_id="default", description="integration test")
    password = secrets.token_urlsafe(18)
    user = idc.create_user(name=name, password=password, domain_id="default", default_project_id=proj.id)
    idc.assign_project_role_to_user(proj, user, idc.find_role("member"))
    auth = admin_cloud.config.config["auth"]
    cfg = {"auth": {"auth_url": auth["auth_url"], "username": name, "password": password,
                    "project_name": name, "user_domain_name": "Default",
                    "project_domain_name": "Default"},
           "region_name": admin_cloud.config.region_name, "identity_api_version": 3}
    conn = openstack.connect(**cfg["auth"], region_name=cfg["region_name"], identity_api_version="3")
    try:
        yield FreshProject(name, proj, user, conn, cfg)
    finally:
        try:
            purge(conn, admin_cloud)
            for p in admin_cloud.network.ports(project_id=proj.id):
                admin_cloud.network.delete_port(p, ignore_missing=True)
            for g in admin_cloud.network.security_groups(project_id=proj.id):
                admin_cloud.network.delete_security_group(g, ignore_missing=True)
        finally:
            conn.close()
            idc.delete_user(user, ignore_missing=True)
            idc.delete_project(proj, ignore_missing=True)
