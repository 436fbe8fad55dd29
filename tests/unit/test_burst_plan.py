"""mass-rebuild-burst, the plan: builder count from quota and policy, leftovers, resume,
lifetime and deadline checks, the steps."""
from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from fedcloud_lib import secgroups
from fedcloud_lib.burst import plan as bplan
from fedcloud_lib.burst import request as breq
from fedcloud_lib.burst.facts import Facts
from fedcloud_lib.burst.results import BuildResult, Previous
from fedcloud_lib.burst.sweep import Leftover
from fedcloud_lib.errors import PolicyError
from fedcloud_lib.site import policy as pol

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def policy() -> pol.Policy:
    return pol.load(pol.DEFAULT_POLICY_PATH)


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    k = tmp_path_factory.mktemp("key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
    return k


def request(policy, key, tmp_path, n=40, **kw) -> breq.BurstRequest:
    p = tmp_path / "pkgs.csv"
    p.write_text("package,duration_s\n" + "".join(f"p{i:03d},{60 * (i % 7 + 1)}\n" for i in range(n)))
    return breq.prepare(policy, ticket="mr7", packages=str(p), command="build {package}",
                        ssh_key=str(key), now=NOW, **kw)


def facts(req, *, instances=(30, 0), cores=(70, 0), ram=(153600, 0), project="testing",
          leftovers=(), previous=()) -> Facts:
    limits = NS(instances=instances[0], instances_used=instances[1], total_cores=cores[0],
                total_cores_used=cores[1], total_ram=ram[0], total_ram_used=ram[1])
    return Facts(request=req, project=project, flavor=NS(id="f1", vcpus=2, ram=5120),
                 image=NS(id="i1"), network=NS(id="n1"),
                 secgroup=secgroups.GroupState("fedcloud-standard", None,
                                               sorted(secgroups.standard_rules())),
                 keypair=None, limits=limits, builders=tuple(leftovers),
                 previous=Previous(runs=("r0",) if previous else (), results=tuple(previous)))


def result(name, status) -> BuildResult:
    return BuildResult(name, status, 10.0, "b", 1, "", "", 0, 10.0, "r0")


def test_auto_takes_the_smallest_of_quota_policy_ceiling_and_packages(policy, key, tmp_path):
    req = request(policy, key, tmp_path)
    # testing: cloud 30 instances / 70 cores / 153600 MB and the same policy ceiling;
    # m1.builder 2 vCPU, 5120 MB: cores 35, ram 30 -> 30; policy burst ceiling 30
    bp = bplan.make_plan(policy, facts(req, instances=(30, 3), cores=(70, 6), ram=(153600, 15360)))
    assert bp.builders == 27
    q = {r["resource"]: r["builders_that_fit"] for r in bp.quota}
    assert q == {"instances": 27, "cores": 32, "ram_mb": 27}
    bp = bplan.make_plan(policy, facts(req, instances=(-1, 0), cores=(-1, 0), ram=(-1, 0),
                                       project="production"))
    assert bp.builders == 30  # production policy ceiling 60/175/288300 -> 56; burst ceiling 30
    small = request(policy, key, tmp_path, n=4)
    assert bplan.make_plan(policy, facts(small)).builders == 4  # no more builders than packages


def test_a_number_above_the_quota_is_refused_with_the_arithmetic(policy, key, tmp_path):
    req = request(policy, key, tmp_path, max_builders="12")
    with pytest.raises(PolicyError) as e:
        bplan.make_plan(policy, facts(req, cores=(20, 4)))
    text = str(e.value)
    assert "max_builders: 12 is above what this project allows now: 8" in text
    assert "cores: limit 20, used 4, freed 0, 2 per builder -> 8 builders" in text
    assert bplan.make_plan(policy, facts(req)).builders == 12


def test_no_room_at_all(policy, key, tmp_path):
    with pytest.raises(PolicyError, match="no room for a single m1.builder builder"):
        bplan.make_plan(policy, facts(request(policy, key, tmp_path), instances=(10, 10)))


def test_leftovers_are_deleted_and_count_as_freed(policy, key, tmp_path):
    req = request(policy, key, tmp_path)
    left = [Leftover(f"id{i}", f"fcb-mr7-old-{i}", "ACTIVE", "mr7", "r0", "", "left by run r0",
                     2, 5120) for i in range(3)]
    keep = Leftover("idx", "fcb-other", "ACTIVE", "mr9", "r9", "", "", 2, 5120)
    bp = bplan.make_plan(policy, facts(req, instances=(10, 10), leftovers=left + [keep]))
    assert bp.builders == 3  # only what deleting the leftovers frees
    deletes = [s for s in bp.plan.steps if s.action == "delete" and s.kind == "server"]
    assert [s.inputs["id"] for s in deletes] == ["id0", "id1", "id2"]


def test_the_steps_and_their_inputs(policy, key, tmp_path):
    req = request(policy, key, tmp_path, n=10)
    bp = bplan.make_plan(policy, facts(req))
    assert [(s.action, s.kind) for s in bp.plan.steps] == [
        ("create", "keypair"), ("create", "security group"), ("create", "builders"),
        ("create", "builds"), ("delete", "builders")]
    b = next(s for s in bp.plan.steps if s.kind == "builders").inputs
    assert b["count"] == 10 and b["metadata"] == {
        "fedcloud_burst": "mr7", "fedcloud_ticket": "mr7", "fedcloud_role": "burst-builder",
        "fedcloud_class": "builder"}
    assert b["lifetime_s"] == 86400 and b["boot_ceiling"] == 12
    builds = next(s for s in bp.plan.steps if s.kind == "builds").inputs
    durations = [d for _, d in builds["packages"]]
    assert durations == sorted(durations, reverse=True)  # longest expected first
    assert "run_id" not in str(bp.plan.to_dict()["steps"])  # volatile stamps stay out


def test_resume_skips_what_earlier_runs_attempted(policy, key, tmp_path):
    req = request(policy, key, tmp_path, n=6)
    prev = [result("p000", "built"), result("p001", "ftbfs"), result("p002", "timeout"),
            result("p003", "infra-error")]
    bp = bplan.make_plan(policy, facts(req, previous=prev))
    assert sorted(p.name for p in bp.remaining) == ["p003", "p004", "p005"]
    assert bp.done_earlier == 3 and bp.summary()["attempted by earlier runs"] == 3
    done = bplan.make_plan(policy, facts(request(policy, key, tmp_path, n=2), previous=[
        result("p000", "built"), result("p001", "ftbfs")]))
    assert [(s.action, s.kind) for s in done.plan.steps] == [("keep", "builds")]
    assert not done.plan.changes and done.builders == 0


def test_figures_lifetime_and_deadline(policy, key, tmp_path):
    req = request(policy, key, tmp_path, deadline="1h", build_timeout="30m")
    bp = bplan.make_plan(policy, facts(req))
    s = bp.summary()
    assert s["builders"] == 30 and s["lifetime holds"] == "yes"
    assert s["makespan / lower bound"] == round(bp.schedule.ratio, 4) and bp.schedule.ratio <= 1.5
    assert s["deadline holds"] == "yes" and bp.deadline_holds
    # 40 packages of up to 7 min on 1 builder: ~3 h of builds, the 1 h deadline does not hold
    tight = bplan.make_plan(policy, facts(request(policy, key, tmp_path, deadline="1h",
                                                  max_builders="1")))
    assert tight.deadline_holds is False and tight.summary()["deadline holds"] == "no"
    short_life = request(policy, key, tmp_path, builder_lifetime="1h", build_timeout="20m",
                         max_builders="1")
    sl = bplan.make_plan(policy, facts(short_life))
    assert not sl.lifetime_holds and "builders replaced" in sl.summary()["lifetime holds"]
    assert len(bp.table()) == len(s)
