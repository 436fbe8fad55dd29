# Managed by fedcloud (ansible role config). Installed as
# cinder/volume/drivers/fedcloud_fake.py.
"""Cinder's FakeLoggingVolumeDriver with real (small) image copies.

The stock fake driver inherits LVM's copy_image_to_volume / copy_volume_to_image, which
run qemu-img on /dev/mapper devices that do not exist here.  This one keeps a volume's
"content" as a small file: a volume created from an image stores the image bytes, and
uploading a volume to an image sends that file (64 KiB of zeros for a blank volume).
Snapshots and clones copy the file, so image -> volume -> snapshot -> image round trips
keep their bytes.
"""
import io
import os
import shutil

from cinder.tests import fake_driver

STORE = "/var/lib/cinder/fedcloud-fake"
BLANK = b"\0" * 65536


def _path(kind, obj_id):
    os.makedirs(STORE, exist_ok=True)
    return os.path.join(STORE, f"{kind}-{obj_id}.img")


def _copy(src, dst):
    """Give a new volume or snapshot the bytes of its source, if the source has any."""
    path = _path(*src)
    if os.path.exists(path):
        shutil.copyfile(path, _path(*dst))


class FakeVolumeDriver(fake_driver.FakeLoggingVolumeDriver):
    def copy_image_to_volume(self, context, volume, image_service, image_id, *args, **kwargs):
        with open(_path("volume", volume.id), "wb") as f:
            image_service.download(context, image_id, f)

    def copy_volume_to_image(self, context, volume, image_service, image_meta):
        p = _path("volume", volume.id)
        data = open(p, "rb").read() if os.path.exists(p) else BLANK
        image_service.update(context, image_meta["id"], {}, io.BytesIO(data))

    def create_snapshot(self, snapshot):
        super().create_snapshot(snapshot)
        _copy(("volume", snapshot.volume_id), ("snapshot", snapshot.id))

    def create_volume_from_snapshot(self, volume, snapshot):
        res = super().create_volume_from_snapshot(volume, snapshot)
        _copy(("snapshot", snapshot.id), ("volume", volume.id))
        return res

    def create_cloned_volume(self, volume, src_vref):
        res = super().create_cloned_volume(volume, src_vref)
        _copy(("volume", src_vref.id), ("volume", volume.id))
        return res

    def delete_volume(self, volume):
        super().delete_volume(volume)
        p = _path("volume", volume.id)
        if os.path.exists(p):
            os.unlink(p)

    def delete_snapshot(self, snapshot):
        super().delete_snapshot(snapshot)
        p = _path("snapshot", snapshot.id)
        if os.path.exists(p):
            os.unlink(p)
