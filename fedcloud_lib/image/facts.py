"""image-create, step 2: the facts — the verified checksum, and what the cloud holds.

:func:`resolve_source` turns the checksum parameter into the sha256 the image must have
(reading the CHECKSUM file, after checking its signature when one is given) and checks
that the source is there.  :func:`gather` reads, without changing anything, what the plan
depends on: the profile's images in Glance (hidden ones too), leftovers of interrupted
uploads, which servers use which image, the flavors the boot test may use.  Facts are
plain records (:class:`ImageRecord`, ...), so that the plan is a pure function of them.

Everything image-create makes carries ``fedcloud_*`` properties; an image is found again
by its ``fedcloud_sha256`` within its profile, which is what makes re-running safe.
While a run holds its facts it holds the profile's lock (one image-create per profile at
a time on this operator machine), so a ``queued`` image of the profile is a leftover of a
killed run, never another run's upload in progress.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from openstack import exceptions as os_exc

from ..cloud import GONE, call
from ..config import settings
from ..context import current_run
from ..errors import CloudError, ConfigError, LockError, ParameterError
from ..lock import RunLock
from ..site.policy import Policy
from . import checksum as cks
from .fetch import fetch_small, probe, source_name
from .request import CLEARSIGNED, ImageRequest
from .signature import SignatureCheck, verify

__all__ = ["PREFIX", "META", "UNFINISHED", "ImageRecord", "FlavorRecord", "ServerRecord",
           "Source", "Facts", "resolve_source", "gather", "image_record", "profile_lock",
           "release_profile_lock", "owned_images"]

PREFIX = "fedcloud_"
#: Glance properties fedcloud sets on the images it makes
META = {k: PREFIX + k for k in ("sha256", "profile", "version", "source", "checksum_from",
                                "signed_by", "created_by", "created_at", "ticket", "run_id",
                                "hidden_at", "boot_test", "instance_lifetime_h",
                                "boot_test_of")}
#: image states of an upload that did not finish
UNFINISHED = ("queued", "saving", "uploading", "importing", "killed")


@dataclass(frozen=True)
class ImageRecord:
    """A Glance image, as far as the plan cares."""

    id: str
    name: str
    status: str
    visibility: str = "private"
    hidden: bool = False
    created_at: str = ""
    updated_at: str = ""
    profile: str | None = None
    version: str | None = None
    sha256: str | None = None
    hidden_at: str | None = None
    boot_test: str | None = None   # "passed <time> ..." | "failed <time>: reason"
    run_id: str | None = None
    hash_algo: str | None = None
    hash_value: str | None = None
    size: int | None = None

    @property
    def boot_test_passed(self) -> bool:
        return (self.boot_test or "").startswith("passed")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def image_record(image: Any) -> ImageRecord:
    """An SDK image as an :class:`ImageRecord`."""
    props = dict(getattr(image, "properties", None) or {})
    return ImageRecord(
        id=image.id, name=image.name or "", status=image.status or "?",
        visibility=image.visibility or "private", hidden=bool(image.is_hidden),
        created_at=image.created_at or "", updated_at=image.updated_at or "",
        profile=props.get(META["profile"]), version=props.get(META["version"]),
        sha256=props.get(META["sha256"]), hidden_at=props.get(META["hidden_at"]),
        boot_test=props.get(META["boot_test"]), run_id=props.get(META["run_id"]),
        hash_algo=image.hash_algo, hash_value=image.hash_value, size=image.size)


@dataclass(frozen=True)
class FlavorRecord:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int


@dataclass(frozen=True)
class ServerRecord:
    id: str
    name: str
    status: str
    image_id: str | None
    project_id: str | None = None


@dataclass(frozen=True)
class Source:
    """The image's location and the sha256 it must have, and where that came from."""

    location: str
    file_name: str
    sha256: str
    checksum_from: str            # "parameter" or the CHECKSUM file's URL/path
    checksum_signature: SignatureCheck | None = None  # a good signature on the CHECKSUM file
    image_signature: str | None = None   # detached signature of the image (checked later)
    size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checksum_signature"] = (self.checksum_signature.to_dict()
                                   if self.checksum_signature else None)
        return d


def resolve_source(req: ImageRequest) -> Source:
    """The sha256 the image must have, from the checksum parameter or its CHECKSUM file
    (signature checked first when one is given), and the source's size.

    Raises :class:`ParameterError` (unreachable URL, not a CHECKSUM file, the source's
    file absent from it), :class:`~fedcloud_lib.errors.CheckFailed` (bad signature).
    """
    name = source_name(req.source)
    size = probe(req.source)
    if req.checksum_is_digest:
        if req.signature:  # checked after the download; make sure it is there now
            probe(req.signature, parameter="signature", what="the signature")
        return Source(location=req.source, file_name=name, sha256=req.checksum,
                      checksum_from="parameter", image_signature=req.signature or None,
                      size=size)
    where = f"CHECKSUM file {req.checksum[:120]}"
    with tempfile.TemporaryDirectory(prefix="fedcloud-checksum-") as tmp:
        sums = fetch_small(req.checksum, Path(tmp) / "CHECKSUM", parameter="checksum",
                           what="the CHECKSUM file")
        text = sums.read_text(encoding="utf-8", errors="replace")
        sig_check = None
        if req.signature:
            if req.signature == CLEARSIGNED:
                if not cks.is_clearsigned(text):
                    raise ParameterError(f"signature: 'clearsigned', but {where} is not "
                                         f"clearsigned", parameter="signature")
                sig_check, text = verify(sums, keyring_name=req.keyring or "",
                                         keyring_path=req.keyring_path or "", what=where)
            else:
                sig = fetch_small(req.signature, Path(tmp) / "CHECKSUM.sig",
                                  parameter="signature", what="the signature")
                sig_check, _ = verify(sig, data=sums, keyring_name=req.keyring or "",
                                      keyring_path=req.keyring_path or "", what=where)
                if cks.is_clearsigned(text):  # read only the text, not its armor
                    text = cks.clearsigned_body(text)
    sha = cks.lookup(cks.parse(text, where=where), name, where=where)
    return Source(location=req.source, file_name=name, sha256=sha, checksum_from=req.checksum,
                  checksum_signature=sig_check, size=size)


@dataclass(frozen=True)
class Facts:
    """What the plan for one request depends on (plain records, read once)."""

    project_id: str
    source: Source
    match: ImageRecord | None                 # this profile's image with this sha256
    profile_images: tuple[ImageRecord, ...]   # the profile's finished images (match included)
    leftovers: tuple[ImageRecord, ...]        # unfinished uploads to remove
    usage: Mapping[str, tuple[ServerRecord, ...]]  # image id -> servers booted from it
    all_servers_visible: bool                 # False: only this project's servers were seen
    flavors: tuple[FlavorRecord, ...]         # the profile's boot flavors that exist
    network_id: str | None
    glance_hash_algo: str

    def usage_rows(self) -> list[dict[str, Any]]:
        """Which servers hold which image of the profile (for the record)."""
        rows = []
        for img in self.profile_images:
            servers = self.usage.get(img.id, ())
            rows.append({"image": img.name, "id": img.id, "version": img.version,
                         "status": img.status, "hidden": img.hidden,
                         "servers": ", ".join(f"{s.name} ({s.id})" for s in servers) or "-"})
        return rows


def owned_images(conn: Any, project_id: str) -> list[Any]:
    """The project's images, hidden ones included (Glance lists them only on request)."""
    seen: dict[str, Any] = {}
    for hidden in (False, True):
        for img in conn.image.images(owner=project_id, is_hidden=hidden):
            seen.setdefault(img.id, img)
    return list(seen.values())


def _servers(conn: Any) -> tuple[list[Any], bool]:
    try:
        return list(conn.compute.servers(details=True, all_projects=True)), True
    except os_exc.ForbiddenException:  # a project member sees only its own project's
        return list(conn.compute.servers(details=True)), False


def _glance_algo(images: Iterable[Any]) -> str:
    for img in images:
        if img.status == "active" and img.hash_algo:
            return img.hash_algo
    return "sha512"  # Glance's default hashing_algorithm


_LOCKS: dict[str, RunLock] = {}


def profile_lock(profile: str) -> RunLock:
    """Hold the profile's lock (one image-create per profile at a time on this machine)
    for the rest of this process, or until :func:`release_profile_lock`; re-entrant."""
    if profile in _LOCKS:
        return _LOCKS[profile]
    lock = RunLock(settings().outputs / ".locks", "image-create", f"profile-{profile}")
    try:
        lock.acquire(current_run().label)
    except LockError as exc:
        h = exc.context.get("holder") or {}
        raise LockError(f"profile {profile}: another image-create run holds it (run "
                        f"{h.get('run_id', '?')}, pid {h.get('pid', '?')} on "
                        f"{h.get('host', '?')}, since {h.get('since', '?')}); wait for it to "
                        f"finish (a JupyterLab kernel that made a plan holds it until it is "
                        f"restarted)", holder=h) from None
    _LOCKS[profile] = lock
    return lock


def release_profile_lock(profile: str) -> None:
    lock = _LOCKS.pop(profile, None)
    if lock is not None:
        lock.release()


def gather(conn: Any, policy: Policy, req: ImageRequest, source: Source) -> Facts:
    """Read what the plan depends on (takes the profile's lock; changes nothing).

    Raises :class:`ParameterError` for a name or version clash: the version is already
    imported with another checksum, the image is already another version of the
    profile, or the name is taken by an image image-create did not make.
    """
    profile_lock(req.profile.name)
    try:
        return _gather(conn, policy, req, source)
    except BaseException:
        release_profile_lock(req.profile.name)
        raise


def _gather(conn: Any, policy: Policy, req: ImageRequest, source: Source) -> Facts:
    project_id = conn.current_project_id
    raw = call(lambda: owned_images(conn, project_id), "list the project's images")
    records = [image_record(i) for i in raw]
    mine = [r for r in records if r.profile == req.profile.name]
    finished = [r for r in mine if r.status not in UNFINISHED and r.status not in
                ("deleted", "pending_delete")]
    leftovers = tuple(r for r in mine if r.status in UNFINISHED)

    problems = []
    for r in finished:
        if r.version == req.version and r.sha256 != source.sha256:
            problems.append(f"version: {req.version} of profile {req.profile.name} is image "
                            f"{r.name} ({r.id}) with sha256 {r.sha256}; the checksum given "
                            f"is {source.sha256}. Use a new version, or retire that image first")
        elif r.sha256 == source.sha256 and r.version != req.version:
            problems.append(f"version: this image (sha256 {source.sha256}) is already version "
                            f"{r.version} of profile {req.profile.name} ({r.name}, {r.id}); "
                            f"re-run with version {r.version}")
    for r in records:
        if r.name == req.name and r.profile != req.profile.name and r.status not in GONE:
            problems.append(f"version: the name {req.name} is taken by image {r.id} "
                            f"({r.status}), which image-create did not make for profile "
                            f"{req.profile.name}; rename or remove it first")
    if problems:
        raise ParameterError("the image request clashes with what Glance holds:\n  "
                             + "\n  ".join(problems), problems=problems)
    match = next((r for r in finished if r.sha256 == source.sha256), None)

    servers, everywhere = call(lambda: _servers(conn), "list servers")
    usage: dict[str, list[ServerRecord]] = {}
    ids = {r.id for r in mine}
    for s in servers:
        image_id = (s.image or {}).get("id") if isinstance(s.image, Mapping) else None
        if image_id in ids and s.status not in GONE:
            usage.setdefault(image_id, []).append(ServerRecord(
                id=s.id, name=s.name, status=s.status, image_id=image_id,
                project_id=s.project_id))

    flavors = []
    for fname in req.profile.boot_flavors:
        f = call(lambda: conn.compute.find_flavor(fname), f"look up flavor {fname}")
        if f is not None:
            flavors.append(FlavorRecord(id=f.id, name=f.name, vcpus=f.vcpus, ram=f.ram,
                                        disk=f.disk))
    if not flavors:
        raise ConfigError(f"images.profiles.{req.profile.name}.boot_flavors: none of "
                          f"{', '.join(req.profile.boot_flavors)} exists in this cloud")
    network_id = None
    if policy.network.network:
        net = call(lambda: conn.network.find_network(policy.network.network),
                   "look up the network")
        if net is None:
            raise CloudError(f"network {policy.network.network!r} (site policy) does not "
                             f"exist in this cloud")
        network_id = net.id
    return Facts(project_id=project_id, source=source, match=match,
                 profile_images=tuple(sorted(finished, key=lambda r: r.created_at)),
                 leftovers=leftovers,
                 usage={k: tuple(v) for k, v in usage.items()},
                 all_servers_visible=everywhere, flavors=tuple(flavors),
                 network_id=network_id,
                 glance_hash_algo=_glance_algo([*raw, *call(
                     lambda: [x for x in [next(iter(conn.image.images(status="active")), None)]
                              if x is not None], "list images")]))
