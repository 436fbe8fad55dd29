"""instance-for-ticket, step 4: apply — walk the approved plan's steps, one small
idempotent handler per ``(kind, action)``.

Every handler finds before it makes (by id from the plan, or by the ticket's metadata),
so a run killed halfway is finished by the next one and nothing is made twice.  The
handlers take what they need from the step's ``inputs``; what they make is kept in
:class:`ApplyState` for the steps after them (the volume the server boots with, the
server the volume is attached to).
"""
from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from openstack import exceptions as os_exc

from .. import secgroups
from ..cloud import CLOUD_ERRORS, server_gone, volume_gone
from ..context import current_run, utcnow
from ..errors import CloudError
from ..plan import Handlers, Plan, Step, StepResult, walk
from ..site.policy import Policy
from . import notify
from .facts import META, find_ticket_servers, find_ticket_volumes, key_body, server_address
from .request import iso

__all__ = ["HANDLERS", "ApplyState", "InstanceOutcome", "apply", "user_data", "volume_device",
           "ACTIVE_TIMEOUT"]

ACTIVE_TIMEOUT = 600
HANDLERS = Handlers()


@dataclass
class ApplyState:
    """What the walk has made or found so far (for the steps after)."""

    conn: Any
    policy: Policy
    timeout: int = ACTIVE_TIMEOUT
    volume: Any | None = None
    server: Any | None = None
    fip: Any | None = None
    mail: notify.MailOutcome | None = None
    volume_name: str | None = None


@dataclass(frozen=True)
class InstanceOutcome:
    """The instance as it stands after apply."""

    ticket: str
    name: str
    server_id: str
    status: str
    address: str | None
    flavor: str
    image: str
    instance_class: str | None
    security_group: str
    keypair: str | None
    volume_id: str | None
    expires_at: str | None
    created_at: str | None
    run_id: str | None
    mailed: str | None
    steps: tuple[StepResult, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The outcome as JSON, with the steps walked."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "steps"}
        d["steps"] = [s.__dict__ for s in self.steps]
        return d


# --------------------------------------------------------------------------- user data

def volume_device(volume_id: str) -> str:
    """The stable device path of a cinder volume under virtio (first 20 id chars)."""
    return f"/dev/disk/by-id/virtio-{volume_id[:20]}"


def user_data(ssh_keys: list[str], root_keys: list[str], volume_id: str | None) -> str:
    """cloud-init user-data: requester's keys for the default user, admin keys for root,
    the /srv volume formatted only if it has no filesystem yet, and mounted."""
    cfg: dict[str, Any] = {
        "ssh_authorized_keys": list(ssh_keys),
        # root: only the sysadmin keys (cloud-init still blocks the requester's keys there)
        "disable_root": True,
        "write_files": [{
            "path": "/root/.ssh/authorized_keys", "owner": "root:root", "permissions": "0600",
            "content": "".join(f"{k}\n" for k in root_keys),
        }],
    }
    if volume_id:
        cfg["fs_setup"] = [{"device": volume_device(volume_id), "filesystem": "ext4",
                            "label": "srv", "overwrite": False}]
        cfg["mounts"] = [["LABEL=srv", "/srv", "ext4", "defaults,nofail", "0", "2"]]
    return "#cloud-config\n" + yaml.safe_dump(cfg, sort_keys=False, width=4096)


def _stamps() -> dict[str, str]:
    run = current_run()
    return {META["operator"]: run.operator, META["run_id"]: run.label,
            META["created_at"]: iso(utcnow())}


# --------------------------------------------------------------------------- handlers

@HANDLERS.on("keypair", "create", "update")
def _keypair(st: ApplyState, step: Step) -> str:
    key = step.inputs["public_key"]
    kp = st.conn.compute.find_keypair(step.name)
    if kp is not None and key_body(kp.public_key) != key_body(key):
        st.conn.compute.delete_keypair(kp, ignore_missing=True)
        kp = None
    if kp is None:
        try:
            kp = st.conn.compute.create_keypair(name=step.name, public_key=key)
        except os_exc.ConflictException:  # made meanwhile with the same name
            kp = st.conn.compute.find_keypair(step.name)
    return kp.fingerprint


@HANDLERS.on("security group", "create", "update")
def _security_group(st: ApplyState, step: Step) -> str:
    secgroups.ensure(st.conn, step.name, step.inputs["ports"])
    return "exactly the standard rules"


@HANDLERS.on("server", "delete")
def _delete_server(st: ApplyState, step: Step) -> str:
    server_gone(st.conn, step.inputs["id"], st.timeout)
    return f"{step.inputs['id']} gone"


@HANDLERS.on("volume", "delete")
def _delete_volume(st: ApplyState, step: Step) -> str:
    volume_gone(st.conn, step.inputs["id"], st.timeout)
    return f"{step.inputs['id']} gone"


def _usable(volume: Any) -> Any:
    return volume if not volume.status.startswith("error") else None


@HANDLERS.on("volume", "create")
def _volume(st: ApplyState, step: Step) -> str:
    i = step.inputs
    found = [v for v in find_ticket_volumes(st.conn, i["ticket"]) if _usable(v)]
    volume = found[0] if found else None
    if volume is None:
        volume = st.conn.block_storage.create_volume(
            name=step.name, size=i["size_gb"],
            description=f"/srv of {i['server_name']} (ticket {i['ticket']})",
            metadata={META["ticket"]: i["ticket"], META["requester"]: i["requester"],
                      META["server_name"]: i["server_name"]})
    if volume.status not in ("available", "in-use"):
        volume = st.conn.block_storage.wait_for_status(volume, "available", failures=["error"],
                                                       wait=st.timeout)
    st.volume, st.volume_name = volume, step.name
    return volume.id


@HANDLERS.on("volume", "reuse")
def _reuse_volume(st: ApplyState, step: Step) -> None:
    st.volume = st.conn.block_storage.get_volume(step.inputs["id"])
    st.volume_name = step.name


@HANDLERS.on("server", "create")
def _server(st: ApplyState, step: Step) -> str:
    i = step.inputs
    ticket = i["metadata"][META["ticket"]]
    live = [s for s in find_ticket_servers(st.conn, ticket) if s.status != "ERROR"]
    server = live[0] if live else None
    if server is None:
        volume = st.volume
        attrs: dict[str, Any] = dict(
            name=step.name, flavor_id=i["flavor_id"], image_id=i["image_id"],
            key_name=i["keypair"], security_groups=[{"name": i["security_group"]}],
            metadata={**i["metadata"], **_stamps(),
                      **({META["volume"]: volume.id} if volume is not None else {})},
            user_data=base64.b64encode(user_data(
                i["ssh_keys"], i["root_keys"],
                volume.id if volume is not None else None).encode()).decode(),
        )
        if i.get("network_id"):
            attrs["networks"] = [{"uuid": i["network_id"]}]
        if volume is not None and volume.status == "available":
            # the volume is attached at boot, so cloud-init sees it the first time
            attrs["block_device_mapping"] = [
                {"boot_index": 0, "uuid": i["image_id"], "source_type": "image",
                 "destination_type": "local", "delete_on_termination": True},
                {"boot_index": -1, "uuid": volume.id, "source_type": "volume",
                 "destination_type": "volume", "delete_on_termination": False}]
        server = st.conn.compute.create_server(**attrs)
    if server.status != "ACTIVE":
        server = st.conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"],
                                                 wait=st.timeout)
    st.server = st.conn.compute.get_server(server.id)
    return f"{server.id} ACTIVE"


@HANDLERS.on("server", "reuse")
def _reuse_server(st: ApplyState, step: Step) -> None:
    st.server = st.conn.compute.get_server(step.inputs["id"])


@HANDLERS.on("server", "update")
def _server_group(st: ApplyState, step: Step) -> str:
    name = step.inputs["add_security_group"]
    server = st.server or st.conn.compute.get_server(step.inputs["id"])
    if name not in {g.get("name") for g in server.security_groups or []}:
        group = secgroups.inspect(st.conn, name).group
        st.conn.compute.add_security_group_to_server(server, group)
    return f"group {name}"


@HANDLERS.on("volume", "update")
def _attach(st: ApplyState, step: Step) -> str:
    volume = st.volume
    if volume is None:  # the plan reused a volume it did not walk through: find it again
        found = [v for v in find_ticket_volumes(st.conn, step.inputs["ticket"]) if _usable(v)]
        if not found:
            raise CloudError(f"volume {step.name} of ticket {step.inputs['ticket']} is gone; "
                             f"make a new plan")
        volume = found[0]
    volume = st.conn.block_storage.get_volume(volume.id)
    if st.server.id not in {a.get("server_id") for a in volume.attachments or []}:
        if volume.status != "available":
            volume = st.conn.block_storage.wait_for_status(volume, "available",
                                                           failures=["error"], wait=st.timeout)
        st.conn.compute.create_volume_attachment(st.server, volume_id=volume.id)
        volume = st.conn.block_storage.wait_for_status(
            volume, "in-use", failures=["error", "error_attaching"], wait=st.timeout)
    st.volume = volume
    return f"attached to {st.server.name}"


def _server_fip(st: ApplyState) -> Any | None:
    for port in st.conn.network.ports(device_id=st.server.id):
        ip = next(iter(st.conn.network.ips(port_id=port.id)), None)
        if ip is not None:
            return ip
    return None


@HANDLERS.on("floating ip", "create")
def _floating_ip(st: ApplyState, step: Step) -> str:
    fip = _server_fip(st)
    if fip is None:
        ports = list(st.conn.network.ports(device_id=st.server.id))
        if not ports:
            raise CloudError(f"server {st.server.name} has no port to give a floating IP")
        fip = st.conn.network.create_ip(floating_network_id=step.inputs["network_id"],
                                        port_id=ports[0].id,
                                        description=f"server {st.server.name}")
    st.fip = fip
    return fip.floating_ip_address


@HANDLERS.on("floating ip", "reuse")
def _reuse_floating_ip(st: ApplyState, step: Step) -> None:
    st.fip = st.conn.network.get_ip(step.inputs["id"])


@HANDLERS.on("metadata", "create", "update")
def _metadata(st: ApplyState, step: Step) -> str:
    have = st.server.metadata or {}
    want = {**step.inputs["set"], **_stamps()}
    if st.volume is not None:
        want[META["volume"]] = st.volume.id
    missing = {k: v for k, v in want.items() if k not in have}
    if missing:
        st.conn.compute.set_server_metadata(st.server, **missing)
        st.server = st.conn.compute.get_server(st.server.id)
    return ", ".join(sorted(missing)) or "complete"


HANDLERS.on("mail", "create")(notify.send_ready_mail)


# --------------------------------------------------------------------------- apply

def apply(conn: Any, policy: Policy, plan: Plan, *, timeout: int = ACTIVE_TIMEOUT,
          progress: Callable[[str], None] | None = None) -> InstanceOutcome:
    """Carry out exactly ``plan`` (the approved one); every step is idempotent."""
    st = ApplyState(conn=conn, policy=policy, timeout=timeout)
    try:
        steps = walk(plan, HANDLERS, st, progress=progress)
        server = conn.compute.get_server(st.server.id) if st.server is not None else None
    except CLOUD_ERRORS as exc:
        raise CloudError(f"applying {plan.title} failed: {exc}; re-run to finish (it resumes "
                         f"where it stopped)") from exc
    if server is None:
        raise CloudError(f"{plan.title}: the plan has no server step")
    meta = server.metadata or {}
    server_step = next(s for s in plan.steps if s.kind == "server" and s.action in ("create", "reuse"))
    kp = next((s.name for s in plan.steps if s.kind == "keypair"), None)
    sg = next((s.name for s in plan.steps if s.kind == "security group"), policy.network.security_group)
    return InstanceOutcome(
        ticket=meta.get(META["ticket"], ""), name=server.name, server_id=server.id,
        status=server.status,
        address=st.fip.floating_ip_address if st.fip is not None else server_address(server),
        flavor=server_step.inputs.get("flavor", ""), image=server_step.inputs.get("image", ""),
        instance_class=meta.get(META["class"]), security_group=sg, keypair=kp,
        volume_id=st.volume.id if st.volume is not None else meta.get(META["volume"]),
        expires_at=meta.get(META["expires_at"]), created_at=meta.get(META["created_at"]),
        run_id=meta.get(META["run_id"]),
        mailed=(st.mail.stamp if st.mail is not None and st.mail.sent
                else meta.get(META["mailed"])),
        steps=tuple(steps))

