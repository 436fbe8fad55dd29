"""Streaming an image from one Glance into another (fedcloud_lib.migration.transfer),
against two fake Glance APIs on loopback: real HTTP, real openstacksdk."""
from __future__ import annotations

import hashlib
import tracemalloc

import pytest

from fedcloud_lib.errors import CloudError
from fedcloud_lib.migration import transfer
from tests.fakes.glance import FakeGlance, generated

pytestmark = pytest.mark.unit


@pytest.fixture
def glances():
    with FakeGlance() as src, FakeGlance() as dst:
        yield src, dst, src.connect(), dst.connect()


def test_the_copy_holds_the_same_bytes_and_its_sha256(glances):
    src, dst, s, t = glances
    data = bytes(range(256)) * 5000 + b"tail"
    img = src.add_image("disk", data=data, os_distro="fedora", hw_disk_bus="virtio",
                        base_image_ref="x", image_type="snapshot",
                        fedcloud_migration_temp="a:boot",
                        **{"owner_specified.openstack.object": "images/disk"})
    got = []
    res = transfer.stream_image(s, img["id"], t, name="copy", properties={"mine": "1"},
                                chunk_size=64 * 1024, progress=got.append)
    assert dst.data[res.target_image_id] == data
    assert res.sha256 == hashlib.sha256(data).hexdigest() and res.size == len(data)
    assert res.verified_by == "sha512 of both Glances"
    copy = dst.images[res.target_image_id]
    assert copy["status"] == "active" and copy["name"] == "copy"
    assert copy["owner_specified.openstack.sha256"] == res.sha256
    # what describes the image travels; where it came from and how it was stored does not
    assert copy["os_distro"] == "fedora" and copy["hw_disk_bus"] == "virtio" and copy["mine"] == "1"
    for k in ("base_image_ref", "image_type", "fedcloud_migration_temp"):
        assert k not in copy
    assert copy["disk_format"] == "raw" and copy["container_format"] == "bare"
    # the upload was streamed with its length announced (no chunked framing to copy)
    headers = dst.upload_headers[-1]
    assert headers["Content-Length"] == headers["X-OpenStack-Image-Size"] == str(len(data))
    assert "Transfer-Encoding" not in headers
    assert got and "verified by sha512 of both Glances" in got[-1]


def test_a_source_that_sends_less_than_its_size_fails_instead_of_hanging(glances):
    src, dst, s, t = glances
    img = src.add_image("disk", data=b"w" * 100_000)
    img["size"] = 150_000  # Glance says more than it sends
    with pytest.raises(CloudError, match="transfer copy failed.*IncompleteRead|sent 100000 of "
                                         "its 150000 bytes"):
        transfer.stream_image(s, img["id"], t, name="copy")
    assert not dst.images


def test_progress_callbacks_add_up_to_the_image(glances):
    src, dst, s, t = glances
    size = 40 * 2**20 + 5
    img = src.add_image("disk", size=size)
    moved, lines = [], []
    transfer.stream_image(s, img["id"], t, name="copy", advance=moved.append,
                          progress=lines.append)
    assert sum(moved) == size and 2 <= len(moved) <= 21
    assert any("MiB (" in line and "MB/s" in line for line in lines)
    assert lines[-1].startswith("transfer copy: 40.0 MiB in ")


def test_memory_stays_bounded_for_a_large_image(glances):
    """64 MiB through the pipe: the peak of Python allocations stays a few chunks."""
    src, dst, s, t = glances
    dst.keep_data = False
    size = 64 * 2**20
    img = src.add_image("big", size=size)
    want = hashlib.sha256()
    for c in generated(size):
        want.update(c)
    tracemalloc.start()
    try:
        res = transfer.stream_image(s, img["id"], t, name="big-copy")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.sha256 == want.hexdigest() and res.size == size
    assert dst.images[res.target_image_id]["os_hash_value"] == img["os_hash_value"]
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB image"


def test_a_corrupted_copy_is_refused_and_deleted(glances):
    src, dst, s, t = glances
    img = src.add_image("disk", data=b"x" * 300_000)
    dst.corrupt_uploads = True
    with pytest.raises(CloudError, match="does not match its source: sha512"):
        transfer.stream_image(s, img["id"], t, name="copy")
    assert not dst.images and dst.deleted  # the partial copy is gone


def test_a_download_cut_midway_fails_cleanly(glances):
    src, dst, s, t = glances
    img = src.add_image("disk", size=8 * 2**20)
    src.cut_downloads_at = 3 * 2**20 + 17
    with pytest.raises(CloudError, match="transfer copy failed") as e:
        transfer.stream_image(s, img["id"], t, name="copy")
    assert e.value.__cause__ is not None
    assert not dst.images and dst.deleted  # the partial copy is gone


def test_a_source_whose_claimed_sha256_is_wrong_is_refused(glances):
    src, dst, s, t = glances
    img = src.add_image("disk", data=b"y" * 1000,
                        **{"owner_specified.openstack.sha256": "0" * 64})
    with pytest.raises(CloudError, match="sha256: the source image claims 0000"):
        transfer.stream_image(s, img["id"], t, name="copy")
    assert not dst.images


def test_md5_is_the_fallback_when_the_glances_hash_differently():
    with FakeGlance(hash_algo="sha512") as src, FakeGlance(hash_algo="sha256") as dst:
        img = src.add_image("disk", data=b"z" * 5000)
        res = transfer.stream_image(src.connect(), img["id"], dst.connect(), name="copy")
        assert res.verified_by == "md5 of both Glances"
        assert res.sha256 == hashlib.sha256(b"z" * 5000).hexdigest()


def test_an_inactive_source_is_refused_before_anything_is_made(glances):
    src, dst, s, t = glances
    img = src.add_image("disk", data=b"q" * 10)
    img["status"] = "queued"
    with pytest.raises(CloudError, match="is queued, not active"):
        transfer.stream_image(s, img["id"], t, name="copy")
    assert not dst.images and not dst.deleted


def test_copyable_properties():
    doc = {"id": "i", "name": "n", "status": "active", "size": 3, "visibility": "private",
           "os_distro": "fedora", "owner_specified.openstack.md5": "a", "os_hash_value": "b",
           "stores": "file", "fedcloud_migrated_from": "c", "instance_uuid": "d",
           "owner_user_name": "e", "hw_qemu_guest_agent": "yes", "boot_roles": "member",
           "tags": ["t"], "min_disk": 1, "disk_format": "raw", "nested": {"x": 1}}
    assert transfer.copyable_properties(doc) == {"os_distro": "fedora",
                                                 "hw_qemu_guest_agent": "yes"}
