"""migrate-instances, step 4: apply — walk the approved plan, one idempotent handler per
``(kind, action)``.

Every handler finds before it makes, by the stamps of :mod:`.tags` (never by an id the
plan could not know), so a run killed at any step is finished by the next one and nothing
is transferred or created twice: an image found active with its sha256 is not sent again;
a half-sent one (the run died during the stream) is deleted and sent again; a snapshot or
a volume upload the clouds finished on their own after the kill is used as it is.

Progress goes to :mod:`fedcloud_lib.progress` (each transfer is a task counted in MiB),
lines to the ``progress`` callback when one is given.  Each server's transitions are
written to the run's journal (:mod:`.journal`) as they happen.  A server whose verification fails is rolled back — its target server, volumes
and images deleted, its source started again if the migration stopped it — and the walk
goes on with the others; :func:`fedcloud_lib.migration.report.check` then fails the run
naming it.  The source is deleted only when asked, and only once its copy is verified.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openstack import exceptions as os_exc

from .. import progress as live
from .. import secgroups
from ..cloud import CLOUD_ERRORS, GONE
from ..context import utcnow
from ..errors import CloudError
from ..plan import Handlers, Plan, Step, StepResult, walk
from . import quotas, tags
from .journal import ROLLED_BACK, STATES, Journal
from .transfer import TransferResult, stream_image
from .verify import Verification, verify_server

__all__ = ["ApplyState", "ServerOutcome", "MigrationOutcome", "apply", "handlers", "PHASE"]

Progress = Callable[[str], None]
#: the state a server reaches when the last of its steps of this kind is done
PHASE = {"source server": None, "snapshot": STATES[1], "volume image": STATES[1],
         "transfer": STATES[2], "server": STATES[3], "volume": STATES[3],
         "temporary images": STATES[5]}


@dataclass
class ServerOutcome:
    """What happened to one server in this run."""

    name: str
    source_id: str
    state: str = STATES[0]
    target_id: str | None = None
    transfers: list[TransferResult] = field(default_factory=list)
    verification: Verification | None = None
    rolled_back: str | None = None
    source_deleted: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The server's outcome as JSON."""
        return {"name": self.name, "source_id": self.source_id, "state": self.state,
                "target_id": self.target_id,
                "transfers": [t.to_dict() for t in self.transfers],
                "bytes_moved": sum(t.size for t in self.transfers),
                "verification": self.verification.to_dict() if self.verification else None,
                "rolled_back": self.rolled_back, "source_deleted": self.source_deleted,
                "notes": list(self.notes)}


@dataclass(frozen=True)
class MigrationOutcome:
    """What a migration run did, server by server."""

    title: str
    migration_id: str
    servers: tuple[ServerOutcome, ...]
    steps: tuple[StepResult, ...] = ()
    journal: str | None = None

    @property
    def rolled_back(self) -> tuple[ServerOutcome, ...]:
        """The servers whose verification failed and which were rolled back."""
        return tuple(s for s in self.servers if s.rolled_back)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as JSON (what the run records)."""
        return {"title": self.title, "migration_id": self.migration_id,
                "servers": [s.to_dict() for s in self.servers],
                "bytes_moved": sum(t.size for s in self.servers for t in s.transfers),
                "journal": self.journal, "steps": [s.__dict__ for s in self.steps]}


@dataclass
class ApplyState:
    """The connections and what the walk made or found so far."""

    source: Any
    target: Any
    admin: Any | None
    source_cloud: str
    migration_id: str
    timeout: int
    journal: Journal
    progress: Progress
    servers: dict[str, ServerOutcome] = field(default_factory=dict)

    def outcome(self, source_id: str, name: str = "") -> ServerOutcome:
        """The outcome record of a server (made on first use)."""
        if source_id not in self.servers:
            self.servers[source_id] = ServerOutcome(name=name or source_id, source_id=source_id)
        return self.servers[source_id]

    def reached(self, source_id: str, state: str, detail: str = "") -> None:
        """Record a server's transition (journal first, then the outcome)."""
        out = self.outcome(source_id)
        self.journal.write(out.name, source_id, state, detail)
        out.state = state


_TABLE: dict[tuple[str, str], Callable[[ApplyState, Step], Any]] = {}


def _on(kind: str, *actions: str) -> Callable:
    def register(fn: Callable[[ApplyState, Step], Any]) -> Callable[[ApplyState, Step], Any]:
        for a in actions:
            _TABLE[(kind, a)] = fn
        return fn
    return register


# --------------------------------------------------------------------------- shared steps

@_on("quotas", "update")
def _quotas(st: ApplyState, step: Step) -> str:
    if st.admin is None:
        raise CloudError("copying quotas needs the admin connection (admin_cloud)")
    return quotas.apply_quotas(st.admin, step.inputs["project_id"], step.inputs["set"])


@_on("project tags", "update")
def _project_tags(st: ApplyState, step: Step) -> str:
    if st.admin is None:
        raise CloudError("copying project tags needs the admin connection (admin_cloud)")
    return quotas.apply_tags(st.admin, step.inputs["project_id"], step.inputs["tags"])


@_on("security group", "create", "update")
def _security_group(st: ApplyState, step: Step) -> str:
    secgroups.ensure(st.target, step.name, step.inputs["ports"])
    return "exactly the standard rules"


@_on("keypair", "create")
def _keypair(st: ApplyState, step: Step) -> str:
    kp = st.target.compute.find_keypair(step.name, ignore_missing=True)
    if kp is None:
        try:
            kp = st.target.compute.create_keypair(name=step.name,
                                                  public_key=step.inputs["public_key"])
        except os_exc.ConflictException:  # made meanwhile with the same name
            kp = st.target.compute.find_keypair(step.name)
    return kp.fingerprint


# --------------------------------------------------------------------------- source side

@_on("source server", "update")
def _stop(st: ApplyState, step: Step) -> str:
    out = st.outcome(step.inputs["id"], step.name)
    server = st.source.compute.get_server(step.inputs["id"])
    if server.status == "ACTIVE":
        st.source.compute.stop_server(server)
        st.journal.write(out.name, out.source_id, "stopped", "the source, before the copy")
    if server.status != "SHUTOFF":
        st.source.compute.wait_for_server(server, status="SHUTOFF", failures=["ERROR"],
                                          wait=st.timeout)
    return "SHUTOFF"


def _find_temp(st: ApplyState, stamp: str) -> Any | None:
    """The source image with TEMP stamp ``stamp``, waited for if still being made; a
    broken one is deleted (None)."""
    found = [i for i in st.source.image.images(owner=st.source.current_project_id)
             if tags.props(i).get(tags.TEMP) == stamp]
    keep = None
    for img in found:
        if keep is None and tags.usable_image(img):
            keep = img
        else:
            st.source.image.delete_image(img, ignore_missing=True)
    if keep is not None and keep.status != "active":
        keep = st.source.image.wait_for_status(keep, "active", failures=["killed", "deleted"],
                                               wait=st.timeout)
    return keep


@_on("snapshot", "create")
def _snapshot(st: ApplyState, step: Step) -> str:
    i = step.inputs
    st.outcome(i["source_id"], i["server"])
    img = _find_temp(st, tags.temp_boot(i["source_id"]))
    if img is None:
        img = st.source.compute.create_server_image(
            i["source_id"], i["name"],
            metadata={tags.TEMP: tags.temp_boot(i["source_id"]),
                      tags.MIGRATION: i["migration"]},
            wait=True, timeout=st.timeout)
    return f"{img.id} ({img.size} bytes)"


@_on("volume image", "create")
def _volume_image(st: ApplyState, step: Step) -> str:
    i = step.inputs
    sid, vid = i["source_id"], i["volume_id"]
    st.outcome(sid, i["server"])
    stamp = tags.temp_volume_image(sid, vid)
    img = _find_temp(st, stamp)
    bs = st.source.block_storage
    clone_stamp = tags.temp_clone(sid, vid)
    clones = [v for v in bs.volumes(details=True)
              if (v.metadata or {}).get(tags.TEMP) == clone_stamp and v.status != "deleting"]
    if img is None:
        clone = next((c for c in clones if not c.status.startswith("error")), None)
        for c in clones:
            if c is not clone:
                bs.delete_volume(c, ignore_missing=True)
        if clone is None:
            clone = bs.create_volume(name=i["clone_name"], size=i["size_gb"],
                                     source_volume_id=vid,
                                     description=f"temporary clone of {vid} for migration "
                                                 f"{i['migration']}",
                                     metadata={tags.TEMP: clone_stamp,
                                               tags.MIGRATION: i["migration"]})
        if clone.status != "available":
            clone = bs.wait_for_status(clone, "available", failures=["error"], wait=st.timeout)
        # the image made by the upload carries the clone's image metadata: it is stamped
        # from its first moment, so a run killed during the upload finds it
        bs.set_volume_image_metadata(clone, **{tags.TEMP: stamp, tags.MIGRATION: i["migration"]})
        made = bs.upload_volume_to_image(clone, i["name"], disk_format="raw",
                                         container_format="bare")
        img = st.source.image.wait_for_status(st.source.image.get_image(made["image_id"]),
                                              "active", failures=["killed", "deleted"],
                                              wait=st.timeout)
        clones = [bs.get_volume(clone.id)]
    for c in clones:  # the clone only served the upload
        if c.status not in ("available",) and not c.status.startswith("error"):
            c = bs.wait_for_status(c, "available", failures=["error"], wait=st.timeout)
        bs.delete_volume(c, ignore_missing=True)
    return f"{img.id} ({img.size} bytes)"


# --------------------------------------------------------------------------- transfers

def _target_part(st: ApplyState, source_id: str, part: str) -> tuple[Any | None, list[Any]]:
    """The verified target image of a part, and the broken ones (half-sent, killed)."""
    good, broken = None, []
    for img in tags.target_images(st.target, source_id):
        if tags.props(img).get(tags.PART) != part:
            continue
        if good is None and img.status == "active" and tags.props(img).get(tags.SHA256):
            good = img
        else:
            broken.append(img)
    return good, broken


@_on("transfer", "create")
def _transfer(st: ApplyState, step: Step) -> str:
    i = step.inputs
    sid = i["source_id"]
    out = st.outcome(sid, i["server"])
    part = tags.boot_part() if i.get("part") == "boot" else tags.volume_part(i["volume_id"])
    good, broken = _target_part(st, sid, part)
    for img in broken:  # a stream cut by a killed run: never finished, sent again
        st.target.image.delete_image(img, ignore_missing=True)
    if good is not None:
        return f"already transferred ({good.id})"
    stamp = tags.temp_boot(sid) if part == "boot" else tags.temp_volume_image(sid, i["volume_id"])
    src = _find_temp(st, stamp)
    if src is None:
        raise CloudError(f"{step.label()}: the source image (stamp {stamp}) is gone; make a "
                         f"new plan (a re-run does)")
    mib = -(-(src.size or 0) // 2**20)
    with live.task(total=mib, desc=f"transfer {i['name']} (MiB)") as bar:
        moved = [0]

        def advance(n: int) -> None:
            moved[0] += n
            done = mib if moved[0] >= src.size else moved[0] // 2**20
            if done > bar.done:
                bar.advance(done - bar.done)

        result = stream_image(st.source, src, st.target, name=i["name"], advance=advance,
                              wait=st.timeout,
                              properties={tags.MIGRATED_FROM: tags.ref(i["source_cloud"], sid),
                                          tags.PART: part, tags.MIGRATION: i["migration"]})
    st.progress(f"{step.label()}: {result.size / 2**20:.1f} MiB in {result.seconds:.1f} s "
                f"({result.mb_per_s:.0f} MB/s), sha256 {result.sha256[:12]}, verified by "
                f"{result.verified_by}")
    out.transfers.append(result)
    return (f"{result.size / 2**20:.1f} MiB in {result.seconds:.1f} s, sha256 "
            f"{result.sha256[:12]}, {result.verified_by}")


# --------------------------------------------------------------------------- target side

@_on("server", "delete")
def _delete_target_server(st: ApplyState, step: Step) -> str:
    server = st.target.compute.find_server(step.inputs["id"], ignore_missing=True)
    if server is not None:
        st.target.compute.delete_server(server, ignore_missing=True)
        st.target.compute.wait_for_delete(server, wait=st.timeout)
    return f"{step.inputs['id']} gone"


@_on("server", "create")
def _server(st: ApplyState, step: Step) -> str:
    i = step.inputs
    sid = i["source_id"]
    out = st.outcome(sid, i["name"])
    found = tags.target_servers(st.target, sid)
    for bad in [s for s in found if s.status == "ERROR"]:
        st.target.compute.delete_server(bad, ignore_missing=True)
        st.target.compute.wait_for_delete(bad, wait=st.timeout)
    live = [s for s in found if s.status != "ERROR"]
    server = live[0] if live else None
    if server is None:
        image_id = i.get("image_id")
        if not image_id:
            boot, _ = _target_part(st, sid, tags.boot_part())
            if boot is None:
                raise CloudError(f"{step.label()}: the transferred boot disk is missing; "
                                 f"make a new plan (a re-run does)")
            image_id = boot.id
        server = st.target.compute.create_server(
            name=i["name"], flavor_id=i["flavor_id"], image_id=image_id,
            networks=[{"uuid": n} for n in i["network_ids"]],
            security_groups=[{"name": i["security_group"]}],
            metadata=i["metadata"], **({"key_name": i["keypair"]} if i["keypair"] else {}))
    if server.status != "ACTIVE":
        server = st.target.compute.wait_for_server(server, status="ACTIVE",
                                                   failures=["ERROR"], wait=st.timeout)
    out.target_id = server.id
    return f"{server.id} ACTIVE"


@_on("server", "reuse")
def _reuse_server(st: ApplyState, step: Step) -> None:
    st.outcome(step.inputs["source_id"], step.name).target_id = step.inputs["id"]


def _target_server(st: ApplyState, source_id: str, label: str) -> Any:
    live = [s for s in tags.target_servers(st.target, source_id) if s.status != "ERROR"]
    if not live:
        raise CloudError(f"{label}: the migrated server is missing; make a new plan "
                         f"(a re-run does)")
    return live[0]


def _attach(st: ApplyState, server: Any, volume: Any) -> Any:
    bs = st.target.block_storage
    volume = bs.get_volume(volume.id)
    if server.id in {a.get("server_id") for a in volume.attachments or []}:
        return volume
    if volume.status != "available":
        volume = bs.wait_for_status(volume, "available", failures=["error"], wait=st.timeout)
    st.target.compute.create_volume_attachment(server, volume_id=volume.id)
    return bs.wait_for_status(volume, "in-use", failures=["error", "error_attaching"],
                              wait=st.timeout)


@_on("volume", "create")
def _volume(st: ApplyState, step: Step) -> str:
    i = step.inputs
    sid, vid = i["source_id"], i["volume_id"]
    st.outcome(sid, i["server"])
    bs = st.target.block_storage
    server = _target_server(st, sid, step.label())
    volume = tags.target_volumes(st.target, [vid]).get(vid)
    if volume is not None and volume.status.startswith("error"):
        bs.delete_volume(volume, ignore_missing=True)
        bs.wait_for_delete(volume, wait=st.timeout)
        volume = None
    if volume is None:
        image, _ = _target_part(st, sid, tags.volume_part(vid))
        if image is None:
            raise CloudError(f"{step.label()}: the transferred volume image is missing; "
                             f"make a new plan (a re-run does)")
        volume = bs.create_volume(name=i["name"] or None, size=i["size_gb"], image_id=image.id,
                                  description=i["description"] or None,
                                  metadata=i["metadata"])
    if volume.status not in ("available", "in-use"):
        volume = bs.wait_for_status(volume, "available", failures=["error"], wait=st.timeout)
    volume = _attach(st, server, volume)
    return f"{volume.id}, {volume.size} GiB, attached"


@_on("volume", "update")
def _attach_volume(st: ApplyState, step: Step) -> str:
    i = step.inputs
    server = _target_server(st, i["source_id"], step.label())
    volume = _attach(st, server, st.target.block_storage.get_volume(i["id"]))
    return f"{volume.id} attached"


# --------------------------------------------------------------------------- verify, roll back

def _rollback(st: ApplyState, step: Step, why: str) -> list[str]:
    """Delete what the migration made of a server in the target; start its source again
    if the migration stopped it."""
    i = step.inputs
    sid = i["source_id"]
    done = []
    for s in tags.target_servers(st.target, sid):
        st.target.compute.delete_server(s, ignore_missing=True)
        st.target.compute.wait_for_delete(s, wait=st.timeout)
        done.append(f"server {s.id}")
    bs = st.target.block_storage
    for v in tags.target_volumes(st.target, [v["volume_id"] for v in i["volumes"]]).values():
        v = bs.get_volume(v.id)
        if v.status in ("in-use", "attaching", "detaching", "reserved"):
            v = bs.wait_for_status(v, "available", failures=["error"], wait=st.timeout)
        bs.delete_volume(v, ignore_missing=True)
        bs.wait_for_delete(v, wait=st.timeout)
        done.append(f"volume {v.id}")
    for img in tags.target_images(st.target, sid):
        st.target.image.delete_image(img, ignore_missing=True)
        done.append(f"image {img.id}")
    if i.get("restart_source"):
        src = st.source.compute.get_server(sid)
        if src.status == "SHUTOFF":
            st.source.compute.start_server(src)
            st.source.compute.wait_for_server(src, status="ACTIVE", failures=["ERROR"],
                                              wait=st.timeout)
            done.append("source started again")
    st.progress(f"rolled back {i['name']}: {why}; " + ", ".join(done))
    return done


@_on("verification", "create")
def _verify(st: ApplyState, step: Step) -> str:
    i = step.inputs
    sid = i["source_id"]
    out = st.outcome(sid, i["name"])
    boot = None
    if i.get("copy_boot", True):
        boot, _ = _target_part(st, sid, tags.boot_part())
    result = verify_server(st.target, dict(i), boot_image=boot)
    out.verification = result
    if result.ok:
        st.target.compute.set_server_metadata(result.target_id,
                                              **{tags.VERIFIED: utcnow().isoformat()})
        out.target_id = result.target_id
        st.reached(sid, STATES[4], result.summary())
        return result.summary()
    why = "; ".join(f"{c.name}: {c.detail}" for c in result.failed)
    done = _rollback(st, step, why)
    out.rolled_back = why
    out.target_id = None
    out.notes.append("rolled back: " + ", ".join(done))
    st.reached(sid, ROLLED_BACK, why)
    return f"FAILED ({why}); rolled back"


# --------------------------------------------------------------------------- clean up, delete

@_on("temporary images", "delete")
def _cleanup(st: ApplyState, step: Step) -> str:
    i = step.inputs
    sid = i["source_id"]
    out = st.outcome(sid, step.name)
    gone = []
    temps = tags.source_temporaries(st.source, sid)
    for img in temps["images"]:
        st.source.image.delete_image(img, ignore_missing=True)
        gone.append(f"source image {img.name}")
    bs = st.source.block_storage
    for c in temps["clones"]:
        if c.status not in ("available",) and not c.status.startswith("error"):
            c = bs.wait_for_status(c, "available", failures=["error"], wait=st.timeout)
        bs.delete_volume(c, ignore_missing=True)
        gone.append(f"source clone {c.name}")
    for img in tags.target_images(st.target, sid):
        part = tags.props(img).get(tags.PART)
        if part == tags.boot_part() and i.get("keep_boot_image") and not out.rolled_back:
            continue
        st.target.image.delete_image(img, ignore_missing=True)
        gone.append(f"target image {img.name}")
    if not out.rolled_back:
        st.reached(sid, STATES[5], ", ".join(gone) or "nothing left")
    return ", ".join(gone) or "nothing left"


@_on("source server", "delete")
def _delete_source(st: ApplyState, step: Step) -> str:
    sid = step.inputs["id"]
    out = st.outcome(sid, step.name)
    verified = [s for s in tags.target_servers(st.target, sid)
                if (s.metadata or {}).get(tags.VERIFIED)]
    if not verified:
        out.notes.append("source kept: its copy is not verified")
        return "kept: the copy is not verified"
    server = st.source.compute.find_server(sid, ignore_missing=True)
    if server is not None and server.status not in GONE:
        st.source.compute.delete_server(server, ignore_missing=True)
        st.source.compute.wait_for_delete(server, wait=st.timeout)
    bs = st.source.block_storage
    for vid in step.inputs["volume_ids"]:
        v = bs.find_volume(vid, ignore_missing=True)
        if v is None:
            continue
        if v.status != "available" and not v.status.startswith("error"):
            v = bs.wait_for_status(v, "available", failures=["error"], wait=st.timeout)
        bs.delete_volume(v, ignore_missing=True)
        bs.wait_for_delete(v, wait=st.timeout)
    out.source_deleted = True
    st.journal.write(out.name, sid, "source deleted")
    return "deleted, with " + (f"{len(step.inputs['volume_ids'])} volume(s)"
                               if step.inputs["volume_ids"] else "no volume")


# --------------------------------------------------------------------------- apply

def handlers(st: ApplyState, plan: Plan) -> Handlers:
    """The handlers, each followed by the journal entry of the state it completes: a
    server's state advances after the last of its steps of that phase."""
    last: dict[tuple[str, str], int] = {}
    for n, s in enumerate(plan.steps):
        sid = s.inputs.get("source_id") or s.inputs.get("id")
        if s.changes and PHASE.get(s.kind) and sid:
            last[(sid, PHASE[s.kind])] = n
    position = {id(s): n for n, s in enumerate(plan.steps)}
    table = Handlers()
    for (kind, action), fn in _TABLE.items():
        def run(state: ApplyState, step: Step, fn: Callable = fn) -> Any:
            result = fn(state, step)
            sid = step.inputs.get("source_id") or step.inputs.get("id")
            phase = PHASE.get(step.kind)
            if phase and sid and phase != STATES[5] and \
                    last.get((sid, phase)) == position.get(id(step)):
                state.reached(sid, phase, step.label())
            return result
        table.on(kind, action)(run)
    return table


def apply(source: Any, target: Any, plan: Plan, *, source_cloud: str, migration_id: str,
          admin: Any | None = None, timeout: int = 900, journal: Journal | None = None,
          states: dict[str, str] | None = None,
          progress: Progress | None = None) -> MigrationOutcome:
    """Carry out exactly ``plan`` (the approved one); every step is idempotent and a
    re-run goes on where a killed run stopped.

    ``states`` are the servers' states when the plan was made (``{source id: state}``,
    :meth:`MigrationPlan.states`); a server none of whose steps changes anything keeps it.
    """
    say = progress or live.say
    st = ApplyState(source=source, target=target, admin=admin, source_cloud=source_cloud,
                    migration_id=migration_id, timeout=timeout,
                    journal=journal or Journal(), progress=say)
    for s in plan.steps:  # every server of the plan has an outcome, in plan order
        sid = s.inputs.get("source_id")
        if sid:
            out = st.outcome(sid, s.name.split("/")[0])
            out.state = (states or {}).get(sid, out.state)
    try:
        steps = walk(plan, handlers(st, plan), st, progress=say)
    except CLOUD_ERRORS as exc:  # pragma: no cover - walk maps the handlers' errors
        raise CloudError(f"{plan.title} failed: {exc}; re-run to finish") from exc
    return MigrationOutcome(title=plan.title, migration_id=migration_id,
                            servers=tuple(st.servers.values()), steps=tuple(steps),
                            journal=str(st.journal.path) if st.journal.path else None)
