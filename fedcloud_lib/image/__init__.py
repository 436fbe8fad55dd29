"""image-create: import, verify, boot-test and retire cloud images by the site policy.

The runbook calls one module per step: :mod:`.request` (the profile and parameters,
checked against the site policy; no network) → :mod:`.facts` (the verified checksum from
the CHECKSUM file and its signature; the profile's images, leftovers and the servers using
them) → :mod:`.plan` (pure: what to download, upload, boot-test, hide or delete, by the
update policy in :mod:`.retire`) → :func:`fedcloud_lib.require_approval` → :mod:`.apply`
(walk the approved plan: :mod:`.fetch`, :mod:`.signature`, :mod:`.diskimage`,
:mod:`.boottest`).  :mod:`.profile` renders a profile's user-data and SOP record.
"""
from . import (  # noqa: E402,E501 - one module per step, for the runbook
           apply,
           boottest,
           checksum,
           diskimage,
           facts,
           fetch,
           plan,
           profile,
           request,
           retire,
           signature,
)

__all__ = ["apply", "boottest", "checksum", "diskimage", "facts", "fetch", "plan", "profile",
           "request", "retire", "signature"]
