"""migrate-instances, step 3: the plan — the inventory, what each server becomes in the
target, and every step of its state machine that is still to do.

The decision is made here, once, from the facts: a step already done in an earlier run is
``reuse`` or ``keep`` (or absent), so a re-run's plan shows where each server stands and
applying it goes on from there.  Every step's ``inputs`` hold what its handler needs;
things made during the walk (the snapshot, the copies) are found again by their stamps
(:mod:`.tags`), never by ids the plan could not know.

Refused here, before anything is changed (exit 2): a flavor, image or network that no
mapping and no name resolves, a key pair that cannot be recreated, a server in a state
that cannot be copied, and a target (or source, for the temporary clones) whose quota
cannot hold the migration.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError, PolicyError
from ..plan import Plan, Step
from ..site.policy import Policy
from . import quotas as quota_mod
from . import tags
from .facts import MigrationFacts, ServerFacts, VolumeFacts
from .journal import STATES

__all__ = ["MigrationPlan", "make_plan", "server_state", "QUOTA_COLUMNS", "GiB"]

GiB = 1024 ** 3
QUOTA_COLUMNS = ["project", "resource", "used", "requested", "limit", "headroom_after"]
#: source server states the migration copies (others: stop or repair them first)
COPYABLE = ("ACTIVE", "SHUTOFF")


@dataclass(frozen=True)
class MigrationPlan:
    """The plan of one migration, with the tables a reviewer reads beside it."""

    plan: Plan
    inventory: tuple[dict[str, Any], ...]
    mappings: tuple[dict[str, Any], ...]
    quota: tuple[dict[str, Any], ...]
    estimate: dict[str, Any]

    def inventory_table(self) -> Any:
        """The selection, one row per server: what it is and what it becomes."""
        import pandas as pd

        return pd.DataFrame(list(self.inventory))

    def mapping_table(self) -> Any:
        """How every flavor, image, network and key pair resolves in the target."""
        import pandas as pd

        return pd.DataFrame(list(self.mappings),
                            columns=["kind", "source", "target", "how", "target_id"])

    def quota_table(self) -> Any:
        """Quota headroom after the migration, in the target (and the source, for clones)."""
        import pandas as pd

        return pd.DataFrame(list(self.quota), columns=QUOTA_COLUMNS)

    @property
    def changes(self) -> bool:
        """Whether applying the plan changes anything."""
        return bool(self.plan.changes)

    def states(self) -> dict[str, str]:
        """Each selected server's state when the plan was made: ``{source id: state}``."""
        return {r["source_id"]: r["state"] for r in self.inventory}


# --------------------------------------------------------------------------- state

def _image_ok(image: Any) -> bool:
    return image is not None and image.status == "active" and \
        bool(tags.props(image).get(tags.SHA256))


def _volume_ok(volume: Any) -> bool:
    return volume is not None and not str(volume.status).startswith("error")


def server_state(sf: ServerFacts, boot_disk: str = "copy") -> str:
    """Where a server stands in ``planned → snapshotted → transferred → created →
    verified → cleaned``, as the clouds show it."""
    ts = sf.target_server
    temps = (sf.snapshot is not None or sf.other_temps or sf.other_target_images
             or any(v.clone is not None or v.image is not None or v.target_image is not None
                    for v in sf.volumes))
    if ts is not None:
        if (ts.metadata or {}).get(tags.VERIFIED):
            return STATES[4] if temps else STATES[5]
        return STATES[3]
    boot_ready = boot_disk != "copy" or _image_ok(sf.target_image)
    if boot_ready and all(_image_ok(v.target_image) or _volume_ok(v.target_volume)
                          for v in sf.volumes):
        return STATES[2]
    snap_ready = boot_disk != "copy" or (sf.snapshot is not None and
                                         sf.snapshot.status == "active")
    if snap_ready and all(v.image is not None and v.image.status == "active"
                          for v in sf.volumes):
        return STATES[1]
    return STATES[0]


# --------------------------------------------------------------------------- resolving

def _how(mapping: dict[str, str], name: str) -> tuple[str, str]:
    if name in mapping:
        return mapping[name], "mapped"
    return name, "same name"


class _Resolver:
    """Mappings resolved against the target, with every problem collected."""

    def __init__(self, facts: MigrationFacts) -> None:
        self.f = facts
        self.req = facts.request
        self.problems: list[str] = []
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def _row(self, kind: str, source: str, target: str, how: str, found: Any) -> None:
        self.rows.setdefault((kind, source), {
            "kind": kind, "source": source, "target": target, "how": how,
            "target_id": getattr(found, "id", None) or "MISSING"})

    def flavor(self, sf: ServerFacts) -> Any | None:
        name, how = _how(dict(self.req.flavor_map), sf.flavor)
        found = self.f.target.flavors.get(name)
        self._row("flavor", sf.flavor, name, how, found)
        if found is None:
            where = "flavor_map" if how == "mapped" else "flavor_map (unmapped: same name)"
            self.problems.append(
                f"{where}: server {sf.name}'s flavor {sf.flavor!r} resolves to {name!r}, which "
                f"the target cloud {self.req.target_cloud} does not have; map it with "
                f"flavor_map={{{sf.flavor}: <target flavor>}}")
        return found

    def image(self, sf: ServerFacts, needed: bool) -> Any | None:
        if sf.image is None:
            if needed:
                self.problems.append(
                    f"image_map: server {sf.name} was booted from an image that no longer "
                    f"exists in the source; with boot_disk=image there is nothing to map "
                    f"(use boot_disk=copy)")
            return None
        name, how = _how(dict(self.req.image_map), sf.image.name)
        found = self.f.target.images.get(name)
        self._row("image", sf.image.name, name,
                  how + ("" if needed else " (not needed: the boot disk is copied)"), found)
        if found is None and (needed or how == "mapped"):
            where = "image_map" if how == "mapped" else "image_map (unmapped: same name)"
            self.problems.append(
                f"{where}: server {sf.name}'s image {sf.image.name!r} resolves to {name!r}, "
                f"which the target cloud {self.req.target_cloud} does not have")
        return found

    def networks(self, sf: ServerFacts) -> list[Any]:
        out = []
        for net in sf.networks:
            name, how = _how(dict(self.req.network_map), net)
            found = self.f.target.networks.get(name)
            self._row("network", net, name, how, found)
            if found is None:
                where = "network_map" if how == "mapped" else "network_map (unmapped: same name)"
                self.problems.append(
                    f"{where}: server {sf.name}'s network {net!r} resolves to {name!r}, which "
                    f"the target cloud {self.req.target_cloud} does not have")
            out.append(found)
        return out

    def unused_mappings(self) -> None:
        """Mapped targets must exist even when no selected server uses them."""
        for kind, mapping, table in (("flavor", self.req.flavor_map, self.f.target.flavors),
                                     ("image", self.req.image_map, self.f.target.images),
                                     ("network", self.req.network_map, self.f.target.networks)):
            for src, dst in mapping.items():
                if (kind, src) in self.rows:
                    continue
                found = table.get(dst)
                self._row(kind, src, dst, "mapped (not used by the selection)", found)
                if found is None:
                    self.problems.append(f"{kind}_map: {src!r} maps to {dst!r}, which the "
                                         f"target cloud {self.req.target_cloud} does not have")


# --------------------------------------------------------------------------- steps

def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@dataclass
class _Tally:
    """What the plan asks of the quotas and how many bytes it moves."""

    instances: int = 0
    cores: int = 0
    ram: int = 0
    volumes: int = 0
    gigabytes: int = 0
    source_volumes: int = 0
    source_gigabytes: int = 0
    bytes: int = 0
    bytes_upper: bool = False


def _volume_steps(facts: MigrationFacts, sf: ServerFacts, vf: VolumeFacts, tally: _Tally
                  ) -> tuple[list[Step], list[Step], list[Step], bool]:
    """(source-side steps, transfers, target-side steps, whether the source must be read)."""
    req, v = facts.request, vf.volume
    label = f"{sf.name}/{v.name or v.id}"
    src_steps: list[Step] = []
    moves: list[Step] = []
    tgt_steps: list[Step] = []
    reads_source = False
    base = {"source_id": sf.id, "server": sf.name, "volume_id": v.id, "volume": v.name or "",
            "size_gb": v.size}
    tv = vf.target_volume if _volume_ok(vf.target_volume) else None
    if tv is not None:
        attached = sf.target_server is not None and sf.target_server.id in {
            a.get("server_id") for a in tv.attachments or []}
        if attached:
            tgt_steps.append(Step("reuse", "volume", label, f"{tv.size} GiB, attached ({tv.id})",
                                  {**base, "id": tv.id}))
        else:
            tgt_steps.append(Step("update", "volume", label,
                                  f"attach {tv.id} to the migrated {sf.name}",
                                  {**base, "id": tv.id}))
        return src_steps, moves, tgt_steps, reads_source
    if _image_ok(vf.target_image):
        sha = tags.props(vf.target_image).get(tags.SHA256, "")
        moves.append(Step("reuse", "transfer", label,
                              f"transferred: {_mib(vf.target_image.size or 0)}, sha256 "
                              f"{sha[:12]}", {**base, "image_id": vf.target_image.id,
                                              "sha256": sha}))
    else:
        if vf.image is not None and tags.usable_image(vf.image):
            src_steps.append(Step("reuse", "volume image", label,
                                  f"{vf.image.status}: {vf.image.name} ({vf.image.id})",
                                  {**base, "id": vf.image.id}))
            size = vf.image.size or v.size * GiB
            tally.bytes_upper |= not vf.image.size
        else:
            reads_source = True
            src_steps.append(Step(
                "create", "volume image", label,
                f"clone {v.size} GiB volume {v.id}, upload to image "
                f"{tags.volume_image_name(sf.name, v.id)} (both temporary)",
                {**base, "name": tags.volume_image_name(sf.name, v.id),
                 "clone_name": tags.clone_name(sf.name, v.id),
                 "migration": req.migration_id}))
            tally.source_volumes += 1
            tally.source_gigabytes += v.size
            size = v.size * GiB
            tally.bytes_upper = True
        tally.bytes += size
        moves.append(Step("create", "transfer", label,
                              f"stream ≤{_mib(size)} into the target's Glance, sha256 verified",
                              {**base, "name": tags.volume_image_name(sf.name, v.id),
                               "source_cloud": req.source_cloud,
                               "migration": req.migration_id}))
    tgt_steps.append(Step(
        "create", "volume", label,
        f"{v.size} GiB from the transferred image, attached to {sf.name}",
        {**base, "name": v.name or "", "description": v.description or "",
         "metadata": {**(v.metadata or {}), tags.MIGRATED_FROM: tags.ref(req.source_cloud, v.id),
                      tags.MIGRATION: req.migration_id},
         "bootable": bool(getattr(v, "is_bootable", False))}))
    tally.volumes += 1
    tally.gigabytes += v.size
    return src_steps, moves, tgt_steps, reads_source


def _server_steps(policy: Policy, facts: MigrationFacts, sf: ServerFacts, res: _Resolver,
                  tally: _Tally) -> tuple[list[Step], dict[str, Any]]:
    req = facts.request
    ts = sf.target_server
    state = server_state(sf, req.boot_disk)
    copy_boot = req.boot_disk == "copy"
    flavor = res.flavor(sf)
    image = res.image(sf, needed=not copy_boot)
    nets = res.networks(sf)
    steps: list[Step] = []
    src_steps: list[Step] = []
    moves: list[Step] = []
    tgt_steps: list[Step] = []
    reads_source = False
    status = sf.server.status
    if ts is None and status not in COPYABLE:
        res.problems.append(f"servers: {sf.name} is {status}; only ACTIVE or SHUTOFF servers "
                            f"are migrated (start, stop or repair it first)")
    if ts is None and sf.boot_from_volume:
        res.problems.append(f"servers: {sf.name} boots from a volume; migrating "
                            f"volume-backed servers is not supported (copy it by hand)")
    for bad in sf.target_errors:
        tgt_steps.append(Step("delete", "server", sf.name,
                              f"migrated copy left in ERROR by an earlier run ({bad.id})",
                              {"id": bad.id, "source_id": sf.id}))
    boot_bytes = 0
    # the boot disk
    if copy_boot and ts is None:
        if _image_ok(sf.target_image):
            sha = tags.props(sf.target_image).get(tags.SHA256, "")
            moves.append(Step("reuse", "transfer", f"{sf.name}/boot",
                                  f"transferred: {_mib(sf.target_image.size or 0)}, sha256 "
                                  f"{sha[:12]}", {"source_id": sf.id, "part": "boot",
                                                  "image_id": sf.target_image.id,
                                                  "sha256": sha}))
        else:
            if sf.snapshot is not None and tags.usable_image(sf.snapshot):
                src_steps.append(Step("reuse", "snapshot", f"{sf.name}/boot",
                                      f"{sf.snapshot.status}: {sf.snapshot.name} "
                                      f"({sf.snapshot.id})",
                                      {"source_id": sf.id, "id": sf.snapshot.id}))
                boot_bytes = sf.snapshot.size or 0
            else:
                reads_source = True
                name = tags.snapshot_name(sf.name, sf.id)
                src_steps.append(Step("create", "snapshot", f"{sf.name}/boot",
                                      f"image {name} of the server's disk (temporary)",
                                      {"source_id": sf.id, "server": sf.name, "name": name,
                                       "migration": req.migration_id}))
            if not boot_bytes:
                if sf.image is not None and sf.image.size:
                    boot_bytes = sf.image.size
                else:
                    boot_bytes = sf.flavor_size["disk"] * GiB
                    tally.bytes_upper = True
            tally.bytes += boot_bytes
            if flavor is not None and flavor.disk and boot_bytes > flavor.disk * GiB:
                res.problems.append(f"flavor_map: server {sf.name}'s disk "
                                    f"({_mib(boot_bytes)}) does not fit flavor {flavor.name} "
                                    f"({flavor.disk} GiB) of the target")
            moves.append(Step("create", "transfer", f"{sf.name}/boot",
                                  f"stream ≈{_mib(boot_bytes)} into the target's Glance as "
                                  f"{tags.target_image_name(sf.name)}, sha256 verified",
                                  {"source_id": sf.id, "part": "boot", "server": sf.name,
                                   "name": tags.target_image_name(sf.name),
                                   "source_cloud": req.source_cloud,
                                   "migration": req.migration_id}))
    # the server
    sg = policy.network.security_group
    dropped = sorted({g.get("name") for g in sf.server.security_groups or []} - {sg})
    metadata = dict(sf.server.metadata or {})
    if ts is not None:
        tgt_steps.append(Step("reuse", "server", sf.name, f"{ts.status} in the target ({ts.id})",
                              {"source_id": sf.id, "id": ts.id}))
    else:
        tgt_name = flavor.name if flavor is not None else "?"
        tgt_steps.append(Step(
            "create", "server", sf.name,
            f"{tgt_name}, " + ("the transferred boot disk" if copy_boot else
                               f"image {getattr(image, 'name', '?')}")
            + f", group {sg}" + (f" (not carried: {', '.join(dropped)})" if dropped else "")
            + f", {len(metadata)} metadata + {tags.MIGRATED_FROM}",
            {"source_id": sf.id, "name": sf.name, "flavor": tgt_name,
             "flavor_id": getattr(flavor, "id", None),
             "image_id": None if copy_boot else getattr(image, "id", None),
             "network_ids": [getattr(n, "id", None) for n in nets],
             "keypair": sf.server.key_name or None, "security_group": sg,
             "metadata": {**metadata, tags.MIGRATED_FROM: tags.ref(req.source_cloud, sf.id),
                          tags.MIGRATION: req.migration_id}}))
        tally.instances += 1
        if flavor is not None:
            tally.cores += flavor.vcpus
            tally.ram += flavor.ram
    # the volumes
    for vf in sf.volumes:
        vs, vm, vt, reads = _volume_steps(facts, sf, vf, tally)
        src_steps += vs
        moves += vm
        tgt_steps += vt
        reads_source |= reads
    # stop the source first, when anything is read from it
    if reads_source:
        if req.stop_source and status == "ACTIVE":
            steps.append(Step("update", "source server", sf.name,
                              "stop it (SHUTOFF) so the copy is consistent",
                              {"id": sf.id, "stop": True, "status_before": status}))
        elif req.stop_source:
            steps.append(Step("keep", "source server", sf.name, f"{status} already"))
        else:
            steps.append(Step("keep", "source server", sf.name,
                              f"{status}; stop_source=false: copied while it runs"))
    steps += src_steps + moves + tgt_steps
    # verification (and rollback), clean-up, deletion of the source
    restart = bool(sf.stopped_by_us or (reads_source and req.stop_source
                                        and status == "ACTIVE"))
    verified = ts is not None and (ts.metadata or {}).get(tags.VERIFIED)
    if verified:
        steps.append(Step("keep", "verification", sf.name, f"verified {verified}"))
    else:
        steps.append(Step(
            "create", "verification", sf.name,
            "ACTIVE, metadata equal, volumes attached with their sizes, tcp 22 "
            + ("required" if req.require_ssh else "where reachable")
            + "; on failure: roll back" + (" and start the source again" if restart else ""),
            {"source_id": sf.id, "name": sf.name, "source_cloud": req.source_cloud,
             "metadata": metadata, "flavor": flavor.name if flavor is not None else None,
             "volumes": [{"volume_id": v.volume.id, "name": v.volume.name or "",
                          "size_gb": v.volume.size} for v in sf.volumes],
             "require_ssh": req.require_ssh, "restart_source": restart,
             "copy_boot": copy_boot,
             "migration": req.migration_id}))
    temps_exist = bool(sf.snapshot is not None or sf.other_temps or sf.other_target_images
                       or any(v.clone is not None or v.image is not None
                              or v.target_image is not None for v in sf.volumes)
                       or (not req.keep_boot_image and sf.target_image is not None))
    makes_temps = any(s.action == "create" and s.kind in ("snapshot", "volume image", "transfer")
                      for s in src_steps + moves)
    if temps_exist or makes_temps:
        what = ["source snapshot and volume images/clones", "target volume images"]
        if not req.keep_boot_image:
            what.append("target boot image")
        steps.append(Step("delete", "temporary images", sf.name, "; ".join(what),
                          {"source_id": sf.id, "keep_boot_image": req.keep_boot_image}))
    if req.delete_source:
        vols = [v.volume for v in sf.volumes]
        steps.append(Step(
            "delete", "source server", sf.name,
            f"{sf.id}" + (f" and its volumes {', '.join(v.name or v.id for v in vols)}"
                          if vols else "") + ", only once the copy is verified",
            {"id": sf.id, "volume_ids": [v.id for v in vols]}))
    row = {
        "server": sf.name, "source_id": sf.id, "status": status, "state": state,
        "flavor": sf.flavor + (f" → {flavor.name}" if flavor is not None else " → ?"),
        "image": (sf.image.name if sf.image is not None else "(gone)")
        + (" → copied" if copy_boot else f" → {getattr(image, 'name', '?')}"),
        "keypair": sf.server.key_name or "",
        "security_groups": ", ".join(sorted({g.get("name") for g in
                                             sf.server.security_groups or []})) + f" → {sg}",
        "metadata": ", ".join(f"{k}={v}" for k, v in sorted(metadata.items()))[:200],
        "volumes": ", ".join(f"{v.volume.name or v.volume.id} ({v.volume.size} GiB)"
                             for v in sf.volumes),
        "networks": ", ".join(sf.networks),
        "target_id": ts.id if ts is not None else "",
    }
    return steps, row


def _shared_steps(policy: Policy, facts: MigrationFacts, creating: list[ServerFacts],
                  res: _Resolver) -> list[Step]:
    req, tgt = facts.request, facts.target
    steps: list[Step] = []
    if req.copy_quotas and facts.quotas is not None:
        changes = quota_mod.quota_changes(facts.quotas)
        if changes:
            steps.append(Step("update", "quotas", tgt.project or tgt.project_id,
                              "raise to the source's: " + ", ".join(
                                  f"{k} {facts.quotas.target[s][k]}→{v}"
                                  for s, vals in changes.items() for k, v in vals.items()),
                              {"project_id": tgt.project_id, "set": changes}))
        else:
            steps.append(Step("keep", "quotas", tgt.project or tgt.project_id,
                              "every quota is at least the source's"))
        new_tags = quota_mod.tag_changes(facts.quotas)
        if new_tags:
            steps.append(Step("update", "project tags", tgt.project or tgt.project_id,
                              "add the source's policy tags: " + ", ".join(
                                  t for t in new_tags if t not in facts.quotas.target_tags),
                              {"project_id": tgt.project_id, "tags": new_tags}))
    if not creating:
        return steps
    sg = tgt.secgroup
    action = {"create": "create", "repair": "update", "reuse": "reuse"}[sg.action]
    steps.append(Step(action, "security group", sg.name,
                      ("drift repair: " if action == "update" else "") + sg.detail(),
                      {"ports": list(policy.network.ingress_tcp),
                       "remove": [r.describe() for _, r in sg.extra],
                       "add": [r.describe() for r in sg.missing] if sg.exists else []}))
    for name in sorted({s.server.key_name for s in creating if s.server.key_name}):
        src = next((s.keypair for s in creating if s.server.key_name == name
                    and s.keypair is not None), None)
        have = tgt.keypairs.get(name)
        src_key = (src.public_key or "").split()[:2] if src is not None else None
        if have is not None:
            if src_key is not None and (have.public_key or "").split()[:2] != src_key:
                res.problems.append(f"key pair {name!r} exists in the target with a different "
                                    f"key; delete or rename one of them")
            steps.append(Step("reuse", "keypair", name, have.fingerprint or "",
                              {"fingerprint": have.fingerprint or ""}))
        elif src is None:
            res.problems.append(f"key pair {name!r} of the source cannot be read (it belongs "
                                f"to another user of the source project); create it in the "
                                f"target first")
        else:
            steps.append(Step("create", "keypair", name, f"the source's key ({src.fingerprint})",
                              {"public_key": src.public_key}))
    return steps


def _limit(cloud_max: int | None, ceiling: int | None) -> int | None:
    values = [v for v in (cloud_max, ceiling) if v is not None and v >= 0]
    return min(values) if values else None


def _quota_rows(policy: Policy, facts: MigrationFacts, t: _Tally) -> list[dict[str, Any]]:
    tgt = facts.target
    cl, vl = tgt.compute_limits, tgt.volume_limits
    ceiling = policy.quota_for(tgt.project)
    raised = quota_mod.quota_changes(facts.quotas) if facts.quotas is not None else {}

    def lim(service: str, key: str, current: int | None) -> int | None:
        return raised.get(service, {}).get(key, current)

    name = tgt.project or tgt.project_id
    rows = [
        (name, "instances", cl.instances_used, t.instances,
         _limit(lim("compute", "instances", cl.instances), ceiling and ceiling.instances)),
        (name, "cores", cl.total_cores_used, t.cores,
         _limit(lim("compute", "cores", cl.total_cores), ceiling and ceiling.cores)),
        (name, "ram_mb", cl.total_ram_used, t.ram,
         _limit(lim("compute", "ram", cl.total_ram), ceiling and ceiling.ram_mb)),
        (name, "volumes", vl.total_volumes_used, t.volumes,
         _limit(lim("volume", "volumes", vl.max_total_volumes), ceiling and ceiling.volumes)),
        (name, "volume_gb", vl.total_gigabytes_used, t.gigabytes,
         _limit(lim("volume", "gigabytes", vl.max_total_volume_gigabytes),
                ceiling and ceiling.volume_gb)),
    ]
    if t.source_volumes:
        sl = facts.source_volume_limits
        sname = facts.source_project or facts.source_project_id
        rows += [
            (f"{sname} (temporary clones)", "volumes", sl.total_volumes_used, t.source_volumes,
             _limit(sl.max_total_volumes, None)),
            (f"{sname} (temporary clones)", "volume_gb", sl.total_gigabytes_used,
             t.source_gigabytes, _limit(sl.max_total_volume_gigabytes, None)),
        ]
    return [{"project": p, "resource": r, "used": u, "requested": n, "limit": lim_,
             "headroom_after": None if lim_ is None else lim_ - u - n}
            for p, r, u, n, lim_ in rows]


def _estimate(facts: MigrationFacts, t: _Tally) -> dict[str, Any]:
    rate = facts.request.estimate_mbs
    secs = t.bytes / (rate * 1e6) if t.bytes else 0
    return {"bytes_to_move": t.bytes, "MiB_to_move": round(t.bytes / 2**20, 1),
            "upper_bound": t.bytes_upper, "assumed_MB_per_s": rate,
            "transfer_seconds": round(secs, 1),
            "note": ("the sizes of snapshots and volume images not made yet are estimated "
                     "from the source image and the volume sizes (an upper bound for volumes)"
                     if t.bytes_upper else "sizes of images that exist")}


def make_plan(policy: Policy, facts: MigrationFacts) -> MigrationPlan:
    """The plan of a migration; raises :class:`ParameterError` for a mapping or key pair
    that cannot be resolved and :class:`PolicyError` when a quota cannot hold it (both
    exit 2, nothing changed)."""
    req = facts.request
    res = _Resolver(facts)
    tally = _Tally()
    per_server: list[Step] = []
    inventory = []
    for sf in facts.servers:
        steps, row = _server_steps(policy, facts, sf, res, tally)
        per_server += steps
        inventory.append(row)
    for ts in facts.done:
        inventory.append({"server": ts.name,
                          "source_id": tags.ref_id(ts.metadata.get(tags.MIGRATED_FROM)),
                          "status": "(deleted)", "state": "cleaned", "target_id": ts.id})
        per_server.append(Step("keep", "server", ts.name,
                               f"migrated ({ts.id}); the source is gone"))
    creating = [sf for sf in facts.servers if sf.target_server is None]
    shared = _shared_steps(policy, facts, creating, res)
    res.unused_mappings()
    if res.problems:
        raise ParameterError("the migration cannot be planned:\n  " + "\n  ".join(res.problems),
                             problems=res.problems)
    quota = _quota_rows(policy, facts, tally)
    over = [q for q in quota if q["requested"] and q["limit"] is not None
            and q["headroom_after"] < 0]
    if over:
        lines = [f"{q['project']}: {q['resource']}: {q['used']} used + {q['requested']} "
                 f"requested > limit {q['limit']}" for q in over]
        raise PolicyError("over quota:\n  " + "\n  ".join(lines)
                          + ("" if req.copy_quotas else
                             "\n(copy_quotas=true raises the target's quotas to the source's)"),
                          problems=lines, quota=quota)
    plan = Plan.of(f"migrate {req.selection.describe()} from {req.source_cloud} to "
                   f"{req.target_cloud} ({req.migration_id})", shared + per_server)
    return MigrationPlan(plan=plan, inventory=tuple(inventory),
                         mappings=tuple(res.rows.values()), quota=tuple(quota),
                         estimate=_estimate(facts, tally))
