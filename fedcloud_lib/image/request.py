"""image-create, step 1: the request, checked against the site policy before anything is
fetched or any cloud call is made.

:func:`prepare` refuses, with every problem at once and each naming the parameter: a
profile the policy lacks, a source that is neither an http(s) URL nor an absolute path
of a file, a checksum that is neither a sha256 nor the URL/path of a CHECKSUM file, a
signature where the profile has no keyring (or none where it requires one), a malformed
version.  Errors are :class:`~fedcloud_lib.errors.ParameterError` (exit 2).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ParameterError
from ..site.policy import IMAGE_VISIBILITIES, ImageProfile, Policy
from .checksum import is_sha256
from .fetch import is_url
from .profile import fill

__all__ = ["CLEARSIGNED", "ImageRequest", "prepare", "VERSION"]

CLEARSIGNED = "clearsigned"
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+~-]{0,63}")
_HEXISH = re.compile(r"[0-9A-Fa-f]+")


def _short(value: Any, n: int = 40) -> str:
    s = str(value)
    return repr(s) if len(s) <= n else f"{s[:n]!r}... ({len(s)} chars)"


@dataclass(frozen=True)
class ImageRequest:
    """A policy-checked image-create request (nothing fetched yet)."""

    profile: ImageProfile
    source: str                 # http(s) URL or absolute path
    checksum: str               # a sha256 (lower case) or the URL/path of a CHECKSUM file
    signature: str              # "", "clearsigned", or the URL/path of a detached signature
    version: str
    visibility: str
    ticket: str
    name: str                   # the Glance image name: <image_name>-<version>
    properties: dict[str, Any] = field(default_factory=dict)  # the profile's, filled in
    keyring: str | None = None  # the policy's keyring name
    keyring_path: str | None = None

    @property
    def checksum_is_digest(self) -> bool:
        return is_sha256(self.checksum)

    @property
    def signature_over(self) -> str | None:
        """What the signature covers: "checksum" (the CHECKSUM file), "image", or None."""
        if not self.signature:
            return None
        return "image" if self.checksum_is_digest else "checksum"

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile.name, "source": self.source, "checksum": self.checksum,
                "signature": self.signature, "version": self.version,
                "visibility": self.visibility, "ticket": self.ticket, "name": self.name,
                "keyring": self.keyring, "properties": dict(self.properties)}


def _location_problem(parameter: str, value: str, what: str) -> str | None:
    if is_url(value):
        return None if len(value) <= 2048 else f"{parameter}: the URL is {len(value)} chars long"
    if value.startswith("/"):
        return None if Path(value).is_file() else f"{parameter}: {_short(value)} is not a file"
    return (f"{parameter}: {_short(value)} is neither an http(s) URL nor an absolute path of "
            f"{what}")


def prepare(policy: Policy, *, source: str = "", checksum: str = "", signature: str = "",
            profile: str, version: str, visibility: str = "", ticket: str = "") -> ImageRequest:
    """Check an image-create request against the site policy; no network, no cloud call.

    Empty ``source``/``checksum`` take the profile's defaults (the checksum default only
    with the default source); empty ``visibility`` the profile's.
    """
    if policy.images is None:
        raise ConfigError(f"site policy {policy.path} has no images section (image profiles)",
                          path=policy.path)
    prof = policy.images.profile(profile)
    problems: list[str] = []
    version = (version or "").strip()
    if not VERSION.fullmatch(version):
        problems.append(f"version: {_short(version)} is not a version (letters, digits and "
                        f". _ + ~ -, starting with a letter or digit, at most 64)")
    source, checksum, signature = (source or "").strip(), (checksum or "").strip(), \
        (signature or "").strip()
    ok_version = not problems
    if not source:
        if prof.default_source and ok_version:
            source = fill(prof.default_source, version)
            if not checksum and prof.default_checksum:
                checksum = fill(prof.default_checksum, version)
        elif not prof.default_source:
            problems.append(f"source: required (profile {prof.name} has no default source)")
    if source:
        p = _location_problem("source", source, "an image file")
        if p:
            problems.append(p)
    if not checksum:
        if source:
            problems.append("checksum: required: a sha256 (64 hex digits) or the URL/path of a "
                            "CHECKSUM file")
    elif is_sha256(checksum):
        checksum = checksum.lower()
    elif _HEXISH.fullmatch(checksum):
        problems.append(f"checksum: {_short(checksum, 16)} is {len(checksum)} hex digits; a "
                        f"sha256 has 64")
    else:
        p = _location_problem("checksum", checksum, "a CHECKSUM file")
        if p:
            problems.append(p if "neither" not in p else
                            f"checksum: {_short(checksum)} is neither a sha256 (64 hex digits) "
                            f"nor the URL or absolute path of a CHECKSUM file")
    if signature:
        if signature == CLEARSIGNED:
            if is_sha256(checksum):
                problems.append("signature: 'clearsigned' means the CHECKSUM file carries the "
                                "signature, but checksum is a bare sha256; give the URL/path "
                                "of a detached signature of the image instead")
        else:
            p = _location_problem("signature", signature, "a signature file")
            if p:
                problems.append(p.replace("neither", "neither 'clearsigned',")
                                if "neither" in p else p)
        if not prof.keyring:
            problems.append(f"signature: profile {prof.name} names no keyring to check a "
                            f"signature with")
    elif prof.require_signature:
        problems.append(f"signature: profile {prof.name} requires a signature: "
                        f"'clearsigned' for a clearsigned CHECKSUM file (Fedora's form) or "
                        f"the URL/path of a detached signature")
    visibility = (visibility or "").strip() or prof.visibility
    if visibility not in IMAGE_VISIBILITIES:
        problems.append(f"visibility: {_short(visibility)} is not one of "
                        f"{', '.join(IMAGE_VISIBILITIES)}")
    ticket = str(ticket or "").strip()
    if ticket and not ticket.isdigit():
        problems.append(f"ticket: {_short(ticket)} is not a ticket number")
    if problems:
        raise ParameterError("the image request is refused:\n  " + "\n  ".join(problems),
                             problems=problems)
    props = {k: (fill(v, version) if isinstance(v, str) else v)
             for k, v in prof.properties.items()}
    return ImageRequest(
        profile=prof, source=source, checksum=checksum, signature=signature, version=version,
        visibility=visibility, ticket=ticket, name=f"{prof.image_name}-{version}",
        properties=props, keyring=prof.keyring,
        keyring_path=policy.images.keyrings.get(prof.keyring) if prof.keyring else None)
