"""migrate-instances, step 2: the facts — the selection in the source, what the target
holds already, read only.

For every selected source server: its flavor, image, key pair, security groups, metadata,
networks and attached volumes (with sizes); what the migration already made of it in
either cloud (found by the stamps of :mod:`.tags`); and whether an earlier run of this
migration stopped it (:mod:`.journal`).  For the target: what each mapping resolves to,
the key pairs and the standard security group as they are, and the project's limits.
With ``copy_quotas``: both projects' quotas and tags, read with the admin connection.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import secgroups
from ..cloud import GONE, call
from ..errors import ParameterError, PolicyError
from ..site.policy import Policy
from . import tags
from .journal import EarlierRun, earlier_runs, stopped_by_earlier_runs
from .quotas import QuotaFacts, read_quotas
from .request import MigrationRequest

__all__ = ["VolumeFacts", "ServerFacts", "TargetFacts", "MigrationFacts", "gather",
           "select_servers", "flavor_name", "network_names"]


@dataclass(frozen=True)
class VolumeFacts:
    """One attached source volume and what the migration made of it so far."""

    volume: Any                       # the source volume
    clone: Any | None = None          # its temporary clone in the source
    image: Any | None = None          # its temporary image in the source
    target_image: Any | None = None   # its image in the target
    target_volume: Any | None = None  # the volume made from it in the target


@dataclass(frozen=True)
class ServerFacts:
    """One selected source server and what the migration made of it so far."""

    server: Any
    flavor: str
    flavor_size: dict[str, int]
    image: Any | None                 # the source image it was booted from (None: gone)
    networks: tuple[str, ...]
    keypair: Any | None               # the source key pair (None: none, or not readable)
    volumes: tuple[VolumeFacts, ...] = ()
    snapshot: Any | None = None       # the temporary boot snapshot in the source
    target_image: Any | None = None   # the boot image in the target
    target_server: Any | None = None
    target_errors: tuple[Any, ...] = ()  # target servers migrated from it left in ERROR
    other_temps: tuple[Any, ...] = ()  # source temporaries of volumes no longer attached
    other_target_images: tuple[Any, ...] = ()
    stopped_by_us: bool = False
    boot_from_volume: bool = False

    @property
    def name(self) -> str:
        """The source server's name."""
        return self.server.name

    @property
    def id(self) -> str:
        """The source server's id."""
        return self.server.id


@dataclass(frozen=True)
class TargetFacts:
    """What the target holds that the plan depends on."""

    project: str | None
    project_id: str
    flavors: dict[str, Any]           # target flavor name -> flavor (None: missing)
    images: dict[str, Any]            # target image name -> image (None: missing)
    networks: dict[str, Any]          # target network name -> network (None: missing)
    keypairs: dict[str, Any]          # key pair name -> target key pair (None: missing)
    secgroup: secgroups.GroupState
    compute_limits: Any
    volume_limits: Any


@dataclass(frozen=True)
class MigrationFacts:
    """Everything the plan of one migration request depends on."""

    request: MigrationRequest
    source_project: str | None
    source_project_id: str
    servers: tuple[ServerFacts, ...]
    done: tuple[Any, ...]             # target servers of selected names whose source is gone
    target: TargetFacts
    source_volume_limits: Any
    quotas: QuotaFacts | None = None
    earlier: tuple[EarlierRun, ...] = field(default=())


def flavor_name(server: Any) -> str:
    """The name of a server's flavor (compute API 2.47+ embeds it)."""
    f = server.flavor
    name = getattr(f, "original_name", None) or getattr(f, "name", None)
    if name is None and isinstance(f, dict):
        name = f.get("original_name") or f.get("name")
    return str(name or getattr(f, "id", None) or "?")


def _flavor_size(server: Any) -> dict[str, int]:
    f = server.flavor

    def get(k: str) -> int:
        v = f.get(k) if isinstance(f, dict) else getattr(f, k, None)
        return int(v or 0)

    return {"vcpus": get("vcpus"), "ram": get("ram"), "disk": get("disk")}


def network_names(server: Any) -> tuple[str, ...]:
    """The networks a server has ports on (by name, as Nova reports its addresses)."""
    return tuple(sorted((server.addresses or {}).keys()))


def _attached_ids(server: Any) -> list[str]:
    out = []
    for a in server.attached_volumes or []:
        vid = a.get("id") if isinstance(a, dict) else getattr(a, "id", None)
        vid = vid or (a.get("volume_id") if isinstance(a, dict) else getattr(a, "volume_id", None))
        if vid:
            out.append(vid)
    return out


def select_servers(conn: Any, request: MigrationRequest, target: Any,
                   source_list: tags.Listing | None = None,
                   target_list: tags.Listing | None = None) -> tuple[list[Any], list[Any]]:
    """The selected source servers, and the target servers of named ones whose source is
    already gone (migrated and deleted by an earlier run).  Unknown or ambiguous names are
    a :class:`ParameterError`."""
    sel = request.selection
    listed = source_list.servers if source_list is not None else call(
        lambda: list(conn.compute.servers(details=True)), "list the source servers")
    servers = [s for s in listed if s.status not in GONE]
    if not sel.servers:
        return [s for s in servers if sel.matches(s)], []
    chosen, done, problems = [], [], []
    migrated = None
    for token in sel.servers:
        by_id = [s for s in servers if s.id == token]
        by_name = [s for s in servers if s.name == token]
        if by_id:
            chosen.append(by_id[0])
        elif len(by_name) == 1:
            chosen.append(by_name[0])
        elif len(by_name) > 1:
            problems.append(f"servers: {token!r} names {len(by_name)} servers of the source "
                            f"project ({', '.join(s.id for s in by_name)}); give the id")
        else:
            if migrated is None:
                listed_t = target_list.servers if target_list is not None else call(
                    lambda: list(target.compute.servers(details=True)),
                    "list the target servers")
                migrated = [s for s in listed_t
                            if (s.metadata or {}).get(tags.MIGRATED_FROM)
                            and s.status not in GONE]
            there = [s for s in migrated
                     if tags.ref_id(s.metadata[tags.MIGRATED_FROM]) == token or s.name == token]
            if there:
                done.append(there[0])
            else:
                problems.append(f"servers: {token[:60]!r} is not a server of the source "
                                f"project ({request.source_cloud})")
    if problems:
        raise ParameterError("cannot select the servers:\n  " + "\n  ".join(problems),
                             problems=problems)
    seen: set[str] = set()
    unique = [s for s in chosen if not (s.id in seen or seen.add(s.id))]
    return unique, done


def _server_facts(source: Any, target: Any, request: MigrationRequest, server: Any,
                  stopped: set[str], src: tags.Listing, tgt: tags.Listing,
                  cache: dict[tuple[str, str], Any]) -> ServerFacts:
    sid = server.id
    image_id = server.image.get("id") if isinstance(server.image, dict) else \
        getattr(server.image, "id", None)
    image = None
    if image_id:
        if ("image", image_id) not in cache:
            cache[("image", image_id)] = call(
                lambda: source.image.find_image(image_id, ignore_missing=True),
                f"look up the image of {server.name}")
        image = cache[("image", image_id)]
    kp = None
    if server.key_name:
        if ("keypair", server.key_name) not in cache:
            cache[("keypair", server.key_name)] = call(
                lambda: source.compute.find_keypair(server.key_name, ignore_missing=True),
                f"read key pair {server.key_name}")
        kp = cache[("keypair", server.key_name)]
    temps = tags.source_temporaries(source, sid, src)
    timgs = tags.target_images(target, sid, tgt)
    tservers = tags.target_servers(target, sid, tgt)
    live = [s for s in tservers if s.status != "ERROR"]
    if len(live) > 1:
        raise PolicyError(f"server {server.name}: the target holds {len(live)} servers "
                          f"migrated from it ({', '.join(s.id for s in live)}); delete the "
                          f"extra ones by hand")
    vids = _attached_ids(server)
    tvols = tags.target_volumes(target, vids, tgt)
    volumes_by_id = {v.id: v for v in src.volumes}
    by_temp = {tags.props(i).get(tags.TEMP): i for i in temps["images"]}
    clones = {(c.metadata or {}).get(tags.TEMP): c for c in temps["clones"]}
    by_part = {tags.props(i).get(tags.PART): i for i in timgs}
    vfacts = []
    for vid in vids:
        vol = volumes_by_id.get(vid) or call(
            lambda: source.block_storage.get_volume(vid), f"read volume {vid}")
        vfacts.append(VolumeFacts(
            volume=vol, clone=clones.pop(tags.temp_clone(sid, vid), None),
            image=by_temp.pop(tags.temp_volume_image(sid, vid), None),
            target_image=by_part.pop(tags.volume_part(vid), None),
            target_volume=tvols.get(vid)))
    snapshot = by_temp.pop(tags.temp_boot(sid), None)
    return ServerFacts(
        server=server, flavor=flavor_name(server), flavor_size=_flavor_size(server),
        image=image, networks=network_names(server), keypair=kp, volumes=tuple(vfacts),
        snapshot=snapshot, target_image=by_part.pop(tags.boot_part(), None),
        target_server=live[0] if live else None,
        target_errors=tuple(s for s in tservers if s.status == "ERROR"),
        other_temps=tuple(by_temp.values()) + tuple(clones.values()),
        other_target_images=tuple(by_part.values()), stopped_by_us=sid in stopped,
        boot_from_volume=not image_id)


def _resolve(find: Any, names: set[str], what: str) -> dict[str, Any]:
    return {n: call(lambda n=n: find(n, ignore_missing=True), f"look up {what} {n}")
            for n in sorted(names)}


def gather(source: Any, target: Any, policy: Policy, request: MigrationRequest, *,
           admin: Any | None = None) -> MigrationFacts:
    """Read everything the plan needs from both clouds (and the admin API for quotas);
    no change anywhere."""
    def where(conn: Any) -> tuple[str, str]:
        return conn.current_project_id, conn.config.auth.get("auth_url")

    same = call(lambda: where(source) == where(target), "read the projects of both clouds")
    if same:
        raise ParameterError(f"target_cloud: {request.target_cloud!r} is the same project of the "
                             f"same cloud as source_cloud {request.source_cloud!r}; a migration "
                             f"moves servers to another project or cloud")
    src = call(lambda: tags.listing(source), f"list the project of {request.source_cloud}")
    tgt_list = call(lambda: tags.listing(target), f"list the project of {request.target_cloud}")
    chosen, done = select_servers(source, request, target, src, tgt_list)
    runs = earlier_runs(request.migration_id)
    stopped = stopped_by_earlier_runs(runs)
    cache: dict[tuple[str, str], Any] = {}
    servers = tuple(_server_facts(source, target, request, s, stopped, src, tgt_list, cache)
                    for s in chosen)
    fl = {request.flavor_map.get(s.flavor, s.flavor) for s in servers} | \
        set(request.flavor_map.values())
    im = {request.image_map.get(s.image.name, s.image.name) for s in servers
          if s.image is not None} | set(request.image_map.values())
    nets = {request.network_map.get(n, n) for s in servers for n in s.networks} | \
        set(request.network_map.values())
    kps = {s.server.key_name for s in servers if s.server.key_name}
    tgt = TargetFacts(
        project=target.config.auth.get("project_name"),
        project_id=call(lambda: target.current_project_id, "read the target project"),
        flavors=_resolve(target.compute.find_flavor, fl, "flavor"),
        images=_resolve(target.image.find_image, im, "image"),
        networks=_resolve(target.network.find_network, nets, "network"),
        keypairs=_resolve(target.compute.find_keypair, kps, "key pair"),
        secgroup=secgroups.inspect(target, policy.network.security_group,
                                   policy.network.ingress_tcp),
        compute_limits=call(lambda: target.compute.get_limits().absolute,
                            "read the target's compute limits"),
        volume_limits=call(lambda: target.block_storage.get_limits().absolute,
                           "read the target's volume limits"))
    quotas = None
    if request.copy_quotas:
        quotas = read_quotas(admin, source.current_project_id, tgt.project_id)
    return MigrationFacts(
        request=request, source_project=source.config.auth.get("project_name"),
        source_project_id=source.current_project_id, servers=servers, done=tuple(done),
        target=tgt,
        source_volume_limits=call(lambda: source.block_storage.get_limits().absolute,
                                  "read the source's volume limits"),
        quotas=quotas, earlier=tuple(runs))
