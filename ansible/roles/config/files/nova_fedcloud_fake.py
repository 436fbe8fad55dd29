# Managed by fedcloud (ansible role config). Installed as nova/virt/fedcloud_fake.py:
# nova only loads compute drivers from inside the nova.virt package.
"""nova's FakeDriver, except that a server snapshot uploads real image data.

The stock FakeDriver.snapshot() uploads nothing, so snapshot images stay `queued` for
ever.  Here the snapshot holds a copy of the server's source image (so a snapshot,
download and re-upload round trip is byte-exact) or, for servers booted from a volume,
64 KiB of zeros.
"""
import io
import logging
import tempfile

from nova.image import glance
from nova.virt import fake

LOG = logging.getLogger(__name__)
FALLBACK = b"\0" * 65536


class FakeDriver(fake.FakeDriver):
    def snapshot(self, context, instance, image_id, update_task_state):
        super().snapshot(context, instance, image_id, update_task_state)
        api = glance.API()
        data, disk_format = FALLBACK, "raw"
        if instance.image_ref:
            try:
                src = api.get(context, instance.image_ref)
                disk_format = src.get("disk_format") or "raw"
                with tempfile.NamedTemporaryFile(prefix="fedcloud-snap-") as tmp:
                    api.download(context, instance.image_ref, dest_path=tmp.name)
                    data = open(tmp.name, "rb").read()
            except Exception:  # source image gone or unreadable: keep the fallback
                LOG.warning("fedcloud_fake: cannot copy image %s, uploading zeros",
                            instance.image_ref, exc_info=True)
                data, disk_format = FALLBACK, "raw"
        api.update(context, image_id,
                   {"disk_format": disk_format, "container_format": "bare"},
                   io.BytesIO(data), purge_props=False)
