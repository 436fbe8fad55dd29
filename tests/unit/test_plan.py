"""Plans and the step walker: the approved plan is the program."""
import json

import pytest

from fedcloud_lib.errors import CloudError, RunbookError, StalePlan
from fedcloud_lib.plan import (
    Handlers,
    Plan,
    Step,
    StopAfterPlan,
    load_plan,
    planning_time,
    require_approval,
    walk,
)

pytestmark = pytest.mark.unit


def test_plan_table_and_summary():
    plan = Plan.of("ticket 42", [Step("create", "server", "web01", "m1.small"),
                                 Step("reuse", "keypair", "alice"),
                                 Step("delete", "rule", "tcp 8080")])
    df = plan.to_frame()
    assert list(df.columns) == ["action", "kind", "name", "detail"]
    assert df.shape == (3, 4) and df.iloc[0]["name"] == "web01"
    assert plan.summary() == "ticket 42: 1 to create, 1 to reuse, 1 to delete"
    assert [a.name for a in plan.changes] == ["web01", "tcp 8080"]
    html = plan._repr_html_()
    assert "<table" in html and 'class="fedcloud-create"' in html and 'class="fedcloud-delete"' in html


def test_unapproved_plan_with_changes_stops_the_run(monkeypatch):
    monkeypatch.delenv("FEDCLOUD_RUN_DIR", raising=False)
    plan = Plan.of("p", [Step("create", "server", "a")])
    with pytest.raises(StopAfterPlan, match="approve=True"):
        require_approval(plan, False)
    assert require_approval(plan, True) is plan
    nothing = Plan.of("p", [Step("reuse", "server", "a")])
    assert require_approval(nothing, False) is nothing


def test_unknown_action_and_unserialisable_inputs_are_refused():
    with pytest.raises(ValueError, match="action must be one of"):
        Step("destroy", "server", "a")
    with pytest.raises(ValueError, match="JSON-able"):
        Step("create", "server", "a", inputs={"conn": object()})


def test_plan_round_trips_and_compares_on_decisions_not_detail():
    a = Plan.of("p", [Step("create", "server", "web", "m1.small at 12:00", {"flavor_id": "f1"})])
    b = Plan.from_dict(json.loads(json.dumps(a.to_dict())))
    assert b.decisions() == a.decisions() and b.steps[0].inputs == {"flavor_id": "f1"}
    reworded = Plan.of("p", [Step("create", "server", "web", "other words", {"flavor_id": "f1"})])
    assert a.differences(reworded) == []
    other = Plan.of("p", [Step("create", "server", "web", "", {"flavor_id": "f2"})])
    assert a.differences(other) == ["step 1: create server web: flavor_id changed"]
    reuse = Plan.of("p", [Step("reuse", "server", "web"), Step("create", "volume", "v")])
    assert a.differences(reuse) == ["step 1: create server web became reuse server web",
                                    "step 2: now also create volume v"]


def _recorder():
    calls = []
    h = Handlers()

    @h.on("server", "create", "delete")
    def server(ctx, step):
        calls.append((step.action, step.name, dict(step.inputs)))
        ctx["made"].append(step.name)
        return f"{step.name} done"

    @h.on("volume", "reuse")
    def volume(ctx, step):
        ctx["volume"] = step.inputs["id"]

    return h, calls


def test_walk_calls_one_handler_per_changing_step_in_order():
    h, calls = _recorder()
    plan = Plan.of("p", [Step("delete", "server", "old", inputs={"id": "s0"}),
                         Step("reuse", "volume", "v", inputs={"id": "v1"}),
                         Step("keep", "floating ip", "-"),
                         Step("create", "server", "new", inputs={"flavor_id": "f1"})])
    ctx = {"made": []}
    lines = []
    out = walk(plan, h, ctx, progress=lines.append)
    assert calls == [("delete", "old", {"id": "s0"}), ("create", "new", {"flavor_id": "f1"})]
    assert ctx == {"made": ["old", "new"], "volume": "v1"}  # the reuse handler ran too
    assert [(r.kind, r.status) for r in out] == [("server", "done"), ("volume", "done"),
                                                 ("floating ip", "skipped"), ("server", "done")]
    assert lines[0] == "[1/4] delete server old ..." and "done in" in lines[-1]


def test_walk_refuses_a_plan_it_cannot_carry_out_before_doing_anything():
    h, calls = _recorder()
    plan = Plan.of("p", [Step("create", "server", "a"), Step("update", "dns record", "a")])
    with pytest.raises(RunbookError, match="update dns record a; nothing was changed"):
        walk(plan, h, {"made": []}, progress=lambda _: None)
    assert calls == []


def test_a_cloud_failure_names_the_step_and_the_rerun():
    from openstack import exceptions as os_exc

    h = Handlers()

    @h.on("server", "create")
    def fail(ctx, step):
        raise os_exc.ConflictException("quota exceeded")

    plan = Plan.of("p", [Step("create", "server", "web")])
    with pytest.raises(CloudError, match=r"step 1/1 \(create server web\) failed: .*re-run"):
        walk(plan, h, None, progress=lambda _: None)


@pytest.fixture
def applying(tmp_path, monkeypatch):
    """A run that applies a recorded plan (what the engine sets up for --approve-plan)."""
    run_dir = tmp_path / "run"
    (run_dir / "inputs").mkdir(parents=True)
    monkeypatch.setenv("FEDCLOUD_RUN_DIR", str(run_dir))

    def approve(plan: Plan) -> None:
        (run_dir / "inputs" / "approved-plan.json").write_text(json.dumps(plan.to_dict()))

    return approve


def test_an_approved_plan_that_still_holds_is_what_is_applied(applying):
    recorded = Plan("instance web", (Step("create", "server", "web", "at 10:00", {"f": 1}),),
                    planned_at="2026-11-20T10:00:00+00:00", run_id="DRYRUN")
    applying(recorded)
    today = Plan.of("instance web", [Step("create", "server", "web", "at 12:00", {"f": 1})])
    got = require_approval(today, False)  # approval comes with the recorded plan
    assert got == recorded and got.run_id == "DRYRUN"
    assert planning_time().isoformat() == "2026-11-20T10:00:00+00:00"


def test_an_approved_plan_the_facts_no_longer_support_is_refused(applying):
    applying(Plan("p", (Step("create", "server", "web", "", {"f": 1}),), run_id="DRYRUN"))
    today = Plan.of("p", [Step("reuse", "server", "web", "", {"id": "s1"})])
    with pytest.raises(StalePlan) as e:
        require_approval(today, True)
    assert "DRYRUN" in str(e.value) and "Nothing was changed" in str(e.value)
    assert e.value.problems == ["step 1: create server web became reuse server web"]
    assert e.value.context["current"]["steps"][0]["action"] == "reuse"


def test_load_plan_names_a_bad_file(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text('{"title": "x"}')
    with pytest.raises(RunbookError, match="not a recorded plan"):
        load_plan(bad)


def test_the_planning_time_is_fixed_for_a_run_and_stamps_its_plan(monkeypatch):
    """A dry run computes an expiry from planning_time() in one cell and stamps the plan in
    another: both must be the same instant, or approving the recorded plan (which
    re-plans at the plan's stamp) would always find the expiry changed."""
    import datetime as dt

    from fedcloud_lib import plan as plan_mod

    monkeypatch.setenv("FEDCLOUD_RUN_ID", "RUN-T")
    monkeypatch.delenv("FEDCLOUD_RUN_DIR", raising=False)
    clock = iter(dt.datetime(2026, 11, 26, 12, 0, s, tzinfo=dt.timezone.utc) for s in range(60))
    monkeypatch.setattr(plan_mod, "utcnow", lambda: next(clock))
    first = planning_time()
    assert planning_time() == first  # later cells of the run get the same time
    assert Plan.of("p", [Step("create", "server", "a")]).planned_at == first.isoformat()
    assert plan_mod.new_planning_time() > first  # a new interactive submission moves on
