"""Verify a cloudlet end to end; one row per check, the run fails when any check fails.

Checks, in order: tokens of the three clouds.yaml entries; every catalog endpoint
answers; compute, network and volume services are up; every compute host is a
registered hypervisor; an image uploads; a server boots to ACTIVE on each hypervisor
(anti-affinity group) with the standard security group (tcp 22, 80, 443 only) and gets an
address; it takes a volume, snapshots (a real image with the source's bytes), cold- and
live-migrates between hosts; then everything is deleted and nothing is left behind.
A failed check names the service and its log.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import progress, secgroups
from ..cloud import connect
from ..errors import CheckFailed, RunbookError
from . import content
from .programs import log_of, program_for

STANDARD_GROUP = "fedcloud-standard"
STANDARD_PORTS = (22, 80, 443)
WAIT = 180


@dataclass
class Check:
    """One verification check: its name, the service it exercises, its status (OK, FAIL, SKIP), time, detail and the log to read."""
    name: str
    service: str
    status: str = "OK"  # OK | FAIL | SKIP
    seconds: float = 0.0
    detail: str = ""
    log: str = ""

    def row(self) -> dict[str, Any]:
        """The check as a table row."""
        return {"check": self.name, "service": self.service, "status": self.status,
                "seconds": round(self.seconds, 1), "detail": self.detail, "log": self.log}


class _Skip(Exception):
    pass


def _fail(message: str) -> None:
    raise CheckFailed(message)


def ensure_standard_group(conn) -> str:
    """The standard security group of the connection's project, exactly tcp 22, 80, 443
    (repaired if it drifted), checked afterwards."""
    before = secgroups.ensure(conn, STANDARD_GROUP, STANDARD_PORTS)
    after = secgroups.inspect(conn, STANDARD_GROUP, STANDARD_PORTS)
    if after.missing or after.extra:
        raise CheckFailed(f"{STANDARD_GROUP} is not standard after repair: {after.detail()}",
                          service="neutron")
    fixed = len(before.missing) + len(before.extra) if before.exists else 0
    return (f"{STANDARD_GROUP}: ingress tcp {', '.join(map(str, STANDARD_PORTS))} only"
            + (f" (repaired: {fixed} rule changes)" if fixed else ""))


@dataclass
class Verifier:
    """Runs the checks in order and keeps one Check per check; workload checks stop after the first failure, cleanup always runs."""
    admin_cloud: str = content.ADMIN_CLOUD
    user_cloud: str = "fedcloud-testing"
    expect_hosts: list[str] | None = None  # compute host names that must be hypervisors
    workload: bool = True
    out: Callable[[str], None] = field(default=progress.say)  # each check as it ends
    checks: list[Check] = field(default_factory=list)

    # ------------------------------------------------------------------ plumbing
    def check(self, name: str, service: str, fn: Callable[[], Any], *, needs_ok: bool = True) -> Any:
        """Run one check; a failure (CheckFailed or any exception) is recorded with its service and log, not raised."""
        c = Check(name, service)
        if needs_ok and self._stop_workload and name.startswith("workload"):
            c.status, c.detail = "SKIP", "an earlier check failed"
            self.checks.append(c)
            return None
        t = time.monotonic()
        try:
            res = fn()
            if isinstance(res, str):
                c.detail = res
            elif isinstance(res, tuple) and len(res) == 2 and isinstance(res[1], str):
                res, c.detail = res
        except _Skip as exc:
            c.status, c.detail = "SKIP", str(exc)
            res = None
        except Exception as exc:  # noqa: BLE001 - a failed check is a result, not a crash
            c.status = "FAIL"
            c.detail = f"{type(exc).__name__}: {str(exc)[:300]}"
            host = None
            if isinstance(exc, CheckFailed):
                c.service = exc.service or c.service
                host = exc.host or None
            c.log = log_of(program_for(c.service, host))
            res = None
            if name.startswith("workload"):
                self._stop_workload = True
        c.seconds = time.monotonic() - t
        self.checks.append(c)
        self.out(f"{c.status:4} {name} ({c.seconds:.1f}s){' -- ' + c.detail if c.detail else ''}"
                 f"{' -- log: ' + c.log if c.log else ''}")
        return res

    _stop_workload: bool = False

    @property
    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if c.status == "FAIL"]

    def frame(self):
        """The checks as a DataFrame."""
        import pandas as pd

        return pd.DataFrame([c.row() for c in self.checks],
                            columns=["check", "service", "status", "seconds", "detail", "log"])

    # ------------------------------------------------------------------ checks
    def run(self) -> "Verifier":
        """Tokens, endpoints, services, hypervisors and quotas, then the workload (if asked)."""
        admin = self.check("token fedcloud-admin", "keystone", lambda: connect(self.admin_cloud, authorize=True))
        user = self.check(f"token {self.user_cloud}", "keystone", lambda: connect(self.user_cloud, authorize=True))
        other = "fedcloud-production" if self.user_cloud != "fedcloud-production" else "fedcloud-testing"
        self.check(f"token {other}", "keystone", lambda: connect(other, authorize=True))
        if admin is None:
            self._stop_workload = True
            return self
        self._endpoints(admin)
        self._services(admin)
        if user is None:
            self._stop_workload = True
        if self.workload:
            self._workload(admin, user)
        return self

    def _endpoints(self, admin) -> None:
        access = admin.session.auth.get_access(admin.session)
        for svc in sorted(access.service_catalog.catalog, key=lambda s: s["type"]):
            for ep in svc["endpoints"]:
                if ep["interface"] != "public":
                    continue
                url = ep["url"].replace("%(project_id)s", admin.current_project_id)
                if url.rstrip("/").endswith(admin.current_project_id):
                    url = url.rstrip("/") + "/volumes?limit=1"  # project-scoped API: list something

                def probe(url=url, stype=svc["type"]):
                    try:
                        r = admin.session.get(url, raise_exc=False, timeout=10,
                                              endpoint_filter=None)
                    except Exception as exc:  # noqa: BLE001 - any failure: the endpoint is down
                        raise CheckFailed(f"{url}: {type(exc).__name__}: {exc}",
                                          service=stype) from exc
                    if r.status_code >= 400:
                        raise CheckFailed(f"{url} answered HTTP {r.status_code}", service=stype)
                    return f"{url} HTTP {r.status_code}"

                self.check(f"endpoint {svc['type']}", svc["type"], probe)

    def _services(self, admin) -> None:
        def compute():
            rows = list(admin.compute.services())
            down = [f"{s.binary}@{s.host}" for s in rows if s.state != "up" or s.status != "enabled"]
            if down:
                s = next(s for s in rows if s.state != "up" or s.status != "enabled")
                raise CheckFailed(f"down: {', '.join(down)}", service=s.binary, host=s.host)
            return f"{len(rows)} up: " + ", ".join(sorted(f"{s.binary}@{s.host}" for s in rows))

        def network():
            rows = list(admin.network.agents())
            dead = [a for a in rows if not a.is_alive]
            if not rows or dead:
                raise CheckFailed("no agents" if not rows else
                                  "dead: " + ", ".join(f"{a.binary}@{a.host}" for a in dead),
                                  service=dead[0].binary if dead else "neutron",
                                  host=dead[0].host if dead else "")
            hosts = {a.host for a in rows}
            missing = [h for h in (self.expect_hosts or []) if h not in hosts]
            if missing:
                raise CheckFailed(f"no network agent on {', '.join(missing)}",
                                  service="neutron-linuxbridge-agent", host=missing[0])
            return f"{len(rows)} alive: " + ", ".join(sorted(f"{a.binary}@{a.host}" for a in rows))

        def volume():
            rows = list(admin.block_storage.services())
            down = [s for s in rows if s.state != "up"]
            if not rows or down:
                raise CheckFailed("no volume services" if not rows else
                                  "down: " + ", ".join(f"{s.binary}@{s.host}" for s in down),
                                  service=down[0].binary if down else "cinder-volume")
            return f"{len(rows)} up: " + ", ".join(sorted(f"{s.binary}@{s.host}" for s in rows))

        def hypervisors():
            hv = list(admin.compute.hypervisors(details=True))
            names = sorted(h.name for h in hv if h.state == "up" and h.status == "enabled")
            missing = [h for h in (self.expect_hosts or []) if h not in names]
            if missing or not names:
                raise CheckFailed(f"not registered (or down): {', '.join(missing) or 'any'}; "
                                  "a new compute host is mapped by `nova-manage cell_v2 discover_hosts`",
                                  service="nova-compute", host=(missing or [""])[0])
            return ", ".join(names)

        def quotas():
            out = []
            for pname, want in content.PROJECTS.items():
                proj = admin.identity.find_project(pname, domain_id="default")
                if proj is None:
                    raise CheckFailed(f"project {pname} is missing: re-run cloudlet-install")
                q = admin.compute.get_quota_set(proj.id)
                vq = admin.block_storage.get_quota_set(proj.id)
                have = {"instances": q.instances, "cores": q.cores, "ram": q.ram,
                        "volumes": vq.volumes, "gigabytes": vq.gigabytes}
                wrong = {k: v for k, v in have.items() if v != want[k]}
                if wrong:
                    raise CheckFailed(f"{pname} quotas {wrong} differ from {want}: re-run cloudlet-install")
                out.append(f"{pname} {q.instances}/{q.cores}/{q.ram}")
            return "instances/cores/ram: " + ", ".join(out)

        self.check("project quotas", "nova", quotas)
        self.check("compute services up", "nova", compute)
        self.check("network agents alive", "neutron", network)
        self.check("volume services up", "cinder", volume)
        self.hypervisor_names = self.check("hypervisors registered", "nova-compute", hypervisors)

    # ------------------------------------------------------------------ workload
    def _workload(self, admin, user) -> None:
        prefix = f"verify-{uuid.uuid4().hex[:8]}"
        made: dict[str, list] = {"servers": [], "volumes": [], "images": [], "groups": []}
        self.prefix = prefix
        try:
            image = self.check("workload: image upload", "glance", lambda: self._upload(user, prefix, made))
            flavor = admin.compute.find_flavor("m1.tiny") if image else None
            net = user.network.find_network(content.PROVIDER_NETWORK) if user else None
            if image and (flavor is None or net is None):
                self.check("workload: flavor and provider network", "nova",
                           lambda: _fail("m1.tiny or network 'provider' missing: re-run "
                                         "cloudlet-install"))
            self.check("workload: standard security group", "neutron",
                       lambda: ensure_standard_group(user))
            servers = self.check("workload: boot one server per host (ACTIVE, address)", "nova",
                                 lambda: self._boot(admin, user, prefix, image, flavor, net, made))
            if not servers:
                return
            srv = servers[0]
            self.check("workload: attach a volume", "cinder", lambda: self._volume(user, srv, prefix, made))
            self.check("workload: snapshot to a real image", "nova",
                       lambda: self._snapshot(user, srv, image, prefix, made))
            self.check("workload: image -> volume -> image keeps the bytes", "cinder",
                       lambda: self._volume_image(user, image, prefix, made))
            for extra in servers[1:]:
                user.compute.delete_server(extra)
                user.compute.wait_for_delete(extra, wait=WAIT)
                made["servers"] = [x for x in made["servers"] if x.id != extra.id]
            self.check("workload: cold migrate", "nova", lambda: self._migrate(admin, srv, live=False))
            self.check("workload: live migrate", "nova", lambda: self._migrate(admin, srv, live=True))
        finally:
            self.check("workload: delete everything, nothing left behind", "nova",
                       lambda: self._cleanup(admin, user, prefix, made), needs_ok=False)

    def _upload(self, user, prefix, made):
        path = content.test_image_file()
        img = user.image.create_image(name=f"{prefix}-image", filename=str(path), disk_format="raw",
                                      container_format="bare", visibility="private", wait=True, timeout=WAIT)
        made["images"].append(img)
        img = user.image.get_image(img.id)
        if img.status != "active":
            raise CheckFailed(f"image is {img.status}, not active")
        return img, f"{img.size} bytes, {img.status}"

    def _boot(self, admin, user, prefix, image, flavor, net, made):
        hosts = getattr(self, "hypervisor_names", None) or ""
        n = max(1, len(hosts.split(", "))) if hosts else 1
        group = user.compute.create_server_group(name=f"{prefix}-spread", policy="anti-affinity")
        made["groups"].append(group)
        servers = []
        for i in range(n):
            s = user.compute.create_server(
                name=f"{prefix}-{i}", flavor_id=flavor.id, image_id=image.id,
                networks=[{"uuid": net.id}], security_groups=[{"name": STANDARD_GROUP}],
                scheduler_hints={"group": group.id}, metadata={"fedcloud-verify": prefix})
            made["servers"].append(s)
            servers.append(s)
        placed = []
        for s in servers:
            s = user.compute.wait_for_server(s, status="ACTIVE", failures=["ERROR"], wait=WAIT, interval=1)
            full = admin.compute.get_server(s.id)
            addrs = [a["addr"] for a in (full.addresses or {}).get(content.PROVIDER_NETWORK, [])]
            if not addrs:
                raise CheckFailed(f"server {s.name} has no address on {content.PROVIDER_NETWORK}")
            groups = sorted({g["name"] for g in full.security_groups or []})
            if groups != [STANDARD_GROUP]:
                raise CheckFailed(f"server {s.name} has security groups {groups}")
            placed.append(f"{full.compute_host}:{addrs[0]}")
        hosts_used = {p.split(":")[0] for p in placed}
        if len(hosts_used) != n:
            raise CheckFailed(f"servers did not land on {n} different hosts: {placed}")
        return [user.compute.get_server(s.id) for s in servers], "ACTIVE on " + ", ".join(placed)

    def _volume(self, user, srv, prefix, made):
        vol = user.block_storage.create_volume(name=f"{prefix}-vol", size=1)
        made["volumes"].append(vol)
        user.block_storage.wait_for_status(vol, "available", failures=["error"], wait=WAIT, interval=1)
        user.compute.create_volume_attachment(srv, volume_id=vol.id)
        vol = user.block_storage.wait_for_status(vol, "in-use", failures=["error", "error_attaching"],
                                                 wait=WAIT, interval=1)
        dev = [a.device for a in user.compute.volume_attachments(srv)]
        user.compute.delete_volume_attachment(vol.id, srv)
        user.block_storage.wait_for_status(vol, "available", failures=["error", "error_detaching"],
                                           wait=WAIT, interval=1)
        return f"attached as {', '.join(map(str, dev))}, detached"

    def _volume_image(self, user, image, prefix, made):
        vol = user.block_storage.create_volume(name=f"{prefix}-fromimage", size=1, image_id=image.id)
        made["volumes"].append(vol)
        vol = user.block_storage.wait_for_status(vol, "available", failures=["error"], wait=WAIT, interval=1)
        if not user.block_storage.get_volume(vol.id).is_bootable:
            raise CheckFailed("a volume made from an image is not bootable")
        r = user.block_storage.upload_volume_to_image(vol, f"{prefix}-upload", disk_format="raw",
                                                      container_format="bare")
        iid = r["image_id"] if isinstance(r, dict) else getattr(r, "image_id", r)
        img = user.image.get_image(iid)
        made["images"].append(img)
        img = user.image.wait_for_status(img, "active", failures=["killed", "deleted"], wait=WAIT, interval=1)
        user.block_storage.wait_for_status(vol, "available", failures=["error"], wait=WAIT, interval=1)
        if img.checksum != image.checksum:
            raise CheckFailed(f"uploaded image ({img.size} bytes) differs from the source image")
        return f"bootable volume, uploaded image {img.size} bytes with the source's checksum"

    def _snapshot(self, user, srv, image, prefix, made):
        snap = user.compute.create_server_image(srv, name=f"{prefix}-snap", wait=True, timeout=WAIT)
        made["images"].append(snap)
        snap = user.image.get_image(snap.id)
        if snap.status != "active" or not snap.size:
            raise CheckFailed(f"snapshot image is {snap.status} with size {snap.size}")
        if snap.checksum != image.checksum:
            raise CheckFailed("snapshot image bytes differ from the server's image")
        return f"{snap.status}, {snap.size} bytes, same checksum as the source image"

    def _migrate(self, admin, srv, live: bool):
        import openstack.resource as res

        before = admin.compute.get_server(srv.id).compute_host
        names = [h for h in (getattr(self, "hypervisor_names", "") or "").split(", ") if h]
        targets = [h for h in names if h != before]
        if not targets:
            raise _Skip("only one hypervisor: nowhere to migrate")
        target = targets[0]
        if live:
            admin.compute.live_migrate_server(srv, host=target, block_migration="auto")
        else:
            admin.compute.migrate_server(srv, host=target)
            admin.compute.wait_for_server(srv, status="VERIFY_RESIZE", failures=["ERROR"], wait=WAIT, interval=1)
            admin.compute.confirm_server_resize(srv)
        # the server's host attribute changes when the migration completes
        res.wait_for_status(admin.compute, admin.compute.get_server(srv.id), target, None,
                            interval=1, wait=WAIT, attribute="compute_host")
        s = admin.compute.wait_for_server(admin.compute.get_server(srv.id), status="ACTIVE",
                                          failures=["ERROR"], wait=WAIT, interval=1)
        ports = [p.binding_host_id for p in admin.network.ports(device_id=srv.id)]
        if any(h != target for h in ports):
            raise CheckFailed(f"ports still bound to {ports}, server on {target}")
        return f"{before} -> {s.compute_host}, port binding followed"

    def _cleanup(self, admin, user, prefix, made):
        for s in list(made["servers"]):
            user.compute.delete_server(s, ignore_missing=True)
        for s in list(made["servers"]):
            user.compute.wait_for_delete(s, wait=WAIT)
        for v in made["volumes"]:
            v = user.block_storage.get_volume(v.id) if user.block_storage.find_volume(v.id) else None
            if v is not None:
                if v.status not in ("available", "error"):
                    user.block_storage.wait_for_status(v, "available", failures=["error"], wait=WAIT)
                user.block_storage.delete_volume(v)
                user.block_storage.wait_for_delete(v, wait=WAIT)
        for i in made["images"]:
            user.image.delete_image(i, ignore_missing=True)
        for g in made["groups"]:
            user.compute.delete_server_group(g, ignore_missing=True)
        pid = user.current_project_id
        left = [f"server {s.name}" for s in admin.compute.servers(all_projects=True, project_id=pid)
                if s.name.startswith(prefix)]
        left += [f"volume {v.name}" for v in user.block_storage.volumes() if (v.name or "").startswith(prefix)]
        left += [f"image {i.name}" for i in user.image.images(owner=pid) if (i.name or "").startswith(prefix)]
        left += [f"port {p.id}" for p in admin.network.ports(project_id=pid)
                 if p.device_owner.startswith("compute:") and p.device_id in {s.id for s in made["servers"]}]
        if left:
            raise CheckFailed("left behind: " + ", ".join(left))
        return "nothing left behind"


def verify(admin_cloud: str = content.ADMIN_CLOUD, user_cloud: str = "fedcloud-testing",
           expect_hosts: list[str] | None = None, workload: bool = True,
           out: Callable[[str], None] | None = None) -> Verifier:
    """Verify a cloudlet end to end (see the module docstring); returns the Verifier with its checks."""
    v = Verifier(admin_cloud=admin_cloud, user_cloud=user_cloud, expect_hosts=expect_hosts,
                 workload=workload)
    if out:
        v.out = out
    return v.run()


def require_pass(v: Verifier) -> Verifier:
    """Raise a RunbookError naming each failed check's service and log."""
    if v.failed:
        lines = [f"{c.check if hasattr(c, 'check') else c.name} [{c.service}]: {c.detail} (log: {c.log})"
                 for c in v.failed]
        raise RunbookError(f"cloudlet verification failed ({len(v.failed)} of {len(v.checks)} checks): "
                           + "; ".join(lines),
                           failed=[{"check": c.name, "service": c.service, "log": c.log} for c in v.failed])
    return v
