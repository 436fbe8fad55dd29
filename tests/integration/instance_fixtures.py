"""Fixtures for the instance-for-ticket integration tests (real cloudlet, local fakes).

The cloud is the all-in-one cloudlet's ``fedcloud-testing`` entry (override with
``FEDCLOUD_TEST_CLOUD``).  Without it the tests skip with the reason, or fail when ``CI``
is set.  FASJSON and Pagure are local HTTP servers, SMTP is aiosmtpd, all on 127.0.0.1.
Every test works on its own ticket number and requester and deletes what it made.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fasjson import FakeFasjson
from tests.fakes.pagure import FakePagure
from tests.fakes.site import ADMIN_KEY, ALICE_KEY, policy_copy
from tests.fakes.smtp import LocalSmtp

ROOT = Path(__file__).resolve().parents[2]
CLOUD = os.environ.get("FEDCLOUD_TEST_CLOUD", "fedcloud-testing")
TOKEN = "pagure-test-token-5b7e0c"  # a stand-in; the real token only ever lives in the env


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the cloudlet is required in CI: {reason}")
    pytest.skip(f"no cloudlet: {reason}")


@pytest.fixture(scope="session")
def conn():
    try:
        import openstack

        c = openstack.connect(cloud=CLOUD)
        c.compute.get("/")
        c.network.find_network("provider")
    except Exception as exc:  # noqa: BLE001 - any failure means: no usable cloud
        _unavailable(f"cloud {CLOUD!r} from clouds.yaml is not usable ({type(exc).__name__}: "
                     f"{str(exc)[:200]})")
    yield c
    c.close()


def _ours(resource) -> bool:
    """Could this runbook have made it?  (The project is shared with other test suites,
    e.g. the cloudlet's own verification, whose resources come and go meanwhile.)"""
    meta = getattr(resource, "metadata", None) or {}
    return resource.name.startswith("it-") or any(k.startswith("fedcloud_") for k in meta)


def snapshot(c, env: "Env | None" = None) -> dict[str, set]:
    """What the runbook could have made in the project: servers, volumes, keypairs,
    security groups and their rules.  With ``env``, only what this test's tickets and
    requesters could own (the project is shared with other suites and operators, whose
    resources come and go meanwhile)."""
    pid = c.current_project_id
    groups = [g for g in c.network.security_groups(project_id=pid)
              if g.name.startswith("fedcloud")]

    def mine(resource) -> bool:
        if env is None:
            return _ours(resource)
        meta = getattr(resource, "metadata", None) or {}
        return meta.get("fedcloud_ticket") in env.tickets or resource.name in env.names

    return {
        "servers": {s.id for s in c.compute.servers(details=True) if mine(s)},
        "volumes": {v.id for v in c.block_storage.volumes(details=True) if mine(v)},
        "keypairs": {k.name for k in c.compute.keypairs() if k.name.startswith("fas-")
                     and (env is None or k.name[4:] in env.requesters)},
        "security_groups": {g.id for g in groups},
        "rules": {r.id for g in groups
                  for r in c.network.security_group_rules(security_group_id=g.id)},
    }


@dataclass
class Env:
    conn: Any
    fas: FakeFasjson
    pagure: FakePagure
    smtp: LocalSmtp
    policy_path: Path
    tmp: Path
    tickets: list[str] = field(default_factory=list)
    requesters: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # server names the test asked for

    def new_ticket(self) -> str:
        tid = str(random.randint(10**8, 10**9 - 1))
        self.tickets.append(tid)
        return tid

    def new_requester(self, groups=("packager", "qa")) -> str:
        name = f"u{random.randint(10**6, 10**7 - 1)}"
        self.fas.add(name, sshpubkeys=[ALICE_KEY.replace("alice", name)], groups=list(groups),
                     emails=[f"{name}@example.test"])
        self.requesters.append(name)
        return name

    def env(self) -> dict[str, str]:
        return {"FEDCLOUD_POLICY": str(self.policy_path), "PAGURE_API_TOKEN": TOKEN,
                "FEDCLOUD_OUTPUTS": str(self.tmp / "outputs"), "OS_CLOUD": CLOUD,
                "FEDCLOUD_OPERATOR": "integration-test", "PYTHONPATH": str(ROOT)}

    def fedcloud(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, **self.env()}
        env.pop("FEDCLOUD_RUNBOOKS", None)
        return subprocess.run([sys.executable, "-m", "fedcloud_lib.cli", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen:
        env = {**os.environ, **self.env()}
        env.pop("FEDCLOUD_RUNBOOKS", None)
        return subprocess.Popen([sys.executable, "-m", "fedcloud_lib.cli", *args], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def servers(self, ticket: str) -> list[Any]:
        return [s for s in self.conn.compute.servers(details=True)
                if (s.metadata or {}).get("fedcloud_ticket") == ticket]

    def volumes(self, ticket: str) -> list[Any]:
        return [v for v in self.conn.block_storage.volumes(details=True)
                if (v.metadata or {}).get("fedcloud_ticket") == ticket]

    def cleanup(self) -> None:
        c = self.conn
        for t in self.tickets:
            for s in self.servers(t):
                c.compute.delete_server(s, ignore_missing=True)
                c.compute.wait_for_delete(s, wait=300)
            for v in self.volumes(t):
                if v.status != "available" and not v.status.startswith("error"):
                    # the server's deletion detaches it; let cinder catch up
                    v = c.block_storage.wait_for_status(v, "available", failures=["error"],
                                                        wait=300)
                c.block_storage.delete_volume(v, ignore_missing=True)
        for r in self.requesters:
            c.compute.delete_keypair(f"fas-{r}", ignore_missing=True)


@pytest.fixture
def cloud_env(conn, tmp_path, monkeypatch):
    with FakeFasjson() as fas, FakePagure(token=TOKEN) as pagure, LocalSmtp() as smtp:
        fas.add("sysop", sshpubkeys=[ADMIN_KEY], groups=["sysadmin-cloud"])
        path = policy_copy(tmp_path, fasjson_url=fas.url, smtp_port=smtp.port,
                           pagure_url=pagure.url)
        env = Env(conn, fas, pagure, smtp, path, tmp_path)
        for k, v in env.env().items():
            if k != "PYTHONPATH":
                monkeypatch.setenv(k, v)
        monkeypatch.delenv("FEDCLOUD_RUNBOOKS", raising=False)
        try:
            yield env
        finally:
            env.cleanup()


def request_body(params: dict, runbook: str = "instance-for-ticket") -> str:
    import yaml

    block = yaml.safe_dump({"runbook": runbook, "parameters": params}, sort_keys=False)
    return f"Please make me an instance.\n\n```yaml\n{block}```\n"
