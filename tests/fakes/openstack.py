"""A synthetic OpenStack API on loopback (Keystone, Nova, Placement, Cinder, Glance,
Neutron): just the read calls the report, the checks and the reaper make, with Nova's
``limit``/``marker`` paging, from an in-memory inventory the test (or the bench) builds.

It speaks enough of each API for openstacksdk (token with a catalog, version discovery,
microversions) so that the code under test runs unchanged, over real HTTP.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

PROJECT_ID = "0" * 31 + "1"


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeOpenStack:
    """``with FakeOpenStack() as cloud:`` then ``cloud.clouds_yaml(path)`` and
    ``OS_CLIENT_CONFIG_FILE=path``; change ``cloud.servers``, ``cloud.services``, ...
    between calls."""

    def __init__(self) -> None:
        self.projects = [{"id": PROJECT_ID, "name": "admin"}]
        self.servers: list[dict[str, Any]] = []
        self.deleted: list[dict[str, Any]] = []
        self.services: list[dict[str, Any]] = []      # nova
        self.volume_services: list[dict[str, Any]] = []
        self.agents: list[dict[str, Any]] = []
        self.providers: list[dict[str, Any]] = []     # name, id, inventories, usages
        self.quotas: dict[str, dict[str, tuple[int, int]]] = {}  # project -> res -> (limit, used)
        self.volumes: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []
        self.floating_ips: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.fail_status: int | None = None           # answer every call with this status
        self.forbidden: tuple[str, ...] = ()          # path prefixes answered 403 (admin only)
        self.moved: dict[str, str] = {}               # catalog type -> URL (e.g. a dead port)
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _do(self, method: str) -> None:
                url = urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                outer.requests.append(f"{method} {url.path}?{url.query}")
                q = {k: v[-1] for k, v in parse_qs(url.query).items()}
                status, body, headers = outer.route(method, url.path.rstrip("/"), q)
                self._send(status, body, headers)

            def do_GET(self) -> None:
                self._do("GET")

            def do_POST(self) -> None:
                self._do("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    # ------------------------------------------------------------------ set-up helpers
    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeOpenStack":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def clouds_yaml(self, path, name: str = "fake") -> str:
        path.write_text(yaml.safe_dump({"clouds": {name: {
            "auth": {"auth_url": f"{self.url}/identity/v3", "username": "admin",
                     "password": "fake-password", "project_name": "admin",
                     "user_domain_name": "Default", "project_domain_name": "Default"},
            "region_name": "RegionOne", "identity_api_version": 3}}}))
        return str(path)

    def add_host(self, host: str, *, state: str = "up", status: str = "enabled",
                 forced_down: bool = False, vcpus=(64, 0), ram_mb=(262144, 0),
                 disk_gb=(2000, 0)) -> None:
        sid = str(uuid.uuid4())
        self.services.append({"id": sid, "binary": "nova-compute", "host": host, "zone": "nova",
                              "state": state, "status": status, "forced_down": forced_down,
                              "disabled_reason": None, "updated_at": None})
        self.providers.append({"uuid": str(uuid.uuid4()), "name": host, "generation": 1,
                               "inv": {"VCPU": vcpus[0], "MEMORY_MB": ram_mb[0],
                                       "DISK_GB": disk_gb[0]},
                               "use": {"VCPU": vcpus[1], "MEMORY_MB": ram_mb[1],
                                       "DISK_GB": disk_gb[1]}})

    def server(self, name: str, *, created: dt.datetime, metadata: dict | None = None,
               project_id: str = PROJECT_ID, flavor: str = "m1.small", status: str = "ACTIVE",
               host: str = "vm", deleted_at: dt.datetime | None = None) -> dict[str, Any]:
        status = "DELETED" if deleted_at else status
        s = {"id": str(uuid.uuid4()), "name": name, "status": status, "tenant_id": project_id,
             "user_id": "u", "created": _iso(created), "updated": _iso(deleted_at or created),
             "metadata": dict(metadata or {}), "OS-EXT-SRV-ATTR:host": host,
             "OS-SRV-USG:terminated_at": _iso(deleted_at) if deleted_at else None,
             "flavor": {"original_name": flavor, "vcpus": 1, "ram": 2048, "disk": 20,
                        "ephemeral": 0, "swap": 0, "extra_specs": {}},
             "addresses": {}, "image": {"id": "img"}, "key_name": None,
             "security_groups": [{"name": "default"}]}
        (self.deleted if deleted_at else self.servers).append(s)
        return s

    def synthetic(self, n: int, *, deleted: int = 0, projects: int = 20, seed: int = 14,
                  now: dt.datetime | None = None) -> None:
        """``n`` live servers (and ``deleted`` deleted ones) spread over ``projects``
        projects, classes, owners and a year of creation times."""
        rnd = random.Random(seed)
        now = now or dt.datetime.now(dt.timezone.utc)
        self.projects = [{"id": PROJECT_ID, "name": "admin"}] + [
            {"id": uuid.uuid4().hex, "name": f"project-{i:02d}"} for i in range(projects)]
        for p in self.projects:
            self.quotas[p["id"]] = {"instances": (1000, 0), "cores": (4000, 0),
                                    "ram": (8_000_000, 0), "volumes": (100, 0),
                                    "gigabytes": (10000, 0)}
        classes = ["dev", "qa", "test", "builder", None]
        for i in range(n + deleted):
            p = rnd.choice(self.projects)
            klass = rnd.choice(classes)
            meta = ({"fedcloud_class": klass, "fedcloud_requester": f"user{rnd.randrange(300)}"}
                    if klass else {})
            created = now - dt.timedelta(hours=rnd.uniform(0, 24 * 365))
            gone = created + dt.timedelta(hours=rnd.uniform(1, 24 * 30)) if i >= n else None
            if gone is not None and gone > now:
                gone = now
            self.server(f"s{i:05d}", created=created, metadata=meta, project_id=p["id"],
                        flavor=rnd.choice(["m1.tiny", "m1.small", "m1.builder"]),
                        status="DELETED" if gone else "ACTIVE", deleted_at=gone)
            q = self.quotas[p["id"]]
            if not gone:
                q["instances"] = (q["instances"][0], q["instances"][1] + 1)
                q["cores"] = (q["cores"][0], q["cores"][1] + 1)
                q["ram"] = (q["ram"][0], q["ram"][1] + 2048)

    # ------------------------------------------------------------------ routing
    def route(self, method: str, path: str, q: dict[str, str]) -> tuple[int, Any, dict]:
        base = self.url
        if method == "GET" and path in ("/identity", "/identity/v3"):
            return 200, {"version": {"id": "v3.14", "status": "stable", "links": [
                {"rel": "self", "href": f"{base}/identity/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}}, {}
        if method == "POST" and path == "/identity/v3/auth/tokens":
            return self._token()
        if self.fail_status:
            return self.fail_status, {"error": {"message": "synthetic failure"}}, {}
        if path.startswith(self.forbidden) and self.forbidden:
            return 403, {"forbidden": {"code": 403, "message": "Policy doesn't allow it"}}, {}
        for prefix, handler in (("/identity/v3", self._identity), ("/compute", self._compute),
                                ("/placement", self._placement), ("/volume", self._volume),
                                ("/image", self._image), ("/network", self._network)):
            if path == prefix or path.startswith(prefix + "/"):
                return handler(path[len(prefix):], q)
        return 404, {"error": f"no route for {path}"}, {}

    def _token(self) -> tuple[int, Any, dict]:
        base = self.url
        pid = PROJECT_ID

        def ep(kind: str, name: str, url: str) -> dict:
            url = self.moved.get(kind, url)
            return {"type": kind, "name": name, "id": kind, "endpoints": [
                {"id": f"{kind}-{i}", "interface": i, "region": "RegionOne",
                 "region_id": "RegionOne", "url": url} for i in ("public", "internal", "admin")]}

        expires = _iso(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2))
        token = {"token": {
            "methods": ["password"], "expires_at": expires, "issued_at": expires,
            "user": {"id": "admin-id", "name": "admin", "domain": {"id": "default",
                                                                   "name": "Default"}},
            "project": {"id": pid, "name": "admin", "domain": {"id": "default",
                                                               "name": "Default"}},
            "roles": [{"id": "r", "name": "admin"}],
            "catalog": [ep("identity", "keystone", f"{base}/identity/v3"),
                        ep("compute", "nova", f"{base}/compute/v2.1"),
                        ep("placement", "placement", f"{base}/placement"),
                        ep("volumev3", "cinderv3", f"{base}/volume/v3/{pid}"),
                        ep("block-storage", "cinder", f"{base}/volume/v3/{pid}"),
                        ep("image", "glance", f"{base}/image"),
                        ep("network", "neutron", f"{base}/network")]}}
        return 201, token, {"X-Subject-Token": "fake-token"}

    def _identity(self, path: str, q: dict[str, str]):
        if path == "/projects":
            rows = [p for p in self.projects if "name" not in q or p["name"] == q["name"]]
            return 200, {"projects": [self._project(p) for p in rows], "links": {}}, {}
        m = re.fullmatch(r"/projects/([^/]+)", path)
        if m:
            p = next((p for p in self.projects if p["id"] == m.group(1)), None)
            return (200, {"project": self._project(p)}, {}) if p else (404, {"error": {
                "code": 404, "message": "Could not find project"}}, {})
        return 404, {"error": path}, {}

    @staticmethod
    def _project(p: dict) -> dict:
        return {"id": p["id"], "name": p["name"], "domain_id": "default", "enabled": True,
                "is_domain": False, "parent_id": "default", "description": "", "tags": []}

    def _compute(self, path: str, q: dict[str, str]):
        if path in ("", "/v2.1"):
            v = {"id": "v2.1", "status": "CURRENT", "version": "2.93", "min_version": "2.1",
                 "updated": "2013-07-23T11:33:21Z",
                 "links": [{"rel": "self", "href": f"{self.url}/compute/v2.1/"}]}
            return 200, ({"version": v} if path else {"versions": [v]}), {}
        path = path[len("/v2.1"):]
        if path == "/servers/detail":
            return self._servers(q)
        if path == "/os-services":
            return 200, {"services": self.services}, {}
        if path == "/os-hypervisors/detail":
            return 200, {"hypervisors": [
                {"id": s["id"], "hypervisor_hostname": s["host"], "state": s["state"],
                 "status": s["status"], "service": {"host": s["host"], "id": s["id"],
                                                    "disabled_reason": None}}
                for s in self.services if s["binary"] == "nova-compute"]}, {}
        m = re.fullmatch(r"/os-quota-sets/([^/]+)(/detail)?", path)
        if m:
            quota = self.quotas.get(m.group(1)) or {}
            body = {k: {"limit": lim, "in_use": used, "reserved": 0}
                    for k, (lim, used) in quota.items() if k in ("instances", "cores", "ram")}
            return 200, {"quota_set": {"id": m.group(1), **body}}, {}
        return 404, {"itemNotFound": {"message": path}}, {}

    def _servers(self, q: dict[str, str]):
        rows = self.deleted if q.get("deleted") in ("true", "True", "1") else self.servers
        pid = q.get("project_id") or q.get("tenant_id")
        if pid:
            rows = [s for s in rows if s["tenant_id"] == pid]
        if "changes-since" in q:
            rows = [s for s in rows if s["updated"] >= q["changes-since"]]
        start = 0
        if q.get("marker"):
            start = next(i for i, s in enumerate(rows) if s["id"] == q["marker"]) + 1
        limit = min(int(q.get("limit", 1000)), 1000)
        page = rows[start:start + limit]
        body: dict[str, Any] = {"servers": page}
        if start + limit < len(rows):
            body["servers_links"] = [{"rel": "next", "href": f"{self.url}/compute/v2.1/servers"
                                      f"/detail?limit={limit}&marker={page[-1]['id']}"}]
        return 200, body, {}

    def _placement(self, path: str, q: dict[str, str]):
        if path == "":
            return 200, {"versions": [{"id": "v1.0", "max_version": "1.39",
                                       "min_version": "1.0", "status": "CURRENT",
                                       "links": [{"rel": "self", "href": ""}]}]}, {}
        if path == "/resource_providers":
            return 200, {"resource_providers": [
                {"uuid": p["uuid"], "name": p["name"], "generation": p["generation"],
                 "parent_provider_uuid": None, "root_provider_uuid": p["uuid"], "links": []}
                for p in self.providers]}, {}
        m = re.fullmatch(r"/resource_providers/([^/]+)/(inventories|usages)", path)
        if m:
            p = next((p for p in self.providers if p["uuid"] == m.group(1)), None)
            if p is None:
                return 404, {"errors": [{"status": 404}]}, {}
            if m.group(2) == "usages":
                return 200, {"resource_provider_generation": 1, "usages": p["use"]}, {}
            return 200, {"resource_provider_generation": 1, "inventories": {
                rc: {"total": total, "reserved": 0, "min_unit": 1, "max_unit": total,
                     "step_size": 1, "allocation_ratio": 1.0}
                for rc, total in p["inv"].items()}}, {}
        return 404, {"errors": [{"status": 404}]}, {}

    def _volume(self, path: str, q: dict[str, str]):
        if path in ("", "/v3"):
            v = {"id": "v3.0", "status": "CURRENT", "version": "3.70", "min_version": "3.0",
                 "links": [{"rel": "self", "href": f"{self.url}/volume/v3/"}]}
            return 200, {"versions": [v]}, {}
        m = re.fullmatch(r"/v3/[^/]+(/.*)?", path)
        sub = (m.group(1) or "") if m else path
        mq = re.fullmatch(r"/os-quota-sets/([^/]+)", sub)
        if mq:
            quota = self.quotas.get(mq.group(1)) or {}
            body = {k: {"limit": lim, "in_use": used, "reserved": 0, "allocated": 0}
                    for k, (lim, used) in quota.items() if k in ("volumes", "gigabytes")}
            return 200, {"quota_set": {"id": mq.group(1), **body}}, {}
        if sub == "/volumes/detail":
            return 200, {"volumes": self.volumes}, {}
        if sub == "/os-services":
            return 200, {"services": self.volume_services}, {}
        return 404, {"itemNotFound": {"message": sub}}, {}

    def _image(self, path: str, q: dict[str, str]):
        if path in ("", "/versions"):
            return 200, {"versions": [{"id": "v2.16", "status": "CURRENT", "links": [
                {"rel": "self", "href": f"{self.url}/image/v2/"}]}]}, {}
        if path == "/v2/images":
            rows = [i for i in self.images if "owner" not in q or i.get("owner") == q["owner"]]
            return 200, {"images": rows, "first": "/v2/images", "schema": "/v2/schemas/images"}, {}
        return 404, {"error": path}, {}

    def _network(self, path: str, q: dict[str, str]):
        if path == "":
            return 200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
                {"rel": "self", "href": f"{self.url}/network/v2.0/"}]}]}, {}
        if path == "/v2.0/floatingips":
            return 200, {"floatingips": self.floating_ips}, {}
        if path == "/v2.0/agents":
            return 200, {"agents": self.agents}, {}
        return 404, {"NeutronError": {"message": path}}, {}
