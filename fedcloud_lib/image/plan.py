"""image-create, step 3: the plan — a pure function of the request and the facts.

Steps, in the order they are carried out:

1. ``delete image`` for each leftover of an interrupted upload (``queued``, ``saving``...);
2. ``create download`` (fetch, verify sha256 and signature, ``qemu-img info``) and
   ``create image`` (upload, wait for ``active``, compare Glance's own hash) — or
   ``reuse image`` when the profile already holds an image with this sha256, or
   ``update image`` (reactivate) when that image was deactivated by a failed boot test;
3. ``create boot test`` (boot, ACTIVE, console login marker, delete) — or ``keep`` when
   the image already passed one;
4. the update policy for the profile's other versions (:mod:`.retire`): ``update image``
   (hide, unhide), ``delete image``, ``keep image`` with the reason and the servers that
   hold it.

The decision is made here, once; each step's ``inputs`` hold what its handler needs.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, ParameterError
from ..plan import Plan, Step
from ..site.policy import Policy
from .diskimage import GiB
from .facts import META, Facts, FlavorRecord, ImageRecord
from .profile import user_data
from .request import ImageRequest
from .retire import Decision, OlderThanKept, select

__all__ = ["ImagePlan", "make_plan", "boot_flavor", "static_properties", "boot_server_name",
           "MAX_PROPERTY"]

MAX_PROPERTY = 255  # Glance's limit on a property value


@dataclass(frozen=True)
class ImagePlan:
    """The plan, with the update-policy decisions and the usage it was made from."""

    plan: Plan
    retirement: tuple[Decision, ...]
    usage: tuple[dict[str, Any], ...]
    flavor: FlavorRecord

    def retirement_rows(self) -> list[dict[str, Any]]:
        return [d.to_dict() for d in self.retirement]

    @property
    def changes(self) -> bool:
        return bool(self.plan.changes)


def boot_flavor(flavors: tuple[FlavorRecord, ...], min_disk_gb: int, min_ram_mb: int,
                profile: str) -> FlavorRecord:
    """The smallest flavor of the profile's that fits its min_disk and min_ram."""
    fits = [f for f in flavors if (f.disk == 0 or f.disk >= min_disk_gb) and f.ram >= min_ram_mb]
    if not fits:
        raise ConfigError(f"images.profiles.{profile}.boot_flavors: none of "
                          f"{', '.join(f.name for f in flavors)} has min_disk {min_disk_gb} GiB "
                          f"and min_ram {min_ram_mb} MiB")
    return min(fits, key=lambda f: (f.vcpus, f.ram, f.disk or 10**6, f.name))


def _cap(value: str) -> str:
    return value if len(value) <= MAX_PROPERTY else value[:MAX_PROPERTY - 3] + "..."


def static_properties(req: ImageRequest, facts: Facts) -> dict[str, str]:
    """The Glance properties the plan decides (who, when and which run are stamped by the
    handler)."""
    src = facts.source
    props = {k: (str(v).lower() if isinstance(v, bool) else str(v))
             for k, v in req.properties.items()}
    props.update({
        META["profile"]: req.profile.name, META["version"]: req.version,
        META["sha256"]: src.sha256, META["source"]: _cap(src.location),
        META["checksum_from"]: _cap(src.checksum_from),
    })
    if src.checksum_signature is not None:
        props[META["signed_by"]] = src.checksum_signature.fingerprint
    if req.ticket:
        props[META["ticket"]] = req.ticket
    if req.profile.instance_lifetime_h:
        props[META["instance_lifetime_h"]] = str(req.profile.instance_lifetime_h)
    return props


def boot_server_name(req: ImageRequest) -> str:
    return f"{req.name}-boottest"


def _image_steps(req: ImageRequest, facts: Facts) -> list[Step]:
    src, prof, m = facts.source, req.profile, facts.match
    if m is not None and m.status == "active":
        steps = [Step("reuse", "image", req.name, f"active ({m.id}); sha256 "
                      f"{src.sha256[:16]}... already imported", {"id": m.id})]
        if m.hidden:
            steps.append(Step("update", "image", req.name, "unhide: the version this run "
                              "imports", {"id": m.id, "hide": False}))
        return steps
    if m is not None:
        return [Step("update", "image", req.name, f"reactivate ({m.id}, {m.status}: "
                     f"{m.boot_test or 'no boot test recorded'}) for a new boot test",
                     {"id": m.id, "reactivate": True})]
    sig = ""
    if src.checksum_signature is not None:
        sig = f", CHECKSUM signed by {src.checksum_signature.fingerprint[-16:]}"
    elif src.image_signature:
        sig = f", signature checked with keyring {req.keyring}"
    max_bytes = prof.min_disk_gb * GiB + GiB // 16
    return [
        Step("create", "download", src.file_name,
             f"{src.location[:100]} ({_size(src.size)}): sha256 {src.sha256[:16]}... from "
             f"{'the parameter' if src.checksum_from == 'parameter' else 'the CHECKSUM file'}"
             f"{sig}; qemu-img: {'/'.join(prof.formats)}, virtual size <= {prof.min_disk_gb} GiB",
             {"source": src.location, "sha256": src.sha256,
              "signature": src.image_signature, "keyring": req.keyring,
              "keyring_path": req.keyring_path, "formats": list(prof.formats),
              "min_disk_gb": prof.min_disk_gb, "max_bytes": max_bytes,
              "hash_algo": facts.glance_hash_algo, "profile": prof.name}),
        Step("create", "image", req.name,
             f"{req.visibility}, min_disk {prof.min_disk_gb} GiB, min_ram {prof.min_ram_mb} MiB, "
             f"{', '.join(f'{k}={v}' for k, v in sorted(req.properties.items()))}",
             {"name": req.name, "visibility": req.visibility, "min_disk": prof.min_disk_gb,
              "min_ram": prof.min_ram_mb, "properties": static_properties(req, facts),
              "sha256": src.sha256, "profile": prof.name}),
    ]


def _size(n: int | None) -> str:
    return "size unknown" if n is None else f"{n / (1 << 20):.1f} MiB"


def _boot_step(policy: Policy, req: ImageRequest, facts: Facts, flavor: FlavorRecord) -> Step:
    m, bt = facts.match, policy.images.boot_test
    name = boot_server_name(req)
    if m is not None and m.status == "active" and m.boot_test_passed:
        return Step("keep", "boot test", name, m.boot_test or "passed")
    return Step("create", "boot test", name,
                f"{flavor.name} (smallest the profile allows): ACTIVE within {bt.timeout_s} s, "
                f"console login marker {bt.login_marker!r} where the cloud gives a console log; "
                f"then deleted. A failure deactivates the image",
                {"flavor_id": flavor.id, "flavor": flavor.name, "network_id": facts.network_id,
                 "user_data": user_data(policy, req.profile), "login_marker": bt.login_marker,
                 "timeout_s": bt.timeout_s, "console_grace_s": bt.console_grace_s,
                 "image": req.name, "sha256": facts.source.sha256, "profile": req.profile.name})


def _retire_steps(decisions: list[Decision], new: ImageRecord) -> list[Step]:
    steps = []
    for d in decisions:
        i = d.image
        if i is new:
            continue  # the image being imported: its own steps above
        held = (f"; held by {', '.join(f'{s.name} ({s.id})' for s in d.servers)}"
                if d.servers else "")
        if d.action == "hide":
            steps.append(Step("update", "image", i.name, f"hide: {d.reason}",
                              {"id": i.id, "hide": True}))
        elif d.action == "unhide":
            steps.append(Step("update", "image", i.name, f"unhide: {d.reason}",
                              {"id": i.id, "hide": False}))
        elif d.action == "delete":
            steps.append(Step("delete", "image", i.name, f"retire ({i.id}): {d.reason}",
                              {"id": i.id, "retire": True}))
        else:
            steps.append(Step("keep", "image", i.name, f"{d.reason}{held}", {"id": i.id}))
    return steps


def make_plan(policy: Policy, req: ImageRequest, facts: Facts, *,
              now: dt.datetime) -> ImagePlan:
    """The plan (pure: no cloud call).  ``now`` is the planning time
    (:func:`fedcloud_lib.planning_time`), so that grace periods come out the same when a
    recorded plan is approved later."""
    prof = req.profile
    flavor = boot_flavor(facts.flavors, prof.min_disk_gb, prof.min_ram_mb, prof.name)
    new = facts.match or ImageRecord(id="", name=req.name, status="new", version=req.version,
                                     sha256=facts.source.sha256, visibility=req.visibility)
    try:
        decisions = select(facts.profile_images, new, prof.update, usage=facts.usage, now=now,
                           all_servers_visible=facts.all_servers_visible)
    except OlderThanKept as exc:
        raise ParameterError(f"version: {exc}", parameter="version") from exc
    steps: list[Step] = []
    for lo in facts.leftovers:
        steps.append(Step("delete", "image", lo.name,
                          f"leftover of an interrupted upload ({lo.id}, {lo.status}, run "
                          f"{lo.run_id or '?'})", {"id": lo.id}))
    steps += _image_steps(req, facts)
    steps.append(_boot_step(policy, req, facts, flavor))
    steps += _retire_steps(decisions, new)
    title = f"image {req.name} (profile {prof.name})"
    return ImagePlan(plan=Plan.of(title, steps), retirement=tuple(decisions),
                     usage=tuple(facts.usage_rows()), flavor=flavor)
