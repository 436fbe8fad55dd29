"""instance-for-ticket and instance-retire on the real cloudlet.

Ticket server (local Pagure API) → `fedcloud ticket run` → engine → runbook → real
OpenStack; mail on a real SMTP server on loopback; FASJSON served locally.
"""
from __future__ import annotations

import html
import json
import random
import re
import signal
import time

import psutil
import pytest

from fedcloud_lib import secgroups, tickets
from fedcloud_lib.site import policy as pol
from tests.integration.instance_fixtures import CLOUD, TOKEN, cloud_env, conn, request_body, snapshot  # noqa: F401

pytestmark = pytest.mark.integration


def dev_request(name: str, extra: dict | None = None, **kw) -> dict:
    return {"name": name, "instance_class": "dev", "purpose": "integration test",
            "flavor": "m1.tiny", "volume_gb": 1, **kw, **(extra or {})}


def file_issue(env, params: dict, *, reporter: str | None = None, runbook="instance-for-ticket",
               body: str | None = None, status: str = "Open") -> tuple[str, str]:
    tid = env.new_ticket()
    if params.get("name"):  # what the request could make, for snapshot(c, env)
        env.names += [str(params["name"]), f"{params['name']}-srv"]
    reporter = reporter or env.new_requester()
    env.pagure.add_issue(tid, reporter=reporter,
                         content=body if body is not None else request_body(params, runbook),
                         status=status)
    return tid, reporter


def _alias_bomb(levels: int = 7, width: int = 9) -> str:
    lines = ["runbook: instance-for-ticket", "parameters:", "  name: it-bomb",
             "  instance_class: dev", f"  l0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"  l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "Hi\n\n```yaml\n" + "\n".join(lines + [f"  purpose: *a{levels - 1}"]) + "\n```\n"


def assert_standard_group(conn, name="fedcloud-standard"):
    state = secgroups.inspect(conn, name)
    assert state.exists and not state.missing and not state.extra, state.detail()
    rules = {secgroups.rule_of(r) for r in
             conn.network.security_group_rules(security_group_id=state.group.id)}
    assert rules == set(secgroups.standard_rules())
    return state.group


def test_full_ticket_path(cloud_env):
    env, c = cloud_env, cloud_env.conn
    name = f"it-{random.randint(1000, 9999)}"
    tid, requester = file_issue(env, dev_request(name))

    # dry run: the plan goes to the ticket, nothing is created
    before = snapshot(c, env)
    dry = env.fedcloud("ticket", "run", tid, "--cloud", CLOUD)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    [plan_comment] = env.pagure.comments(tid)
    assert "dry run" in plan_comment and f"| create | server | {name} |" in plan_comment
    assert "| create | volume |" in plan_comment
    assert snapshot(c, env) == before and env.servers(tid) == [] and env.volumes(tid) == []

    # approved: the instance is made
    run = env.fedcloud("ticket", "run", tid, "--approve", "--cloud", CLOUD)
    assert run.returncode == 0, run.stdout + run.stderr
    [server] = env.servers(tid)
    assert server.status == "ACTIVE" and server.name == name
    meta = server.metadata
    assert meta["fedcloud_ticket"] == tid and meta["fedcloud_requester"] == requester
    assert meta["fedcloud_operator"] == "integration-test"
    assert meta["fedcloud_class"] == "dev" and meta["fedcloud_purpose"] == "integration test"
    assert meta["fedcloud_expires_at"] == "never" and meta["fedcloud_created_at"]
    assert meta["fedcloud_run_id"] and meta["fedcloud_mailed"]
    assert {g["name"] for g in server.security_groups} == {"fedcloud-standard"}
    assert server.key_name == f"fas-{requester}"
    assert_standard_group(c)
    [vol] = env.volumes(tid)
    assert vol.size == 1 and vol.status == "in-use"
    assert {a["server_id"] for a in vol.attachments} == {server.id}

    # mail: requester, admins copied, how to log in, expiry, reminders
    [mail] = env.smtp.messages
    assert set(mail["rcpt"]) == {f"{requester}@example.test", "cloud-admins@example.test"}
    text = env.smtp.body(mail["message"])
    assert name in text and "ssh fedora@" in text and "no expiry" in text
    assert "rebooted at any time" in text and "Save your data often" in text
    assert "22 (ssh), 80 (http) and 443 (https)" in text

    # the ticket is answered with what was created and the run id, never the token
    comments = env.pagure.comments(tid)
    assert len(comments) == 2
    assert meta["fedcloud_run_id"] in comments[1] and "succeeded" in comments[1]
    assert name in comments[1] and TOKEN not in "".join(comments)


def test_rerun_is_idempotent(cloud_env):
    env = cloud_env
    name = f"it-{random.randint(1000, 9999)}"
    tid, _ = file_issue(env, dev_request(name))
    first = env.fedcloud("ticket", "run", tid, "--approve", "--cloud", CLOUD)
    assert first.returncode == 0, first.stdout + first.stderr
    [server] = env.servers(tid)
    [vol] = env.volumes(tid)
    second = env.fedcloud("ticket", "run", tid, "--approve", "--cloud", CLOUD)
    assert second.returncode == 0, second.stdout + second.stderr
    again = env.servers(tid)
    assert [s.id for s in again] == [server.id]
    assert [v.id for v in env.volumes(tid)] == [vol.id]
    assert "| create |" not in env.pagure.comments(tid)[-1]
    assert len(env.smtp.messages) == 1  # mailed once per instance
    assert again[0].metadata["fedcloud_run_id"] == server.metadata["fedcloud_run_id"]


def _kernel_of(proc: psutil.Process) -> psutil.Process | None:
    for child in proc.children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


@pytest.mark.parametrize("window", [(1.0, 5.0), (5.0, 9.0)], ids=["early", "late"])
def test_killed_run_is_finished_by_a_rerun(cloud_env, window):
    """SIGKILL the kernel at a random moment (a run takes ~10 s after its kernel starts
    here: the early window hits the checks, facts, plan and volume creation, the late one
    the server creation, its wait, the metadata and the mail), then re-run."""
    env = cloud_env
    name = f"it-{random.randint(1000, 9999)}"
    tid, _ = file_issue(env, dev_request(name))
    delay = random.uniform(*window)
    proc = env.start("ticket", "run", tid, "--approve", "--cloud", CLOUD)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    kernel = None
    while kernel is None and time.monotonic() < deadline and proc.poll() is None:
        kernel = _kernel_of(parent)
        time.sleep(0.1)
    assert kernel is not None, "the run never started a kernel"
    time.sleep(delay)
    killed = False
    if kernel.is_running():
        kernel.send_signal(signal.SIGKILL)
        killed = True
    out, err = proc.communicate(timeout=300)
    progress = [line for line in err.replace("\r", "\n").splitlines() if "Executing" in line]
    print(f"SIGKILL after {delay:.1f}s (killed={killed}); first run exit {proc.returncode}; "
          f"last progress: {progress[-1].strip() if progress else '-'}")
    if killed:
        assert proc.returncode != 0 or "succeeded" in out, out + err

    rerun = env.fedcloud("ticket", "run", tid, "--approve", "--cloud", CLOUD)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    servers = [s for s in env.servers(tid) if s.status != "DELETED"]
    assert len(servers) == 1 and servers[0].status == "ACTIVE"
    vols = env.volumes(tid)
    assert len(vols) == 1, [(v.id, v.status) for v in vols]
    assert vols[0].status == "in-use"
    assert {a["server_id"] for a in vols[0].attachments} == {servers[0].id}
    by_name = [v for v in env.conn.block_storage.volumes() if v.name == f"{name}-srv"]
    assert [v.id for v in by_name] == [vols[0].id]  # no orphan volume


BAD = [
    ("malformed body", dict(body="I need a VM\n```yaml\nrunbook: instance-for-ticket\n"
                                 "parameters: [oops\n```\n"), "not valid YAML"),
    ("unknown runbook", dict(runbook="cloudlet-install"),
     "cannot be requested by ticket; allowed: instance-for-ticket, instance-retire"),
    ("unknown parameter", dict(extra={"colour": "blue"}), "colour: unknown parameter"),
    ("invalid name", dict(extra={"name": "Bad_Name"}), "name: 'Bad_Name'"),
    ("flavor outside class", dict(extra={"flavor": "m1.builder"}),
     "flavor: 'm1.builder' is not allowed for class dev; allowed: m1.tiny, m1.small, m1.medium"),
    ("image outside class", dict(extra={"image": "cirros"}), "image: 'cirros' is not allowed"),
    ("volume over class max", dict(extra={"volume_gb": 101}),
     "volume_gb: 101 is outside what class dev allows (0 to 100 GiB)"),
    ("expiry beyond lifetime", dict(extra={"instance_class": "test", "expires": "8d"}),
     "beyond the class lifetime; at most 168 h"),
    ("reporter not requester", dict(on_behalf=True),
     "is not an admin (member of sysadmin-main, sysadmin-cloud)"),
    ("user without key", dict(nokey=True), "has no ssh public key"),
    ("user outside groups", dict(groups=("designers",)), "in none of the groups allowed"),
    ("unknown user", dict(reporter="nobody-here"), "is not a user of the account system"),
    # issue 8: hostile tickets
    ("closed ticket", dict(status="Closed"),
     "is 'Closed', not open (Open): a ticket that is not open gets no instance"),
    ("absurd expiry", dict(extra={"expires": "99999999999999d"}),
     "is beyond the longest lifetime; at most 87600 h (10 years) for class dev"),
    ("year 99999", dict(extra={"expires": "99999-01-01T00:00"}), "nor an ISO date"),
    ("alias bomb", dict(body=_alias_bomb()), "YAML anchors (&a0) are not allowed"),
    ("long purpose", dict(extra={"purpose": "p" * 6000}), "(6000 characters)"),
]


@pytest.mark.parametrize("case, how, expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_leaves_the_cloud_unchanged(cloud_env, case, how, expected):
    env, c = cloud_env, cloud_env.conn
    name = f"it-{random.randint(1000, 9999)}"
    params = dev_request(name, how.get("extra"))
    reporter = how.get("reporter")
    if how.get("on_behalf"):
        params["requester"] = env.new_requester()
        reporter = env.new_requester()
    elif how.get("nokey"):
        reporter = env.new_requester()
        env.fas.users[reporter]["sshpubkeys"] = []
    elif "groups" in how:
        reporter = env.new_requester(groups=how["groups"])
    before = snapshot(c, env)
    tid, _ = file_issue(env, params, reporter=reporter, runbook=how.get("runbook",
                                                                         "instance-for-ticket"),
                        body=how.get("body"), status=how.get("status", "Open"))
    out = tickets.run_ticket(tickets.PagureSource(env.pagure.url, "fedora-infrastructure"), tid,
                             pol.load(env.policy_path), approve=True, cloud=CLOUD)
    assert out.exit_code == 2 and out.run_id is None
    [comment] = env.pagure.comments(tid)
    seen = html.unescape(comment)  # the answer is escaped markdown: compare what it reads as
    assert expected in seen, comment
    assert "refused before anything was created" in seen
    assert len(comment) < 2000 and "p" * 100 not in comment
    assert snapshot(c, env) == before
    assert not list((env.tmp / "outputs").glob("instance-for-ticket/*/*"))  # no run started


def test_security_group_drift_is_repaired(cloud_env):
    env, c = cloud_env, cloud_env.conn
    sg = secgroups.inspect(c, "fedcloud-standard").group
    if sg is None:
        sg = c.network.create_security_group(name="fedcloud-standard", description="drifted")
    c.network.create_security_group_rule(security_group_id=sg.id, direction="ingress",
                                         ethertype="IPv4", protocol="tcp", port_range_min=5432,
                                         port_range_max=5432, remote_ip_prefix="0.0.0.0/0")
    c.network.create_security_group_rule(security_group_id=sg.id, direction="ingress",
                                         ethertype="IPv4", protocol="icmp")
    name = f"it-{random.randint(1000, 9999)}"
    tid, _ = file_issue(env, dev_request(name, volume_gb=0))
    dry = env.fedcloud("ticket", "run", tid, "--cloud", CLOUD)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    plan = env.pagure.comments(tid)[0]
    assert "| update | security group | fedcloud-standard | drift repair: remove extra rules:" \
        in plan and "tcp 5432" in plan and "icmp" in plan
    assert secgroups.inspect(c, "fedcloud-standard").extra  # dry run changed nothing
    run = env.fedcloud("ticket", "run", tid, "--approve", "--cloud", CLOUD)
    assert run.returncode == 0, run.stdout + run.stderr
    assert assert_standard_group(c).id == sg.id


def test_retire(cloud_env):
    env = cloud_env
    name = f"it-{random.randint(1000, 9999)}"
    tid, requester = file_issue(env, dev_request(name))
    assert env.fedcloud("ticket", "run", tid, "--approve", "--cloud", CLOUD).returncode == 0
    [server] = env.servers(tid)
    dry = env.fedcloud("run", "instance-retire", "-p", "ticket", tid, "-p", "delete_volume",
                       "true", "--cloud", CLOUD)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert [s.id for s in env.servers(tid)] == [server.id]
    done = env.fedcloud("ticket", "run", tid, "--retire", "--delete-volume", "--approve",
                        "--cloud", CLOUD)
    assert done.returncode == 0, done.stdout + done.stderr
    answer = env.pagure.comments(tid)[-1]
    assert "`instance-retire`" in answer and "succeeded" in answer
    assert "| delete | server |" in answer and "| delete | volume |" in answer
    assert env.servers(tid) == [] and env.volumes(tid) == []
    assert env.conn.compute.find_keypair(f"fas-{requester}") is None
    retired = [m for m in env.smtp.messages if "retired" in m["message"]["Subject"]]
    assert len(retired) == 1 and f"{requester}@example.test" in retired[0]["rcpt"]


def test_error_server_is_replaced_and_loose_volume_reused(cloud_env):
    """What a failed earlier run leaves: a server in ERROR and an unattached volume."""
    import openstack

    env, c = cloud_env, cloud_env.conn
    name = f"it-{random.randint(1000, 9999)}"
    tid, requester = file_issue(env, dev_request(name))
    meta = {"fedcloud_ticket": tid, "fedcloud_requester": requester}
    loose = c.block_storage.create_volume(name=f"{name}-srv", size=1, metadata=meta)
    c.block_storage.wait_for_status(loose, "available", failures=["error"], wait=120)
    broken = c.compute.create_server(
        name=name, flavor_id=c.compute.find_flavor("m1.tiny").id,
        image_id=c.image.find_image("fedora-cloud-test").id,
        networks=[{"uuid": c.network.find_network("provider").id}], metadata=meta)
    c.compute.wait_for_server(broken, wait=120)
    admin = openstack.connect(cloud="fedcloud-admin")
    admin.compute.reset_server_state(broken, "error")
    assert c.compute.get_server(broken.id).status == "ERROR"

    dry = env.fedcloud("ticket", "run", tid, "--cloud", CLOUD)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    plan = env.pagure.comments(tid)[0]
    assert f"| delete | server | {name} | left in ERROR by an earlier run ({broken.id})" in plan
    assert f"| reuse | volume | {name}-srv |" in plan and "| create | volume |" not in plan

    run = env.fedcloud("ticket", "run", tid, "--approve", "--cloud", CLOUD)
    assert run.returncode == 0, run.stdout + run.stderr
    [server] = env.servers(tid)
    assert server.id != broken.id and server.status == "ACTIVE"
    [vol] = env.volumes(tid)
    assert vol.id == loose.id and vol.status == "in-use"
    assert {a["server_id"] for a in vol.attachments} == {server.id}


def test_over_quota_is_refused_with_the_numbers(cloud_env):
    """The policy's ceiling for the project, checked against its real usage."""
    from tests.fakes.site import policy_copy

    env, c = cloud_env, cloud_env.conn
    # a ceiling below what the project uses (others' servers come and go meanwhile: the
    # used count in the answer is read by the run itself)
    env.policy_path = policy_copy(
        env.tmp, fasjson_url=env.fas.url, smtp_port=env.smtp.port, pagure_url=env.pagure.url,
        quotas__testing={"instances": 0, "cores": 70, "ram_mb": 153600, "volumes": 20,
                         "volume_gb": 1000})
    name = f"it-{random.randint(1000, 9999)}"
    tid, _ = file_issue(env, dev_request(name))
    before = snapshot(c, env)
    run = env.fedcloud("ticket", "run", tid, "--approve", "--cloud", CLOUD)
    assert run.returncode == 2  # refused by the runbook's plan (PolicyError): fix and ask again
    [comment] = env.pagure.comments(tid)
    assert "**refused**" in comment and "over quota in project testing" in comment
    m = re.search(r"instances: (\d+) used \+ 1 requested > limit 0", comment)
    assert m, comment
    assert int(m.group(1)) >= 0
    assert snapshot(c, env) == before


def test_standard_group_is_created_exactly(conn):  # noqa: F811
    """A project without the group gets it with exactly the standard rules (a separate
    name here: the project's fedcloud-standard is in use by other tests' servers)."""
    name = f"fedcloud-it-{random.randint(10**5, 10**6 - 1)}"
    try:
        before = secgroups.ensure(conn, name)
        assert not before.exists and before.action == "create"
        assert_standard_group(conn, name)
        again = secgroups.ensure(conn, name)  # idempotent: nothing to add or remove
        assert again.action == "reuse"
        assert_standard_group(conn, name)
    finally:
        group = secgroups.inspect(conn, name).group
        if group is not None:
            conn.network.delete_security_group(group, ignore_missing=True)


def _run_id(comment: str) -> str:
    m = re.search(r"\(run `([^`]+)`\)", comment)
    assert m, comment
    return m.group(1)


def _results(env, run_id: str) -> dict:
    [folder] = list((env.tmp / "outputs").glob(f"*/*/{run_id}"))
    return json.loads((folder / "record.json").read_text())


def test_a_recorded_plan_is_applied_exactly(cloud_env):
    """The plan the reviewer saw on the ticket is the program: --approve-plan applies it
    (a qa instance: its expiry is part of the plan and must come out the same)."""
    env = cloud_env
    name = f"it-{random.randint(1000, 9999)}"
    tid, _ = file_issue(env, dev_request(name, instance_class="qa", expires="3d"))
    dry = env.fedcloud("ticket", "run", tid, "--cloud", CLOUD)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    planned = _run_id(env.pagure.comments(tid)[0])
    planned_steps = _results(env, planned)["results"]["plan"]["steps"]
    run = env.fedcloud("ticket", "run", tid, "--approve-plan", planned, "--cloud", CLOUD)
    assert run.returncode == 0, run.stdout + run.stderr
    applied = _run_id(env.pagure.comments(tid)[1])
    rec = _results(env, applied)
    assert rec["plan_of"] == planned and rec["results"]["approved_plan_of"] == planned
    walked = rec["results"]["instance"]["steps"]
    assert [(s["action"], s["kind"], s["name"]) for s in walked] == \
        [(s["action"], s["kind"], s["name"]) for s in planned_steps]
    assert all(s["status"] == "done" for s in walked
               if s["action"] in ("create", "update", "delete"))
    [server] = env.servers(tid)
    assert server.status == "ACTIVE" and server.metadata["fedcloud_run_id"] == applied
    meta_step = next(s for s in planned_steps if s["kind"] == "metadata")
    assert server.metadata["fedcloud_expires_at"] == \
        meta_step["inputs"]["set"]["fedcloud_expires_at"] != "never"
    shown = env.fedcloud("runs", "show", planned).stdout
    assert f"applied by run(s) {applied}" in shown


def test_a_plan_the_cloud_no_longer_supports_is_refused(cloud_env):
    """Between the dry run and its approval the requester's keypair appears: the recorded
    plan (create keypair) no longer holds; the run ends stale-plan and changes nothing."""
    env, c = cloud_env, cloud_env.conn
    name = f"it-{random.randint(1000, 9999)}"
    tid, requester = file_issue(env, dev_request(name))
    dry = env.fedcloud("ticket", "run", tid, "--cloud", CLOUD)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    planned = _run_id(env.pagure.comments(tid)[0])
    assert f"| create | keypair | fas-{requester} |" in env.pagure.comments(tid)[0]
    key = env.fas.users[requester]["sshpubkeys"][0]
    c.compute.create_keypair(name=f"fas-{requester}", public_key=key)
    before = snapshot(c, env)
    run = env.fedcloud("ticket", "run", tid, "--approve-plan", planned, "--cloud", CLOUD)
    assert run.returncode == 1, run.stdout + run.stderr
    answer = env.pagure.comments(tid)[1]
    assert "stale-plan" in answer and "create keypair" in answer and "became reuse keypair" in answer
    assert snapshot(c, env) == before  # nothing was changed
    assert env.servers(tid) == [] and env.volumes(tid) == []
    stale = _run_id(answer)
    assert _results(env, stale)["status"] == "stale-plan"
