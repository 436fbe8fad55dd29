"""Stream an image from one Glance into another: bounded memory, no copy on disk,
verified end to end.

:func:`stream_image` reads the source image's data as an HTTP stream (``GET .../file``
with ``stream=True``) and hands the same chunks, as they arrive, to the target's upload
(a ``PUT .../file`` of the image's size): one chunk at a time is in memory and nothing
touches the local disk.  The sha256 of the bytes is computed as they pass (inline: sha256
is far faster than the Glances; a hashing thread measured slower, with its hand-offs).

Verification, end to end: both Glances hash what they store (``os_hash_algo`` /
``os_hash_value``, else the md5 ``checksum``).  The target's hash is of the bytes it
received from this stream; if it equals the source's hash of its own bytes, the stream
carried exactly the source's bytes, so the sha256 computed here is the sha256 of both
images.  It is then stamped on the target image as ``owner_specified.openstack.sha256``
(openstacksdk's convention); if the source image carries one, it must match too.  On any
mismatch or failure the half-made target image is deleted.

Nothing here is migration-specific: give it two connections, an image and a name.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..cloud import CLOUD_ERRORS
from ..errors import CloudError, FedcloudError

__all__ = ["CHUNK", "SHA256_PROPERTY", "TransferResult", "stream_image", "copyable_properties"]

CHUNK = 1024 * 1024
SHA256_PROPERTY = "owner_specified.openstack.sha256"
#: properties describing where an image came from or how it is stored: not copied
_NOT_COPIED_PREFIXES = ("owner_specified.", "os_hash", "os_glance", "fedcloud_migrat",
                        "stores", "image_location", "instance_", "owner_", "block_device")
#: Glance's own fields of an image (set by Glance or by the create call)
_CORE = {"id", "name", "status", "size", "virtual_size", "checksum", "created_at",
         "updated_at", "owner", "visibility", "protected", "os_hidden", "file", "schema",
         "self", "tags", "disk_format", "container_format", "min_disk", "min_ram"}
_NOT_COPIED = {"base_image_ref", "image_type", "user_id", "boot_roles", "image_state",
               "signature_verified", "direct_url", "locations", "checksum"}
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TransferResult:
    """One image streamed from a source Glance into a target Glance."""

    name: str
    source_image_id: str
    target_image_id: str
    size: int
    sha256: str
    verified_by: str
    seconds: float

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10^6 bytes)."""
        return self.size / self.seconds / 1e6 if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The transfer as JSON."""
        return {"name": self.name, "source_image_id": self.source_image_id,
                "target_image_id": self.target_image_id, "size": self.size,
                "sha256": self.sha256, "verified_by": self.verified_by,
                "seconds": round(self.seconds, 2), "mb_per_s": round(self.mb_per_s, 1)}


def copyable_properties(image: dict[str, Any]) -> dict[str, str]:
    """The properties of an image (its Glance document) worth carrying to a copy
    (os_distro, hw_*, ...): not Glance's own fields, nor the ones saying where it came
    from, who uploaded it or how it is stored."""
    out = {}
    for k, v in image.items():
        if k in _CORE or k in _NOT_COPIED or k.startswith(_NOT_COPIED_PREFIXES) \
                or not isinstance(v, str):
            continue
        out[k] = v
    return out


def _document(conn: Any, image_id: str) -> dict[str, Any]:
    """An image as Glance returns it (every property, flat), which openstacksdk's Image
    splits into attributes and ``properties``."""
    return dict(conn.image.get(f"/images/{image_id}").json())


class _Stream:
    """The download, read chunk by chunk, hashed, counted and reported as it passes, as
    the upload's body.

    The download is read raw (``HTTPResponse.read(n, decode_content=False)``: Glance
    sends image data unencoded), and the upload announces its length, so each chunk is
    copied once from the socket and sent as it is — no decoding buffer, no chunked
    framing.  Hashing inline costs less than handing chunks to another thread (sha256
    runs far faster than the Glances move data).  A source that sends fewer bytes than its
    size fails the transfer instead of leaving the upload waiting.
    """

    def __init__(self, resp: Any, expected: int, label: str, chunk_size: int,
                 progress: Progress | None, advance: Callable[[int], None] | None) -> None:
        encoding = (resp.headers.get("Content-Encoding") or "identity").lower()
        if encoding != "identity":  # never from Glance; decoded the slow way if it happens
            chunks = resp.iter_content(chunk_size=chunk_size)
            self._read: Callable[[], bytes] = lambda: next(chunks, b"")
        else:
            self._read = lambda: resp.raw.read(chunk_size, decode_content=False)
        self.expected = expected
        self.sha = hashlib.sha256()
        self.count = 0
        self.label = label
        self.progress = progress
        self.advance = advance
        self._reported = 0
        step = max(16 * CHUNK, expected // 20)
        self._next_report = step
        self._step = step
        self._t0 = time.monotonic()

    def __len__(self) -> int:
        return self.expected

    def __iter__(self) -> "_Stream":
        return self

    def __next__(self) -> bytes:
        chunk = self._read()
        if not chunk:
            if self.count != self.expected:
                raise CloudError(f"{self.label}: the source sent {self.count} of its "
                                 f"{self.expected} bytes")
            raise StopIteration
        self.sha.update(chunk)
        self.count += len(chunk)
        if self.count > self.expected:
            raise CloudError(f"{self.label}: the source sent more than its size "
                             f"({self.expected} bytes)")
        if self.count >= self._next_report or self.count == self.expected:
            self._next_report += self._step
            self.report()
        return chunk

    def report(self) -> None:
        """Tell the callbacks how far the stream got."""
        if self.advance is not None and self.count > self._reported:
            self.advance(self.count - self._reported)
        self._reported = self.count
        if self.progress is not None and self.count < self.expected:
            secs = time.monotonic() - self._t0
            self.progress(f"{self.label}: {self.count / 2**20:.0f} MiB "
                          f"({100 * self.count // max(self.expected, 1)}%), "
                          f"{self.count / max(secs, 1e-6) / 1e6:.0f} MB/s")


def _verify(src: Any, got: Any, count: int, sha256: str) -> str:
    """How the copy was verified; raises CloudError on any mismatch."""
    problems = []
    if count != src.size or got.size != src.size:
        problems.append(f"size: source {src.size}, streamed {count}, target {got.size}")
    by = ""
    if src.hash_algo and src.hash_value and got.hash_algo == src.hash_algo:
        if got.hash_value != src.hash_value:
            problems.append(f"{src.hash_algo}: source {src.hash_value[:16]}..., target "
                            f"{(got.hash_value or '')[:16]}...")
        by = f"{src.hash_algo} of both Glances"
    elif src.checksum and got.checksum:
        if got.checksum != src.checksum:
            problems.append(f"md5: source {src.checksum}, target {got.checksum}")
        by = "md5 of both Glances"
    else:
        problems.append("neither Glance recorded a checksum to compare")
    claimed = (getattr(src, "properties", None) or {}).get(SHA256_PROPERTY)
    if claimed:
        if claimed != sha256:
            problems.append(f"sha256: the source image claims {claimed[:16]}..., its bytes "
                            f"hash to {sha256[:16]}...")
        by += " + the source's sha256"
    if problems:
        raise CloudError("the copy does not match its source: " + "; ".join(problems),
                         problems=problems)
    return by


def stream_image(source: Any, image: Any, target: Any, *, name: str,
                 properties: dict[str, str] | None = None, chunk_size: int = CHUNK,
                 wait: int = 600, progress: Progress | None = None,
                 advance: Callable[[int], None] | None = None) -> TransferResult:
    """Copy ``image`` (an id or SDK image of connection ``source``) into a new image
    ``name`` of connection ``target``, streaming, and verify it (see the module).

    ``properties`` are set on the new image with the source's copyable ones
    (:func:`copyable_properties`).  ``progress`` gets a line now and then (bytes, percent,
    rate) and the verdict; ``advance`` the number of bytes moved since its last call (for
    a progress bar).  Returns the verified copy; raises :class:`CloudError`
    (and deletes the partial copy) when anything fails.
    """
    image_id = getattr(image, "id", image)
    try:
        src = source.image.get_image(image_id)
    except CLOUD_ERRORS as exc:
        raise CloudError(f"cannot read source image {image_id}: {exc}") from exc
    if src.status != "active" or not src.size:
        raise CloudError(f"source image {src.name} ({src.id}) is {src.status}"
                         + (", not active" if src.status != "active" else " but has no size"))
    label = f"transfer {name}"
    try:
        meta = {**copyable_properties(_document(source, src.id)), **(properties or {})}
    except CLOUD_ERRORS as exc:
        raise CloudError(f"cannot read source image {src.id}: {exc}") from exc
    try:
        dst = target.image.create_image(
            name, disk_format=src.disk_format, container_format=src.container_format,
            allow_duplicates=True, min_disk=src.min_disk or 0, min_ram=src.min_ram or 0,
            **meta)
    except CLOUD_ERRORS as exc:
        raise CloudError(f"cannot create image {name} in the target: {exc}") from exc
    resp = None
    t0 = time.monotonic()
    try:
        resp = source.image.get(f"/images/{src.id}/file", stream=True)
        body = _Stream(resp, src.size, label, chunk_size, progress, advance)
        dst.upload(target.image, data=body, size=src.size)
        sha256 = body.sha.hexdigest()
        secs = time.monotonic() - t0
        got = target.image.get_image(dst.id)
        if got.status != "active":
            got = target.image.wait_for_status(got, "active", failures=["killed"], wait=wait)
        by = _verify(src, got, body.count, sha256)
        target.image.update_image(got.id, **{SHA256_PROPERTY: sha256})
    except BaseException as exc:
        try:
            target.image.delete_image(dst, ignore_missing=True)
        except CLOUD_ERRORS:
            pass  # the next run finds it by its properties and deletes it
        if isinstance(exc, (FedcloudError, KeyboardInterrupt, SystemExit)):
            raise
        # the SDK's and keystoneauth's errors, and requests' for a stream cut midway
        raise CloudError(f"{label} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if resp is not None:
            resp.close()
    if progress is not None:
        progress(f"{label}: {src.size / 2**20:.1f} MiB in {secs:.1f} s "
                 f"({src.size / max(secs, 1e-6) / 1e6:.0f} MB/s), verified by {by}")
    return TransferResult(name=name, source_image_id=src.id, target_image_id=got.id,
                          size=src.size, sha256=sha256, verified_by=by, seconds=secs)
