"""What every other runbook expects in a cloudlet, made with openstacksdk.

Two "cloudlets" share the local cloud as projects: ``production`` and ``testing``, each
with its own user (role ``member``) and quotas; the standard flavors; a small public
test image ``fedora-cloud-test``; the shared provider network ``provider``; and
``/etc/openstack/clouds.yaml`` (0600) with the entries ``fedcloud-admin``,
``fedcloud-production`` and ``fedcloud-testing``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from .. import progress
from ..cloud import connect
from ..errors import CloudError, ConfigError
from .secrets import load_secrets
from .settings import STATE_DIR, CloudletSettings

CLOUDS_YAML = Path("/etc/openstack/clouds.yaml")
ADMIN_CLOUD = "fedcloud-admin"
PROJECTS = {
    # the Fedora cloud's quotas (reference/fedora-cloud-facts.md): persistent / transient
    "production": {"instances": 60, "cores": 175, "ram": 288300, "volumes": 20, "gigabytes": 2000,
                   "ports": 200},
    "testing": {"instances": 30, "cores": 70, "ram": 153600, "volumes": 20, "gigabytes": 1000,
                "ports": 200},
}
FLAVORS = {  # name: (vcpus, ram MB, disk GB)
    "m1.tiny": (1, 512, 1),
    "m1.small": (1, 2048, 20),
    "m1.medium": (2, 4096, 40),
    "m1.builder": (2, 5120, 50),
}
TEST_IMAGE = "fedora-cloud-test"
TEST_IMAGE_BYTES = 256 * 1024
PROVIDER_NETWORK = "provider"
PROVIDER_SUBNET = "provider-v4"
PROVIDER_CIDR = "198.51.100.0/24"  # RFC 5737 documentation range: never routed anywhere


def project_user(project: str) -> str:
    """The name of a project's member user."""
    return f"fedcloud-{project}"


def clouds_entries(settings: CloudletSettings) -> dict[str, Any]:
    """The three clouds.yaml entries (passwords from the secrets file)."""
    sec = load_secrets(settings.secrets_file)

    def entry(user: str, project: str, password: str) -> dict[str, Any]:
        return {
            "auth": {"auth_url": settings.keystone_url, "username": user, "password": password,
                     "project_name": project, "user_domain_name": "Default",
                     "project_domain_name": "Default"},
            "region_name": settings.region,
            "identity_api_version": 3,
            "interface": "public",
        }

    out = {ADMIN_CLOUD: entry("admin", "admin", sec["keystone_admin"])}
    for p in PROJECTS:
        out[f"fedcloud-{p}"] = entry(project_user(p), p, sec[f"user_{p}"])
    return out


def write_clouds_yaml(settings: CloudletSettings, path: Path = CLOUDS_YAML) -> bool:
    """Merge fedcloud's entries into clouds.yaml (others are kept); 0600. True if changed."""
    path = Path(path)
    current: dict[str, Any] = {}
    if path.exists():
        try:
            current = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: fix it or move it away", path=str(path)) from exc
    clouds = dict(current.get("clouds") or {})
    want = clouds_entries(settings)
    changed = any(clouds.get(k) != v for k, v in want.items())
    clouds.update(want)
    if changed or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# Managed by fedcloud (cloudlet-install) for its entries; root only.\n")
            yaml.safe_dump({**current, "clouds": clouds}, f, default_flow_style=False, sort_keys=True)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return changed


def test_image_file() -> Path:
    """A small deterministic raw 'disk' (a marker sector, then zeros)."""
    p = STATE_DIR / f"{TEST_IMAGE}.raw"
    if not p.exists() or p.stat().st_size != TEST_IMAGE_BYTES:
        head = b"fedcloud test image: not bootable, for API tests only\n".ljust(512, b"\0")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(head + b"\0" * (TEST_IMAGE_BYTES - len(head)))
    return p


@dataclass(frozen=True)
class ContentChange:
    """One object of the cloudlet's content and what ensure_content did with it (created, updated, present)."""
    kind: str
    name: str
    action: str  # created | updated | present


def ensure_content(settings: CloudletSettings, conn=None,
                   out: Callable[[str], None] | None = None) -> list[ContentChange]:
    """Create what is missing (idempotent); returns one row per object."""
    from openstack import exceptions as os_exc

    out = out or progress.say
    conn = conn or connect(ADMIN_CLOUD, authorize=True)
    sec = load_secrets(settings.secrets_file)
    rows: list[ContentChange] = []

    def note(kind: str, name: str, action: str) -> None:
        rows.append(ContentChange(kind, name, action))
        if action != "present":
            out(f"{action} {kind} {name}")

    try:
        idc = conn.identity
        member = idc.find_role("member")
        for pname, quota in PROJECTS.items():
            proj = idc.find_project(pname, domain_id="default")
            if proj is None:
                proj = idc.create_project(name=pname, domain_id="default",
                                          description=f"fedcloud cloudlet {pname}")
                note("project", pname, "created")
            else:
                note("project", pname, "present")
            uname = project_user(pname)
            user = idc.find_user(uname, domain_id="default")
            if user is None:
                user = idc.create_user(name=uname, password=sec[f"user_{pname}"], domain_id="default",
                                       default_project_id=proj.id)
                note("user", uname, "created")
            else:
                note("user", uname, "present")
            if not idc.validate_user_has_project_role(proj, user, member):
                idc.assign_project_role_to_user(proj, user, member)
                note("role assignment", f"{uname} member on {pname}", "created")
            q = conn.compute.get_quota_set(proj.id)
            want_c = {"instances": quota["instances"], "cores": quota["cores"], "ram": quota["ram"]}
            if any(getattr(q, k) != v for k, v in want_c.items()):
                conn.compute.update_quota_set(proj.id, **want_c)
                note("compute quota", pname, "updated")
            vq = conn.block_storage.get_quota_set(proj.id)
            want_v = {"volumes": quota["volumes"], "gigabytes": quota["gigabytes"]}
            if any(getattr(vq, k) != v for k, v in want_v.items()):
                conn.block_storage.update_quota_set(proj.id, **want_v)
                note("volume quota", pname, "updated")
            nq = conn.network.get_quota(proj.id)
            if nq.ports != quota["ports"]:
                conn.network.update_quota(proj.id, ports=quota["ports"])
                note("network quota", pname, "updated")
        for name, (vcpus, ram, disk) in FLAVORS.items():
            f = conn.compute.find_flavor(name)
            if f is None:
                conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk, is_public=True)
                note("flavor", name, "created")
            elif (f.vcpus, f.ram, f.disk) != (vcpus, ram, disk):
                raise CloudError(f"flavor {name} exists with {f.vcpus} vCPU/{f.ram} MB/{f.disk} GB, "
                                 f"expected {vcpus}/{ram}/{disk}: delete it and re-run", flavor=name)
            else:
                note("flavor", name, "present")
        img = conn.image.find_image(TEST_IMAGE)
        if img is None or img.status != "active":
            if img is not None:
                conn.image.delete_image(img)
            path = test_image_file()
            conn.image.create_image(name=TEST_IMAGE, filename=str(path), disk_format="raw",
                                    container_format="bare", visibility="public",
                                    os_distro="fedora", fedcloud_test="true",
                                    wait=True, timeout=300)
            note("image", TEST_IMAGE, "created")
        else:
            note("image", TEST_IMAGE, "present")
        net = conn.network.find_network(PROVIDER_NETWORK)
        if net is None:
            net = conn.network.create_network(
                name=PROVIDER_NETWORK, is_shared=True, provider_network_type="flat",
                provider_physical_network=settings.physnet)
            note("network", PROVIDER_NETWORK, "created")
        else:
            note("network", PROVIDER_NETWORK, "present")
        if conn.network.find_subnet(PROVIDER_SUBNET, network_id=net.id) is None:
            conn.network.create_subnet(name=PROVIDER_SUBNET, network_id=net.id, ip_version=4,
                                       cidr=PROVIDER_CIDR, gateway_ip="198.51.100.1",
                                       allocation_pools=[{"start": "198.51.100.10", "end": "198.51.100.250"}],
                                       is_dhcp_enabled=False)
            note("subnet", PROVIDER_SUBNET, "created")
        else:
            note("subnet", PROVIDER_SUBNET, "present")
    except os_exc.SDKException as exc:
        raise CloudError(f"setting up the cloudlet content failed: {exc}") from exc
    return rows


def image_checksum(path: Path) -> str:
    """The md5 Glance reports for the test image file (what an intact upload has)."""
    return hashlib.md5(Path(path).read_bytes()).hexdigest()  # noqa: S324 - glance's checksum
