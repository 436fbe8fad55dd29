"""instance-for-ticket and instance-retire: facts, plan, apply.

Everything a ticket's instance consists of is found again by its metadata
(``fedcloud_ticket``), so applying twice is applying once, and a run killed halfway is
finished by the next one: a server left in ERROR is replaced, a volume left unattached is
reused, nothing is created twice.

The order is fixed: :func:`prepare` (policy and account checks, no cloud call) →
:func:`gather` (read the cloud) → :func:`make_plan` (what to create, reuse, repair;
quota headroom) → :func:`apply` → :func:`notify`.  The retire counterpart is
:func:`gather_retire` → :func:`plan_retire` → :func:`apply_retire`.
"""
from __future__ import annotations

import datetime as dt
import getpass
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml
from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as os_exc

from . import mail as mail_mod
from . import secgroups
from .accounts import Account, FasjsonClient, client_for
from .errors import CloudError, PolicyError
from .plan import Action, Plan
from .policy import InstanceRequest, Policy, check_request, check_requester, iso

__all__ = [
    "META", "RunInfo", "run_info", "connect", "prepare", "Facts", "gather", "Step", "Plan",
    "InstancePlan", "make_plan", "apply", "plan_table", "notify", "user_data", "keypair_name", "RetireFacts",
    "gather_retire", "plan_retire", "retire_plan", "apply_retire", "find_ticket_servers",
]

PREFIX = "fedcloud_"
META = {k: PREFIX + k for k in ("ticket", "requester", "operator", "purpose", "class",
                                "created_at", "expires_at", "run_id", "volume", "mailed")}
ACTIVE_TIMEOUT = 600
# what a cloud call can raise: the SDK's errors, and keystoneauth's for an unreachable API
CLOUD_ERRORS = (os_exc.SDKException, ksa_exc.ClientException)
GONE = ("DELETED", "SOFT_DELETED")


# --------------------------------------------------------------------------- context

@dataclass(frozen=True)
class RunInfo:
    run_id: str | None
    operator: str
    cloud: str | None


def run_info() -> RunInfo:
    """The engine's run context (run id, operator, cloud), or the local user's."""
    try:
        from . import current_run  # provided by the engine
        cur = current_run()
        return RunInfo(cur.run_id, cur.operator or getpass.getuser(), cur.cloud)
    except (ImportError, AttributeError):
        return RunInfo(os.environ.get("FEDCLOUD_RUN_ID"),
                       os.environ.get("FEDCLOUD_OPERATOR") or getpass.getuser(),
                       os.environ.get("OS_CLOUD"))


def connect(cloud: str | None = None) -> Any:
    """An openstacksdk connection to ``cloud`` (default ``$OS_CLOUD``)."""
    import openstack

    try:
        return openstack.connect(cloud=cloud or None)
    except CLOUD_ERRORS as exc:
        raise CloudError(f"cannot connect to cloud {cloud or os.environ.get('OS_CLOUD')!r}: "
                         f"{exc}", cloud=cloud) from exc


def keypair_name(requester: str) -> str:
    return f"fas-{requester}"


def _key_body(key: str | None) -> str:
    parts = (key or "").split()
    return " ".join(parts[:2])


# --------------------------------------------------------------------------- prepare

def prepare(policy: Policy, *, ticket: str, requester: str, purpose: str, instance_class: str,
            name: str, flavor: str = "", image: str = "", volume_gb: int = 0,
            expires: str = "", fasjson: FasjsonClient | None = None,
            now: dt.datetime | None = None) -> tuple[InstanceRequest, Account]:
    """Policy and account checks; no cloud call.  Raises :class:`PolicyError`."""
    req = check_request(policy, ticket=ticket, requester=requester, purpose=purpose,
                        instance_class=instance_class, name=name, flavor=flavor, image=image,
                        volume_gb=volume_gb, expires=expires, now=now)
    fasjson = fasjson or client_for(policy)
    account = fasjson.account(requester)
    check_requester(policy, req.klass, account)
    return req, account


# --------------------------------------------------------------------------- facts

def find_ticket_servers(conn: Any, ticket: str) -> list[Any]:
    return [s for s in conn.compute.servers(details=True)
            if (s.metadata or {}).get(META["ticket"]) == str(ticket) and s.status not in GONE]


def find_ticket_volumes(conn: Any, ticket: str) -> list[Any]:
    return [v for v in conn.block_storage.volumes(details=True)
            if (v.metadata or {}).get(META["ticket"]) == str(ticket)
            and v.status not in ("deleting",)]


@dataclass
class Facts:
    request: InstanceRequest
    account: Account
    project: str | None
    flavor: Any
    image: Any
    network: Any | None
    external_networks: list[Any]
    server: Any | None              # the ticket's live server (not ERROR)
    error_servers: list[Any]        # the ticket's servers in ERROR, to replace
    volume: Any | None
    bad_volumes: list[Any]          # the ticket's volumes in error states, to replace
    keypair: Any | None
    secgroup: secgroups.GroupState
    floating_ip: Any | None
    compute_limits: Any
    volume_limits: Any


def _cloud(call: Callable[[], Any], what: str) -> Any:
    try:
        return call()
    except CLOUD_ERRORS as exc:
        raise CloudError(f"cannot {what}: {exc}") from exc


def gather(conn: Any, policy: Policy, req: InstanceRequest, account: Account) -> Facts:
    """Read everything the plan needs from the cloud (no change)."""
    flavor = _cloud(lambda: conn.compute.find_flavor(req.flavor), f"look up flavor {req.flavor}")
    if flavor is None:
        raise CloudError(f"flavor {req.flavor!r} is allowed by the policy but does not exist "
                         f"in this cloud", flavor=req.flavor)
    image = _cloud(lambda: conn.image.find_image(req.image), f"look up image {req.image}")
    if image is None:
        raise CloudError(f"image {req.image!r} is allowed by the policy but does not exist "
                         f"in this cloud", image=req.image)
    network = None
    if policy.network.network:
        network = _cloud(lambda: conn.network.find_network(policy.network.network),
                         "look up the network")
        if network is None:
            raise CloudError(f"network {policy.network.network!r} (site policy) does not "
                             f"exist in this cloud")
    external = _cloud(lambda: list(conn.network.networks(is_router_external=True)),
                      "list external networks")
    servers = _cloud(lambda: find_ticket_servers(conn, req.ticket), "list servers")
    live = [s for s in servers if s.status != "ERROR"]
    if len(live) > 1:
        raise CloudError(f"ticket {req.ticket} already has {len(live)} servers "
                         f"({', '.join(s.name for s in live)}); fix by hand")
    server = live[0] if live else None
    if server is not None and server.name != req.name:
        raise PolicyError(f"name: ticket {req.ticket} already has server {server.name!r}; "
                          f"re-run with that name or retire it first")
    clash = _cloud(lambda: [s for s in conn.compute.servers(details=True, name=f"^{req.name}$")
                            if s.name == req.name and s.status not in GONE
                            and (s.metadata or {}).get(META["ticket"]) != req.ticket],
                   "list servers")
    if clash:
        raise PolicyError(f"name: {req.name!r} is already used by another server in this "
                          f"project (ticket {(clash[0].metadata or {}).get(META['ticket'], '?')})")
    volumes = _cloud(lambda: find_ticket_volumes(conn, req.ticket), "list volumes")
    good = [v for v in volumes if not v.status.startswith("error")]
    volume = None
    if server is not None:
        attached = {a.get("id") or a.get("volume_id") for a in server.attached_volumes or []}
        volume = next((v for v in good if v.id in attached), None)
    volume = volume or next((v for v in good if v.status == "available"), None) or \
        (good[0] if good else None)
    keypair = _cloud(lambda: conn.compute.find_keypair(keypair_name(req.requester)),
                     "look up the keypair")
    sg = secgroups.inspect(conn, policy.network.security_group, policy.network.ingress_tcp)
    fip = None
    if server is not None and external:
        ports = _cloud(lambda: list(conn.network.ports(device_id=server.id)), "list ports")
        for port in ports:
            ips = _cloud(lambda: list(conn.network.ips(port_id=port.id)), "list floating IPs")
            fip = fip or (ips[0] if ips else None)
    return Facts(
        request=req, account=account, project=conn.config.auth.get("project_name"),
        flavor=flavor, image=image, network=network, external_networks=external,
        server=server, error_servers=[s for s in servers if s.status == "ERROR"],
        volume=volume, bad_volumes=[v for v in volumes if v.status.startswith("error")],
        keypair=keypair, secgroup=sg, floating_ip=fip,
        compute_limits=_cloud(lambda: conn.compute.get_limits().absolute, "read compute limits"),
        volume_limits=(_cloud(lambda: conn.block_storage.get_limits().absolute,
                              "read volume limits") if req.volume_gb else None),
    )


# --------------------------------------------------------------------------- plan

def Step(kind: str, name: str, action: str, detail: str = "") -> Action:  # noqa: N802
    """A plan line in the engine's vocabulary (create, update, delete, reuse, keep)."""
    return Action(action=action, kind=kind, name=name, detail=detail)


@dataclass
class InstancePlan:
    request: InstanceRequest
    facts: Facts
    steps: list[Action]
    quota: list[dict[str, Any]]
    metadata: dict[str, str]

    @property
    def plan(self) -> Plan:
        """The engine's :class:`~fedcloud_lib.plan.Plan` (for ``require_approval``)."""
        return Plan.of(f"instance {self.request.name} for ticket {self.request.ticket}",
                       self.steps)

    def table(self) -> Any:
        return self.plan.to_frame()

    def quota_table(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.quota, columns=["resource", "used", "requested", "limit",
                                                 "headroom_after"])

    @property
    def changes(self) -> bool:
        return bool(self.plan.changes)


def _limit(cloud_max: int | None, ceiling: int | None) -> int | None:
    values = [v for v in (cloud_max, ceiling) if v is not None and v >= 0]
    return min(values) if values else None


def server_metadata(req: InstanceRequest, run: RunInfo) -> dict[str, str]:
    return {
        META["ticket"]: req.ticket, META["requester"]: req.requester,
        META["operator"]: run.operator, META["purpose"]: (req.purpose or "")[:255],
        META["class"]: req.klass.name, META["created_at"]: iso(req.created_at),
        META["expires_at"]: iso(req.expires_at), META["run_id"]: run.run_id or "interactive",
    }


def make_plan(policy: Policy, facts: Facts, run: RunInfo | None = None) -> InstancePlan:
    """The plan: every resource to create, reuse or repair; refuses an over-quota request."""
    run = run or run_info()
    req, f = facts.request, facts
    steps: list[Action] = []
    kp = keypair_name(req.requester)
    if f.keypair is None:
        steps.append(Step("keypair", kp, "create", f"{req.requester}'s first ssh key from FAS"))
    elif _key_body(f.keypair.public_key) != _key_body(f.account.sshpubkeys[0]):
        steps.append(Step("keypair", kp, "update", "replace: the key in FAS changed"))
    else:
        steps.append(Step("keypair", kp, "reuse", f.keypair.fingerprint or ""))
    sg_action = {"create": "create", "repair": "update", "reuse": "reuse"}[f.secgroup.action]
    steps.append(Step("security group", f.secgroup.name, sg_action,
                      ("drift repair: " if sg_action == "update" else "") + f.secgroup.detail()))
    for s in f.error_servers:
        steps.append(Step("server", s.name, "delete",
                          f"left in ERROR by an earlier run ({s.id}); replaced"))
    if req.volume_gb:
        if f.volume is None:
            steps.append(Step("volume", req.volume_name, "create",
                              f"{req.volume_gb} GiB, formatted and mounted on /srv"))
        else:
            steps.append(Step("volume", f.volume.name, "reuse",
                              f"{f.volume.size} GiB, {f.volume.status} ({f.volume.id}); "
                              f"existing filesystem kept"))
        for v in f.bad_volumes:
            steps.append(Step("volume", v.name, "delete", f"in {v.status} ({v.id})"))
    server_detail = f"{req.flavor}, {req.image}, group {policy.network.security_group}"
    if f.server is None:
        steps.append(Step("server", req.name, "create", server_detail))
    else:
        steps.append(Step("server", req.name, "reuse", f"{f.server.status} ({f.server.id})"))
        groups = {g.get("name") for g in f.server.security_groups or []}
        if policy.network.security_group not in groups:
            steps.append(Step("server", req.name, "update",
                              f"add security group {policy.network.security_group}"))
    if req.volume_gb and f.server is not None and f.volume is not None:
        attached = {a.get("id") for a in f.server.attached_volumes or []}
        if f.volume.id not in attached:
            steps.append(Step("volume", f.volume.name, "update", f"attach to {req.name}"))
    if not f.external_networks:
        steps.append(Step("floating ip", "-", "keep", "none: the cloud has no external network"))
    elif f.floating_ip is not None:
        steps.append(Step("floating ip", f.floating_ip.floating_ip_address, "reuse", ""))
    else:
        steps.append(Step("floating ip", "-", "create", f"on {f.external_networks[0].name}"))
    metadata = server_metadata(req, run)
    if f.server is None:
        steps.append(Step("metadata", req.name, "create",
                          ", ".join(f"{k}={v}" for k, v in metadata.items())))
    else:
        have = f.server.metadata or {}
        missing = {k: v for k, v in metadata.items() if k not in have}
        steps.append(Step("metadata", req.name, "update" if missing else "reuse",
                          ", ".join(f"{k}={v}" for k, v in missing.items()) or
                          f"expires {have.get(META['expires_at'], '?')}"))
        metadata = {**metadata, **{k: v for k, v in have.items() if k in metadata}}
    mailed = f.server is not None and (f.server.metadata or {}).get(META["mailed"])
    steps.append(Step("mail", f.account.email or "-", "keep" if mailed else "create",
                      f"sent {mailed}" if mailed else
                      f"to {req.requester}, cc {', '.join(policy.mail.admins) or 'nobody'}"))

    # quota headroom against the project's real usage
    ceiling = policy.quota_for(f.project)
    cl, vl = f.compute_limits, f.volume_limits
    new_server = f.server is None
    freed = len(f.error_servers)
    rows = [
        ("instances", cl.instances_used - freed, 1 if new_server else 0,
         _limit(cl.instances, ceiling and ceiling.instances)),
        ("cores", cl.total_cores_used, f.flavor.vcpus if new_server else 0,
         _limit(cl.total_cores, ceiling and ceiling.cores)),
        ("ram_mb", cl.total_ram_used, f.flavor.ram if new_server else 0,
         _limit(cl.total_ram, ceiling and ceiling.ram_mb)),
    ]
    if req.volume_gb and vl is not None:
        new_vol = f.volume is None
        rows += [
            ("volumes", vl.total_volumes_used, 1 if new_vol else 0,
             _limit(vl.max_total_volumes, ceiling and ceiling.volumes)),
            ("volume_gb", vl.total_gigabytes_used, req.volume_gb if new_vol else 0,
             _limit(vl.max_total_volume_gigabytes, ceiling and ceiling.volume_gb)),
        ]
    quota = [{"resource": r, "used": u, "requested": n, "limit": lim,
              "headroom_after": None if lim is None else lim - u - n} for r, u, n, lim in rows]
    over = [q for q in quota if q["requested"] and q["limit"] is not None
            and q["headroom_after"] < 0]
    if over:
        lines = [f"{q['resource']}: {q['used']} used + {q['requested']} requested > limit "
                 f"{q['limit']}" for q in over]
        raise PolicyError(f"over quota in project {f.project}:\n  " + "\n  ".join(lines),
                          problems=lines, quota=quota)
    return InstancePlan(request=req, facts=facts, steps=steps, quota=quota, metadata=metadata)


# --------------------------------------------------------------------------- user data

def volume_device(volume_id: str) -> str:
    """The stable device path of a cinder volume under virtio (first 20 id chars)."""
    return f"/dev/disk/by-id/virtio-{volume_id[:20]}"


def user_data(policy: Policy, account: Account, volume_id: str | None) -> str:
    """cloud-init user-data: requester's keys for the default user, admin keys for root,
    the /srv volume formatted only if it has no filesystem yet, and mounted."""
    cfg: dict[str, Any] = {
        "ssh_authorized_keys": list(account.sshpubkeys),
        # root: only the sysadmin keys (cloud-init still blocks the requester's keys there)
        "disable_root": True,
        "write_files": [{
            "path": "/root/.ssh/authorized_keys", "owner": "root:root", "permissions": "0600",
            "content": "".join(f"{k.key}\n" for k in policy.root_keys),
        }],
    }
    if volume_id:
        cfg["fs_setup"] = [{"device": volume_device(volume_id), "filesystem": "ext4",
                            "label": "srv", "overwrite": False}]
        cfg["mounts"] = [["LABEL=srv", "/srv", "ext4", "defaults,nofail", "0", "2"]]
    return "#cloud-config\n" + yaml.safe_dump(cfg, sort_keys=False, width=4096)


# --------------------------------------------------------------------------- apply

def _address(server: Any) -> str | None:
    floating, fixed = None, None
    for addrs in (server.addresses or {}).values():
        for a in addrs:
            if a.get("OS-EXT-IPS:type") == "floating":
                floating = floating or a.get("addr")
            elif a.get("version", 4) == 4:
                fixed = fixed or a.get("addr")
    return floating or fixed


def apply(conn: Any, policy: Policy, plan: InstancePlan, *, timeout: int = ACTIVE_TIMEOUT,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Carry out ``plan``; every step is idempotent (safe to re-run after a crash)."""
    say = progress or (lambda msg: None)
    req, f = plan.request, plan.facts
    try:
        # 1. keypair
        kp_name = keypair_name(req.requester)
        pub = f.account.sshpubkeys[0]
        kp = conn.compute.find_keypair(kp_name)
        if kp is not None and _key_body(kp.public_key) != _key_body(pub):
            conn.compute.delete_keypair(kp, ignore_missing=True)
            kp = None
        if kp is None:
            try:
                kp = conn.compute.create_keypair(name=kp_name, public_key=pub)
            except os_exc.ConflictException:
                kp = conn.compute.find_keypair(kp_name)
        say(f"keypair {kp_name} ready")
        # 2. standard security group (drift repair)
        secgroups.ensure(conn, policy.network.security_group, policy.network.ingress_tcp)
        say(f"security group {policy.network.security_group} is standard")
        # 3. servers left in ERROR are replaced
        for s in f.error_servers:
            conn.compute.delete_server(s, ignore_missing=True)
            conn.compute.wait_for_delete(s, wait=timeout)
            say(f"deleted server {s.id} left in ERROR")
        for v in f.bad_volumes:
            conn.block_storage.delete_volume(v, ignore_missing=True)
        # 4. volume (created before the server so cloud-init sees it at first boot)
        volume = None
        if req.volume_gb:
            found = [v for v in find_ticket_volumes(conn, req.ticket)
                     if not v.status.startswith("error")]
            volume = next((v for v in found if f.volume is not None and v.id == f.volume.id),
                          None) or (found[0] if found else None)
            if volume is None:
                volume = conn.block_storage.create_volume(
                    name=req.volume_name, size=req.volume_gb,
                    description=f"/srv of {req.name} (ticket {req.ticket})",
                    metadata={META["ticket"]: req.ticket, META["requester"]: req.requester,
                              PREFIX + "server_name": req.name})
                say(f"creating volume {volume.id}")
            if volume.status not in ("available", "in-use"):
                volume = conn.block_storage.wait_for_status(
                    volume, "available", failures=["error"], wait=timeout)
            say(f"volume {volume.id} {volume.status}")
        # 5. server
        servers = [s for s in find_ticket_servers(conn, req.ticket) if s.status != "ERROR"]
        server = servers[0] if servers else None
        if server is None:
            bdm = None
            if volume is not None and volume.status == "available":
                bdm = [{"boot_index": 0, "uuid": f.image.id, "source_type": "image",
                        "destination_type": "local", "delete_on_termination": True},
                       {"boot_index": -1, "uuid": volume.id, "source_type": "volume",
                        "destination_type": "volume", "delete_on_termination": False}]
            attrs: dict[str, Any] = dict(
                name=req.name, flavor_id=f.flavor.id, image_id=f.image.id, key_name=kp_name,
                security_groups=[{"name": policy.network.security_group}],
                metadata={**plan.metadata, **({META["volume"]: volume.id} if volume else {})},
                user_data=_b64(user_data(policy, f.account, volume.id if volume else None)),
            )
            if f.network is not None:
                attrs["networks"] = [{"uuid": f.network.id}]
            if bdm:
                attrs["block_device_mapping"] = bdm
            server = conn.compute.create_server(**attrs)
            say(f"creating server {server.id}")
        if server.status != "ACTIVE":
            server = conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"],
                                                  wait=timeout)
        server = conn.compute.get_server(server.id)
        say(f"server {server.name} ACTIVE")
        # 6. standard group on the server, volume attached
        groups = {g.get("name") for g in server.security_groups or []}
        if policy.network.security_group not in groups:
            sg = secgroups.inspect(conn, policy.network.security_group).group
            conn.compute.add_security_group_to_server(server, sg)
        if volume is not None:
            volume = conn.block_storage.get_volume(volume.id)
            attached_to = {a.get("server_id") for a in volume.attachments or []}
            if server.id not in attached_to:
                if volume.status != "available":
                    volume = conn.block_storage.wait_for_status(
                        volume, "available", failures=["error"], wait=timeout)
                conn.compute.create_volume_attachment(server, volume_id=volume.id)
                volume = conn.block_storage.wait_for_status(
                    volume, "in-use", failures=["error", "error_attaching"], wait=timeout)
            say(f"volume {volume.id} attached")
        # 7. floating IP when the cloud has an external network
        fip = None
        if f.external_networks:
            ports = list(conn.network.ports(device_id=server.id))
            for port in ports:
                fip = fip or next(iter(conn.network.ips(port_id=port.id)), None)
            if fip is None and ports:
                fip = conn.network.create_ip(
                    floating_network_id=f.external_networks[0].id, port_id=ports[0].id,
                    description=f"ticket {req.ticket} {req.name}")
                say(f"floating IP {fip.floating_ip_address}")
        # 8. metadata (anything missing after an interrupted run)
        have = server.metadata or {}
        missing = {k: v for k, v in plan.metadata.items() if k not in have}
        if volume is not None and META["volume"] not in have:
            missing[META["volume"]] = volume.id
        if missing:
            conn.compute.set_server_metadata(server, **missing)
        server = conn.compute.get_server(server.id)
    except CLOUD_ERRORS as exc:
        raise CloudError(f"applying the plan for ticket {req.ticket} failed: {exc}; "
                         f"re-run to finish (it resumes where it stopped)",
                         ticket=req.ticket) from exc
    meta = server.metadata or {}
    return {
        "ticket": req.ticket, "name": server.name, "server_id": server.id,
        "status": server.status,
        "address": (fip.floating_ip_address if fip is not None else _address(server)),
        "flavor": req.flavor, "image": req.image, "instance_class": req.klass.name,
        "security_group": policy.network.security_group, "keypair": keypair_name(req.requester),
        "volume_id": volume.id if volume is not None else None,
        "volume_gb": req.volume_gb, "expires_at": meta.get(META["expires_at"]),
        "created_at": meta.get(META["created_at"]), "run_id": meta.get(META["run_id"]),
        "mailed": meta.get(META["mailed"]),
    }


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def notify(conn: Any, policy: Policy, plan: InstancePlan, outcome: dict[str, Any], *,
           login_user: str = "fedora", force: bool = False) -> dict[str, Any]:
    """Mail the requester (cc the admins) once per instance; remembered in its metadata."""
    req, account = plan.request, plan.facts.account
    if outcome.get("mailed") and not force:
        return {"sent": False, "reason": f"already mailed at {outcome['mailed']}"}
    if not account.email:
        raise PolicyError(f"requester {account.username!r} has no e-mail address in FAS")
    run = run_info()
    body = mail_mod.instance_ready_body(
        requester=account.human_name or account.username, ticket=req.ticket,
        name=outcome["name"], address=outcome["address"], login_user=login_user,
        instance_class=req.klass.name, flavor=req.flavor, image=req.image,
        expires_at=outcome["expires_at"] or "never",
        volume=(f"{req.volume_gb} GiB on /srv" if outcome.get("volume_id") else None),
        run_id=run.run_id)
    msg = mail_mod.compose(policy.mail, to=[account.email], cc=policy.mail.admins,
                           subject=f"[fedcloud] ticket {req.ticket}: instance {outcome['name']} "
                                   f"is ready",
                           body=body, headers={"X-Fedcloud-Ticket": req.ticket})
    accepted = mail_mod.send(policy.mail, msg)
    stamp = iso(dt.datetime.now(dt.timezone.utc))
    _cloud(lambda: conn.compute.set_server_metadata(outcome["server_id"],
                                                    **{META["mailed"]: stamp}),
           "record the mail in the server metadata")
    return {"sent": True, "to": account.email, "cc": list(policy.mail.admins),
            "accepted": accepted, "subject": msg["Subject"]}


# --------------------------------------------------------------------------- retire

@dataclass
class RetireFacts:
    ticket: str
    servers: list[Any]
    volumes: list[Any]
    keypairs: dict[str, bool] = field(default_factory=dict)  # name -> still used elsewhere
    klass: str | None = None
    requester: str | None = None


def gather_retire(conn: Any, ticket: str) -> RetireFacts:
    servers = _cloud(lambda: find_ticket_servers(conn, ticket), "list servers")
    volumes = _cloud(lambda: find_ticket_volumes(conn, ticket), "list volumes")
    meta = (servers[0].metadata or {}) if servers else {}
    requester = meta.get(META["requester"]) or next(
        ((v.metadata or {}).get(META["requester"]) for v in volumes), None)
    keypairs: dict[str, bool] = {}
    if requester:
        kp = keypair_name(requester)
        if _cloud(lambda: conn.compute.find_keypair(kp), "look up the keypair") is not None:
            ours = {s.id for s in servers}
            others = [s for s in _cloud(lambda: list(conn.compute.servers(details=True)),
                                        "list servers")
                      if s.key_name == kp and s.id not in ours and s.status not in GONE]
            keypairs[kp] = bool(others)
    return RetireFacts(ticket=str(ticket), servers=servers, volumes=volumes, keypairs=keypairs,
                       klass=meta.get(META["class"]), requester=requester)


def plan_retire(policy: Policy, facts: RetireFacts, *, snapshot: bool, delete_volume: bool,
                requester: str = "", fasjson: FasjsonClient | None = None) -> list[Action]:
    if requester and facts.requester and requester != facts.requester:
        fasjson = fasjson or client_for(policy)
        if not set(fasjson.user_groups(requester)) & set(policy.admin_groups):
            raise PolicyError(
                f"requester: {requester!r} may not retire the instance of ticket "
                f"{facts.ticket}: it belongs to {facts.requester!r}, and {requester!r} is not "
                f"an admin ({', '.join(policy.admin_groups)})")
    klass = policy.classes.get(facts.klass or "")
    if delete_volume and facts.volumes and not (klass and klass.volume_delete_on_retire):
        raise PolicyError(
            f"delete_volume: class {facts.klass or 'unknown'} does not allow deleting the "
            f"/srv volume on retire; allowed for classes: "
            f"{', '.join(k for k, c in policy.classes.items() if c.volume_delete_on_retire)}")
    steps: list[Action] = []
    for s in facts.servers:
        if snapshot and s.status != "ERROR":
            steps.append(Step("snapshot", f"{s.name}-final-{facts.ticket}", "create",
                              f"image of {s.name} before deletion"))
        steps.append(Step("server", s.name, "delete", f"{s.status} ({s.id})"))
    for v in facts.volumes:
        steps.append(Step("volume", v.name, "delete" if delete_volume else "keep",
                          f"{v.size} GiB ({v.id})" + ("" if delete_volume else
                                                      "; pass delete_volume to delete it")))
    for kp, used in facts.keypairs.items():
        steps.append(Step("keypair", kp, "keep" if used else "delete",
                          "used by other servers" if used else "no other server uses it"))
    if facts.servers or facts.volumes:
        steps.append(Step("mail", facts.requester or "-", "create", "tell the requester"))
    return steps


def retire_plan(facts: RetireFacts, steps: list[Action]) -> Plan:
    return Plan.of(f"retire ticket {facts.ticket}", steps)


def plan_table(steps: list[Action]) -> Any:
    return Plan.of("plan", steps).to_frame()


def apply_retire(conn: Any, policy: Policy, facts: RetireFacts, steps: list[Action], *,
                 timeout: int = ACTIVE_TIMEOUT, fasjson: FasjsonClient | None = None,
                 send_mail: bool = True) -> dict[str, Any]:
    done: dict[str, Any] = {"ticket": facts.ticket, "snapshots": [], "servers_deleted": [],
                            "volumes_deleted": [], "volumes_kept": [], "keypairs_deleted": [],
                            "mail": None}
    wanted = {(s.kind, s.name): s.action for s in steps}
    try:
        for s in facts.servers:
            snap_name = f"{s.name}-final-{facts.ticket}"
            if wanted.get(("snapshot", snap_name)) == "create":
                img = conn.image.find_image(snap_name)
                if img is None:
                    img = conn.compute.create_server_image(
                        s, snap_name, metadata={META["ticket"]: facts.ticket}, wait=True,
                        timeout=timeout)
                done["snapshots"].append({"name": snap_name, "id": img.id})
            conn.compute.delete_server(s, ignore_missing=True)
            conn.compute.wait_for_delete(s, wait=timeout)
            done["servers_deleted"].append(s.name)
        for v in facts.volumes:
            if wanted.get(("volume", v.name)) == "delete":
                v = conn.block_storage.get_volume(v.id)
                if v.status == "in-use":
                    v = conn.block_storage.wait_for_status(v, "available", failures=["error"],
                                                           wait=timeout)
                conn.block_storage.delete_volume(v, ignore_missing=True)
                conn.block_storage.wait_for_delete(v, wait=timeout)
                done["volumes_deleted"].append(v.name)
            else:
                done["volumes_kept"].append(v.name)
        for kp, used in facts.keypairs.items():
            if not used:
                conn.compute.delete_keypair(kp, ignore_missing=True)
                done["keypairs_deleted"].append(kp)
    except CLOUD_ERRORS as exc:
        raise CloudError(f"retiring ticket {facts.ticket} failed: {exc}; re-run to finish",
                         ticket=facts.ticket) from exc
    if send_mail and facts.requester and (facts.servers or facts.volumes):
        fasjson = fasjson or client_for(policy)
        account = fasjson.account(facts.requester)
        if account.email:
            body = mail_mod.instance_retired_body(
                requester=account.human_name or account.username, ticket=facts.ticket,
                name=", ".join(s.name for s in facts.servers) or "-",
                snapshot=", ".join(x["name"] for x in done["snapshots"]) or None,
                volume=", ".join(v.name for v in facts.volumes) or None,
                volume_deleted=bool(done["volumes_deleted"]), run_id=run_info().run_id)
            msg = mail_mod.compose(policy.mail, to=[account.email], cc=policy.mail.admins,
                                   subject=f"[fedcloud] ticket {facts.ticket}: instance retired",
                                   body=body, headers={"X-Fedcloud-Ticket": facts.ticket})
            mail_mod.send(policy.mail, msg)
            done["mail"] = {"to": account.email, "subject": msg["Subject"]}
    return done
