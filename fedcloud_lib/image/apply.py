"""image-create, step 4: apply — walk the approved plan's steps, one small idempotent
handler per ``(kind, action)``.

* ``download``: stream the source to a work file (or hash a local file in place), compare
  its sha256 with the verified one, check a detached signature, ``qemu-img info`` — all
  before anything reaches Glance; a mismatch names both digests, a bad signature the key;
* ``image create``: find the profile's active image with this sha256 first; else upload
  the verified file (streamed, never in memory), wait for ``active`` and compare Glance's
  own ``os_hash_value`` with the digest of the verified bytes in Glance's algorithm.  Any
  failure, Ctrl-C or SIGTERM deletes the half-made image; a SIGKILL leaves a ``queued``
  one, which the next run's plan deletes;
* ``boot test``: :mod:`.boottest`; a failure deactivates the image and says so;
* ``image update`` (reactivate, hide, unhide) and ``image delete`` (leftovers, retired
  versions: re-checked for servers using them just before).
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openstack import exceptions as os_exc

from .. import progress as progress_mod
from ..cloud import CLOUD_ERRORS, GONE
from ..context import current_run, utcnow
from ..errors import CheckFailed, CloudError, RunbookError
from ..plan import Handlers, Plan, Step, StepResult, walk
from ..site.policy import Policy
from . import boottest, diskimage
from .facts import META, UNFINISHED, image_record, owned_images, release_profile_lock
from .fetch import Download, Meter, download, fetch_small, hash_file, metered
from .signature import SignatureCheck, verify

__all__ = ["HANDLERS", "ApplyState", "ImageOutcome", "apply", "UPLOAD_TIMEOUT"]

HANDLERS = Handlers()
UPLOAD_TIMEOUT = 3600


@dataclass
class ApplyState:
    """What the walk has made or found so far (for the steps after)."""

    conn: Any
    policy: Policy
    say: Callable[[str], None] = progress_mod.say
    progress: bool = True
    download: Download | None = None
    disk: diskimage.DiskImage | None = None
    signature: SignatureCheck | None = None
    image: Any | None = None
    boot: boottest.BootResult | None = None
    changed: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ImageOutcome:
    """The image as it stands after apply, and what else the run changed."""

    name: str
    image_id: str
    status: str
    visibility: str
    profile: str
    version: str
    sha256: str
    glance_hash: str
    size: int | None
    disk_format: str | None
    boot_test: str
    changed: tuple[dict[str, str], ...]
    steps: tuple[StepResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "steps"}
        d["changed"] = [dict(c) for c in self.changed]
        d["steps"] = [s.__dict__ for s in self.steps]
        return d


def _stamp() -> dict[str, str]:
    run = current_run()
    return {META["created_by"]: run.operator, META["run_id"]: run.label,
            META["created_at"]: utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}


def _mine(conn: Any, profile: str, sha256: str) -> list[Any]:
    return [i for i in owned_images(conn, conn.current_project_id)
            if (i.properties or {}).get(META["profile"]) == profile
            and (i.properties or {}).get(META["sha256"]) == sha256]


# --------------------------------------------------------------------------- download

@HANDLERS.on("download", "create")
def _download(st: ApplyState, step: Step) -> str:
    i = step.inputs
    d = download(i["source"], st.policy.images.work_dir, sha256=i["sha256"],
                 algos=[i["hash_algo"]], max_bytes=i["max_bytes"], show=st.progress)
    try:
        if d.sha256 != i["sha256"]:
            raise CheckFailed(
                f"checksum mismatch: {i['source'][:120]} has sha256 {d.sha256}, expected "
                f"{i['sha256']}; nothing was uploaded", service="download",
                got=d.sha256, expected=i["sha256"])
        if i.get("signature"):
            with tempfile.TemporaryDirectory(prefix="fedcloud-sig-") as tmp:
                sig = fetch_small(i["signature"], Path(tmp) / "image.sig",
                                  parameter="signature", what="the signature")
                st.signature, _ = verify(sig, data=d.path, keyring_name=i["keyring"] or "",
                                         keyring_path=i["keyring_path"] or "",
                                         what=f"image {step.name}")
        disk = diskimage.inspect(d.path)
        diskimage.check(disk, d.path, formats=i["formats"], min_disk_gb=i["min_disk_gb"],
                        profile=i["profile"])
    except BaseException:
        d.remove()
        raise
    st.download, st.disk = d, disk
    sig = f", signed by {st.signature.key_id}" if st.signature else ""
    return (f"{d.size} bytes in {d.seconds:.1f} s: sha256 verified{sig}; {disk.format}, "
            f"virtual size {disk.virtual_size / diskimage.GiB:.2f} GiB")


# --------------------------------------------------------------------------- upload

class _Reader:
    """The verified file, read by the HTTP client in its own block size, metered."""

    def __init__(self, path: Path, size: int, meter: Meter):
        self._f = path.open("rb")
        self._size, self._meter = size, meter

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._meter.update(len(data))
        return data

    def close(self) -> None:
        self._f.close()


def _remove_unfinished(conn: Any, profile: str, sha256: str) -> None:
    """Delete this upload's unfinished images (best effort: a later run's plan removes
    what this could not)."""
    try:
        for img in _mine(conn, profile, sha256):
            if img.status in UNFINISHED:
                conn.image.delete_image(img, ignore_missing=True)
    except CLOUD_ERRORS:
        pass


def _glance_digest(st: ApplyState, algo: str) -> str:
    d = st.download
    if algo in d.digests:
        return d.digests[algo]
    return hash_file(d.path, [algo], show=False)[algo]


@HANDLERS.on("image", "create")
def _image(st: ApplyState, step: Step) -> str:
    i = step.inputs
    conn = st.conn
    found = [img for img in _mine(conn, i["profile"], i["sha256"]) if img.status == "active"]
    if found:
        st.image = found[0]
        return f"{found[0].id} already active"
    d, disk = st.download, st.disk
    if d is None or disk is None:
        raise RunbookError(f"image {step.name}: no verified download to upload (the plan's "
                           f"download step must come first)")
    image = None
    try:
        with metered(d.size, f"upload {step.name}", show=st.progress) as meter:
            reader = _Reader(d.path, d.size, meter)
            try:
                image = conn.image.create_image(
                    i["name"], data=reader, size=d.size, disk_format=disk.format,
                    container_format="bare", visibility=i["visibility"],
                    min_disk=i["min_disk"], min_ram=i["min_ram"], allow_duplicates=True,
                    validate_checksum=False, sha256=i["sha256"],
                    meta={**i["properties"], **_stamp()})
            finally:
                reader.close()
        image = conn.image.wait_for_status(image, "active", failures=["killed", "deleted"],
                                           wait=UPLOAD_TIMEOUT)
        algo = image.hash_algo or "sha512"
        want = _glance_digest(st, algo)
        if image.hash_value != want:
            raise CheckFailed(
                f"Glance stored other bytes than were verified: its os_hash_value "
                f"({algo}) is {image.hash_value}, the verified file's is {want}; the image "
                f"was deleted", service="glance", got=image.hash_value, expected=want)
    except BaseException:
        if image is not None:
            try:
                conn.image.delete_image(image, ignore_missing=True)
            except CLOUD_ERRORS:
                pass
        _remove_unfinished(conn, i["profile"], i["sha256"])
        raise
    st.image = image
    st.changed.append({"image": image.name, "id": image.id, "change": "created"})
    return f"{image.id} active; {image.hash_algo} matches the verified bytes"


@HANDLERS.on("image", "reuse")
def _reuse(st: ApplyState, step: Step) -> None:
    st.image = st.conn.image.get_image(step.inputs["id"])


@HANDLERS.on("image", "update")
def _update(st: ApplyState, step: Step) -> str:
    conn, i = st.conn, step.inputs
    img = conn.image.get_image(i["id"])
    if i.get("reactivate"):
        if img.status == "deactivated":
            conn.image.reactivate_image(img)
            img = conn.image.wait_for_status(img, "active", failures=["killed"], wait=120)
        st.image = img
        st.changed.append({"image": img.name, "id": img.id, "change": "reactivated"})
        return "reactivated"
    if i["hide"]:
        conn.image.update_image(img, is_hidden=True)
        conn.image.update_image_properties(conn.image.get_image(img.id), meta={
            META["hidden_at"]: utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")})
        st.changed.append({"image": img.name, "id": img.id, "change": "hidden"})
        return "hidden"
    conn.image.update_image(img, is_hidden=False)
    st.changed.append({"image": img.name, "id": img.id, "change": "unhidden"})
    return "shown again"


def _servers_using(conn: Any, image_id: str) -> list[Any]:
    try:
        servers = conn.compute.servers(details=True, all_projects=True, image=image_id)
        servers = list(servers)
    except os_exc.ForbiddenException:
        servers = list(conn.compute.servers(details=True, image=image_id))
    return [s for s in servers if s.status not in GONE
            and (s.image or {}).get("id") == image_id]


@HANDLERS.on("image", "delete")
def _delete(st: ApplyState, step: Step) -> str:
    conn, i = st.conn, step.inputs
    img = conn.image.find_image(i["id"], ignore_missing=True)
    if img is None:
        return "already gone"
    if i.get("retire"):
        users = _servers_using(conn, img.id)
        if users:
            raise CloudError(f"image {img.name} ({img.id}) is in use since the plan was made "
                             f"(by {', '.join(f'{s.name} ({s.id})' for s in users)}); not "
                             f"deleted. Make a new plan", image=img.id)
    conn.image.delete_image(img, ignore_missing=True)
    conn.image.wait_for_delete(img, wait=300)
    st.changed.append({"image": img.name, "id": img.id,
                       "change": "deleted" if i.get("retire") else "leftover removed"})
    return "deleted"


# --------------------------------------------------------------------------- boot test

@HANDLERS.on("boot test", "create")
def _boot_test(st: ApplyState, step: Step) -> str:
    conn, img = st.conn, st.image
    if img is None:
        raise RunbookError(f"boot test {step.name}: no image to boot (the plan's image step "
                           f"must come first)")
    result = boottest.run(conn, img.id, dict(step.inputs), name=step.name, say=st.say)
    st.boot = result
    when = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    verdict = f"{'passed' if result.passed else 'failed'} {when}: {result.reason}"[:255]
    conn.image.update_image_properties(conn.image.get_image(img.id),
                                       meta={META["boot_test"]: verdict})
    if result.passed:
        st.image = conn.image.get_image(img.id)
        return result.reason
    conn.image.deactivate_image(img)
    st.image = conn.image.get_image(img.id)
    st.changed.append({"image": img.name, "id": img.id, "change": "deactivated"})
    raise CheckFailed(f"boot test of image {img.name} ({img.id}) failed: {result.reason}. "
                      f"The image is DEACTIVATED: nobody can boot it; look at it, then "
                      f"re-run (reactivates and tests again) or delete it",
                      service="nova", image=img.id)


# --------------------------------------------------------------------------- apply

def apply(conn: Any, policy: Policy, plan: Plan, *, progress: bool = True,
          say: Callable[[str], None] | None = None) -> ImageOutcome:
    """Carry out exactly ``plan`` (the approved one); every step is idempotent.  The work
    file is removed and the profile's lock released however it ends."""
    st = ApplyState(conn=conn, policy=policy, say=say or progress_mod.say, progress=progress)
    profile = next((s.inputs.get("profile") for s in plan.steps if s.inputs.get("profile")),
                   None)
    try:
        steps = walk(plan, HANDLERS, st, progress=st.say)
        image = conn.image.get_image(st.image.id) if st.image is not None else None
    except CLOUD_ERRORS as exc:
        raise CloudError(f"applying {plan.title} failed: {exc}; re-run to finish (it resumes "
                         f"where it stopped)") from exc
    finally:
        if st.download is not None:
            st.download.remove()
        if profile:
            release_profile_lock(profile)
    if image is None:
        raise RunbookError(f"{plan.title}: the plan has no image step")
    rec = image_record(image)
    return ImageOutcome(
        name=image.name, image_id=image.id, status=image.status,
        visibility=image.visibility, profile=rec.profile or "", version=rec.version or "",
        sha256=rec.sha256 or "", glance_hash=f"{image.hash_algo}:{image.hash_value}",
        size=image.size, disk_format=image.disk_format, boot_test=rec.boot_test or "",
        changed=tuple(st.changed), steps=tuple(steps))
