"""migrate-instances: how what a migration makes is stamped, named and found again.

Everything a migration makes carries the migration id and what it was made from, in its
own metadata (Nova metadata, Cinder metadata, Glance properties), so that a re-run — or a
run after a killed one — finds it again instead of making it twice:

* in the **target**: the server, its volumes and the images carry
  ``fedcloud_migrated_from`` = ``<source cloud>/<source id>``; images also say which part
  of the server they hold (``fedcloud_migration_part``: ``boot`` or ``volume:<id>``) and the
  sha256 of their bytes once verified (``owner_specified.openstack.sha256``,
  openstacksdk's convention); a verified server carries
  ``fedcloud_migration_verified``;
* in the **source** (temporaries, deleted by the clean-up step): the boot snapshot, the
  volume clones and the volume images carry ``fedcloud_migration_temp`` =
  ``<source server id>:boot`` / ``:clone:<volume id>`` / ``:volume:<volume id>``.

These functions read only; :mod:`.apply` makes and deletes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..cloud import GONE
from .transfer import SHA256_PROPERTY

__all__ = ["MIGRATION", "MIGRATED_FROM", "PART", "SHA256", "VERIFIED", "TEMP", "STAMPS",
           "ref", "ref_id", "boot_part", "volume_part", "temp_boot", "temp_volume_image",
           "temp_clone", "snapshot_name", "clone_name", "volume_image_name",
           "target_image_name", "props", "source_temporaries", "target_images",
           "target_servers", "target_volumes", "TRANSIENT_IMAGE", "usable_image",
           "Listing", "listing"]

MIGRATION = "fedcloud_migration"
MIGRATED_FROM = "fedcloud_migrated_from"
PART = "fedcloud_migration_part"
SHA256 = SHA256_PROPERTY  # openstacksdk's convention: owner_specified.openstack.sha256
VERIFIED = "fedcloud_migration_verified"
TEMP = "fedcloud_migration_temp"
#: keys the migration adds to a server's metadata (verification compares the rest)
STAMPS = (MIGRATION, MIGRATED_FROM, VERIFIED)
#: image states on the way to active (an upload may still be running, server side)
TRANSIENT_IMAGE = ("queued", "saving", "uploading", "importing")


def ref(cloud: str, resource_id: str) -> str:
    """``<cloud>/<id>``: where a migrated thing came from."""
    return f"{cloud}/{resource_id}"


def ref_id(value: str | None) -> str:
    """The source id in a :func:`ref` (the cloud entry's name may differ between runs)."""
    return (value or "").rsplit("/", 1)[-1]


def boot_part() -> str:
    """The part name of a server's boot disk."""
    return "boot"


def volume_part(volume_id: str) -> str:
    """The part name of one of a server's volumes."""
    return f"volume:{volume_id}"


def temp_boot(server_id: str) -> str:
    """The TEMP stamp of a source server's boot snapshot."""
    return f"{server_id}:boot"


def temp_volume_image(server_id: str, volume_id: str) -> str:
    """The TEMP stamp of the image uploaded from a source volume's clone."""
    return f"{server_id}:volume:{volume_id}"


def temp_clone(server_id: str, volume_id: str) -> str:
    """The TEMP stamp of a source volume's temporary clone."""
    return f"{server_id}:clone:{volume_id}"


def _short(resource_id: str) -> str:
    return resource_id[:8]


def snapshot_name(server_name: str, server_id: str) -> str:
    """The name of a source server's temporary boot snapshot."""
    return f"{server_name}-migrate-{_short(server_id)}-boot"


def clone_name(server_name: str, volume_id: str) -> str:
    """The name of a source volume's temporary clone."""
    return f"{server_name}-migrate-clone-{_short(volume_id)}"


def volume_image_name(server_name: str, volume_id: str) -> str:
    """The name of the (temporary) image of a source volume, in both clouds."""
    return f"{server_name}-migrate-vol-{_short(volume_id)}"


def target_image_name(server_name: str) -> str:
    """The name of a migrated server's boot image in the target."""
    return f"{server_name}-migrated"


def props(resource: Any) -> dict[str, Any]:
    """An image's properties (Glance), or a server's or volume's metadata."""
    properties = getattr(resource, "properties", None)
    if isinstance(properties, dict):
        return dict(properties)
    return dict(getattr(resource, "metadata", None) or {})


def usable_image(image: Any) -> bool:
    """Active, or still on its way there (not killed, deleted or deactivated)."""
    return image.status == "active" or image.status in TRANSIENT_IMAGE


@dataclass(frozen=True)
class Listing:
    """A project's images, servers and volumes, listed once (facts filter them per
    server instead of asking the cloud again for each)."""

    images: tuple[Any, ...]
    servers: tuple[Any, ...]
    volumes: tuple[Any, ...]


def listing(conn: Any) -> Listing:
    """List the connection's project: its own images, its servers and volumes."""
    return Listing(images=tuple(conn.image.images(owner=conn.current_project_id)),
                   servers=tuple(conn.compute.servers(details=True)),
                   volumes=tuple(conn.block_storage.volumes(details=True)))


def _images(conn: Any, given: Listing | None) -> Any:
    return given.images if given is not None else conn.image.images(
        owner=conn.current_project_id)


def _volumes(conn: Any, given: Listing | None) -> Any:
    return given.volumes if given is not None else conn.block_storage.volumes(details=True)


def source_temporaries(conn: Any, server_id: str,
                       given: Listing | None = None) -> dict[str, list[Any]]:
    """A source server's temporaries: ``{"images": [...], "clones": [...]}``.

    Images are the boot snapshot and the volume images (TEMP stamp starting with the
    server id); clones are volumes with such a stamp.
    """
    prefix = f"{server_id}:"
    images = [i for i in _images(conn, given)
              if str(props(i).get(TEMP, "")).startswith(prefix)]
    clones = [v for v in _volumes(conn, given)
              if str((v.metadata or {}).get(TEMP, "")).startswith(prefix)
              and v.status != "deleting"]
    return {"images": images, "clones": clones}


def target_images(conn: Any, server_id: str, given: Listing | None = None) -> list[Any]:
    """The target's images made from source server ``server_id`` (boot and volumes).

    Nova snapshots of a migrated server inherit its image's properties: they are not ours
    (``image_type`` snapshot) and are left out.
    """
    out = []
    for i in _images(conn, given):
        p = props(i)
        if p.get(PART) and ref_id(p.get(MIGRATED_FROM)) == server_id \
                and p.get("image_type") != "snapshot":
            out.append(i)
    return out


def target_servers(conn: Any, server_id: str, given: Listing | None = None) -> list[Any]:
    """The target's servers migrated from source server ``server_id`` (not deleted)."""
    servers = given.servers if given is not None else conn.compute.servers(details=True)
    return [s for s in servers
            if ref_id((s.metadata or {}).get(MIGRATED_FROM)) == server_id
            and s.status not in GONE]


def target_volumes(conn: Any, volume_ids: list[str] | tuple[str, ...],
                   given: Listing | None = None) -> dict[str, Any]:
    """The target's volumes migrated from the given source volumes: ``{source id: volume}``."""
    wanted = set(volume_ids)
    out: dict[str, Any] = {}
    for v in _volumes(conn, given):
        src = ref_id((v.metadata or {}).get(MIGRATED_FROM))
        if src in wanted and v.status not in ("deleting", "error_deleting"):
            out.setdefault(src, v)
    return out
